"""What a finding is: its kinds, its evidence and the columns of the findings files.

A finding is one taxpayer × rule × period whose outcome needs somebody's attention. The batch engine,
the durable-rules backend and everything downstream (letters, cases, the nightly diff) speak this one
format; `findings.parquet` is its canonical store, `findings.csv` a copy for Excel.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Literal

import polars as pl

from profiles import excel
from profiles.schema import MONEY_DTYPE

Kind = Literal["unclaimed", "improper", "undetermined"]
Outcome = Literal["unclaimed", "improper", "undetermined", "compliant", "not_applicable"]
Status = Literal["pass", "fail", "unknown"]
RiskTier = Literal["high", "medium", "low"]

KINDS: tuple[Kind, ...] = ("unclaimed", "improper", "undetermined")
OUTCOMES: tuple[Outcome, ...] = ("unclaimed", "improper", "undetermined", "compliant", "not_applicable")
KIND_LABELS: dict[str, str] = {
    "unclaimed": "应享未享",
    "improper": "违规享受",
    "undetermined": "待核实",
    "compliant": "合规享受",
    "not_applicable": "不适用",
}
STATUS_LABELS: dict[str, str] = {"pass": "满足", "fail": "不满足", "unknown": "无法判断"}
TIER_LABELS: dict[str, str] = {"high": "高风险", "medium": "中风险", "low": "低风险"}
TIERS: tuple[RiskTier, ...] = ("high", "medium", "low")

#: One condition's verdict for one taxpayer.
EVIDENCE_DTYPE = pl.Struct(
    {
        "condition": pl.String,  # condition id within the rule, e.g. "employees"
        "label": pl.String,  # Chinese label of the condition
        "status": pl.String,  # pass / fail / unknown
        "value": pl.String,  # the taxpayer's figure(s), formatted
        "threshold": pl.String,  # the threshold it was compared with, formatted ("" when none)
        "reason": pl.String,  # Chinese sentence, e.g. "从业人数 301 人，超过 300 人"
    }
)

#: Columns of findings.parquet, in order.
FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "taxpayer_id": pl.String(),
    "period": pl.String(),
    "rule_id": pl.String(),
    "rule_name": pl.String(),
    "kind": pl.String(),  # unclaimed / improper / undetermined
    "kind_label": pl.String(),  # 应享未享 / 违规享受 / 待核实
    "estimated_amount": MONEY_DTYPE,  # estimated benefit (unclaimed) or amount at risk (improper)
    "claimed_amount": MONEY_DTYPE,  # what the taxpayer claimed, when they claimed
    "risk_tier": pl.String(),  # high / medium / low for improper, null otherwise
    "reasons": pl.String(),  # Chinese reason lines of the deciding conditions, joined with "；"
    "evidence": pl.List(EVIDENCE_DTYPE),  # every condition, pass / fail / unknown
    "basis": pl.String(),  # legal basis of the rule
    "rule_version": pl.String(),  # hash of the rule file
    "ruleset_version": pl.String(),  # hash of the whole catalogue
    # Taxpayer context, so that letters and task lists need only the findings folder.
    "taxpayer_name": pl.String(),
    "entity_type": pl.String(),
    "district": pl.String(),
    "tax_authority": pl.String(),
    "preferred_channel": pl.String(),
    "opt_out": pl.Boolean(),
    "phone": pl.String(),
    "email": pl.String(),
}

#: Columns of findings.csv, for Excel: evidence flattened into reasons, kinds and risk tiers as their
#: Chinese labels, headers from profiles.excel.HEADERS (see write_findings_csv).
FINDINGS_CSV_COLUMNS: tuple[str, ...] = (
    "taxpayer_id",
    "period",
    "rule_id",
    "rule_name",
    "kind",
    "estimated_amount",
    "claimed_amount",
    "risk_tier",
    "reasons",
    "basis",
    "district",
    "tax_authority",
    "taxpayer_name",
    "ruleset_version",
)


def write_findings_csv(findings: pl.DataFrame, target: Path | BinaryIO, *, include_header: bool = True) -> None:
    """findings.csv (or, with `include_header` false, more rows of it): Chinese headers and labels,
    Excel-safe cells (profiles.excel)."""
    frame = findings.select(FINDINGS_CSV_COLUMNS).with_columns(
        pl.col("kind").replace(KIND_LABELS),
        pl.col("risk_tier").replace(TIER_LABELS),
    )
    excel.write_frame(frame, target, include_header=include_header)


#: Taxpayer context columns carried by every finding: profile column -> findings column.
TAXPAYER_CONTEXT: dict[str, str] = {
    "name": "taxpayer_name", "entity_type": "entity_type", "district": "district", "tax_authority": "tax_authority",
    "preferred_channel": "preferred_channel", "opt_out": "opt_out", "phone": "phone", "email": "email",
}
#: For each outcome, the condition status that explains it (its reasons are those conditions' sentences).
DECIDING_STATUS: dict[str, str] = {"unclaimed": "pass", "improper": "fail", "undetermined": "unknown",
                                   "compliant": "pass", "not_applicable": "fail"}

FINDINGS_KEY: tuple[str, ...] = ("taxpayer_id", "period", "rule_id")


def empty_findings() -> pl.DataFrame:
    """A findings frame with no rows and the canonical schema."""
    return pl.DataFrame(schema=FINDINGS_SCHEMA)
