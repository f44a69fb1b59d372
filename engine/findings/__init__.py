"""What a finding is: its kinds, its evidence and the columns of the findings files.

A finding is one taxpayer × rule × period whose outcome needs somebody's attention. The batch engine,
the durable-rules backend and everything downstream (letters, cases, the nightly diff) speak this one
format; `findings.parquet` is its canonical store, `findings.csv` a copy for Excel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO, Literal

import polars as pl

from engine.errors import InputError
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


FINDINGS_FILE = "findings.parquet"
FINDINGS_CSV_FILE = "findings.csv"
#: zstd level 1: the evidence lists compress as well as at the default level and write ~25% faster.
FINDINGS_ZSTD_LEVEL = 1


def write_findings(findings: pl.DataFrame, parquet: Path, csv: Path | None = None) -> None:
    """findings.parquet (and, with `csv`, its Excel copy findings.csv)."""
    findings.write_parquet(parquet, compression_level=FINDINGS_ZSTD_LEVEL)
    if csv is not None:
        write_findings_csv(findings, csv)


def read_findings(path: str | Path) -> pl.DataFrame:
    """findings.parquet from a findings folder (or the file itself), checked against FINDINGS_SCHEMA."""
    p = Path(path)
    file = p if p.suffix == ".parquet" or p.is_file() else p / FINDINGS_FILE
    if not file.is_file():
        raise InputError(f"找不到发现文件 {file}：请先运行 zhixiang run --out {p}，再用该目录作为 --findings")
    try:
        frame = pl.read_parquet(file)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"无法读取发现文件 {file}：{exc}（文件可能不完整，请重新运行 zhixiang run）") from exc
    missing = [c for c in FINDINGS_SCHEMA if c not in frame.columns]
    if missing:
        raise InputError(f"发现文件 {file} 缺少列：{', '.join(missing)}（应为 zhixiang run 生成的 findings.parquet）")
    return frame


# ----------------------------------------------------------------------------------------- audience

Audience = Literal["letter", "reminder", "case", "verification", "none"]
#: Audiences told to the taxpayer (in the policy package letter).
TAXPAYER_AUDIENCES: tuple[Audience, ...] = ("letter", "reminder")


def _positive(amount: Any) -> bool:
    if amount is None or isinstance(amount, bool):
        return False
    try:
        return Decimal(repr(amount) if isinstance(amount, float) else str(amount).replace(",", "").strip()) > 0
    except InvalidOperation:
        return False


def audience(kind: str | None, estimated_amount: Any, risk_tier: str | None) -> Audience:
    """Who a finding goes to.

    letter: unclaimed with a saving (the policy package); reminder: an improper claim of low risk (told to
    the taxpayer, not a case); case: any other improper claim — an improper finding without a tier is a
    case (a case that is not needed costs an officer a look, a missed one costs revenue); verification:
    undetermined (an officer checks the data; never told to the taxpayer); none: nothing to tell.
    """
    if kind == "unclaimed":
        return "letter" if _positive(estimated_amount) else "none"
    if kind == "improper":
        return "reminder" if risk_tier == "low" else "case"
    if kind == "undetermined":
        return "verification"
    return "none"


def audience_of(row: Mapping[str, Any]) -> Audience:
    """`audience` of a findings row."""
    return audience(row.get("kind"), row.get("estimated_amount"), row.get("risk_tier"))


def is_taxpayer_facing(row: Mapping[str, Any]) -> bool:
    """Whether a finding may be told to the taxpayer (letter or reminder)."""
    return audience_of(row) in TAXPAYER_AUDIENCES


def audience_expr() -> pl.Expr:
    """`audience` over the kind, estimated_amount and risk_tier columns."""
    kind = pl.col("kind")
    return (
        pl.when(kind == "unclaimed").then(
            pl.when(pl.col("estimated_amount") > 0).then(pl.lit("letter")).otherwise(pl.lit("none")))
        .when(kind == "improper").then(
            pl.when(pl.col("risk_tier") == "low").then(pl.lit("reminder")).otherwise(pl.lit("case")))
        .when(kind == "undetermined").then(pl.lit("verification"))
        .otherwise(pl.lit("none"))
    )



def taxpayer_facing(frame: pl.DataFrame) -> pl.Series:
    """`is_taxpayer_facing` for every row of `frame`, column-wise (kind, estimated_amount, risk_tier).

    Amounts other than Decimal or integer (floats, text in a findings file written by hand) are judged
    row by row, as `is_taxpayer_facing` reads them.
    """
    amount = frame.schema.get("estimated_amount")
    if amount is None or not (amount.is_decimal() or amount.is_integer()):
        return pl.Series("facing", [is_taxpayer_facing(r) for r in frame.select(
            "kind", "estimated_amount", "risk_tier").iter_rows(named=True)], dtype=pl.Boolean)
    return frame.select(audience_expr().is_in(list(TAXPAYER_AUDIENCES)).alias("facing")).to_series()

# ---------------------------------------------------------------------------------- fingerprint


def evidence_key() -> pl.Expr:
    """The evidence as one canonical string: condition, verdict, value and threshold of each, sorted.

    Labels and reason wording are left out (rewording a rule is not new evidence); values, thresholds
    and verdicts are in (a changed figure or threshold is).
    """
    item = pl.element().struct
    return (
        pl.col("evidence")
        .list.eval(pl.concat_str([item.field(f).fill_null("") for f in ("condition", "status", "value", "threshold")],
                                 separator="\x1f"))
        .list.sort()
        .list.join("\x1e")
        .fill_null("")
    )


def fingerprint_text() -> pl.Expr:
    """What a finding says, canonically: kind, amounts and its evidence key."""
    return pl.concat_str(
        [pl.col("kind"), pl.col("estimated_amount").cast(pl.String).fill_null(""),
         pl.col("claimed_amount").cast(pl.String).fill_null(""), evidence_key()],
        separator="\x1d",
    )


def fingerprints(findings: pl.DataFrame) -> pl.Series:
    """The evidence fingerprint of each finding row (a hash of `fingerprint_text`)."""
    texts = findings.select(fingerprint_text().alias("t"))["t"].to_list()
    return pl.Series("fingerprint", [hashlib.sha256(t.encode()).hexdigest()[:32] for t in texts], dtype=pl.String)


def empty_findings() -> pl.DataFrame:
    """A findings frame with no rows and the canonical schema."""
    return pl.DataFrame(schema=FINDINGS_SCHEMA)
