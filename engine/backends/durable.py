"""The durable-rules backend: the rule tree compiled into durable-rules rulesets, one taxpayer at a time.

The batch (engine/backends/polars.py) and this backend translate the same tree; neither writes a rule
twice. How the work is split, honestly:

* **durable-rules decides every truth value.** Each condition becomes two durable-rules patterns over
  an event carrying that condition's inputs: P, "certainly true", and F, "certainly false", built by
  Kleene's rules (P(a and b) = P(a) ∧ P(b), F(a and b) = F(a) ∨ F(b), P(not a) = F(a), …; a missing
  attribute matches neither `x <= 300` nor `x > 300`). A third rule with lower salience and no test
  fires only when neither P nor F consumed the event — that is *unknown*: a missing figure stays
  unknown without Python deciding it. Outcomes (the decision table of engine/findings/outcomes.py) and the
  qualification another rule reads through eligible() are durable-rules rules too, over the statuses
  the first round produced, with the same salience trick for "otherwise".
* **Python prepares the values.** durable-rules compares attributes and constants, but its
  arithmetic is in doubles and it has no dates, event windows or decimal rounding. So every value
  that is not a plain field or constant — arithmetic, min/max, round, progressive, event counts,
  months_between, `x if c else y`, string prefixes — is computed in Python with the batch's exact
  semantics (Decimal(38, 6) rounded half-even at 6 places after * and /, floats cast the way Polars
  casts them) and posted as an attribute. Numbers travel as order-preserving digit strings of
  value × 10⁶ (durable-rules compares strings exactly; its own numbers are int64 or doubles), dates as
  day numbers. A boolean nested inside such a value (the `c` of a numeric
  `x if c else y`) is evaluated in Python, with the same three-valued logic (`truth_fn`).
* **Python renders the evidence** (figures and Chinese sentences) from the durable verdicts, with
  engine.evidence, as the batch does in Polars.

durable-rules quirks handled here:

* one event per condition, consumed by exactly one rule (P, F or the unknown catch-all), so an event
  never goes unhandled (`MessageNotHandledException`) and nothing stays in the session afterwards;
  every event has a fresh id, since an event identical to one seen before is refused
  (`MessageObservedException`);
  every evaluation is checked to have produced exactly one verdict per event;
* events, not asserted facts: facts pile up until `MessageObservedException` (~100k) unless
  retracted; consumed events leave the session empty, and the session is dropped every
  `RESET_EVERY` evaluations all the same, so memory stays flat however long the host runs;
* one ruleset per catalogue rule (an event is matched against every rule of its ruleset, so small
  rulesets match faster), named by catalogue version, period and rule id; its own host without the
  background dispatch threads, so evaluation is synchronous; actions are drained straight from the
  engine's queue (which rule fired is all we need) instead of durable.engine's per-action state
  round-trip, which costs ~40 µs each;
* at most 32 properties per event, so a condition may read at most `MAX_ATTRIBUTES` inputs;
* a rule whose only test is a negation also matches the session's own state object and loops, so
  every rule starts with its event marker;
* a comparison of two attributes of the same event (`a < b`) can match when `b` is absent, so both are
  tested for presence explicitly;
* the durable-rules 2.0.28 release does not import on Python 3.13+ (`PyEval_CallObject` was removed);
  scripts/setup builds it with patches/durable-rules-2.0.28-py313.patch. Wherever it still does not load,
  `require_durable` raises RuntimeUnavailableError saying why; the batch does not need this module.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from typing import Any, NamedTuple

from engine import ir
from engine.backends.common import NotTranslatableError, is_numeric
from engine.catalogue import Catalogue, Condition, Rule
from engine.errors import RuntimeUnavailableError, ZhixiangError
from engine.findings.outcomes import DECISION_TABLE, OUT_OF_WINDOW
from engine.functions import FUNCTIONS, MACROS, events_window, months_between
from profiles.periods import Period

try:  # durable-rules is a C extension that does not build or import on every interpreter
    import durable_rules_engine as _dre
    from durable import engine as _engine
    from durable import lang as _lang

    _IMPORT_ERROR: BaseException | None = None
except Exception as exc:  # ImportError on 3.13 (undefined symbol PyEval_CallObject), absent package …
    _dre = _engine = _lang = None
    _IMPORT_ERROR = exc

#: durable-rules' ERR_EXPRESSION_LIMIT_EXCEEDED: a rule's patterns are too many for its rete network (some
#: nested if/else conditions); such a rule's conditions are decided in Python instead (compile_rule).
ERR_EXPRESSION_LIMIT_EXCEEDED = 113
#: Properties durable-rules keeps per event (MAX_OBJECT_PROPERTIES), minus sid, id and the marker.
MAX_ATTRIBUTES = 29
#: The shared session is dropped and recreated after this many evaluations (a guard, see above).
RESET_EVERY = 50_000
SCALE = 10**6
_LIMIT = 10**38
_Q6 = Decimal("0.000001")
_CTX = Context(prec=80, rounding=ROUND_HALF_EVEN)
_LOCK = threading.RLock()  # the engine's C state is process-global

STATUS_PASS, STATUS_FAIL, STATUS_UNKNOWN = "pass", "fail", "unknown"


class DurableEngineError(ZhixiangError):
    """durable-rules did something the translation rules out (a bug here, not a user error)."""


class ValueRangeError(ZhixiangError):
    """A figure beyond Decimal(38, 6), which the batch cannot hold either."""


# ------------------------------------------------------------------------------------- availability


def unavailable_message(error: BaseException | None, version: tuple[int, int] | None = None) -> str:
    """Why the real-time path cannot run here, in words an operator can act on."""
    major, minor = version or sys.version_info[:2]
    detail = f"（{type(error).__name__}: {error}）" if error is not None else ""
    if (major, minor) >= (3, 13) and "PyEval_CallObject" in str(error):
        why = (f"当前 Python {major}.{minor} 加载的 durable-rules 2.0.28 未打补丁：它的 C 扩展调用了 Python 3.13 "
               "已删除的 PyEval_CallObject")
    else:
        why = f"durable-rules 未安装或无法加载{detail}"
        detail = ""
    return (f"实时核查（durable-rules 引擎）不可用：{why}{detail}。请用 bash scripts/setup 安装（它按 "
            "patches/durable-rules-2.0.28-py313.patch 构建 durable-rules），或加 --engine polars 改用批量引擎核查单户；"
            "批量评估 `zhixiang run` 不受影响。")


def durable_available() -> bool:
    """Whether durable-rules imported in this interpreter."""
    return _IMPORT_ERROR is None


def require_durable() -> None:
    """Raise RuntimeUnavailableError, with the reason, unless durable-rules is usable."""
    if _IMPORT_ERROR is not None:
        raise RuntimeUnavailableError(unavailable_message(_IMPORT_ERROR))


# ------------------------------------------------------------------------ values: exact Python twins


def q6(value: Decimal) -> Decimal:
    """A decimal at 6 places, half-even — what Polars' Decimal(38, 6) keeps after * and / or a cast."""
    return value.quantize(_Q6, rounding=ROUND_HALF_EVEN, context=_CTX)


