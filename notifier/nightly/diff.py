"""The run-to-run diff: what each finding did since the previous successful run.

Per finding key (taxpayer_id, period, rule_id):
    new         found now, not in the baseline
    changed     found in both, and its kind, risk tier, estimated amount or evidence differs
    persisting  found in both, the same
    resolved    in the baseline, not found now
Only the periods this run evaluated are compared: a baseline finding of a period the run did not look
at is out of scope, not resolved. Evidence is compared on each condition's verdict, value and
threshold — not on labels or wording, so rewording a rule is not news (engine.findings.evidence_key,
which the case ledger's fingerprint reads too). Everything is one full join over the two frames.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import polars as pl

from engine.findings import FINDINGS_KEY, KIND_LABELS, TIER_LABELS, evidence_key
from profiles import excel
from profiles.schema import MONEY_DTYPE

DIFF_STATUSES: tuple[str, ...] = ("new", "changed", "persisting", "resolved")
DIFF_LABELS: dict[str, str] = {"new": "新增", "changed": "变化", "persisting": "持续", "resolved": "消除"}

#: Columns of diff.parquet / diff.csv, in order.
DIFF_COLUMNS: tuple[str, ...] = (
    "taxpayer_id", "period", "rule_id", "rule_name", "status", "status_label", "changes",
    "kind", "kind_prev", "risk_tier", "risk_tier_prev", "estimated_amount", "estimated_amount_prev", "amount_delta",
    "taxpayer_name", "district", "tax_authority",
)
_CONTEXT = ("rule_name", "taxpayer_name", "district", "tax_authority")
_COMPARED = ("kind", "risk_tier", "estimated_amount", "evidence_key")


def _side(findings: pl.DataFrame, periods: Collection[str] | None) -> pl.LazyFrame:
    frame = findings.lazy()
    if periods is not None:
        frame = frame.filter(pl.col("period").is_in(list(periods)))
    return (frame.select(*FINDINGS_KEY, "kind", "risk_tier", pl.col("estimated_amount").cast(MONEY_DTYPE),
                         evidence_key().alias("evidence_key"), *_CONTEXT)
            .unique(list(FINDINGS_KEY), keep="first", maintain_order=True))


def diff_findings(current: pl.DataFrame, baseline: pl.DataFrame | None, *,
                  periods: Collection[str] | None = None) -> pl.DataFrame:
    """The diff of `current` against `baseline` (None: no baseline, everything is new), within `periods`."""
    cur = _side(current, periods)
    base = _side(current.clear(), None) if baseline is None else _side(baseline, periods)
    joined = cur.join(base, on=list(FINDINGS_KEY), how="full", coalesce=True, suffix="_prev")
    in_cur = pl.col("kind").is_not_null()
    in_base = pl.col("kind_prev").is_not_null()
    differs = {c: pl.col(c).ne_missing(pl.col(f"{c}_prev")) for c in _COMPARED}
    status = (
        pl.when(~in_base).then(pl.lit("new"))
        .when(~in_cur).then(pl.lit("resolved"))
        .when(pl.any_horizontal(*differs.values())).then(pl.lit("changed"))
        .otherwise(pl.lit("persisting"))
    )
    kind_label = pl.col("kind").replace_strict(KIND_LABELS, default=pl.col("kind"))
    kind_prev_label = pl.col("kind_prev").replace_strict(KIND_LABELS, default=pl.col("kind_prev"))
    tier = pl.col("risk_tier").replace_strict(TIER_LABELS, default=pl.col("risk_tier")).fill_null("无")
    tier_prev = pl.col("risk_tier_prev").replace_strict(TIER_LABELS, default=pl.col("risk_tier_prev")).fill_null("无")
    money = pl.col("estimated_amount").cast(pl.String).fill_null("未知")
    money_prev = pl.col("estimated_amount_prev").cast(pl.String).fill_null("未知")
    pieces = [
        pl.when(differs["kind"]).then(pl.concat_str([pl.lit("类型 "), kind_prev_label, pl.lit(" → "), kind_label])),
        pl.when(differs["risk_tier"]).then(pl.concat_str([pl.lit("风险等级 "), tier_prev, pl.lit(" → "), tier])),
        pl.when(differs["estimated_amount"]).then(
            pl.concat_str([pl.lit("金额 "), money_prev, pl.lit(" → "), money, pl.lit(" 元")])),
        pl.when(differs["evidence_key"] & ~differs["kind"]).then(pl.lit("条件取值有变化")),
    ]
    changes = pl.when(status == "changed").then(pl.concat_list(pieces).list.drop_nulls().list.join("；"))
    out = joined.with_columns(
        status.alias("status"),
        *(pl.coalesce(pl.col(c), pl.col(f"{c}_prev")).alias(c) for c in _CONTEXT),
    ).with_columns(
        pl.col("status").replace_strict(DIFF_LABELS, return_dtype=pl.String).alias("status_label"),
        changes.fill_null("").alias("changes"),
        (pl.col("estimated_amount").fill_null(0) - pl.col("estimated_amount_prev").fill_null(0))
        .cast(MONEY_DTYPE).alias("amount_delta"),
    )
    order = pl.col("status").replace_strict({s: i for i, s in enumerate(DIFF_STATUSES)}, return_dtype=pl.Int8)
    return (out.sort([order, "rule_id", "period", "taxpayer_id"])
            .select(DIFF_COLUMNS).collect())


def diff_counts(diff: pl.DataFrame) -> dict[str, int]:
    """Findings per diff status (every status present, zeros included)."""
    got = dict(diff.group_by("status").len().iter_rows()) if diff.height else {}
    return {s: int(got.get(s, 0)) for s in DIFF_STATUSES}


def news(findings: pl.DataFrame, diff: pl.DataFrame) -> pl.DataFrame:
    """The findings rows (full schema) whose diff status is new or changed."""
    keys = diff.filter(pl.col("status").is_in(["new", "changed"])).select(FINDINGS_KEY)
    return findings.join(keys, on=list(FINDINGS_KEY), how="semi")


def write_diff(diff: pl.DataFrame, folder: Path) -> tuple[Path, Path]:
    """diff.parquet and diff.csv in `folder`. The CSV is for Excel: Chinese headers, statuses, kinds and
    risk tiers as their labels, Excel-safe cells (profiles.excel)."""
    parquet, csv = folder / "diff.parquet", folder / "diff.csv"
    diff.write_parquet(parquet)
    shown = diff.select(c for c in DIFF_COLUMNS if c != "status").with_columns(
        *(pl.col(c).replace(KIND_LABELS) for c in ("kind", "kind_prev")),
        *(pl.col(c).replace(TIER_LABELS) for c in ("risk_tier", "risk_tier_prev")),
    )
    excel.write_frame(shown, csv)
    return parquet, csv
