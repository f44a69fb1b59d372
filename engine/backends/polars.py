"""The Polars backend: translate the rule tree into Polars expressions.

Each node type has one translation (the `_TRANSLATE` table). Three-valued logic comes from Polars
itself — comparisons with null give null, and `&`/`|` are Kleene — except where a construct would
turn unknown into a value (when/then, min/max, division), which is guarded here so missing data
stays unknown. Money is exact: arithmetic runs on Decimal(38, 6) and rounds 四舍五入 at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl

from engine import ir
from engine.backends.common import NotTranslatableError, is_numeric
from engine.catalogue import Rule
from engine.evidence import round_half_up
from engine.functions import FUNCTIONS, MACROS, events_window
from profiles.periods import Period
from profiles.schema import MONEY_WORK_DTYPE


def claimed_col(rule_id: str) -> str:
    return f"__claimed__{rule_id}"


def claim_amount_col(rule_id: str) -> str:
    return f"__claim_amount__{rule_id}"


def eligible_col(rule_id: str) -> str:
    return f"{rule_id}__eligible"


def qualifies_col(rule_id: str) -> str:
    """Scope and conditions without the not-stacked ones: what eligible() reads from another rule."""
    return f"{rule_id}__qualifies"


def condition_col(rule_id: str, condition_id: str) -> str:
    return f"{rule_id}__c__{condition_id}"


@dataclass
class Context:
    """What a translation needs besides the node: the period, the rule, and precomputed columns."""

    period: Period
    rule: Rule | None = None
    active: frozenset[str] = frozenset()  # rules whose eligibility column exists for this period
    events: dict[tuple[Any, ...], str] = field(default_factory=dict)  # (function, event kinds, argument)

    def event_column(self, call: ir.Call) -> str:
        """Register (once) and name the column counting the events a call asks for."""
        kinds = tuple(call.args[0].value) if isinstance(call.args[0], ir.Literal_) else ()  # type: ignore[arg-type]
        arg = call.args[1].value if isinstance(call.args[1], ir.Literal_) else None
        key = (call.name, kinds, arg)
        if key not in self.events:
            self.events[key] = f"__events__{len(self.events)}"
        return self.events[key]


def translate(node: ir.Node, ctx: Context) -> pl.Expr:
    """The Polars expression computing `node` for every taxpayer of the period."""
    try:
        fn = _TRANSLATE[type(node)]
    except KeyError:
        raise NotTranslatableError(f"no Polars translation for {type(node).__name__}") from None
    return fn(node, ctx)


def exact(expr: pl.Expr) -> pl.Expr:
    """A number as the exact working decimal."""
    return expr.cast(MONEY_WORK_DTYPE)


def _literal(value: Any) -> pl.Expr:
    if isinstance(value, bool) or value is None:
        return pl.lit(value)
    if isinstance(value, Decimal):
        return pl.lit(value, dtype=MONEY_WORK_DTYPE)
    if isinstance(value, int):
        return pl.lit(value, dtype=pl.Int64)
    if isinstance(value, date):
        return pl.lit(value, dtype=pl.Date)
    if isinstance(value, tuple):
        return pl.lit(pl.Series(list(value)))
    return pl.lit(value)


def _field(node: ir.Field, ctx: Context) -> pl.Expr:
    return pl.col(node.name)


def _param(node: ir.Param, ctx: Context) -> pl.Expr:
    assert ctx.rule is not None
    return _literal(ctx.rule.parameters[node.name].at(ctx.period.start))


def _lit(node: ir.Literal_, ctx: Context) -> pl.Expr:
    return _literal(node.value)


def _compare(node: ir.Compare, ctx: Context) -> pl.Expr:
    left, right = translate(node.left, ctx), translate(node.right, ctx)
    if is_numeric(node.left, ctx) and is_numeric(node.right, ctx):
        left, right = exact(left), exact(right)
    ops: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
        "<": pl.Expr.lt, "<=": pl.Expr.le, ">": pl.Expr.gt, ">=": pl.Expr.ge, "==": pl.Expr.eq, "!=": pl.Expr.ne,
    }
    return ops[node.op](left, right)


def _options(node: ir.Node, ctx: Context) -> list[Any]:
    if isinstance(node, ir.Literal_):
        return list(node.value or ())  # type: ignore[arg-type]
    if isinstance(node, ir.Param) and ctx.rule is not None:
        return list(ctx.rule.parameters[node.name].at(ctx.period.start) or ())
    raise NotTranslatableError("in 之后只能是列表常量或列表参数")


def _in(node: ir.In, ctx: Context) -> pl.Expr:
    item = translate(node.item, ctx)
    options = _options(node.options, ctx)
    # is_in gives false for a null item; unknown must stay unknown.
    test = pl.when(item.is_null()).then(pl.lit(None, pl.Boolean)).otherwise(item.is_in(options))
    return ~test if node.negated else test


def _and(node: ir.And, ctx: Context) -> pl.Expr:
    return pl.all_horizontal([translate(i, ctx) for i in node.items])


def _or(node: ir.Or, ctx: Context) -> pl.Expr:
    return pl.any_horizontal([translate(i, ctx) for i in node.items])


def _not(node: ir.Not, ctx: Context) -> pl.Expr:
    return ~translate(node.item, ctx)


def _arith(node: ir.Arith, ctx: Context) -> pl.Expr:
    left, right = exact(translate(node.left, ctx)), exact(translate(node.right, ctx))
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    # Division by zero is unknown, not an error that stops the batch.
    return left / pl.when(right != 0).then(right).otherwise(pl.lit(None, MONEY_WORK_DTYPE))


def _neg(node: ir.Neg, ctx: Context) -> pl.Expr:
    return -exact(translate(node.item, ctx))


def _ifelse(node: ir.IfElse, ctx: Context) -> pl.Expr:
    cond = translate(node.cond, ctx)
    then, otherwise = translate(node.then, ctx), translate(node.otherwise, ctx)
    if is_numeric(node.then, ctx) or is_numeric(node.otherwise, ctx):
        then, otherwise = exact(then), exact(otherwise)
    return pl.when(cond).then(then).when(~cond).then(otherwise).otherwise(None)


def _call(node: ir.Call, ctx: Context) -> pl.Expr:
    return _CALLS[node.name](node, ctx)


def _has(node: ir.Call, ctx: Context) -> pl.Expr:
    return translate(node.args[0], ctx).is_not_null()


def _startswith(node: ir.Call, ctx: Context) -> pl.Expr:
    text = translate(node.args[0], ctx)
    prefixes = _options(node.args[1], ctx)
    return pl.any_horizontal([text.str.starts_with(p) for p in prefixes])


def _events(node: ir.Call, ctx: Context) -> pl.Expr:
    return pl.col(ctx.event_column(node))


def _minmax(node: ir.Call, ctx: Context) -> pl.Expr:
    args = [exact(translate(a, ctx)) for a in node.args]
    combine = pl.min_horizontal if node.name == "min" else pl.max_horizontal
    # min_horizontal skips nulls; a missing figure must make the result unknown.
    return pl.when(pl.any_horizontal([a.is_null() for a in args])).then(None).otherwise(combine(args))


def _round(node: ir.Call, ctx: Context) -> pl.Expr:
    places = node.args[1].value if isinstance(node.args[1], ir.Literal_) else 2
    return exact(round_half_up(exact(translate(node.args[0], ctx)), int(places)))  # type: ignore[arg-type]


def _progressive(node: ir.Call, ctx: Context) -> pl.Expr:
    amount = exact(translate(node.args[0], ctx))
    brackets = ctx.rule.parameters[node.args[1].name].at(ctx.period.start)  # type: ignore[union-attr]
    # The bracket's rate and quick deduction are picked per row (literals: cheap), then one multiply:
    # computing every bracket's tax over every row cost five decimal products per row. A missing
    # amount falls through to the last bracket and stays missing in the product.
    rate: Any = pl
    quick: Any = pl
    for b in brackets[:-1]:
        at_most = amount <= _literal(Decimal(str(b["upto"])))
        rate = rate.when(at_most).then(_literal(Decimal(str(b["rate"]))))
        quick = quick.when(at_most).then(_literal(Decimal(str(b.get("quick_deduction", 0)))))
    last = brackets[-1]
    rate = rate.otherwise(_literal(Decimal(str(last["rate"])))) if len(brackets) > 1 \
        else _literal(Decimal(str(last["rate"])))
    quick = quick.otherwise(_literal(Decimal(str(last.get("quick_deduction", 0))))) if len(brackets) > 1 \
        else _literal(Decimal(str(last.get("quick_deduction", 0))))
    return exact(amount * rate - quick)


def _months_between(node: ir.Call, ctx: Context) -> pl.Expr:
    a, b = (translate(x, ctx).cast(pl.Date) for x in node.args)
    return ((b.dt.year().cast(pl.Int64) - a.dt.year()) * 12 + (b.dt.month().cast(pl.Int64) - a.dt.month()))


def _eligible(node: ir.Call, ctx: Context) -> pl.Expr:
    rid = str(node.args[0].value)  # type: ignore[union-attr]
    if rid in ctx.active:
        # Qualification, not the verdict: a 小型微利企业 that chose the 15% HNTE rate is still a 小型微利企业
        # for 六税两费 (财政部 税务总局公告2023年第12号 第二条、第五条 define the status by its figures).
        return pl.col(qualifies_col(rid))
    return pl.lit(False)  # the other rule is not in force for this period


def _claimed(node: ir.Call, ctx: Context) -> pl.Expr:
    return pl.col(claimed_col(str(node.args[0].value)))  # type: ignore[union-attr]


def _claimed_amount(node: ir.Call, ctx: Context) -> pl.Expr:
    assert ctx.rule is not None
    return pl.col(claim_amount_col(ctx.rule.id))


_CALLS: dict[str, Callable[[ir.Call, Context], pl.Expr]] = {
    "has": _has,
    "startswith": _startswith,
    "events": _events,
    "events_since": _events,
    "period_start": lambda n, c: pl.lit(c.period.start, dtype=pl.Date),
    "period_end": lambda n, c: pl.lit(c.period.end, dtype=pl.Date),
    "period_kind": lambda n, c: pl.lit(c.period.kind),
    "months_between": _months_between,
    "eligible": _eligible,
    "claimed": _claimed,
    "claimed_amount": _claimed_amount,
    "min": _minmax,
    "max": _minmax,
    "round": _round,
    "progressive": _progressive,
}

_TRANSLATE: dict[type, Callable[[Any, Context], pl.Expr]] = {
    ir.Field: _field,
    ir.Param: _param,
    ir.Literal_: _lit,
    ir.Compare: _compare,
    ir.In: _in,
    ir.And: _and,
    ir.Or: _or,
    ir.Not: _not,
    ir.Arith: _arith,
    ir.Neg: _neg,
    ir.IfElse: _ifelse,
    ir.Call: _call,
}

assert set(_CALLS) | set(MACROS) == set(FUNCTIONS), "every built-in function needs a Polars translation"


def event_counts(risk_events: pl.LazyFrame, ctx: Context) -> pl.LazyFrame | None:
    """One row per taxpayer with a count column for every events()/events_since() call registered."""
    if not ctx.events:
        return None
    aggs = []
    for (name, kinds, arg), column in ctx.events.items():
        if name == "events":
            start, end = events_window(ctx.period.end, int(arg))
            window = (pl.col("occurred_on") > start) & (pl.col("occurred_on") <= end)
        else:
            window = (pl.col("occurred_on") >= arg) & (pl.col("occurred_on") <= ctx.period.end)
        aggs.append((pl.col("event").is_in(list(kinds)) & window).sum().cast(pl.Int64).alias(column))
    return risk_events.group_by("taxpayer_id").agg(aggs)