def exact(value: Any) -> Decimal | None:
    """A number as Polars' `cast(Decimal(38, 6))` gives it (floats: round-half-even of value × 10⁶)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return q6(value)
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return Decimal(round(value * SCALE)).scaleb(-6, context=_CTX)
    raise TypeError(f"not a number: {value!r}")


def half_up(value: Decimal, places: int) -> Decimal:
    """四舍五入 to `places` decimals (engine.evidence.round_half_up over one value)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=_CTX)


def _mul(a: Decimal, b: Decimal) -> Decimal:
    return q6(_CTX.multiply(a, b))


def _div(a: Decimal, b: Decimal) -> Decimal | None:
    return None if b == 0 else q6(_CTX.divide(a, b))  # division by zero is unknown, as in the batch


@dataclass
class Env:
    """One taxpayer for one period: what values are computed from, and the verdicts so far."""

    period: Period
    row: Mapping[str, Any]  # taxpayer fields and the period's indicators; None or absent = missing
    claimed: Mapping[str, bool]  # rule id -> claimed this period (any of its codes)
    claim_amounts: Mapping[str, Decimal | None]  # rule id -> sum of the claimed amounts (None: none known)
    events: Sequence[tuple[str | None, date | None]]  # (event, occurred_on) of every risk event
    qualifies: dict[str, bool | None] = field(default_factory=dict)  # durable's verdicts, filled as it goes


ValueFn = Callable[[Env], Any]
TruthFn = Callable[[Env], bool | None]


@dataclass(frozen=True)
class Scope:
    """What a translation needs besides the node: the period, the rule (parameters) and rules in force."""

    period: Period
    rule: Rule
    in_window: frozenset[str]

    def param(self, name: str) -> Any:
        return self.rule.parameters[name].at(self.period.start)

    def numeric(self, node: ir.Node) -> bool:
        """Whether the batch computes this node as a number (and so casts it to the exact decimal)."""
        return is_numeric(node, self)


def _const(value: Any) -> ValueFn:
    return lambda env: value


def value_fn(node: ir.Node, scope: Scope) -> ValueFn:
    """A Python function computing the node's value for one taxpayer, exactly as the batch does."""
    try:
        compile_ = _VALUES[type(node)]
    except KeyError:
        raise NotTranslatableError(f"no value translation for {type(node).__name__}") from None
    return compile_(node, scope)


def _v_field(node: ir.Field, scope: Scope) -> ValueFn:
    name = node.name
    return lambda env: env.row.get(name)


def _v_param(node: ir.Param, scope: Scope) -> ValueFn:
    return _const(scope.param(node.name))


def _v_literal(node: ir.Literal_, scope: Scope) -> ValueFn:
    return _const(node.value)


def _v_arith(node: ir.Arith, scope: Scope) -> ValueFn:
    left, right = value_fn(node.left, scope), value_fn(node.right, scope)
    op = node.op

    def compute(env: Env) -> Decimal | None:
        a, b = exact(left(env)), exact(right(env))
        if a is None or b is None:
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return _mul(a, b)
        return _div(a, b)

    return compute


def _v_neg(node: ir.Neg, scope: Scope) -> ValueFn:
    inner = value_fn(node.item, scope)

    def compute(env: Env) -> Decimal | None:
        v = exact(inner(env))
        return None if v is None else -v

    return compute


def _v_ifelse(node: ir.IfElse, scope: Scope) -> ValueFn:
    cond = truth_fn(node.cond, scope)
    then, otherwise = value_fn(node.then, scope), value_fn(node.otherwise, scope)
    numeric = scope.numeric(node.then) or scope.numeric(node.otherwise)

    def compute(env: Env) -> Any:
        test = cond(env)
        v = then(env) if test is True else otherwise(env) if test is False else None
        return exact(v) if numeric else v

    return compute


def _v_truth(node: ir.Node, scope: Scope) -> ValueFn:
    return truth_fn(node, scope)


def _v_call(node: ir.Call, scope: Scope) -> ValueFn:
    if node.name in ("has", "startswith", "eligible", "claimed"):
        return truth_fn(node, scope)
    return _VALUE_CALLS[node.name](node, scope)


def _list_arg(node: ir.Node, scope: Scope) -> tuple[Any, ...]:
    if isinstance(node, ir.Literal_):
        return tuple(node.value or ())  # type: ignore[arg-type]
    if isinstance(node, ir.Param):
        return tuple(scope.param(node.name) or ())
    raise NotTranslatableError("列表参数只能是列表常量或列表参数")


