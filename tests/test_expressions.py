"""The condition language: what parses, into which tree, and where errors point."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine import ir
from engine.expressions import ExpressionError, parse_expression


def test_comparison_and_logic_parse_into_the_tree() -> None:
    node = parse_expression('taxable_income <= 3000000.00 and not restricted_industry or credit_grade in ["A"]')
    assert isinstance(node, ir.Or)
    left, right = node.items
    assert isinstance(left, ir.And)
    assert left.items[0] == ir.Compare("<=", ir.Field("taxable_income"), ir.Literal_(Decimal("3000000.00")))
    assert left.items[1] == ir.Not(ir.Field("restricted_industry"))
    assert right == ir.In(ir.Field("credit_grade"), ir.Literal_(("A",)))


def test_decimal_literals_keep_their_digits_exactly() -> None:
    node = parse_expression("sales * 0.1")
    assert isinstance(node, ir.Arith)
    assert node.right == ir.Literal_(Decimal("0.1"))  # not 0.1000000000000000055511151231257827


def test_date_function_becomes_a_date_literal() -> None:
    assert parse_expression('date("2019-04-01")') == ir.Literal_(date(2019, 4, 1))


def test_chained_comparison_is_a_conjunction() -> None:
    node = parse_expression("0 < sales <= 300000")
    assert node == ir.And((ir.Compare("<", ir.Literal_(0), ir.Field("sales")),
                           ir.Compare("<=", ir.Field("sales"), ir.Literal_(300000))))


def test_not_in_and_negative_numbers() -> None:
    assert parse_expression('x not in ["a", "b"]') == ir.In(ir.Field("x"), ir.Literal_(("a", "b")), negated=True)
    assert parse_expression("-5") == ir.Literal_(-5)


def test_spans_are_offset_into_the_rule_file() -> None:
    node = parse_expression("a <= b", file="rules/x.yaml", line=12, col=11)
    assert isinstance(node, ir.Compare)
    assert (node.right.span.line, node.right.span.col) == (12, 16)


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        ("a && b", "无法解析表达式", "用 and 代替 &&"),
        ("a.b", "不支持的写法（Attribute）", ""),
        ("evnts(1)", "未知函数 evnts()", "events"),
        ('date("2019-02-30")', "日期 2019-02-30 不存在", ""),
        ("x is None", "不支持 is / is not", ""),
        ("x ** 2", "不支持的运算符", "乘方、取余等请改写为乘除法"),
        ("", "表达式为空", ""),
    ],
)
def test_errors_say_what_is_wrong_and_suggest_a_fix(text: str, message: str, suggestion: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, file="r.yaml", line=3, col=9)
    problem = info.value.problems[0]
    assert message in problem.message
    assert problem.suggestion == suggestion
    assert problem.file == "r.yaml" and problem.line == 3


def test_every_problem_is_reported_not_just_the_first() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("a.b + evnts(1) + c[0]")
    assert len(info.value.problems) == 3


def test_nothing_is_evaluated() -> None:
    # A would-be injection is only ever a parse error, never executed.
    with pytest.raises(ExpressionError):
        parse_expression("__import__('os').system('true')")
