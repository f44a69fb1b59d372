"""The SQL backend: translate the rule tree into sqlglot expressions, emitted for DuckDB, PostgreSQL or Spark.

The third translator of the rule tree (beside engine/backends/polars.py and durable.py), with the same
meaning:

* Three-valued logic is SQL's own: a comparison with NULL is NULL, AND/OR/NOT are Kleene, `x IN (..)`
  with a NULL x is NULL. Where SQL would turn unknown into a value (LEAST/GREATEST skip NULLs, division
  by zero) the translation guards it, as the Polars one does.
* Numbers are exact: every number is DECIMAL(38, 6). A product or quotient is computed on scaled
  integers (×10⁶) and rounded half-to-even back to 6 places — what Polars' cast to Decimal(38, 6) and
  the durable backend's `q6` do — never through a floating-point division. A float figure
  (employees_qavg) becomes round-half-even(x × 10⁶) / 10⁶, as Polars casts it. `round()` and benefits
  round half away from zero (四舍五入).
* A value used more than once (an operand of min/max, a product's sign and magnitude) is computed once
  as a column of an inner SELECT and referenced by name, so nested formulas do not grow exponentially.
  The query is a chain of SELECT layers; each adds the columns whose inputs the layer below provides.

`plan_sql` builds, for one period, the per-taxpayer outcome table (the same columns as the batch's wide
frame: conditions, benefit, qualification, eligibility and outcome per rule, the decision table of
engine/findings/outcomes.py written as a CASE). `engine.sql_run` runs it inside DuckDB or PostgreSQL and renders
the findings' evidence from the rows it brings back. A construct a dialect cannot express raises
`NotExpressibleError` with the node's file:line and the backend; `check_catalogue` turns those into a
RuleError when a catalogue is loaded for a SQL engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlglot import exp

from engine import ir
from engine.backends.polars import Context as PolarsContext
from engine.backends.polars import is_numeric
from engine.catalogue import Catalogue, Rule
from engine.errors import RuleError, RuleProblem
from engine.findings import KINDS
from engine.findings.outcomes import OUT_OF_WINDOW, branches
from engine.functions import FUNCTIONS, MACROS, events_window
from profiles.periods import Period, parse_period
from profiles.schema import INDICATORS, PROFILE_FIELDS, TAXPAYERS

DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "spark": "spark"}
DIALECT_LABELS = {"duckdb": "DuckDB", "postgres": "PostgreSQL", "spark": "Spark SQL"}
WORK = exp.DataType.build("DECIMAL(38, 6)")
MONEY = exp.DataType.build("DECIMAL(38, 2)")
SCALE = 10**6

#: The table names the generated SQL reads (the data folder's four tables, loaded under these names).
TABLES = ("taxpayers", "indicators", "claims", "risk_events")


class NotExpressibleError(Exception):
    """A rule construct the dialect cannot express; carries the span of the node."""

    def __init__(self, span: ir.Span, dialect: str, message: str) -> None:
        self.span, self.dialect, self.message = span, dialect, message
        super().__init__(f"{span.file}:{span.line}:{span.col}: {DIALECT_LABELS[dialect]} 无法表达：{message}")


@dataclass(frozen=True)
class Val:
    """A translated expression and the layer from which it can be computed (0: the base table's columns)."""

    expr: exp.Expr
    level: int


def col(name: str) -> exp.Column:
    return exp.column(name, quoted=False)


def lit(value: Any) -> exp.Expr:
    """A constant as SQL (numbers exact)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, Decimal):
        return exp.Cast(this=exp.Literal.string(format(value, "f")), to=WORK.copy())
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, date):
        return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("DATE"))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TypeError(f"no SQL literal for {value!r}")


def _outcome_case(claimed: exp.Expr, eligible: exp.Expr, benefit: exp.Expr) -> exp.Case:
    """The decision table (engine.findings.outcomes) as a CASE over a rule's columns."""
    def eligible_is(value: bool | None) -> exp.Expr:
        if value is None:
            return exp.Is(this=eligible.copy(), expression=exp.Null())
        return exp.EQ(this=eligible.copy(), expression=exp.Boolean(this=value))

    def benefit_is(test: str) -> exp.Expr:
        if test == "unknown":
            return exp.Is(this=benefit.copy(), expression=exp.Null())
        op = exp.GT if test == "positive" else exp.LTE
        return op(this=benefit.copy(), expression=exp.Literal.number(0))

    not_claimed = exp.Not(this=exp.Paren(this=claimed.copy()))
    chain = branches(claimed, not_claimed, eligible_is, benefit_is, lambda terms: exp.and_(*(t.copy() for t in terms)))
    return _case(*[(cond, lit(outcome)) for cond, outcome in chain])


def _case(*whens: tuple[exp.Expr, exp.Expr], default: exp.Expr | None = None) -> exp.Case:
    case = exp.Case()
    for cond, then in whens:
        case = case.when(cond, then)
    return case.else_(default) if default is not None else case


@dataclass
class SqlContext:
    """The period, the rule being translated, the query's layers and the event counts asked for."""

    period: Period
    dialect: str = "duckdb"
    rule: Rule | None = None
    active: frozenset[str] = frozenset()
    qualifies: dict[str, Val] = field(default_factory=dict)  # rule id -> its qualification column
    events: dict[tuple[str, tuple[str, ...], Any], str] = field(default_factory=dict)
    layers: list[list[tuple[str, exp.Expr]]] = field(default_factory=list)
    counter: list[int] = field(default_factory=lambda: [0])
    #: Integer quotients through FLOOR of the decimal quotient, corrected (Spark; the tests run it on PostgreSQL).
    floor_division: bool | None = None

    def __post_init__(self) -> None:
        if self.floor_division is None:
            self.floor_division = self.dialect == "spark"

    def for_rule(self, rule: Rule) -> SqlContext:
        return SqlContext(self.period, self.dialect, rule, self.active, self.qualifies, self.events, self.layers,
                          self.counter, self.floor_division)

    def polars(self) -> PolarsContext:
        return PolarsContext(period=self.period, rule=self.rule, active=self.active, events=self.events)

    def bind(self, val: Val, name: str | None = None) -> Val:
        """`val` computed once, as a column of its layer; a plain column or constant is returned as is."""
        if name is None and isinstance(val.expr, exp.Column | exp.Literal | exp.Null | exp.Boolean):
            return val
        if name is None:
            self.counter[0] += 1
            name = f"zx_{self.counter[0]}"
        while len(self.layers) <= val.level:
            self.layers.append([])
        self.layers[val.level].append((name, val.expr))
        return Val(col(name), val.level + 1)

    def event_column(self, call: ir.Call) -> str:
        """The name Polars gives the same call's count (engine.backends.polars.Context.event_column)."""
        return self.polars().event_column(call)

    def int_type(self) -> exp.DataType:
        return exp.DataType.build("HUGEINT" if self.dialect == "duckdb" else "DECIMAL(38, 0)")

    def refuse(self, node: Any, message: str) -> NotExpressibleError:
        return NotExpressibleError(getattr(node, "span", ir.Span()), self.dialect, message)


def translate(node: ir.Node, ctx: SqlContext) -> Val:
    """The SQL expression computing `node` for every taxpayer of the period."""
    try:
        fn = _TRANSLATE[type(node)]
    except KeyError:
        raise ctx.refuse(node, f"没有 {type(node).__name__} 的 SQL 翻译") from None
    return fn(node, ctx)


def exact(node: ir.Node, ctx: SqlContext) -> Val:
    """A number as DECIMAL(38, 6), as Polars' cast to Decimal(38, 6) gives it (floats half-to-even)."""
    val = translate(node, ctx)
    if isinstance(node, ir.Field) and PROFILE_FIELDS[node.name].kind == "number":
        scaled = exp.Mul(this=exp.Cast(this=val.expr, to=exp.DataType.build("DOUBLE")),
                         expression=exp.Literal.number("1000000.0"))
        rounded: exp.Expr
        if ctx.dialect == "duckdb":
            rounded = exp.Anonymous(this="ROUND_EVEN", expressions=[scaled, exp.Literal.number(0)])
        elif ctx.dialect == "spark":
            rounded = exp.Anonymous(this="BROUND", expressions=[scaled, exp.Literal.number(0)])
        else:  # PostgreSQL: round(double precision) is rint(), half to even
            rounded = exp.Anonymous(this="ROUND", expressions=[scaled])
        return Val(_unscale(exp.Cast(this=rounded, to=ctx.int_type()), ctx), val.level)
    return Val(exp.Cast(this=val.expr, to=WORK.copy()), val.level)


def _exact_val(val: Val) -> Val:
    return Val(exp.Cast(this=val.expr, to=WORK.copy()), val.level)


def _scaled(val: Val, ctx: SqlContext) -> exp.Expr:
    """A DECIMAL(38, 6) as the integer count of millionths."""
    return exp.Cast(this=exp.Mul(this=val.expr, expression=exp.Literal.number(SCALE)), to=ctx.int_type())


def _unscale(expr: exp.Expr, ctx: SqlContext) -> exp.Expr:
    """An integer count of millionths as DECIMAL(38, 6) (an exact product, no division)."""
    return exp.Cast(this=exp.Mul(this=exp.Cast(this=expr, to=exp.DataType.build("DECIMAL(38, 0)")),
                                 expression=lit(Decimal("0.000001"))), to=WORK.copy())


def _negative(v: Val) -> exp.Expr:
    return _case((exp.LT(this=v.expr.copy(), expression=exp.Literal.number(0)), exp.Literal.number(-1)),
                 default=exp.Literal.number(1))


def _half_even_quotient(n: Val, d: Val, ctx: SqlContext) -> Val:
    """round-half-even(n / d) for integers n, d ≠ 0, without leaving integer arithmetic.

    DuckDB and PostgreSQL divide integers exactly (`//`, DIV). Spark's DIV returns a long (it overflows
    on money × rate at 10¹² scale), so there the integer quotient is FLOOR of the decimal quotient —
    within one of the true one — corrected by the remainder's sign and size.
    """
    n, d = ctx.bind(n), ctx.bind(d)
    level = max(n.level, d.level)
    num = ctx.bind(Val(exp.Abs(this=n.expr.copy()), level))
    den = ctx.bind(Val(exp.Abs(this=d.expr.copy()), level))
    # The sign as ±1 integers (SIGN() is a double in Spark: it would turn the quotient into a float).
    sign = ctx.bind(Val(exp.Mul(this=_negative(n), expression=_negative(d)), level))
    lv = max(num.level, den.level, sign.level)
    if ctx.floor_division:
        raw = ctx.bind(Val(exp.Cast(this=exp.Floor(this=exp.Div(this=num.expr, expression=den.expr)),
                                    to=ctx.int_type()), lv))
        lv = max(lv, raw.level)
        raw_rem = ctx.bind(Val(exp.Sub(this=num.expr, expression=exp.Mul(this=raw.expr, expression=den.expr)), lv))
        lv = max(lv, raw_rem.level)
        low = exp.LT(this=raw_rem.expr.copy(), expression=exp.Literal.number(0))
        high = exp.GTE(this=raw_rem.expr.copy(), expression=den.expr.copy())
        q0 = ctx.bind(Val(exp.Add(this=raw.expr, expression=_case(
            (low, exp.Literal.number(-1)), (high, exp.Literal.number(1)), default=exp.Literal.number(0))), lv))
        rem = ctx.bind(Val(exp.Add(this=raw_rem.expr, expression=_case(
            (low.copy(), den.expr.copy()), (high.copy(), exp.Neg(this=den.expr.copy())),
            default=exp.Literal.number(0))), lv))
        lv = max(lv, q0.level, rem.level)
    else:
        q0 = ctx.bind(Val(exp.IntDiv(this=num.expr, expression=den.expr), lv))
        lv = max(lv, q0.level)
        rem = ctx.bind(Val(exp.Sub(this=num.expr, expression=exp.Mul(this=q0.expr, expression=den.expr)), lv))
        lv = max(lv, rem.level)
    twice = exp.Mul(this=exp.Literal.number(2), expression=rem.expr)
    odd = exp.NEQ(this=exp.Mod(this=q0.expr, expression=exp.Literal.number(2)), expression=exp.Literal.number(0))
    up = _case((exp.GT(this=twice, expression=den.expr), exp.Literal.number(1)),
               (exp.and_(exp.EQ(this=twice.copy(), expression=den.expr.copy()), odd), exp.Literal.number(1)),
               default=exp.Literal.number(0))
    return Val(exp.Mul(this=sign.expr, expression=exp.Paren(this=exp.Add(this=q0.expr, expression=up))), lv)


def multiply(a: Val, b: Val, ctx: SqlContext) -> Val:
    """a × b of two DECIMAL(38, 6), rounded half-to-even to 6 places."""
    level = max(a.level, b.level)
    n = Val(exp.Mul(this=_scaled(a, ctx), expression=_scaled(b, ctx)), level)
    q = _half_even_quotient(n, Val(exp.Cast(this=exp.Literal.number(SCALE), to=ctx.int_type()), 0), ctx)
    return Val(_unscale(q.expr, ctx), q.level)


def divide(a: Val, b: Val, ctx: SqlContext) -> Val:
    """a ÷ b rounded half-to-even to 6 places; NULL when b is 0 (unknown, as in the batch)."""
    b = ctx.bind(b)
    level = max(a.level, b.level)
    n = Val(exp.Mul(this=_scaled(a, ctx), expression=exp.Cast(this=exp.Literal.number(SCALE), to=ctx.int_type())),
            level)
    nonzero = _case((exp.NEQ(this=b.expr, expression=exp.Literal.number(0)), _scaled(b, ctx)), default=exp.Null())
    q = _half_even_quotient(n, Val(nonzero, level), ctx)
    return Val(_unscale(q.expr, ctx), q.level)


# ----------------------------------------------------------------------------------------- node translations


def _field(node: ir.Field, ctx: SqlContext) -> Val:
    return Val(col(node.name), 0)


def _param_value(node: ir.Param, ctx: SqlContext) -> Any:
    assert ctx.rule is not None
    return ctx.rule.parameters[node.name].at(ctx.period.start)


def _param(node: ir.Param, ctx: SqlContext) -> Val:
    value = _param_value(node, ctx)
    if isinstance(value, tuple):
        raise ctx.refuse(node, f"列表参数 {node.name} 只能用在 in 之后")
    return Val(lit(value), 0)


def _lit(node: ir.Literal_, ctx: SqlContext) -> Val:
    if isinstance(node.value, tuple):
        raise ctx.refuse(node, "列表常量只能用在 in 之后")
    return Val(lit(node.value), 0)


_COMPARE: dict[str, type[exp.Binary]] = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE, "==": exp.EQ,
                                         "!=": exp.NEQ}