def _scalar_arg(node: ir.Node, scope: Scope) -> Any:
    if isinstance(node, ir.Literal_):
        return node.value
    if isinstance(node, ir.Param):
        return scope.param(node.name)
    raise NotTranslatableError("此处只能是常量或参数")


def _v_events(node: ir.Call, scope: Scope) -> ValueFn:
    kinds = frozenset(_list_arg(node.args[0], scope))
    arg = _scalar_arg(node.args[1], scope)
    if node.name == "events":
        start, end = events_window(scope.period.end, int(arg))

        def inside(day: date) -> bool:
            return start < day <= end
    else:
        since, end = arg, scope.period.end

        def inside(day: date) -> bool:
            return since <= day <= end

    # A taxpayer without risk events counts 0 (the batch fills the missing count with 0).
    return lambda env: sum(1 for kind, day in env.events if kind in kinds and day is not None and inside(day))


def _v_months_between(node: ir.Call, scope: Scope) -> ValueFn:
    a, b = value_fn(node.args[0], scope), value_fn(node.args[1], scope)

    def compute(env: Env) -> int | None:
        start, end = a(env), b(env)
        return None if start is None or end is None else months_between(start, end)

    return compute


def _v_minmax(node: ir.Call, scope: Scope) -> ValueFn:
    args = [value_fn(a, scope) for a in node.args]
    pick = min if node.name == "min" else max

    def compute(env: Env) -> Decimal | None:
        values = [exact(a(env)) for a in args]
        # Any missing figure makes the result unknown (min_horizontal alone would skip it).
        return None if any(v is None for v in values) else pick(values)  # type: ignore[type-var]

    return compute


def _v_round(node: ir.Call, scope: Scope) -> ValueFn:
    inner = value_fn(node.args[0], scope)
    places = int(node.args[1].value) if isinstance(node.args[1], ir.Literal_) else 2  # type: ignore[arg-type]

    def compute(env: Env) -> Decimal | None:
        v = exact(inner(env))
        return None if v is None else exact(half_up(v, places))

    return compute


def _v_progressive(node: ir.Call, scope: Scope) -> ValueFn:
    amount_fn = value_fn(node.args[0], scope)
    brackets = scope.param(node.args[1].name)  # type: ignore[union-attr]
    steps = [(exact(Decimal(str(b["upto"]))) if b is not brackets[-1] else None, exact(Decimal(str(b["rate"]))),
              exact(Decimal(str(b.get("quick_deduction", 0))))) for b in brackets]

    def compute(env: Env) -> Decimal | None:
        amount = exact(amount_fn(env))
        if amount is None:
            return None
        for upto, rate, quick in steps:
            if upto is None or amount <= upto:
                return _mul(amount, rate) - quick  # type: ignore[arg-type,operator]
        return None  # unreachable: the last bracket has no upper bound here

    return compute


def _v_claimed_amount(node: ir.Call, scope: Scope) -> ValueFn:
    rid = scope.rule.id
    return lambda env: env.claim_amounts.get(rid)


_VALUE_CALLS: dict[str, Callable[[ir.Call, Scope], ValueFn]] = {
    "events": _v_events,
    "events_since": _v_events,
    "period_start": lambda n, s: _const(s.period.start),
    "period_end": lambda n, s: _const(s.period.end),
    "period_kind": lambda n, s: _const(s.period.kind),
    "months_between": _v_months_between,
    "min": _v_minmax,
    "max": _v_minmax,
    "round": _v_round,
    "progressive": _v_progressive,
    "claimed_amount": _v_claimed_amount,
}

_VALUES: dict[type, Callable[[Any, Scope], ValueFn]] = {
    ir.Field: _v_field,
    ir.Param: _v_param,
    ir.Literal_: _v_literal,
    ir.Arith: _v_arith,
    ir.Neg: _v_neg,
    ir.IfElse: _v_ifelse,
    ir.Call: _v_call,
    ir.Compare: _v_truth,
    ir.In: _v_truth,
    ir.And: _v_truth,
    ir.Or: _v_truth,
    ir.Not: _v_truth,
}

assert set(_VALUE_CALLS) | {"has", "startswith", "eligible", "claimed"} | set(MACROS) == set(FUNCTIONS), \
    "every built-in function needs a durable translation"


# -------------------------------------------------------- truth in Python (only inside computed values)


def truth_fn(node: ir.Node, scope: Scope) -> TruthFn:
    """Three-valued truth of a boolean node, in Python.

    Used only for a boolean nested inside a computed value (the condition of a numeric `x if c else y`);
    conditions themselves are decided by durable-rules (`translate`).
    """
    if isinstance(node, ir.Literal_ | ir.Param):
        v = value_fn(node, scope)(None)  # type: ignore[arg-type]
        return _const(v if v is None else bool(v))
    if isinstance(node, ir.Field):
        return value_fn(node, scope)
    if isinstance(node, ir.Not):
        inner = truth_fn(node.item, scope)
        return lambda env: None if (v := inner(env)) is None else not v
    if isinstance(node, ir.And | ir.Or):
        items = [truth_fn(i, scope) for i in node.items]
        decisive = isinstance(node, ir.Or)  # True decides an or, False an and

        def kleene(env: Env) -> bool | None:
            unknown = False
            for item in items:
                v = item(env)
                if v is None:
                    unknown = True
                elif v is decisive:
                    return decisive
            return None if unknown else not decisive

        return kleene
    if isinstance(node, ir.Compare):
        return _t_compare(node, scope)
    if isinstance(node, ir.In):
        item = value_fn(node.item, scope)
        numeric = scope.numeric(node.item)
        options = [exact(o) if numeric else o for o in _list_arg(node.options, scope)]

        def member(env: Env) -> bool | None:
            v = item(env)
            if v is None:
                return None
            hit = (exact(v) if numeric else v) in options
            return not hit if node.negated else hit

        return member
    if isinstance(node, ir.IfElse):
        cond, then, otherwise = (truth_fn(n, scope) for n in (node.cond, node.then, node.otherwise))
        return lambda env: then(env) if (c := cond(env)) is True else otherwise(env) if c is False else None
    if isinstance(node, ir.Call):
        return _t_call(node, scope)
    raise NotTranslatableError(f"{type(node).__name__} is not a condition")


