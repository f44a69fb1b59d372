"""A small builder of findings rows that follow engine.findings.FINDINGS_SCHEMA exactly.

The case-ledger, diff and task-list tests build their findings with `finding` and `findings_frame`;
tests/test_cases_builder.py holds the builder to the schema, so a change of the findings contract
shows up there first.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import polars as pl

from engine.findings import FINDINGS_SCHEMA, KIND_LABELS

RULE_NAMES = {
    "small_low_profit_cit": "小型微利企业所得税优惠",
    "hnte_15pct": "高新技术企业减按15%税率征收企业所得税",
    "rd_super_deduction": "研发费用加计扣除",
}


def evidence_item(condition: str, status: str, value: str = "", threshold: str = "", *, label: str = "",
                  reason: str = "") -> dict[str, str]:
    """One condition verdict, as the engine writes it."""
    return {"condition": condition, "label": label or condition, "status": status, "value": value,
            "threshold": threshold, "reason": reason or f"{label or condition} {value}"}


def finding(
    taxpayer_id: str = "91330106MA2B3C4D5E",
    *,
    rule_id: str = "small_low_profit_cit",
    period: str = "2025",
    kind: str = "improper",
    tier: str | None = "high",
    amount: str | None = "125000.00",
    claimed: str | None = "125000.00",
    employees: int = 301,
    authority: str = "13301060000",
    district: str = "西湖区",
    name: str = "杭州示例科技有限公司",
    evidence: list[dict[str, str]] | None = None,
    reasons: str | None = None,
) -> dict[str, Any]:
    """A findings row; the evidence depends on `employees`, so a changed figure changes the evidence."""
    if evidence is None:
        status = "unknown" if kind == "undetermined" else ("fail" if employees > 300 else "pass")
        value = "" if kind == "undetermined" else f"{employees} 人"
        reason = ("从业人数缺失，无法判断" if kind == "undetermined"
                  else f"从业人数 {employees} 人，超过 300 人上限" if status == "fail" else f"从业人数 {employees} 人")
        evidence = [
            evidence_item("scope", "pass", "企业", "企业", label="适用范围", reason="纳税人为企业"),
            evidence_item("employees", status, value, "300 人", label="从业人数", reason=reason),
        ]
    if reasons is None:
        deciding = {"improper": "fail", "undetermined": "unknown", "unclaimed": "pass"}[kind]
        reasons = "；".join(e["reason"] for e in evidence if e["status"] == deciding)
    return {
        "taxpayer_id": taxpayer_id,
        "period": period,
        "rule_id": rule_id,
        "rule_name": RULE_NAMES.get(rule_id, rule_id),
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "estimated_amount": None if amount is None else Decimal(amount),
        "claimed_amount": None if claimed is None else Decimal(claimed),
        "risk_tier": tier if kind == "improper" else None,
        "reasons": reasons,
        "evidence": evidence,
        "basis": "财政部 税务总局公告2023年第12号 第三条",
        "rule_version": "0123456789ab",
        "ruleset_version": "ba9876543210",
        "taxpayer_name": name,
        "entity_type": "enterprise",
        "district": district,
        "tax_authority": authority,
        "preferred_channel": "etax",
        "opt_out": False,
        "phone": "0571-88886666",
        "email": "caiwu@example.cn",
    }


def findings_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows in the canonical findings schema (an empty list gives an empty, typed frame)."""
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA)