def _compare(node: ir.Compare, ctx: SqlContext) -> Val:
    pctx = ctx.polars()
    if is_numeric(node.left, pctx) and is_numeric(node.right, pctx):
        left, right = exact(node.left, ctx), exact(node.right, ctx)
    else:
        left, right = translate(node.left, ctx), translate(node.right, ctx)
    return Val(_COMPARE[node.op](this=left.expr, expression=right.expr), max(left.level, right.level))


def _options(node: ir.Node, ctx: SqlContext) -> list[Any]:
    if isinstance(node, ir.Literal_):
        return list(node.value or ())  # type: ignore[arg-type]
    if isinstance(node, ir.Param) and ctx.rule is not None:
        return list(_param_value(node, ctx) or ())
    raise ctx.refuse(node, "in 之后只能是列表常量或列表参数")


def _in(node: ir.In, ctx: SqlContext) -> Val:
    item = translate(node.item, ctx)
    options = _options(node.options, ctx)
    if any(o is None for o in options):
        raise ctx.refuse(node.options, "列表中有空值（SQL 的 IN 对空值的处理与其他引擎不同）")
    test: exp.Expr
    if not options:  # `x in []`: false for a value, unknown for a missing one
        item = ctx.bind(item)
        test = _case((exp.Is(this=item.expr, expression=exp.Null()), exp.Null()), default=exp.Boolean(this=False))
    else:
        test = exp.In(this=item.expr, expressions=[lit(o) for o in options])
    return Val(exp.Not(this=exp.Paren(this=test)) if node.negated else test, item.level)


