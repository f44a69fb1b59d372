"""The batch engine: every rule of the catalogue over every taxpayer of a period, in one lazy query.

`build_query` joins the period's indicators with taxpayers, claims and risk-event counts, adds one
column per condition, eligibility, benefit and outcome for each rule (dependencies first), and returns
lazy frames for the findings (with evidence) and the summary. Nothing loops over rows; rules are
unrolled into expressions once, then Polars runs the whole catalogue as one plan.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from engine import ir
from engine.backends.polars import (
    Context,
    claim_amount_col,
    claimed_col,
    condition_col,
    eligible_col,
    event_counts,
    exact,
    qualifies_col,
    translate,
)
from engine.catalogue import Catalogue, Condition, Rule
from engine.evidence import Subject, explain_condition, format_value_expr, round_half_up
from engine.findings import (
    DECIDING_STATUS,
    EVIDENCE_DTYPE,
    FINDINGS_SCHEMA,
    KIND_LABELS,
    KINDS,
    TAXPAYER_CONTEXT,
    reasons,
)
from engine.findings.outcomes import decide_expr, out_of_window_expr, risk_tier_expr
from profiles.periods import Period
from profiles.schema import MONEY_DTYPE, PROFILE_FIELDS


def outcome_col(rule_id: str) -> str:
    return f"{rule_id}__outcome"


def benefit_col(rule_id: str) -> str:
    return f"{rule_id}__benefit"


@dataclass(frozen=True)
class Plan:
    """The lazy query for one period: the per-taxpayer outcome table and what is derived from it."""

    period: Period
    rules: tuple[Rule, ...]  # judged for this period (granularity matches)
    in_window: frozenset[str]  # of those, whose effective window covers the period
    wide: pl.LazyFrame  # one row per taxpayer: conditions, eligibility, benefit, outcome per rule
    findings: pl.LazyFrame  # FINDINGS_SCHEMA rows
    summary: pl.LazyFrame  # rule_id, outcome, count, amount


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def build_query(
    catalogue: Catalogue,
    period: Period,
    *,
    taxpayers: pl.DataFrame | pl.LazyFrame,
    indicators: pl.DataFrame | pl.LazyFrame,
    claims: pl.DataFrame | pl.LazyFrame,
    risk_events: pl.DataFrame | pl.LazyFrame,
    outcomes: Collection[str] = KINDS,
) -> Plan:
    """The whole catalogue for `period` as lazy frames; nothing is computed until they are collected.

    `outcomes` chooses which outcomes become rows of `findings`: the three finding kinds by default,
    every outcome for `explain` and the rule cases.
    """
    rules = tuple(catalogue.active(period))
    in_window = frozenset(r.id for r in rules if r.covers(period))
    ctx = Context(period=period, active=in_window)
    p = period.text

    ind = _lazy(indicators).filter(pl.col("period") == p).drop("period")
    cl = _lazy(claims).filter(pl.col("period") == p)

    # Claims, one boolean and one amount per rule (any of its codes counts as claiming it). The hit
    # columns are computed before grouping: a filter inside the aggregation takes Polars' slow path.
    # Only the rules judged for this period and those their conditions ask claimed() about.
    referenced = {rid for rule in rules for node in (*(c.expr for c in rule.all_conditions()), rule.benefit)
                  for rid in ir.rules_referenced(node, "claimed")}
    all_rules = [r for r in catalogue.rules.values() if r.id in referenced or r in rules]
    hits = cl.with_columns([pl.col("incentive").is_in(list(r.claim_codes)).alias(claimed_col(r.id)) for r in all_rules])
    hits = hits.with_columns([pl.when(pl.col(claimed_col(r.id))).then(pl.col("amount")).alias(claim_amount_col(r.id))
                              for r in all_rules])
    claim_table = hits.group_by("taxpayer_id").agg(
        [pl.col(claimed_col(r.id)).any() for r in all_rules]
        # A claim whose amount is empty has an unknown amount, not 0 (sum() of nulls is 0): the amount at
        # stake then falls back to the estimated benefit.
        + [pl.when(pl.col(claim_amount_col(r.id)).count() > 0).then(pl.col(claim_amount_col(r.id)).sum())
           .cast(MONEY_DTYPE).alias(claim_amount_col(r.id)) for r in all_rules]
    )
    # Taxpayers judged: those with figures for the period or a claim for it (a claim without figures
    # is judged too — its conditions come out unknown, so it is 待核实, never 违规).
    base = ind.join(claim_table, on="taxpayer_id", how="full", coalesce=True)
    base = base.join(_lazy(taxpayers), on="taxpayer_id", how="left").with_columns(
        [pl.lit(p).alias("period")] + [pl.col(claimed_col(r.id)).fill_null(False) for r in all_rules]
    )

    # Rules in dependency order; a rule's columns are added after those of every rule it reads.
    # Each level adds its conditions and benefits first, then the eligibility read from those columns
    # (so no condition is computed twice).
    stages: list[list[pl.Expr]] = []
    level: dict[str, int] = {}
    for rule in rules:
        lv = 1 + max((level.get(d, -1) for d in rule.depends_on), default=-1)
        level[rule.id] = lv
        while len(stages) <= 2 * lv + 1:
            stages.append([])
        first, then = _rule_columns(rule, ctx, rule.id in in_window)
        stages[2 * lv].extend(first)
        stages[2 * lv + 1].extend(then)
    counts = event_counts(_lazy(risk_events), ctx)
    if counts is not None:
        base = base.join(counts, on="taxpayer_id", how="left").with_columns(
            [pl.col(c).fill_null(0) for c in ctx.events.values()]
        )
    wide = base
    for stage in stages:
        if stage:
            wide = wide.with_columns(stage)
    outcome_exprs = []
    for rule in rules:
        claimed = pl.col(claimed_col(rule.id))
        if rule.id in in_window:
            outcome_exprs.append(decide_expr(claimed, pl.col(eligible_col(rule.id)), pl.col(benefit_col(rule.id)))
                                 .alias(outcome_col(rule.id)))
        else:
            outcome_exprs.append(out_of_window_expr(claimed).alias(outcome_col(rule.id)))
    wide = wide.with_columns(outcome_exprs)

    # Findings come out sorted by rule_id, kind, taxpayer_id: each rule's rows are sorted before their
    # evidence is built (sorting afterwards would move every evidence list), and rules are in id order.
    findings = [_rule_findings(wide, rule, catalogue, ctx, rule.id in in_window, outcomes)
                for rule in sorted(rules, key=lambda r: r.id)]
    empty = pl.LazyFrame(schema=FINDINGS_SCHEMA)
    findings_lf = pl.concat([empty, *findings], how="vertical") if findings else empty
    summary = _summary(wide, rules, in_window)
    return Plan(period, rules, in_window, wide, findings_lf, summary)


def _rule_columns(rule: Rule, ctx: Context, in_window: bool) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """(condition and benefit columns, eligibility columns that read them)."""
    if not in_window:
        return [], []
    rctx = Context(period=ctx.period, rule=rule, active=ctx.active, events=ctx.events)
    cols = [translate(c.expr, rctx).alias(condition_col(rule.id, c.id)) for c in rule.all_conditions()]
    benefit = round_half_up(exact(translate(rule.benefit, rctx)), 2).cast(MONEY_DTYPE)
    plain = [pl.col(condition_col(rule.id, c.id)) for c in rule.all_conditions() if not c.stacking]
    stacking = [pl.col(condition_col(rule.id, c.id)) for c in rule.all_conditions() if c.stacking]
    qualifies = pl.all_horizontal(plain)
    eligible = pl.all_horizontal([*plain, *stacking]) if stacking else qualifies
    return ([*cols, benefit.alias(benefit_col(rule.id))],
            [qualifies.alias(qualifies_col(rule.id)), eligible.alias(eligible_col(rule.id))])


def _status(col: pl.Expr) -> pl.Expr:
    return pl.when(col).then(pl.lit("pass")).when(~col).then(pl.lit("fail")).otherwise(pl.lit("unknown"))


def _subject_dtype(subject: Subject) -> pl.DataType | None:
    node = subject.node
    if isinstance(node, ir.Field):
        return PROFILE_FIELDS[node.name].dtype
    if subject.fmt in ("int",):
        return pl.Int64()
    return pl.Decimal(38, 6)


def _render(subject: Subject, rctx: Context) -> pl.Expr:
    column = subject.node.name if isinstance(subject.node, ir.Field) else ""
    expr = translate(subject.node, rctx)
    return format_value_expr(expr, subject.fmt, column=column, dtype=_subject_dtype(subject))


def _evidence(cond: Condition, rule: Rule, rctx: Context) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(status, value, threshold, reason) expressions of one condition (the sentence: engine.findings.reasons)."""
    s = reasons.sentence(explain_condition(cond, rule, rctx.period))
    status = _status(pl.col(condition_col(rule.id, cond.id)))
    fields_text = (pl.concat_str([reasons.field_text_expr(_render(f, rctx), f) for f in s.fields],
                                 separator=reasons.FIELD_SEPARATOR) if s.fields else pl.lit(""))
    value = _render(s.value, rctx) if s.value is not None else fields_text
    threshold = _render(s.threshold, rctx) if s.threshold is not None else pl.lit(s.threshold_text)
    missing = reasons.missing_expr([pl.when(translate(f.node, rctx).is_null()).then(pl.lit(f.label))
                                    for f in s.missing_fields])
    slots = {"value": value, "threshold": threshold, "detail": reasons.detail_expr(fields_text), "missing": missing}
    return status, value.fill_null(""), threshold.fill_null(""), reasons.reason_expr(s, status, slots)


