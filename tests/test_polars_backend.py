"""The Polars translation of each node: values, three-valued logic, exact money."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

import polars as pl
import pytest

from engine import ir
from engine.backends.polars import Context, translate
from engine.catalogue import DatedValue, Parameter
from engine.expressions import parse_expression
from engine.typecheck import TypeChecker
from profiles.periods import parse_period
from profiles.schema import PROFILE_FIELDS

PERIOD = parse_period("2025")


class _Rule:
    """Just enough of a Rule for translating parameters."""

    id = "r"
    parameters: ClassVar[dict[str, Parameter]] = {
        "cap": Parameter("cap", "上限", "元", (DatedValue(date(2023, 1, 1), 300, "x"),
                                              DatedValue(date(2026, 1, 1), 400, "y"))),
        "grades": Parameter("grades", "等级", "", (DatedValue(date(2023, 1, 1), ("A", "B"), "x"),)),
        "brackets": Parameter("brackets", "税率表", "", (DatedValue(date(2023, 1, 1), (
            {"upto": 30000, "rate": Decimal("0.05"), "quick_deduction": 0},
            {"upto": 90000, "rate": Decimal("0.10"), "quick_deduction": 1500},
            {"rate": Decimal("0.20"), "quick_deduction": 10500},
        ), "x"),)),
    }


def evaluate(text: str, rows: list[dict[str, Any]], period: str = "2025") -> list[Any]:
    node = parse_expression(text)
    problems: list[Any] = []
    checker = TypeChecker(parameters={k: v.values[-1].value for k, v in _Rule.parameters.items()},
                          rule_ids={"r"}, problems=problems)
    node, _ = checker.infer(node)
    assert not problems, problems
    schema = {k: PROFILE_FIELDS[k].dtype for k in rows[0]}
    frame = pl.DataFrame(rows, schema=schema)
    ctx = Context(period=parse_period(period), rule=_Rule())  # type: ignore[arg-type]
    return frame.select(translate(node, ctx).alias("v"))["v"].to_list()


def test_comparison_with_a_missing_figure_is_unknown() -> None:
    assert evaluate("employees_qavg <= 300", [{"employees_qavg": 300.0}, {"employees_qavg": 301.0},
                                             {"employees_qavg": None}]) == [True, False, None]


def test_kleene_and_or_decide_when_known_figures_decide() -> None:
    rows = [{"restricted_industry": r, "employees_qavg": e} for r in (True, False, None) for e in (100.0, None)]
    got = evaluate("not restricted_industry and employees_qavg <= 300", rows)
    assert got == [False, False, True, None, None, None]
    got = evaluate("restricted_industry or employees_qavg <= 300", rows)
    assert got == [True, True, True, None, True, None]


def test_in_with_missing_item_is_unknown_and_not_in_negates() -> None:
    rows = [{"credit_grade": g} for g in ("A", "M", None)]
    assert evaluate('credit_grade in ["A", "B"]', rows) == [True, False, None]
    assert evaluate('credit_grade not in ["A", "B"]', rows) == [False, True, None]
    assert evaluate("credit_grade in grades", rows) == [True, False, None]


def test_has_is_never_unknown() -> None:
    rows = [{"hnte_cert_valid_until": date(2026, 1, 1)}, {"hnte_cert_valid_until": None}]
    assert evaluate("has(hnte_cert_valid_until)", rows) == [True, False]


def test_money_arithmetic_is_exact_decimal() -> None:
    rows = [{"sales": Decimal("0.10")}, {"sales": Decimal("3000000.01")}]
    got = evaluate("sales * 0.03 + sales * 0.07", rows)
    assert got == [Decimal("0.010000"), Decimal("300000.001000")]


def test_division_by_zero_is_unknown_not_an_error() -> None:
    rows = [{"employees": 0, "disabled_employees": 1}, {"employees": 4, "disabled_employees": 1}]
    assert evaluate("disabled_employees / employees", rows) == [None, Decimal("0.25")]


def test_min_max_with_a_missing_value_are_unknown() -> None:
    rows = [{"taxable_income": Decimal("5000000")}, {"taxable_income": None}]
    assert evaluate("min(taxable_income, 2000000)", rows) == [Decimal("2000000"), None]
    assert evaluate("max(taxable_income, 0)", rows) == [Decimal("5000000"), None]


def test_if_else_with_unknown_condition_is_unknown() -> None:
    rows = [{"employees": 10}, {"employees": 40}, {"employees": None}]
    assert evaluate("1 if employees <= 30 else 2", rows) == [1, 2, None]


def test_round_is_half_up() -> None:
    rows = [{"sales": Decimal("4.69")}, {"sales": Decimal("-4.69")}, {"sales": Decimal("4.67")}]
    # 2.345 → 2.35 and −2.345 → −2.35 (Polars' own round would give 2.34: half-even); 2.335 → 2.34.
    assert evaluate("round(sales * 0.5, 2)", rows) == [Decimal("2.35"), Decimal("-2.35"), Decimal("2.34")]


def test_progressive_tax_uses_the_bracket_table() -> None:
    rows = [{"taxable_income": Decimal(v)} for v in ("20000", "30000", "50000", "500000")] + [{"taxable_income": None}]
    got = evaluate("progressive(taxable_income, brackets)", rows)
    assert got == [Decimal("1000"), Decimal("1500"), Decimal("3500"), Decimal("89500"), None]


def test_dated_parameter_takes_the_value_in_force() -> None:
    rows = [{"employees_qavg": 350.0}]
    assert evaluate("employees_qavg <= cap", rows, "2025") == [False]
    assert evaluate("employees_qavg <= cap", rows, "2026Q1") == [True]


def test_startswith_any_prefix() -> None:
    rows = [{"industry_code": c} for c in ("F5211", "C1610", "C3911", None)]
    assert evaluate('startswith(industry_code, ["F", "C16"])', rows) == [True, True, False, None]


def test_months_between_counts_calendar_months() -> None:
    rows = [{"registered_on": date(2023, 12, 31)}, {"registered_on": date(2025, 12, 1)}, {"registered_on": None}]
    assert evaluate("months_between(registered_on, period_end())", rows) == [24, 0, None]


@pytest.mark.parametrize("text", ["period_kind() == \"year\"", "period_start() == date(\"2025-01-01\")"])
def test_period_functions(text: str) -> None:
    assert evaluate(text, [{"sales": None}]) == [True]


def test_every_node_type_has_a_translation() -> None:
    from engine.backends import polars as backend

    assert set(backend._TRANSLATE) == {ir.Field, ir.Param, ir.Literal_, ir.Compare, ir.In, ir.And, ir.Or, ir.Not,
                                       ir.Arith, ir.Neg, ir.IfElse, ir.Call}