def _and(node: ir.And, ctx: SqlContext) -> Val:
    items = [translate(i, ctx) for i in node.items]
    if not items:
        return Val(exp.Boolean(this=True), 0)
    return Val(exp.and_(*(exp.Paren(this=i.expr) for i in items)), max(i.level for i in items))


def _or(node: ir.Or, ctx: SqlContext) -> Val:
    items = [translate(i, ctx) for i in node.items]
    if not items:
        return Val(exp.Boolean(this=False), 0)
    return Val(exp.or_(*(exp.Paren(this=i.expr) for i in items)), max(i.level for i in items))


def _not(node: ir.Not, ctx: SqlContext) -> Val:
    item = translate(node.item, ctx)
    return Val(exp.Not(this=exp.Paren(this=item.expr)), item.level)


def _arith(node: ir.Arith, ctx: SqlContext) -> Val:
    left, right = exact(node.left, ctx), exact(node.right, ctx)
    level = max(left.level, right.level)
    if node.op == "+":
        return _exact_val(Val(exp.Add(this=left.expr, expression=right.expr), level))
    if node.op == "-":
        return _exact_val(Val(exp.Sub(this=left.expr, expression=right.expr), level))
    if node.op == "*":
        return multiply(left, right, ctx)
    return divide(left, right, ctx)


