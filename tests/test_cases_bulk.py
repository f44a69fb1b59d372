"""Fifty thousand findings through the ledger on SQLite and PostgreSQL: right counts at scale, and the time it takes.

The timings are printed (pytest -s) and attached to the report as properties, not asserted: the suite runs
on shared machines. Run alone with `scripts/test tests/test_cases_bulk.py -s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from notifier.cases.ledger import sync_findings
from notifier.cases.queries import CaseFilter, count_cases
from notifier.cases.status import CLEARED, PENDING
from notifier.cases.tables import case_history
from notifier.db import open_state
from tests.builders.cases import finding, findings_frame

pytestmark = pytest.mark.slow
N = 50_000


def big_findings() -> pl.DataFrame:
    """N findings: every fifth undetermined, the rest improper high / medium / low in turn; 12 authorities."""
    rows = []
    for i in range(N):
        kind = "undetermined" if i % 5 == 0 else "improper"
        rows.append(finding(f"9133010{i:011d}", kind=kind, tier=("high", "medium", "low")[i % 3],
                            amount=None if kind == "undetermined" else f"{1000 + i}.50", employees=301 + i % 7,
                            authority=f"1330{i % 12:02d}00000"))
    return findings_frame(rows)


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    e = open_state(state_url)
    yield e
    e.dispose()


def test_fifty_thousand_findings(engine: Engine, record_property: Callable[[str, object], None]) -> None:
    first = big_findings()
    row = pl.int_range(pl.len())
    changed = first.with_columns(
        pl.when(row % 10 == 1).then(pl.col("estimated_amount") * 2).otherwise(pl.col("estimated_amount"))
        .cast(first.schema["estimated_amount"]))
    corrected = changed.filter(row % 4 != 0)
    cases = first.filter((pl.col("kind") == "undetermined") | (pl.col("risk_tier") != "low")).height

    timings = {}
    for day, (name, frame) in enumerate((("first", first), ("same", first), ("changed", changed),
                                         ("corrected", corrected))):
        start = time.perf_counter()
        report = sync_findings(engine, frame, run_id=name, as_of=date(2026, 1, 10) + timedelta(days=day),
                               periods=["2025"], at=datetime(2026, 1, 10, tzinfo=UTC) + timedelta(days=day))
        timings[name] = time.perf_counter() - start
        if name == "first":
            assert (report.opened, report.reminders) == (cases, N - cases)
        elif name == "same":
            assert (report.opened, report.updated, report.cleared, report.unchanged) == (0, 0, 0, cases)
        elif name == "changed":
            assert report.updated == changed.filter((row % 10 == 1) & (row % 5 != 0) & (row % 3 != 2)).height
        else:
            gone = changed.filter((row % 4 == 0) & ((row % 5 == 0) | (row % 3 != 2))).height
            assert (report.cleared, report.opened) == (gone, 0)
    assert count_cases(engine) == cases
    assert count_cases(engine, CaseFilter(statuses=[CLEARED])) + count_cases(engine, CaseFilter(statuses=[PENDING])) \
        == cases
    with engine.connect() as conn:
        history = conn.execute(select(func.count()).select_from(case_history)).scalar_one()
    assert history > cases
    line = ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
    print(f"\n{engine.dialect.name}: {N:,} findings ({cases:,} cases): {line}")
    for k, v in timings.items():
        record_property(f"{engine.dialect.name}_{k}_seconds", round(v, 3))
