"""Every node of the rule tree through the SQL backend, on DuckDB and PostgreSQL, against the Polars translation.

The same random expressions and rows as tests/test_parity_nodes.py (exact decimals rounded half-to-even
at 6 places after * and /, floats cast as Polars casts them, division by zero and missing figures
unknown): values must be equal and conditions must give the same true / false / unknown. Hypothesis is
derandomized (a fixed seed), so CI sees the same examples every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ir
from engine.backends.sql import expression_query
from engine.catalogue import Rule
from engine.sql_run import _DuckSession, _PgSession
from profiles.periods import parse_period
from profiles.schema import PROFILE_FIELDS
from tests.conftest import fresh_pg_database
from tests.test_parity_nodes import (
    _SETTINGS,
    _same,
    bool_exprs,
    checked,
    numeric_exprs,
    polars_values,
    probe_rule,
    rows_strategy,
)

PERIODS = ["2024", "2025", "2025Q4", "2024-02"]
_SQL_SETTINGS: dict[str, Any] = {**_SETTINGS, "derandomize": True}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_pg_database("zx_") as url:
        yield url


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_session(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    if request.param == "duckdb":
        s: Any = _DuckSession()
    else:
        s = _PgSession(request.getfixturevalue("pg_url"))
    try:
        yield request.param, s
    finally:
        s.close()


def sql_values(session: tuple[str, Any], node: ir.Node, rule: Rule, rows: list[dict[str, Any]],
               period: str, floor_division: bool | None = None) -> list[Any]:
    dialect, s = session
    used = sorted(set(ir.fields_of(node)) | {"sales"})
    frame = pl.DataFrame([{k: r.get(k) for k in used} for r in rows],
                         schema={k: PROFILE_FIELDS[k].dtype for k in used}).with_row_index("zx_row")
    frame = frame.with_columns(pl.col("zx_row").cast(pl.Int64))
    s.load({"zx_probe": frame})
    sql = expression_query(node, rule, parse_period(period), dialect, "zx_probe", keep=("zx_row",),
                           floor_division=floor_division)
    out = s.fetch(f"{sql} ORDER BY zx_row")
    return out["zx_value"].to_list()


@settings(max_examples=80, **_SQL_SETTINGS)
@given(text=numeric_exprs, rows=rows_strategy, period=st.sampled_from(PERIODS))
def test_sql_values_agree(engine_session: tuple[str, Any], text: str, rows: list[dict[str, Any]],
                          period: str) -> None:
    node = checked(text)
    _, rule = probe_rule(node)
    expected = polars_values(node, rule, rows, period)
    got = sql_values(engine_session, node, rule, rows, period)
    for row, e, g in zip(rows, expected, got, strict=True):
        assert _same(g, e), (engine_session[0], text, row, e, g)


@settings(max_examples=80, **_SQL_SETTINGS)
@given(text=bool_exprs, rows=rows_strategy, period=st.sampled_from(PERIODS))
def test_sql_conditions_agree(engine_session: tuple[str, Any], text: str, rows: list[dict[str, Any]],
                              period: str) -> None:
    node = checked(text)
    _, rule = probe_rule(node)
    expected = polars_values(node, rule, rows, period)
    got = sql_values(engine_session, node, rule, rows, period)
    assert got == expected, (engine_session[0], text, rows)


@settings(max_examples=60, **_SQL_SETTINGS)
@given(text=numeric_exprs, rows=rows_strategy, period=st.sampled_from(PERIODS))
def test_spark_quotients_agree(engine_session: tuple[str, Any], text: str, rows: list[dict[str, Any]],
                               period: str) -> None:
    """The quotient Spark gets (FLOOR of the decimal quotient, corrected by the remainder), run where the
    decimal quotient is as coarse as Spark's: PostgreSQL's numeric division. (PySpark is not run here.)"""
    if engine_session[0] != "postgres":
        pytest.skip("DuckDB divides decimals in floating point: not a stand-in for Spark's DECIMAL division")
    node = checked(text)
    _, rule = probe_rule(node)
    expected = polars_values(node, rule, rows, period)
    got = sql_values(engine_session, node, rule, rows, period, floor_division=True)
    for row, e, g in zip(rows, expected, got, strict=True):
        assert _same(g, e), (text, row, e, g)