def _neg(node: ir.Neg, ctx: SqlContext) -> Val:
    item = exact(node.item, ctx)
    return Val(exp.Neg(this=exp.Paren(this=item.expr)), item.level)


def _ifelse(node: ir.IfElse, ctx: SqlContext) -> Val:
    cond = ctx.bind(translate(node.cond, ctx))
    pctx = ctx.polars()
    if is_numeric(node.then, pctx) or is_numeric(node.otherwise, pctx):
        then, otherwise = exact(node.then, ctx), exact(node.otherwise, ctx)
    else:
        then, otherwise = translate(node.then, ctx), translate(node.otherwise, ctx)
    case = _case((cond.expr, then.expr), (exp.Not(this=exp.Paren(this=cond.expr.copy())), otherwise.expr),
                 default=exp.Null())
    return Val(case, max(cond.level, then.level, otherwise.level))


def _call(node: ir.Call, ctx: SqlContext) -> Val:
    return _CALLS[node.name](node, ctx)


def _has(node: ir.Call, ctx: SqlContext) -> Val:
    arg = translate(node.args[0], ctx)
    return Val(exp.Not(this=exp.Is(this=arg.expr, expression=exp.Null())), arg.level)


def _startswith(node: ir.Call, ctx: SqlContext) -> Val:
    text = translate(node.args[0], ctx)
    prefixes = _options(node.args[1], ctx)
    if not prefixes:
        return _in(ir.In(node.args[0], ir.Literal_(()), span=node.span), ctx)
    tests: list[exp.Expr] = []
    for prefix in prefixes:
        if any(ch in str(prefix) for ch in "%_\\"):
            raise ctx.refuse(node, f"前缀 {prefix!r} 含 LIKE 通配符（%、_ 或 \\）")
        tests.append(exp.Like(this=text.expr.copy(), expression=exp.Literal.string(f"{prefix}%")))
    return Val(exp.or_(*tests) if len(tests) > 1 else tests[0], text.level)