_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _t_compare(node: ir.Compare, scope: Scope) -> TruthFn:
    left, right = value_fn(node.left, scope), value_fn(node.right, scope)
    numeric = scope.numeric(node.left) and scope.numeric(node.right)
    op = _PY_OPS[node.op]

    def compare(env: Env) -> bool | None:
        a, b = left(env), right(env)
        if numeric:
            a, b = exact(a), exact(b)
        return None if a is None or b is None else op(a, b)

    return compare


def _t_call(node: ir.Call, scope: Scope) -> TruthFn:
    if node.name == "has":
        inner = value_fn(node.args[0], scope)
        return lambda env: inner(env) is not None
    if node.name == "startswith":
        text = value_fn(node.args[0], scope)
        prefixes = tuple(str(p) for p in _list_arg(node.args[1], scope))
        return lambda env: None if (t := text(env)) is None else str(t).startswith(prefixes)
    rid = str(node.args[0].value)  # type: ignore[union-attr]
    if node.name == "claimed":
        return lambda env: bool(env.claimed.get(rid, False))
    if node.name == "eligible":
        if rid not in scope.in_window:
            return _const(False)  # the other rule is not in force for this period
        return lambda env: env.qualifies.get(rid)
    raise NotTranslatableError(f"{node.name}() is not a condition")


# ------------------------------------------------------------------------ encoding for durable-rules


def encode_number(value: Decimal) -> str:
    """An exact decimal as an order-preserving string: durable-rules compares strings byte by byte, and its
    own numbers are int64 or doubles. Sign digit, then 38 digits of value × 10⁶ (negatives complemented),
    so every Decimal(38, 6) the batch can hold compares exactly: -1 → "0999…9", 0 → "1000…0"."""
    n = int(value.scaleb(6, context=_CTX))
    if not -_LIMIT < n < _LIMIT:
        raise ValueRangeError(f"数值 {value} 超出 Decimal(38, 6) 的范围")
    return f"1{n:038d}" if n >= 0 else f"0{_LIMIT + n:038d}"


_ZERO = encode_number(Decimal(0))


def encode(value: Any, *, numeric: bool) -> Any:
    """A value as it travels in a durable-rules event: exact numbers as ordered strings, dates as day numbers."""
    if value is None:
        return None
    if numeric:
        d = exact(value)
        return None if d is None else encode_number(d)
    if isinstance(value, date):
        return value.toordinal()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | Decimal | float):  # a number the batch does not cast (kept as it is)
        return value
    raise TypeError(f"cannot encode {value!r}")


@dataclass(frozen=True)
class Const:
    """An operand fixed for the period, encoded (None: unknown)."""

    value: Any


@dataclass(frozen=True)
class Ref:
    """An operand read from the event: the attribute's name."""

    name: str


Operand = Const | Ref


class Verdict(NamedTuple):
    """A condition as two durable-rules patterns: certainly true, certainly false (None: never)."""

    p: Any
    f: Any


ALWAYS: Any = object()  # a pattern that holds for every event (no test)
NEVER: Any = None  # a pattern that holds for no event (no rule is emitted)


def _m(name: str) -> Any:
    """The durable-rules pattern term for an event attribute (built directly: `m.<name>` would
    return the term object's own attributes for names such as `alias`)."""
    return _lang.value("$m", name)


def _conj(items: Iterable[Any]) -> Any:
    out = ALWAYS
    for item in items:
        if item is NEVER:
            return NEVER
        if item is ALWAYS:
            continue
        out = item if out is ALWAYS else out & item
    return out


def _disj(items: Iterable[Any]) -> Any:
    out = NEVER
    for item in items:
        if item is ALWAYS:
            return ALWAYS
        if item is NEVER:
            continue
        out = item if out is NEVER else out | item
    return out


_OPS = ("<", "<=", ">", ">=", "==", "!=")
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _test(left: Any, op: str, right: Any) -> Any:
    """`left op right` as a durable-rules term (left is an attribute term)."""
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "==":
        return left == right
    return left != right


@dataclass
class EventSchema:
    """The attributes one condition's event carries, and how each is computed from a taxpayer."""

    attributes: dict[str, Callable[[Env], Any]] = field(default_factory=dict)

    def add(self, name: str, compute: Callable[[Env], Any]) -> str:
        self.attributes.setdefault(name, compute)
        return name


@dataclass
class Translation:
    """State of translating one condition: the rule's scope and the event it is building."""

    scope: Scope
    event: EventSchema
    derived: dict[ir.Node, str] = field(default_factory=dict)


def translate(node: ir.Node, tr: Translation) -> Verdict:
    """The condition as (P, F) durable-rules patterns over the event described by `tr.event`."""
    try:
        fn = _TRANSLATE[type(node)]
    except KeyError:
        raise NotTranslatableError(f"no durable-rules translation for {type(node).__name__}") from None
    return fn(node, tr)


def _constant_truth(value: Any) -> Verdict:
    if value is None:
        return Verdict(NEVER, NEVER)
    return Verdict(ALWAYS, NEVER) if value else Verdict(NEVER, ALWAYS)


def _tr_literal(node: ir.Literal_ | ir.Param, tr: Translation) -> Verdict:
    return _constant_truth(value_fn(node, tr.scope)(None))  # type: ignore[arg-type]


def _bool_attribute(name: str) -> Verdict:
    return Verdict(_m(name) == True, _m(name) == False)  # noqa: E712 — durable-rules terms, not Python bools


def _tr_field(node: ir.Field, tr: Translation) -> Verdict:
    return _bool_attribute(_field_attribute(node.name, tr))


