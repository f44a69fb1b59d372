"""Figures in reasons are formatted identically by the Python and Polars paths."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evidence import format_value, format_value_expr


def _polars(values: list, dtype: pl.DataType, fmt: str, column: str = "") -> list:  # type: ignore[type-arg]
    frame = pl.DataFrame({"v": values}, schema={"v": dtype})
    return frame.select(format_value_expr(pl.col("v"), fmt, column=column, dtype=dtype).alias("v"))["v"].to_list()  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.decimals(min_value=-10**12, max_value=10**12, places=2, allow_nan=False), min_size=1))
def test_money(values: list[Decimal]) -> None:
    assert _polars(values, pl.Decimal(38, 2), "money") == [format_value(v, "money") for v in values]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 100000).map(float),
                          st.floats(0, 100000, allow_nan=False).map(lambda x: round(x, 2))), min_size=1))
def test_float_numbers(values: list[float]) -> None:
    assert _polars(values, pl.Float64(), "number") == [format_value(v, "number") for v in values]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False), min_size=1))
def test_computed_numbers(values: list[Decimal]) -> None:
    assert _polars(values, pl.Decimal(38, 6), "number") == [format_value(v, "number") for v in values]


def test_other_kinds() -> None:
    assert _polars([date(2025, 12, 31), None], pl.Date(), "date") == ["2025-12-31", None]
    assert _polars([True, False, None], pl.Boolean(), "bool") == ["是", "否", None]
    assert _polars(["small_scale", None], pl.String(), "enum", "vat_status") == ["小规模纳税人", None]
    assert format_value("small_scale", "enum", column="vat_status") == "小规模纳税人"
    assert _polars([301, None], pl.Int64(), "int") == ["301", None]


def test_examples() -> None:
    assert format_value(Decimal("3000000.005"), "money") == "3000000.01"
    assert format_value(301.0, "number") == "301"
    assert format_value(300.5, "number") == "300.5"