def _events(node: ir.Call, ctx: SqlContext) -> Val:
    return Val(col(ctx.event_column(node).replace("__events__", "zx_events_")), 0)


def _minmax(node: ir.Call, ctx: SqlContext) -> Val:
    args = [ctx.bind(exact(a, ctx)) for a in node.args]
    level = max(a.level for a in args)
    missing = exp.or_(*(exp.Is(this=a.expr.copy(), expression=exp.Null()) for a in args))
    combine = exp.Least if node.name == "min" else exp.Greatest
    combined = combine(this=args[0].expr.copy(), expressions=[a.expr.copy() for a in args[1:]])
    return Val(_case((missing, exp.Null()), default=combined), level)


def _round(node: ir.Call, ctx: SqlContext) -> Val:
    places = node.args[1].value if isinstance(node.args[1], ir.Literal_) else None
    if not isinstance(places, int) or isinstance(places, bool):
        raise ctx.refuse(node, "round 的小数位数须为整数常量")
    value = exact(node.args[0], ctx)
    # ROUND of a DECIMAL rounds half away from zero in DuckDB, PostgreSQL and Spark (四舍五入).
    rounded = exp.Round(this=value.expr, decimals=exp.Literal.number(places))
    return _exact_val(Val(rounded, value.level))


def _progressive(node: ir.Call, ctx: SqlContext) -> Val:
    amount = ctx.bind(exact(node.args[0], ctx))
    param = node.args[1]
    if not isinstance(param, ir.Param):
        raise ctx.refuse(node, "progressive 的税率表须为参数")
    brackets = _param_value(param, ctx)
    last = brackets[-1]
    rate_whens, quick_whens = [], []
    for b in brackets[:-1]:
        at_most = exp.LTE(this=amount.expr.copy(), expression=lit(Decimal(str(b["upto"]))))
        rate_whens.append((at_most, lit(Decimal(str(b["rate"])))))
        quick_whens.append((at_most.copy(), lit(Decimal(str(b.get("quick_deduction", 0))))))
    last_rate, last_quick = lit(Decimal(str(last["rate"]))), lit(Decimal(str(last.get("quick_deduction", 0))))
    rate = _case(*rate_whens, default=last_rate) if rate_whens else last_rate
    quick = _case(*quick_whens, default=last_quick) if quick_whens else last_quick
    product = multiply(amount, Val(rate, amount.level), ctx)
    return _exact_val(Val(exp.Sub(this=product.expr, expression=quick), product.level))


def _months_between(node: ir.Call, ctx: SqlContext) -> Val:
    a, b = (translate(x, ctx) for x in node.args)

    def ym(v: Val, part: type[exp.Func]) -> exp.Expr:
        return exp.Cast(this=part(this=exp.Cast(this=v.expr.copy(), to=exp.DataType.build("DATE"))),
                        to=exp.DataType.build("BIGINT"))

    years = exp.Sub(this=ym(b, exp.Year), expression=ym(a, exp.Year))
    months = exp.Sub(this=ym(b, exp.Month), expression=ym(a, exp.Month))
    return Val(exp.Add(this=exp.Mul(this=exp.Paren(this=years), expression=exp.Literal.number(12)),
                       expression=exp.Paren(this=months)), max(a.level, b.level))


def _eligible(node: ir.Call, ctx: SqlContext) -> Val:
    rid = str(node.args[0].value)  # type: ignore[union-attr]
    if rid in ctx.active:
        return ctx.qualifies[rid]
    return Val(exp.Boolean(this=False), 0)  # the other rule is not in force for this period


def _claimed(node: ir.Call, ctx: SqlContext) -> Val:
    return Val(col(claimed_col(str(node.args[0].value))), 0)  # type: ignore[union-attr]


def _claimed_amount(node: ir.Call, ctx: SqlContext) -> Val:
    assert ctx.rule is not None
    return Val(col(claim_amount_col(ctx.rule.id)), 0)


_CALLS: dict[str, Callable[[ir.Call, SqlContext], Val]] = {
    "has": _has,
    "startswith": _startswith,
    "events": _events,
    "events_since": _events,
    "period_start": lambda n, c: Val(lit(c.period.start), 0),
    "period_end": lambda n, c: Val(lit(c.period.end), 0),
    "period_kind": lambda n, c: Val(lit(c.period.kind), 0),
    "months_between": _months_between,
    "eligible": _eligible,
    "claimed": _claimed,
    "claimed_amount": _claimed_amount,
    "min": _minmax,
    "max": _minmax,
    "round": _round,
    "progressive": _progressive,
}