def _field_attribute(name: str, tr: Translation) -> str:
    from profiles.schema import PROFILE_FIELDS

    numeric = PROFILE_FIELDS[name].kind in ("money", "number", "int")
    return tr.event.add(name, lambda env: encode(env.row.get(name), numeric=numeric))


def is_constant(node: ir.Node) -> bool:
    """Whether the node's value is fixed for the period (no field, claim, event or verdict in it)."""
    for n in ir.walk(node):
        if isinstance(n, ir.Field):
            return False
        if isinstance(n, ir.Call) and n.name in ("events", "events_since", "claimed", "claimed_amount", "eligible",
                                                  "has"):
            return False
    return True


def operand(node: ir.Node, tr: Translation, *, numeric: bool) -> Operand:
    """A comparison operand: a constant, a field, or a value computed in Python and posted."""
    if is_constant(node):
        return Const(encode(value_fn(node, tr.scope)(None), numeric=numeric))  # type: ignore[arg-type]
    if isinstance(node, ir.Field):
        return Ref(_field_attribute(node.name, tr))  # numeric fields are always exact (is_numeric says so)
    known = tr.derived.get(node)
    if known is not None:
        return Ref(known)
    name = tr.derived[node] = f"v{len(tr.derived)}"
    compute = value_fn(node, tr.scope)
    tr.event.add(name, lambda env: encode(compute(env), numeric=numeric))
    return Ref(name)


def _compare_terms(op: str, left: Operand, right: Operand) -> Verdict:
    if isinstance(left, Const) and isinstance(right, Const):
        if left.value is None or right.value is None:
            return Verdict(NEVER, NEVER)
        return _constant_truth(_PY_OPS[op](left.value, right.value))
    if isinstance(left, Const):
        return _compare_terms(_MIRROR[op], right, left)
    assert isinstance(left, Ref)
    if isinstance(right, Const):
        if right.value is None:
            return Verdict(NEVER, NEVER)
        rhs: Any = right.value
        return Verdict(_test(_m(left.name), op, rhs), _test(_m(left.name), _NEGATE[op], rhs))
    # Two attributes of the same event. durable-rules matches `a < b` when b is absent if another test on
    # `a` precedes it in the rule (and `a != b` always does), so both are required to exist explicitly.
    present = +_m(left.name) & +_m(right.name)
    rhs = _m(right.name)
    return Verdict(present & _test(_m(left.name), op, rhs), present & _test(_m(left.name), _NEGATE[op], rhs))


def _tr_compare(node: ir.Compare, tr: Translation) -> Verdict:
    numeric = tr.scope.numeric(node.left) and tr.scope.numeric(node.right)
    left = operand(node.left, tr, numeric=numeric)
    right = operand(node.right, tr, numeric=numeric)
    return _compare_terms(node.op, left, right)


def _tr_in(node: ir.In, tr: Translation) -> Verdict:
    numeric = tr.scope.numeric(node.item)
    item = operand(node.item, tr, numeric=numeric)
    options = [encode(o, numeric=numeric) for o in _list_arg(node.options, tr.scope)]
    if isinstance(item, Const):
        verdict = Verdict(NEVER, NEVER) if item.value is None else _constant_truth(item.value in options)
    else:
        term = _m(item.name)
        p = _disj(term == o for o in options)
        # An empty list holds no value: false for any known item, unknown for a missing one.
        f = _conj(term != o for o in options) if options else +term
        verdict = Verdict(p, f)
    return Verdict(verdict.f, verdict.p) if node.negated else verdict


def _tr_and(node: ir.And, tr: Translation) -> Verdict:
    parts = [translate(i, tr) for i in node.items]
    return Verdict(_conj(v.p for v in parts), _disj(v.f for v in parts))


def _tr_or(node: ir.Or, tr: Translation) -> Verdict:
    parts = [translate(i, tr) for i in node.items]
    return Verdict(_disj(v.p for v in parts), _conj(v.f for v in parts))


def _tr_not(node: ir.Not, tr: Translation) -> Verdict:
    inner = translate(node.item, tr)
    return Verdict(inner.f, inner.p)


def _tr_ifelse(node: ir.IfElse, tr: Translation) -> Verdict:
    c, t, o = translate(node.cond, tr), translate(node.then, tr), translate(node.otherwise, tr)
    return Verdict(_disj([_conj([c.p, t.p]), _conj([c.f, o.p])]), _disj([_conj([c.p, t.f]), _conj([c.f, o.f])]))


def _tr_call(node: ir.Call, tr: Translation) -> Verdict:
    try:
        fn = _TRANSLATE_CALLS[node.name]
    except KeyError:
        raise NotTranslatableError(f"{node.name}() is not a condition") from None
    return fn(node, tr)


def _tr_has(node: ir.Call, tr: Translation) -> Verdict:
    arg = node.args[0]
    name = _field_attribute(arg.name, tr) if isinstance(arg, ir.Field) else None
    if name is None:  # pragma: no cover — the type-checker only lets a field through
        raise NotTranslatableError("has() 的参数必须是字段名")
    return Verdict(+_m(name), -_m(name))


def _tr_startswith(node: ir.Call, tr: Translation) -> Verdict:
    text = operand(node.args[0], tr, numeric=False)
    prefixes = [str(p) for p in _list_arg(node.args[1], tr.scope)]
    if isinstance(text, Const):
        return Verdict(NEVER, NEVER) if text.value is None else _constant_truth(str(text.value).startswith(
            tuple(prefixes)))
    # durable-rules' regex match has no negation, so each prefix length is posted as its own attribute
    # and compared for equality both ways: text[:n] == prefix (true) / != every prefix (false).
    source = tr.event.attributes[text.name]
    terms_p, terms_f = [], []
    for length in sorted({len(p) for p in prefixes}):
        name = tr.event.add(f"{text.name}__p{length}", _prefix(source, length))
        for p in prefixes:
            if len(p) == length:
                terms_p.append(_m(name) == p)
                terms_f.append(_m(name) != p)
    return Verdict(_disj(terms_p), _conj(terms_f) if prefixes else +_m(text.name))


