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

Both backends implement this table: `decide` in plain Python (durable-rules path) and
`decide_expr` as a Polars expression (batch); a property test holds them equal.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

SEVERITY_ORDER = ("low", "medium", "high")

#: A rule the catalogue does not judge for a period (outside its `judged` window): not an outcome of the
#: decision table — no finding exists — but what a run, `explain` and a rule case say about it.
NOT_JUDGED = "not_judged"
NOT_JUDGED_LABEL = "未判定"
NOT_JUDGED_REASON = "目录未覆盖该所属期"


def decide(claimed: bool, eligible: bool | None, benefit: Decimal | None, *, in_window: bool = True) -> str:
    """The outcome of one taxpayer × rule × period (see the table above)."""
    if not in_window:
        return "improper" if claimed else "not_applicable"
    if claimed:
        if eligible is None:
            return "undetermined"
        return "compliant" if eligible else "improper"
    if eligible is None:
        return "undetermined"
    if not eligible:
        return "not_applicable"
    if benefit is None:
        return "undetermined"
    return "unclaimed" if benefit > 0 else "not_applicable"


def decide_expr(claimed: pl.Expr, eligible: pl.Expr, benefit: pl.Expr) -> pl.Expr:
    """`decide` over columns (for rules whose window covers the period)."""
    return (
        pl.when(claimed & (eligible == False))  # noqa: E712 — Kleene: null stays null
        .then(pl.lit("improper"))
        .when(claimed & eligible.is_null())
        .then(pl.lit("undetermined"))
        .when(claimed)
        .then(pl.lit("compliant"))
        .when(eligible.is_null())
        .then(pl.lit("undetermined"))
        .when(eligible == False)  # noqa: E712
        .then(pl.lit("not_applicable"))
        .when(benefit.is_null())
        .then(pl.lit("undetermined"))
        .when(benefit > 0)
        .then(pl.lit("unclaimed"))
        .otherwise(pl.lit("not_applicable"))
    )


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
