"""How a rule's verdict for one taxpayer becomes an outcome and a risk tier — the decision table, once.

| claimed | eligible | benefit      | outcome                    |
|---------|----------|--------------|----------------------------|
| yes     | false    | —            | improper       违规享受     |
| yes     | unknown  | —            | undetermined   待核实       |
| yes     | true     | —            | compliant      合规享受     |
| no      | true     | > 0          | unclaimed      应享未享     |
| no      | true     | unknown      | undetermined   待核实       |
| no      | true     | ≤ 0          | not_applicable 不适用       |
| no      | unknown  | —            | undetermined   待核实       |
| no      | false    | —            | not_applicable 不适用       |

A claim of a rule whose effective window does not cover the period is improper whatever the figures —
but only within the rule's judged window (`judged`, default from `effective.from`, open-ended). Outside
it the catalogue does not cover the period: the rule is not judged, it has no outcome for anybody, and
the run lists it with NOT_JUDGED_REASON (engine.run.not_judged_rules) and the claims it did not judge.
Missing data is never evidence: an unknown eligibility is `undetermined`, never `improper`.

The table is data (`DECISION_TABLE`, first match wins; `OUT_OF_WINDOW` for a rule whose window does not
cover the period) and every backend derives its form from it: `decide` in plain Python, `decide_expr` as
a Polars expression (batch), `branches` for a SQL CASE (engine/backends/sql.py) and the durable-rules
outcome rules (engine/backends/durable.py `compile_rule`, unknowns as the lower-salience catch-all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

import polars as pl

SEVERITY_ORDER = ("low", "medium", "high")

#: A rule the catalogue does not judge for a period (outside its `judged` window): not an outcome of the
#: decision table — no finding exists — but what a run, `explain` and a rule case say about it.
NOT_JUDGED = "not_judged"
NOT_JUDGED_LABEL = "未判定"
NOT_JUDGED_REASON = "目录未覆盖该所属期"


BenefitTest = Literal["positive", "not_positive", "unknown", "any"]


@dataclass(frozen=True)
class Decision:
    """One row of the decision table: claimed, eligibility (None: unknown), benefit -> outcome."""

    claimed: bool
    eligible: bool | None
    benefit: BenefitTest
    outcome: str


#: The table above, in order; the first row that matches decides.
DECISION_TABLE: tuple[Decision, ...] = (
    Decision(True, False, "any", "improper"),
    Decision(True, None, "any", "undetermined"),
    Decision(True, True, "any", "compliant"),
    Decision(False, True, "positive", "unclaimed"),
    Decision(False, True, "unknown", "undetermined"),
    Decision(False, True, "not_positive", "not_applicable"),
    Decision(False, None, "any", "undetermined"),
    Decision(False, False, "any", "not_applicable"),
)
#: A rule whose effective window does not cover the period (within its judged window): claimed or not.
OUT_OF_WINDOW: dict[bool, str] = {True: "improper", False: "not_applicable"}


def _benefit_matches(test: BenefitTest, benefit: Decimal | None) -> bool:
    if test == "any":
        return True
    if benefit is None:
        return test == "unknown"
    return test == ("positive" if benefit > 0 else "not_positive")


def decide(claimed: bool, eligible: bool | None, benefit: Decimal | None, *, in_window: bool = True) -> str:
    """The outcome of one taxpayer × rule × period (see the table above)."""
    if not in_window:
        return OUT_OF_WINDOW[claimed]
    for d in DECISION_TABLE:
        if d.claimed == claimed and d.eligible is eligible and _benefit_matches(d.benefit, benefit):
            return d.outcome
    raise AssertionError("the decision table covers every case")


T = TypeVar("T")


def branches(claimed: T, not_claimed: T, eligible: Callable[[bool | None], T],
             benefit: Callable[[BenefitTest], T], conj: Callable[[Sequence[T]], T]) -> list[tuple[T, str]]:
    """The table as (condition, outcome) branches of a first-match chain, in a backend's own expressions:
    `eligible(True/False/None)` and `benefit("positive"/"not_positive"/"unknown")` test a value."""
    out = []
    for d in DECISION_TABLE:
        terms = [claimed if d.claimed else not_claimed, eligible(d.eligible)]
        if d.benefit != "any":
            terms.append(benefit(d.benefit))
        out.append((conj(terms), d.outcome))
    return out


def _eligible_expr(eligible: pl.Expr, value: bool | None) -> pl.Expr:
    return eligible.is_null() if value is None else eligible if value else ~eligible


def _benefit_expr(benefit: pl.Expr, test: BenefitTest) -> pl.Expr:
    return benefit.is_null() if test == "unknown" else benefit > 0 if test == "positive" else benefit <= 0


def decide_expr(claimed: pl.Expr, eligible: pl.Expr, benefit: pl.Expr) -> pl.Expr:
    """`decide` over columns (for rules whose window covers the period; `claimed` is never null)."""
    chain = branches(claimed, ~claimed, lambda v: _eligible_expr(eligible, v), lambda t: _benefit_expr(benefit, t),
                     lambda terms: pl.all_horizontal(terms))
    (first, outcome), *rest = chain
    expr: Any = pl.when(first).then(pl.lit(outcome))  # Then, then ChainedThen
    for cond, outcome in rest:
        expr = expr.when(cond).then(pl.lit(outcome))
    return expr.otherwise(pl.lit(None, pl.String))


def out_of_window_expr(claimed: pl.Expr) -> pl.Expr:
    """The outcome of a rule whose effective window does not cover the period."""
    return pl.when(claimed).then(pl.lit(OUT_OF_WINDOW[True])).otherwise(pl.lit(OUT_OF_WINDOW[False]))


def risk_tier(severity: str, amount: Decimal | None, *, raise_at: Decimal, lower_below: Decimal) -> str:
    """Tier of an improper claim: the rule's severity, one up for large amounts, one down for small."""
    level = SEVERITY_ORDER.index(severity)
    if amount is not None:
        if amount >= raise_at:
            level += 1
        elif amount < lower_below:
            level -= 1
    return SEVERITY_ORDER[max(0, min(level, len(SEVERITY_ORDER) - 1))]


def risk_tier_expr(severity: str, amount: pl.Expr, *, raise_at: Decimal, lower_below: Decimal) -> pl.Expr:
    """`risk_tier` over an amount column, for one rule's severity."""
    level = SEVERITY_ORDER.index(severity)
    up = SEVERITY_ORDER[min(level + 1, 2)]
    down = SEVERITY_ORDER[max(level - 1, 0)]
    return (
        pl.when(amount.is_null())
        .then(pl.lit(severity))
        .when(amount >= pl.lit(raise_at))
        .then(pl.lit(up))
        .when(amount < pl.lit(lower_below))
        .then(pl.lit(down))
        .otherwise(pl.lit(severity))
    )