_TRANSLATE: dict[type, Callable[[Any, SqlContext], Val]] = {
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

# Macros (date(), cit_rate()) are written out at parse time; every other built-in needs a translation here.
assert set(_CALLS) | set(MACROS) == set(FUNCTIONS), "every built-in function needs a SQL translation"


# ------------------------------------------------------------------------------------------ the period query

#: Generated column names are short (PostgreSQL truncates identifiers at 63 bytes); `SqlPlan.names` maps
#: them to the batch's column names.


def claimed_col(rule_id: str) -> str:
    return f"zx_claimed__{rule_id}"[:63]


def claim_amount_col(rule_id: str) -> str:
    return f"zx_camt__{rule_id}"[:63]


@dataclass
class SqlPlan:
    """The SQL of one period: the per-taxpayer outcome table (`wide`) and the names its columns map to."""

    period: Period
    rules: tuple[Rule, ...]
    in_window: frozenset[str]
    wide: exp.Select
    names: dict[str, str]  # SQL column -> the batch's column name
    outcome_cols: dict[str, str]  # rule id -> SQL outcome column
    benefit_cols: dict[str, str]
    events: dict[tuple[str, tuple[str, ...], Any], str]
    claim_rules: tuple[Rule, ...]

    def sql(self, dialect: str, *, pretty: bool = False) -> str:
        return self.wide.sql(dialect=DIALECTS[dialect], pretty=pretty)

    def findings_filter(self, outcomes: Collection[str] = KINDS) -> exp.Expr:
        """Rows with at least one of `outcomes` (by default a finding: unclaimed, improper, undetermined)."""
        tests = [exp.In(this=col(c), expressions=[lit(k) for k in sorted(outcomes)])
                 for c in self.outcome_cols.values()]
        return exp.or_(*tests) if tests else exp.Boolean(this=False)

    def summary(self, table: str) -> exp.Expr:
        """Counts and amounts per rule and outcome (as engine.batch._summary), over the materialised table."""
        parts: list[exp.Select] = []
        for rule in self.rules:
            outcome = col(self.outcome_cols[rule.id])
            benefit = col(self.benefit_cols[rule.id]) if rule.id in self.in_window else exp.Cast(
                this=exp.Null(), to=MONEY.copy())
            amount = _case(
                (exp.EQ(this=outcome.copy(), expression=lit("improper")),
                 exp.Coalesce(this=col(claim_amount_col(rule.id)), expressions=[benefit.copy()])),
                (exp.NEQ(this=outcome.copy(), expression=lit("not_applicable")), benefit.copy()),
                default=exp.Null())
            # Polars sums no amount to 0, SQL to NULL.
            total = _case((exp.EQ(this=outcome.copy(), expression=lit("not_applicable")), exp.Null()),
                          default=exp.Coalesce(this=exp.Sum(this=amount), expressions=[exp.Literal.number(0)]))
            parts.append(
                exp.select(lit(rule.id).as_("rule_id"), outcome.copy().as_("outcome"),
                           exp.Count(this=exp.Star()).as_("count"),
                           exp.Cast(this=total, to=MONEY.copy()).as_("amount"))
                .from_(table).group_by(outcome.copy())
            )
        if not parts:
            return exp.select(exp.Null().as_("rule_id")).where(exp.Boolean(this=False))
        query: exp.Expr = parts[0]
        for part in parts[1:]:
            query = exp.union(query, part, distinct=False)
        return query


def plan_sql(catalogue: Catalogue, period: Period, dialect: str = "duckdb") -> SqlPlan:
    """The per-taxpayer outcome table of `period` as one SELECT over the four profile tables."""
    rules = tuple(catalogue.active(period))
    in_window = frozenset(r.id for r in rules if r.covers(period))
    ctx = SqlContext(period=period, dialect=dialect, active=in_window)
    names: dict[str, str] = {}

    referenced = {rid for rule in rules for node in (*(c.expr for c in rule.all_conditions()), rule.benefit)
                  for rid in ir.rules_referenced(node, "claimed")}
    claim_rules = tuple(r for r in catalogue.rules.values() if r.id in referenced or r in rules)

    # Rule columns, dependencies first (the catalogue is in dependency order, as the batch relies on).
    outcome_cols: dict[str, str] = {}
    benefit_cols: dict[str, str] = {}
    from engine.backends.polars import condition_col, eligible_col, qualifies_col
    from engine.batch import benefit_col, outcome_col

    for i, rule in enumerate(rules):
        rctx = ctx.for_rule(rule)
        claimed = exp.EQ(this=col(claimed_col(rule.id)), expression=exp.Boolean(this=True))
        if rule.id in in_window:
            cond_vals = []
            for j, cond in enumerate(rule.all_conditions()):
                name = f"zx_r{i}_c{j}"
                names[name] = condition_col(rule.id, cond.id)
                cond_vals.append((cond, rctx.bind(translate(cond.expr, rctx), name)))
            benefit_name = f"zx_r{i}_benefit"
            names[benefit_name] = benefit_col(rule.id)
            value = exact(rule.benefit, rctx)
            benefit = rctx.bind(Val(exp.Cast(this=exp.Round(this=value.expr, decimals=exp.Literal.number(2)),
                                             to=MONEY.copy()), value.level), benefit_name)
            plain = [v for c, v in cond_vals if not c.stacking]
            every = [v for _, v in cond_vals]

            def conj(vals: list[Val]) -> Val:
                if not vals:
                    return Val(exp.Boolean(this=True), 0)
                return Val(exp.and_(*(exp.Paren(this=v.expr.copy()) for v in vals)), max(v.level for v in vals))

            q_name, e_name = f"zx_r{i}_qualifies", f"zx_r{i}_eligible"
            names[q_name], names[e_name] = qualifies_col(rule.id), eligible_col(rule.id)
            ctx.qualifies[rule.id] = rctx.bind(conj(plain), q_name)
            eligible = rctx.bind(conj(every), e_name)
            el = eligible.expr
            outcome = _outcome_case(claimed, el, benefit.expr)
            level = max(eligible.level, benefit.level)
            benefit_cols[rule.id] = benefit_name
        else:
            outcome = _case((claimed, lit(OUT_OF_WINDOW[True])), default=lit(OUT_OF_WINDOW[False]))
            level = 0
        o_name = f"zx_r{i}_outcome"
        names[o_name] = outcome_col(rule.id)
        outcome_cols[rule.id] = o_name
        rctx.bind(Val(outcome, level), o_name)

    query = layered(_base_query(catalogue, period, claim_rules, ctx, names), ctx)
    # Only the columns the findings and summary read: the intermediate columns (zx_1, zx_2, …) stay inside.
    profile = [c.name for t in (INDICATORS, TAXPAYERS) for c in t.columns if c.name not in ("taxpayer_id", "period")]
    keep = ["taxpayer_id", "period", *profile, *names]
    query = exp.select(*(col(c) for c in keep)).from_(query.subquery("zx_wide"))
    return SqlPlan(period, rules, in_window, query, names, outcome_cols, benefit_cols, ctx.events, claim_rules)


def layered(base: exp.Select, ctx: SqlContext) -> exp.Select:
    """`base` with the context's layers of computed columns on top, each SELECT reading the one below."""
    query = base
    for k, layer in enumerate(ctx.layers):
        if layer:
            if ctx.dialect == "postgres":
                # OFFSET 0 keeps PostgreSQL from pulling the layer up into the one above: flattened, every
                # column bound once below is written out again wherever it is used, and the expression
                # grows exponentially with the depth (the sample data took > 5 min and 10 GB of memory).
                query = query.offset(0)
            query = exp.select(exp.Star(), *(e.as_(n, quoted=False) for n, e in layer)).from_(
                query.subquery(f"zx_l{k}"))
    return query


def expression_query(node: ir.Node, rule: Rule | None, period: Period, dialect: str, table: str,
                     keep: tuple[str, ...] = (), floor_division: bool | None = None) -> str:
    """SQL computing `node` as column `zx_value` for every row of `table` (the parity tests' probe)."""
    ctx = SqlContext(period=period, dialect=dialect, rule=rule, floor_division=floor_division)
    ctx.bind(translate(node, ctx), "zx_value")
    query = layered(exp.select(exp.Star()).from_(table), ctx)
    return exp.select(*(col(k) for k in keep), col("zx_value")).from_(query.subquery("zx_out")).sql(
        dialect=DIALECTS[dialect])


def _base_query(catalogue: Catalogue, period: Period, claim_rules: tuple[Rule, ...], ctx: SqlContext,
                names: dict[str, str]) -> exp.Select:
    """Indicators of the period, full-joined with the claims per taxpayer, with the taxpayer and event counts."""
    from engine.backends.polars import claim_amount_col as p_amount
    from engine.backends.polars import claimed_col as p_claimed

    p = period.text
    claim_aggs: list[exp.Expr] = []
    for r in claim_rules:
        hit = exp.In(this=col("incentive"), expressions=[lit(c) for c in r.claim_codes])
        claim_aggs.append(exp.Max(this=_case((hit, exp.Literal.number(1)), default=exp.Literal.number(0)))
                          .as_(claimed_col(r.id)))
        claim_aggs.append(exp.Sum(this=_case((hit.copy(), col("amount")), default=exp.Null()))
                          .as_(claim_amount_col(r.id)))
        names[claimed_col(r.id)] = p_claimed(r.id)
        names[claim_amount_col(r.id)] = p_amount(r.id)
    claims = (exp.select(col("taxpayer_id"), *claim_aggs).from_("claims")
              .where(exp.EQ(this=col("period"), expression=lit(p))).group_by(col("taxpayer_id")))
    ind_cols = [c.name for c in INDICATORS.columns if c.name not in ("taxpayer_id", "period")]
    tp_cols = [c.name for c in TAXPAYERS.columns if c.name != "taxpayer_id"]
    ind = exp.select(*(col(c) for c in ["taxpayer_id", *ind_cols])).from_("indicators").where(
        exp.EQ(this=col("period"), expression=lit(p)))
    tid = exp.Coalesce(this=exp.column("taxpayer_id", "i"), expressions=[exp.column("taxpayer_id", "c")])
    select = [tid.as_("taxpayer_id"), lit(p).as_("period")]
    select += [exp.column(c, "i").as_(c) for c in ind_cols]
    select += [exp.column(c, "t").as_(c) for c in tp_cols]
    for r in claim_rules:
        select.append(exp.EQ(this=exp.Coalesce(this=exp.column(claimed_col(r.id), "c"),
                                               expressions=[exp.Literal.number(0)]),
                             expression=exp.Literal.number(1)).as_(claimed_col(r.id)))
        select.append(exp.Cast(this=exp.column(claim_amount_col(r.id), "c"), to=MONEY.copy()).as_(
            claim_amount_col(r.id)))
    query = (exp.select(*select).from_(ind.subquery("i"))
             .join(claims.subquery("c"), on=exp.EQ(this=exp.column("taxpayer_id", "i"),
                                                   expression=exp.column("taxpayer_id", "c")), join_type="full")
             .join(exp.to_table("taxpayers").as_("t"), on=exp.EQ(this=exp.column("taxpayer_id", "t"),
                                                                 expression=tid.copy()), join_type="left"))
    if not ctx.events:
        return query
    aggs = []
    for (name, kinds, arg), column in ctx.events.items():
        sql_col = column.replace("__events__", "zx_events_")
        names[sql_col] = column
        if name == "events":
            start, end = events_window(period.end, int(arg))
            window = exp.and_(exp.GT(this=col("occurred_on"), expression=lit(start)),
                              exp.LTE(this=col("occurred_on"), expression=lit(end)))
        else:
            window = exp.and_(exp.GTE(this=col("occurred_on"), expression=lit(arg)),
                              exp.LTE(this=col("occurred_on"), expression=lit(period.end)))
        event_hit = exp.and_(exp.In(this=col("event"), expressions=[lit(k) for k in kinds]), window)
        aggs.append(exp.Sum(this=_case((event_hit, exp.Literal.number(1)), default=exp.Literal.number(0))).as_(sql_col))
    counts = exp.select(col("taxpayer_id"), *aggs).from_("risk_events").group_by(col("taxpayer_id"))
    inner = query.subquery("b")
    outer: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier("b"))]
    outer += [exp.Cast(this=exp.Coalesce(this=exp.column(c.replace("__events__", "zx_events_"), "e"),
                                         expressions=[exp.Literal.number(0)]), to=exp.DataType.build("BIGINT"))
              .as_(c.replace("__events__", "zx_events_")) for c in ctx.events.values()]
    return (exp.select(*outer).from_(inner)
            .join(counts.subquery("e"), on=exp.EQ(this=exp.column("taxpayer_id", "b"),
                                                  expression=exp.column("taxpayer_id", "e")), join_type="left"))