def _prefix(source: Callable[[Env], Any], length: int) -> Callable[[Env], str | None]:
    def compute(env: Env) -> str | None:
        text = source(env)
        return None if text is None else str(text)[:length]

    return compute


def _tr_claimed(node: ir.Call, tr: Translation) -> Verdict:
    rid = str(node.args[0].value)  # type: ignore[union-attr]
    return _bool_attribute(tr.event.add(f"c_{rid}", lambda env: bool(env.claimed.get(rid, False))))


def _tr_eligible(node: ir.Call, tr: Translation) -> Verdict:
    rid = str(node.args[0].value)  # type: ignore[union-attr]
    if rid not in tr.scope.in_window:
        return Verdict(NEVER, ALWAYS)  # the other rule is not in force for this period
    # The other rule's qualification, as durable-rules decided it earlier in this evaluation.
    return _bool_attribute(tr.event.add(f"q_{rid}", lambda env: env.qualifies.get(rid)))


_TRANSLATE_CALLS: dict[str, Callable[[ir.Call, Translation], Verdict]] = {
    "has": _tr_has,
    "startswith": _tr_startswith,
    "claimed": _tr_claimed,
    "eligible": _tr_eligible,
}

_TRANSLATE: dict[type, Callable[[Any, Translation], Verdict]] = {
    ir.Literal_: _tr_literal,
    ir.Param: _tr_literal,
    ir.Field: _tr_field,
    ir.Compare: _tr_compare,
    ir.In: _tr_in,
    ir.And: _tr_and,
    ir.Or: _tr_or,
    ir.Not: _tr_not,
    ir.IfElse: _tr_ifelse,
    ir.Call: _tr_call,
}


# ------------------------------------------------------------------------------- rulesets and programs

#: Event markers besides the condition indices.
OUTCOME_MARKER, QUALIFIES_MARKER = -1, -2


@dataclass(frozen=True)
class Fired:
    """What a durable-rules rule means when it fires: which event kind, which item, which verdict."""

    marker: int
    verdict: Any  # a status (conditions), an outcome (outcome event), True/False/None (qualification)


@dataclass
class ConditionPlan:
    """One condition: its event's attributes."""

    condition: Condition
    marker: int
    event: EventSchema


@dataclass
class RulePlan:
    """One catalogue rule compiled for a period: its ruleset and how to build its events."""

    rule: Rule
    in_window: bool
    ruleset: str
    conditions: list[ConditionPlan]
    fired: list[Fired]  # durable-rules rule r_i means fired[i]
    benefit: ValueFn | None
    qualification: bool  # another rule reads this rule's eligibility


@dataclass
class RuleVerdict:
    """durable-rules' verdicts for one taxpayer × rule, with the values the finding needs."""

    rule: Rule
    in_window: bool
    claimed: bool
    claim_amount: Decimal | None
    statuses: dict[str, str]  # condition id -> pass / fail / unknown (empty when out of window)
    outcome: str
    benefit: Decimal | None
    qualifies: bool | None = None


def _noop(c: Any) -> None:
    """durable-rules wants an action per rule; actions are drained by index instead (see _Ruleset)."""


def _rule(rules: list[tuple[int, Any]], fired: list[Fired], marker: int, pattern: Any, verdict: Any,
          salience: int) -> None:
    if pattern is NEVER:
        return
    test = _m("k") == marker
    rules.append((salience, test if pattern is ALWAYS else test & pattern))
    fired.append(Fired(marker, verdict))


def _statuses_all(names: Sequence[str], status: str) -> Any:
    return _conj(_m(n) == status for n in names)


def _statuses_any(names: Sequence[str], status: str) -> Any:
    return _disj(_m(n) == status for n in names)


