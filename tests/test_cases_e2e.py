"""End to end: `zhixiang run` on Hangzhou sample data → `zhixiang cases sync` → task lists → the data corrected.

Uses the committed sample data when the tree has it, otherwise generates the same kind of data set.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook

from engine.cli import main
from notifier.cases.ledger import case_number, read_findings_folder
from notifier.cases.queries import find_cases
from notifier.cases.tasks import HEADERS
from notifier.db import open_state
from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "hangzhou"
pytestmark = pytest.mark.slow


def zx(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the Hangzhou sample data (the test corrects one taxpayer's claims)."""
    out = tmp_path_factory.mktemp("hangzhou")
    if SAMPLE.is_dir():
        for table in SAMPLE.iterdir():
            if table.is_file():
                (out / table.name).write_bytes(table.read_bytes())
    else:
        from sample_data.generator import generate, write_tables

        write_tables(generate(3000, seed=2026), out)
    return out


def case_worthy(findings: pl.DataFrame) -> pl.DataFrame:
    return findings.filter((pl.col("kind") == "undetermined")
                           | ((pl.col("kind") == "improper") & pl.col("risk_tier").is_in(["high", "medium"])))


def keys(frame: pl.DataFrame) -> set[str]:
    return {case_number(t, r, p) for t, r, p in frame.select("taxpayer_id", "rule_id", "period").iter_rows()}


def test_cases_from_the_engines_real_output(data: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "state.sqlite")
    run1 = tmp_path / "run1"
    zx("run", "--data", str(data), "--period", "2025", "--out", str(run1), "--quiet")
    findings = pl.read_parquet(run1 / "findings.parquet")
    worthy = case_worthy(findings)
    assert worthy.height > 0

    # The ledger holds exactly the medium/high improper claims and the undetermined findings.
    zx("cases", "sync", "--findings", str(run1), "--state", state, "--as-of", "2026-01-10")
    engine = open_state(state)
    ledger = {c.case_no: c for c in find_cases(engine)}
    assert set(ledger) == keys(worthy)
    for row in worthy.iter_rows(named=True):
        case = ledger[case_number(row["taxpayer_id"], row["rule_id"], row["period"])]
        assert case.tier == (row["risk_tier"] if row["kind"] == "improper" else "verification")
        assert case.amount == row["estimated_amount"] and case.reasons == row["reasons"]
        assert case.evidence == row["evidence"] and case.tax_authority == row["tax_authority"]

    # The same run again leaves the same cases.
    result = zx("cases", "sync", "--findings", str(run1), "--state", state, "--as-of", "2026-01-11")
    assert re.search(r"新立案\s*│\s*0\s", result.output)
    assert re.search(rf"无变化\s*│\s*{len(ledger):,}\s", result.output)
    again = {c.case_no: c for c in find_cases(engine)}
    assert {k: (c.status, c.fingerprint, c.due_on) for k, c in again.items()} == {
        k: (c.status, c.fingerprint, c.due_on) for k, c in ledger.items()}

    # One workbook per authority, holding that authority's cases with their amounts.
    out = tmp_path / "tasks"
    zx("cases", "export", "--state", state, "--out", str(out), "--as-of", "2026-01-15")
    per_authority = Counter(c.tax_authority for c in ledger.values())
    assert sorted(p.stem for p in out.glob("*.xlsx")) == sorted(per_authority)
    amounts = {case_number(t, r, p): a for t, r, p, a in
               worthy.select("taxpayer_id", "rule_id", "period", "estimated_amount").iter_rows()}
    for authority, n in per_authority.items():
        wb = load_workbook(out / f"{authority}.xlsx")
        rows = [dict(zip(HEADERS, r, strict=True)) for ws in wb.worksheets[:3] for r in ws.iter_rows(min_row=2,
                                                                                                   values_only=True)]
        assert len(rows) == n
        for r in rows:
            expected = amounts[r["案件编号"]]
            assert (None if r["涉及金额（元）"] is None else Decimal(str(r["涉及金额（元）"])).quantize(Decimal("0.01"))
                    ) == expected

    # One taxpayer corrects its declarations: its claims for 2025 are withdrawn, everything else stays.
    improper = worthy.filter(pl.col("kind") == "improper")
    target = improper.group_by("taxpayer_id").len().sort(["len", "taxpayer_id"], descending=[True, False])[0, 0]
    claims = pl.read_csv(data / "claims.csv", infer_schema=False)
    claims.filter(~((pl.col("taxpayer_id") == target) & (pl.col("period") == "2025"))).write_csv(data / "claims.csv")
    run2 = tmp_path / "run2"
    zx("run", "--data", str(data), "--period", "2025", "--out", str(run2), "--quiet")
    worthy2 = case_worthy(pl.read_parquet(run2 / "findings.parquet"))
    gone = keys(worthy) - keys(worthy2)
    assert gone and gone <= keys(worthy.filter(pl.col("taxpayer_id") == target))
    assert keys(worthy2) <= keys(worthy)  # withdrawing claims opens nothing new

    zx("cases", "sync", "--findings", str(run2), "--state", state, "--as-of", "2026-01-12")
    run_id = read_findings_folder(run2).run_id
    after = {c.case_no: c for c in find_cases(engine)}
    assert set(after) == set(ledger)  # never duplicated, never deleted
    for number, case in after.items():
        if number in gone:
            assert (case.status, case.cleared_run_id) == ("已消除", run_id)
        else:
            assert (case.status, case.cleared_run_id, case.opened_on) == ("待分派", None, date(2026, 1, 10))