# ------------------------------------------------------------------------------------- load-time refusal

def _check_periods(rule: Rule) -> list[Period]:
    """Periods that put each of the rule's parameter values in force (its first judged year, and each change)."""
    start = rule.judged_from or rule.effective_from
    days = {start} | {v.start for p in rule.parameters.values() for v in p.values if v.start > start}
    kind = rule.granularity[0]
    texts = {str(d.year) if kind == "year" else f"{d.year}Q{(d.month - 1) // 3 + 1}" if kind == "quarter"
             else f"{d.year}-{d.month:02d}" for d in days}
    return [parse_period(t) for t in sorted(texts)]


def check_catalogue(catalogue: Catalogue, dialect: str) -> None:
    """Translate every rule for `dialect`; a construct it cannot express is a RuleError at file:line."""
    problems: list[RuleProblem] = []
    seen: set[tuple[str, int, int, str]] = set()
    for rule in catalogue.rules.values():
        for period in _check_periods(rule):
            ctx = SqlContext(period=period, dialect=dialect, active=frozenset(catalogue.rules))
            ctx.qualifies.update({rid: Val(exp.Boolean(this=True), 0) for rid in catalogue.rules})
            rctx = ctx.for_rule(rule)
            for node in (*(c.expr for c in rule.all_conditions()), rule.benefit):
                try:
                    translate(node, rctx)
                except NotExpressibleError as exc:
                    key = (exc.span.file, exc.span.line, exc.span.col, str(exc))
                    if key not in seen:
                        seen.add(key)
                        problems.append(RuleProblem(exc.span.file, exc.span.line, exc.span.col,
                                                    f"{DIALECT_LABELS[dialect]} 后端无法执行：{exc.message}"))
    if problems:
        raise RuleError(problems)