def compile_rule(rule: Rule, period: Period, in_window: frozenset[str], *, name: str, qualification: bool,
                 in_python: bool = False) -> tuple[RulePlan, dict[str, Any]]:
    """One catalogue rule as a durable-rules ruleset definition and the plan to feed it.

    `in_python`: each condition is decided in Python (`truth_fn`, the same three-valued logic) and posted as
    one boolean attribute, for a rule whose patterns durable-rules refuses (its expression limit, error 113);
    the outcome table is still durable-rules'."""
    require_durable()
    scope = Scope(period, rule, in_window)
    rules: list[tuple[int, Any]] = []
    fired: list[Fired] = []
    plans: list[ConditionPlan] = []
    inside = rule.id in in_window
    if inside:
        for j, cond in enumerate(rule.all_conditions()):
            tr = Translation(scope, EventSchema())
            if in_python:
                truth = truth_fn(cond.expr, scope)
                verdict = _bool_attribute(tr.event.add("t", lambda env, truth=truth: truth(env)))  # type: ignore[misc]
            else:
                verdict = translate(cond.expr, tr)
            if len(tr.event.attributes) > MAX_ATTRIBUTES:
                raise NotTranslatableError(
                    f"{rule.file}: 条件 {cond.id} 读取 {len(tr.event.attributes)} 个数据项，超过实时核查引擎每个条件 "
                    f"{MAX_ATTRIBUTES} 项的上限；请拆分该条件")
            _rule(rules, fired, j, verdict.p, STATUS_PASS, 1)
            _rule(rules, fired, j, verdict.f, STATUS_FAIL, 1)
            _rule(rules, fired, j, ALWAYS, STATUS_UNKNOWN, 2)  # neither P nor F consumed the event
            plans.append(ConditionPlan(cond, j, tr.event))
        names = [f"s{j}" for j in range(len(plans))]
        claimed, not_claimed = _m("claimed") == True, _m("claimed") == False  # noqa: E712
        every_pass, any_fail = _statuses_all(names, STATUS_PASS), _statuses_any(names, STATUS_FAIL)
        # The decision table (engine.findings.outcomes): an unknown eligibility or benefit is the
        # lower-salience catch-all of its claimed value ("otherwise").
        positive, not_positive = _m("benefit") > _ZERO, _m("benefit") <= _ZERO
        eligible = {True: every_pass, False: any_fail}
        benefits = {"positive": positive, "not_positive": not_positive}
        fallback: dict[bool, str] = {}
        for d in DECISION_TABLE:
            claim = claimed if d.claimed else not_claimed
            if d.eligible is None or d.benefit == "unknown":
                assert fallback.setdefault(d.claimed, d.outcome) == d.outcome, "one catch-all per claimed value"
                continue
            terms = [claim, eligible[d.eligible], *([benefits[d.benefit]] if d.benefit != "any" else [])]
            _rule(rules, fired, OUTCOME_MARKER, _conj(terms), d.outcome, 1)
        for value, outcome in fallback.items():
            _rule(rules, fired, OUTCOME_MARKER, claimed if value else not_claimed, outcome, 2)
        if qualification:
            own = [f"s{j}" for j, p in enumerate(plans) if not p.condition.stacking]
            _rule(rules, fired, QUALIFIES_MARKER, _statuses_all(own, STATUS_PASS), True, 1)
            _rule(rules, fired, QUALIFIES_MARKER, _statuses_any(own, STATUS_FAIL), False, 1)
            _rule(rules, fired, QUALIFIES_MARKER, ALWAYS, None, 2)
        benefit: ValueFn | None = value_fn(rule.benefit, scope)
    else:
        # A claim of an incentive whose window does not cover the period is improper whatever the figures.
        _rule(rules, fired, OUTCOME_MARKER, _m("claimed") == True, OUT_OF_WINDOW[True], 1)  # noqa: E712
        _rule(rules, fired, OUTCOME_MARKER, _m("claimed") == False, OUT_OF_WINDOW[False], 1)  # noqa: E712
        benefit = None
    rs = _lang.ruleset(name)
    with rs:
        for salience, pattern in rules:
            _lang.when_all(_lang.pri(salience), pattern)(_noop)
    _lang._rulesets.pop(name, None)  # the definition goes to our host, not durable.lang's global one
    ruleset_name, definition = rs.define()
    plan = RulePlan(rule, inside, ruleset_name, plans, fired, benefit, qualification and inside)
    return plan, definition


if _engine is not None:

    class _Ruleset(_engine.Ruleset):  # type: ignore[misc,name-defined]
        """A durable-rules ruleset whose actions are drained by index: which rule fired is all we need."""

        def __init__(self, name: str, host: Any, definition: dict[str, Any]) -> None:
            super().__init__(name, host, definition)
            self.evaluations = 0
            self.sid = "0"

        def fire(self, events: list[dict[str, Any]]) -> list[int]:
            """Post the events; return the index of the rule that consumed each (in firing order)."""
            payload = json.dumps(events, ensure_ascii=False, separators=(",", ":"))
            try:
                state = self._handle_result(_dre.assert_events(self._handle, payload), events)
            except _engine.MessageNotHandledException as exc:  # every event has a catch-all rule
                raise DurableEngineError(f"durable-rules 未处理事件：{exc.message}") from exc
            except _engine.MessageObservedException as exc:
                raise DurableEngineError(f"durable-rules 重复事件：{exc.message}") from exc
            out: list[int] = []
            result = _dre.start_action_for_state(self._handle, state)
            messages = result[1] if result else None
            while messages:
                # '{"r_12": {...}}' — the rule's name is its index in the definition.
                out.append(int(messages[4:messages.index('"', 4)]))
                messages = _dre.complete_and_start_action(self._handle, state)
            return out

        def reset(self) -> None:
            """Drop the session (its state is empty between evaluations; this frees engine bookkeeping)."""
            _dre.delete_state(self._handle, self.sid)

    class _Host(_engine.Host):  # type: ignore[misc,name-defined]
        """A durable-rules host without the background dispatch threads: evaluation is synchronous."""

        def _run(self) -> None:
            return None

        def register_rulesets(self, ruleset_definitions: dict[str, Any]) -> list[str]:
            for name, definition in ruleset_definitions.items():
                if name in self._ruleset_directory:
                    raise DurableEngineError(f"ruleset {name} already registered")
                ruleset = _Ruleset(name, self, definition)
                self._ruleset_directory[name] = ruleset
                self._ruleset_list.append(ruleset)
            return list(ruleset_definitions)


_HOST: Any = None
_IDS = itertools.count()


def _next_id() -> str:
    """A fresh event id: durable-rules refuses an event identical to one it has seen
    (MessageObservedException), and ids derived from content repeat across taxpayers."""
    return f"e{next(_IDS)}"
_PROGRAMS: dict[tuple[str, str, str], DurableProgram] = {}


def _host() -> Any:
    global _HOST
    if _HOST is None:
        _HOST = _Host()
    return _HOST


