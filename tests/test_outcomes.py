"""The decision table and risk tiers: the Python and Polars versions must agree on every input."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.findings.outcomes import decide, decide_expr, risk_tier, risk_tier_expr

money = st.one_of(st.none(), st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.booleans()), money), min_size=1, max_size=30))
def test_decide_python_equals_polars(rows: list[tuple[bool, bool | None, Decimal | None]]) -> None:
    frame = pl.DataFrame(rows, schema={"c": pl.Boolean, "e": pl.Boolean, "b": pl.Decimal(38, 2)}, orient="row")
    got = frame.select(decide_expr(pl.col("c"), pl.col("e"), pl.col("b")).alias("o"))["o"].to_list()
    assert got == [decide(c, e, b) for c, e, b in rows]


def test_missing_data_is_never_improper() -> None:
    assert decide(True, None, Decimal(100)) == "undetermined"
    assert decide(False, None, None) == "undetermined"
    assert decide(False, True, None) == "undetermined"


def test_the_table() -> None:
    assert decide(True, False, None) == "improper"
    assert decide(True, True, None) == "compliant"
    assert decide(False, True, Decimal("0.01")) == "unclaimed"
    assert decide(False, True, Decimal("0")) == "not_applicable"
    assert decide(False, False, Decimal(5)) == "not_applicable"
    assert decide(True, True, Decimal(5), in_window=False) == "improper"
    assert decide(False, True, Decimal(5), in_window=False) == "not_applicable"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["high", "medium", "low"]), st.lists(money, min_size=1, max_size=20))
def test_risk_tier_python_equals_polars(severity: str, amounts: list[Decimal | None]) -> None:
    frame = pl.DataFrame({"a": amounts}, schema={"a": pl.Decimal(38, 2)})
    kw = {"raise_at": Decimal(500000), "lower_below": Decimal(2000)}
    got = frame.select(risk_tier_expr(severity, pl.col("a"), **kw).alias("t"))["t"].to_list()
    assert got == [risk_tier(severity, a, **kw) for a in amounts]


def test_risk_tier_moves_one_level_with_the_amount() -> None:
    kw = {"raise_at": Decimal(500000), "lower_below": Decimal(2000)}
    assert risk_tier("medium", Decimal(500000), **kw) == "high"
    assert risk_tier("medium", Decimal("499999.99"), **kw) == "medium"
    assert risk_tier("medium", Decimal("1999.99"), **kw) == "low"
    assert risk_tier("high", Decimal(10**7), **kw) == "high"
    assert risk_tier("low", Decimal(1), **kw) == "low"