def _rule_findings(wide: pl.LazyFrame, rule: Rule, catalogue: Catalogue, ctx: Context, in_window: bool,
                   outcomes: Collection[str]) -> pl.LazyFrame:
    rctx = Context(period=ctx.period, rule=rule, active=ctx.active, events=ctx.events)
    kind = pl.col(outcome_col(rule.id))
    claimed_amount = pl.col(claim_amount_col(rule.id))
    items: list[pl.Expr] = []
    if in_window:
        for cond in rule.all_conditions():
            status, value, threshold, reason = _evidence(cond, rule, rctx)
            items.append(pl.struct(
                condition=pl.lit(cond.id), label=pl.lit(cond.label), status=status, value=value,
                threshold=threshold, reason=reason,
            ))
        # Each condition's evidence is a column first; the list and the reason line both read it, so no
        # sentence is built twice. Every finding of a rule has the same conditions, so a fixed-size array
        # is built (fast) and turned into a list; pl.concat_list of structs is ~30x slower.
        parts = [pl.col(f"__evidence_{i}") for i in range(len(items))]
        want = pl.col("kind").replace_strict(DECIDING_STATUS, default=None)
        evidence = pl.concat_arr(parts).arr.to_list()
        reason_text = pl.concat_str([pl.when(p.struct.field("status") == want).then(p.struct.field("reason"))
                                     for p in parts], separator="；", ignore_nulls=True)
        benefit = pl.col(benefit_col(rule.id))
    else:
        item = reasons.out_of_window_evidence(rule.window_label, ctx.period)
        evidence = pl.concat_arr([pl.struct([pl.lit(v).alias(k) for k, v in item.items()])]).arr.to_list()
        reason_text = pl.lit(item["reason"])
        benefit = pl.lit(None, MONEY_DTYPE)
    tiers = catalogue.settings.risk_tiers
    amount = pl.when(pl.col("kind") == "improper").then(pl.coalesce(claimed_amount, benefit)).otherwise(benefit)
    context = [pl.col(src).alias(dst) for src, dst in TAXPAYER_CONTEXT.items()]
    return (
        wide.filter(kind.is_in(list(outcomes)))
        .with_columns(kind.alias("kind"))
        .sort(["kind", "taxpayer_id"])
        .with_columns([item.alias(f"__evidence_{i}") for i, item in enumerate(items)])
        .select(
            pl.col("taxpayer_id"),
            pl.col("period"),
            pl.lit(rule.id).alias("rule_id"),
            pl.lit(rule.name).alias("rule_name"),
            pl.col("kind"),
            pl.col("kind").replace_strict(KIND_LABELS, return_dtype=pl.String).alias("kind_label"),
            amount.cast(MONEY_DTYPE).alias("estimated_amount"),
            claimed_amount.cast(MONEY_DTYPE).alias("claimed_amount"),
            pl.when(pl.col("kind") == "improper").then(
                risk_tier_expr(rule.severity, pl.coalesce(claimed_amount, benefit),
                               raise_at=Decimal(str(tiers.raise_at)), lower_below=Decimal(str(tiers.lower_below)))
            ).alias("risk_tier"),
            reason_text.alias("reasons"),
            evidence.cast(pl.List(EVIDENCE_DTYPE)).alias("evidence"),
            pl.lit(rule.basis_text).alias("basis"),
            pl.lit(rule.version).alias("rule_version"),
            pl.lit(catalogue.version).alias("ruleset_version"),
            *context,
        )
    )


def _summary(wide: pl.LazyFrame, rules: tuple[Rule, ...], in_window: frozenset[str]) -> pl.LazyFrame:
    """Counts and amounts per rule and outcome — compliant and not-applicable included."""
    parts = []
    for rule in rules:
        outcome = pl.col(outcome_col(rule.id))
        benefit = pl.col(benefit_col(rule.id)) if rule.id in in_window else pl.lit(None, MONEY_DTYPE)
        amount = (pl.when(outcome == "improper").then(pl.coalesce(pl.col(claim_amount_col(rule.id)), benefit))
                  .when(outcome != "not_applicable").then(benefit))
        parts.append(
            wide.group_by(outcome.alias("outcome"))
            .agg(pl.len().cast(pl.Int64).alias("count"), amount.sum().cast(MONEY_DTYPE).alias("amount"))
            .select(pl.lit(rule.id).alias("rule_id"), "outcome", "count",
                    pl.when(pl.col("outcome") != "not_applicable").then(pl.col("amount")).alias("amount"))
        )
    if not parts:
        return pl.LazyFrame(schema={"rule_id": pl.String, "outcome": pl.String, "count": pl.Int64,
                                    "amount": MONEY_DTYPE})
    return pl.concat(parts)