@dataclass
class DurableProgram:
    """The whole catalogue compiled for one period: one ruleset per rule, in dependency order."""

    catalogue: Catalogue
    period: Period
    plans: list[RulePlan]
    in_window: frozenset[str]
    session: str = "shared"  # or "per_taxpayer": a fresh session per evaluation, deleted afterwards
    _sequence: int = 0

    def evaluate(self, env: Env) -> list[RuleVerdict]:
        """Every active rule for one taxpayer: durable-rules' verdicts, rule by rule in dependency order."""
        with _LOCK:
            self._sequence += 1
            sid = "0" if self.session == "shared" else str(self._sequence)
            try:
                return [self._evaluate_rule(plan, env, sid) for plan in self.plans]
            finally:
                self._after(sid)

    def _after(self, sid: str) -> None:
        host = _host()
        for plan in self.plans:
            ruleset = host.get_ruleset(plan.ruleset)
            ruleset.evaluations += 1
            if self.session != "shared":
                _dre.delete_state(ruleset._handle, sid)
            elif ruleset.evaluations % RESET_EVERY == 0:
                ruleset.reset()

    def _evaluate_rule(self, plan: RulePlan, env: Env, sid: str) -> RuleVerdict:
        ruleset = _host().get_ruleset(plan.ruleset)
        rid = plan.rule.id
        claimed = bool(env.claimed.get(rid, False))
        statuses: dict[str, str] = {}
        benefit: Decimal | None = None
        if plan.in_window:
            events = [self._event(sid, c.marker, c.event, env) for c in plan.conditions]
            by_marker = self._decode(plan, ruleset.fire(events), len(events))
            statuses = {c.condition.id: by_marker[c.marker] for c in plan.conditions}
            value = exact(plan.benefit(env)) if plan.benefit else None
            benefit = None if value is None else half_up(value, 2)
            outcome_event: dict[str, Any] = {"sid": sid, "id": _next_id(), "k": OUTCOME_MARKER, "claimed": claimed}
            if benefit is not None:
                outcome_event["benefit"] = encode(benefit, numeric=True)
            for c in plan.conditions:
                outcome_event[f"s{c.marker}"] = by_marker[c.marker]
            events = [outcome_event]
            if plan.qualification:
                events.append({"sid": sid, "id": _next_id(), "k": QUALIFIES_MARKER, **{
                    f"s{c.marker}": by_marker[c.marker] for c in plan.conditions if not c.condition.stacking}})
        else:
            events = [{"sid": sid, "id": _next_id(), "k": OUTCOME_MARKER, "claimed": claimed}]
        verdicts = self._decode(plan, ruleset.fire(events), len(events))
        qualifies = verdicts.get(QUALIFIES_MARKER)
        if plan.qualification:
            env.qualifies[rid] = qualifies
        return RuleVerdict(plan.rule, plan.in_window, claimed, env.claim_amounts.get(rid), statuses,
                           verdicts[OUTCOME_MARKER], benefit, qualifies)

    @staticmethod
    def _event(sid: str, marker: int, schema: EventSchema, env: Env) -> dict[str, Any]:
        event: dict[str, Any] = {"sid": sid, "id": _next_id(), "k": marker}
        for name, compute in schema.attributes.items():
            value = compute(env)
            if value is not None:  # an absent attribute is how a missing figure reaches durable-rules
                event[name] = value
        return event

    @staticmethod
    def _decode(plan: RulePlan, indices: list[int], expected: int) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for i in indices:
            f = plan.fired[i]
            if f.marker in out:
                raise DurableEngineError(f"{plan.rule.id}: 事件 {f.marker} 得到两个结论")
            out[f.marker] = f.verdict
        if len(out) != expected:
            raise DurableEngineError(f"{plan.rule.id}: {expected} 个事件只得到 {len(out)} 个结论")
        return out


def compile_program(catalogue: Catalogue, period: Period, *, session: str = "shared") -> DurableProgram:
    """The catalogue's rulesets for `period`, compiled once per catalogue version, period and session mode."""
    require_durable()
    key = (catalogue.version, period.text, session)
    with _LOCK:
        program = _PROGRAMS.get(key)
        if program is not None:
            return program
        rules = catalogue.active(period)
        in_window = frozenset(r.id for r in rules if r.covers(period))
        read = {d for r in rules for d in r.depends_on}
        plans: list[RulePlan] = []
        tag = "s" if session == "shared" else "t"
        for rule in rules:
            name = f"zhixiang_{catalogue.version}_{period.text}_{tag}_{rule.id}"
            plan, definition = compile_rule(rule, period, in_window, name=name, qualification=rule.id in read)
            try:
                _host().register_rulesets({name: definition})
            except Exception as exc:  # durable_rules_engine.error carries only the code in its text
                if f"error code: {ERR_EXPRESSION_LIMIT_EXCEEDED}" not in str(exc):
                    raise
                name += "_py"
                plan, definition = compile_rule(rule, period, in_window, name=name, qualification=rule.id in read,
                                                in_python=True)
                _host().register_rulesets({name: definition})
            plans.append(plan)
        program = DurableProgram(catalogue, period, plans, in_window, session)
        _PROGRAMS[key] = program
        return program


# ------------------------------------------------------------------------------------- taxpayer input


def build_env(catalogue: Catalogue, period: Period, *, taxpayer: Mapping[str, Any] | None,
              indicators: Mapping[str, Any] | None, claims: Iterable[Mapping[str, Any]],
              risk_events: Iterable[Mapping[str, Any]]) -> Env:
    """One taxpayer's inputs as the batch joins them: taxpayer row, the period's indicators, the
    period's claims per rule (any of its codes), and every risk event."""
    row: dict[str, Any] = {}
    if taxpayer:
        row.update(taxpayer)
    if indicators:
        row.update({k: v for k, v in indicators.items() if k not in ("taxpayer_id", "period")})
    claimed: dict[str, bool] = {}
    known: dict[str, list[Decimal]] = {}
    for claim in claims:
        if claim.get("period") != period.text:
            continue
        rid = catalogue.code_to_rule.get(claim.get("incentive"))  # type: ignore[arg-type]
        if rid is None:
            continue
        claimed[rid] = True
        if claim.get("amount") is not None:
            known.setdefault(rid, []).append(Decimal(claim["amount"]))
    # A claim whose amount is empty has an unknown amount; the known ones are summed (None when none is).
    amounts: dict[str, Decimal | None] = {
        rid: sum(known[rid], Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) if rid in known
        else None for rid in claimed}
    events = [(e.get("event"), e.get("occurred_on")) for e in risk_events]
    return Env(period, row, claimed, amounts, events)
