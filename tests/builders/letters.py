"""Findings rows for letter tests, built to FINDINGS_SCHEMA exactly (tests/test_letters_findings.py holds
them to it).

The builders write evidence the way the engine does (engine/batch.py `_evidence`): one struct per
condition with status, the taxpayer's value, the threshold and the Chinese reason. Rule names, basis
and versions come from the letters' rule-catalogue snapshot (tests/golden/letters/rules), so that the
golden letters change only when the templates, the letter code or that snapshot change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from engine.catalogue import Catalogue, load_catalogue
from engine.findings import FINDINGS_SCHEMA, KIND_LABELS

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "letters"
RULES = GOLDEN / "rules"
AS_OF = date(2026, 11, 27)

# Valid 统一社会信用代码 (GB 32100 and GB 11714 check characters), one per test taxpayer.
ID_ONE = "91330106MA2B3C4D11"  # 西湖区
ID_FIVE = "91330108MA27XK9Q17"  # 滨江区
ID_REMINDER = "91330110MA2H5R1T00"  # 余杭区
ID_OPT_OUT = "91330105MA2CGW3EXF"  # 拱墅区
ID_UNDETERMINED = "92330122MA28LL7P9W"  # 桐庐县, individual business
ID_SMS = "91330109MA2J0TQ10E"  # 萧山区


@cache
def catalogue() -> Catalogue:
    return load_catalogue(RULES)


def taxpayer(taxpayer_id: str, name: str, *, district: str, tax_authority: str, entity_type: str = "enterprise",
             preferred_channel: str | None = "etax", opt_out: bool | None = False, phone: str | None = "13805710000",
             email: str | None = "caiwu@example.cn") -> dict[str, Any]:
    """The taxpayer-context columns of a findings row."""
    return {
        "taxpayer_id": taxpayer_id, "taxpayer_name": name, "entity_type": entity_type, "district": district,
        "tax_authority": tax_authority, "preferred_channel": preferred_channel, "opt_out": opt_out,
        "phone": phone, "email": email,
    }


# --------------------------------------------------------------------------------------- evidence

def scope(label: str = "企业所得税纳税人（企业）", entity: str = "企业", status: str = "pass") -> dict[str, str]:
    verb = "属于" if status == "pass" else "不属于"
    return {"condition": "scope", "label": label, "status": status, "value": entity, "threshold": "企业",
            "reason": f"纳税人类型为{entity}，{verb}企业"}


def compare(condition: str, label: str, subject: str, value: str, unit: str, threshold: str, *,
            status: str = "pass", op: str = "<=", bound: bool = True) -> dict[str, str]:
    """A `subject op threshold` condition, with the engine's verbs (engine/evidence.py _VERBS_NUMBER)."""
    verbs = {"<=": ("未超过", "超过", "上限"), ">": ("超过", "未超过", "下限"), ">=": ("达到", "低于", "下限")}
    pass_verb, fail_verb, bound_text = verbs[op]
    verb = pass_verb if status == "pass" else fail_verb
    u = f" {unit}" if unit else ""
    return {"condition": condition, "label": label, "status": status, "value": value, "threshold": threshold,
            "reason": f"{subject} {value}{u}，{verb} {threshold}{u}{bound_text if bound else ''}"}


def generic(condition: str, label: str, detail: str = "", status: str = "pass") -> dict[str, str]:
    verdict = "满足" if status == "pass" else "不满足"
    return {"condition": condition, "label": label, "status": status, "value": detail, "threshold": "",
            "reason": f"{label}：{verdict}" + (f"（{detail}）" if detail else "")}


def unknown(condition: str, label: str, missing: str) -> dict[str, str]:
    return {"condition": condition, "label": label, "status": "unknown", "value": "", "threshold": "",
            "reason": f"{label}：缺少{missing}，无法判断"}


# ---------------------------------------------------------------------------------------- findings

_DECIDING = {"unclaimed": "pass", "improper": "fail", "undetermined": "unknown"}


def finding(context: dict[str, Any], rule_id: str, kind: str, evidence: Iterable[dict[str, str]], *,
            period: str = "2025", amount: str | None = None, claimed: str | None = None,
            risk_tier: str | None = None) -> dict[str, Any]:
    """One findings row (FINDINGS_SCHEMA) for a rule of the snapshot catalogue."""
    rule = catalogue().rules[rule_id]
    items = list(evidence)
    deciding = _DECIDING[kind]
    return {
        "taxpayer_id": context["taxpayer_id"],
        "period": period,
        "rule_id": rule_id,
        "rule_name": rule.name,
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "estimated_amount": Decimal(amount) if amount is not None else None,
        "claimed_amount": Decimal(claimed) if claimed is not None else None,
        "risk_tier": risk_tier,
        "reasons": "；".join(e["reason"] for e in items if e["status"] == deciding),
        "evidence": items,
        "basis": rule.basis_text,
        "rule_version": rule.version,
        "ruleset_version": catalogue().version,
        **{k: v for k, v in context.items() if k != "taxpayer_id"},
    }


def frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Rows as a findings frame with exactly the canonical schema."""
    return pl.DataFrame(list(rows), schema=FINDINGS_SCHEMA, orient="row")


def write_findings(rows: Iterable[dict[str, Any]], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame(rows).write_parquet(folder / "findings.parquet")
    return folder


# ------------------------------------------------------------------------------ the test taxpayers

def one_incentive() -> list[dict[str, Any]]:
    """A small low-profit enterprise that did not claim the CIT relief."""
    ctx = taxpayer(ID_ONE, "杭州云栖数据服务有限公司", district="西湖区", tax_authority="13301060000")
    return [finding(ctx, "small_low_profit_cit", "unclaimed", [
        scope(),
        generic("not_restricted", "从事国家非限制和禁止行业", "国家限制和禁止行业 否"),
        compare("taxable_income", "年度应纳税所得额不超过300万元", "应纳税所得额", "1860000.00", "元", "3000000.00"),
        compare("employees", "从业人数不超过300人", "从业人数", "86", "人", "300"),
        compare("assets", "资产总额不超过5000万元", "资产总额", "23456789.50", "元", "50000000.00"),
        generic("not_stacked_hnte_15pct", "未同时享受「高新技术企业减按15%税率征收企业所得税」（不得叠加）"),
    ], amount="372000.00")]


def five_incentives() -> list[dict[str, Any]]:
    """An enterprise missing five reliefs in 2025 (and one quarter-period row it is not told about)."""
    ctx = taxpayer(ID_FIVE, "杭州星河智能科技有限公司", district="滨江区", tax_authority="13301080000",
                   preferred_channel="email", email="finance@xinghe-ai.example.cn")
    return [
        finding(ctx, "disability_fund_relief", "unclaimed", [
            scope(label="用人单位（企业）"),
            compare("employees", "在职职工总数30人（含）以下", "在职职工人数", "25", "人", "30"),
        ], amount="15000.00"),
        finding(ctx, "equipment_one_off_deduction", "unclaimed", [
            scope(),
            compare("equipment_cost", "当年新购进设备、器具", "新购进设备器具购置额", "1200000.00", "元", "0.00",
                    op=">", bound=False),
            compare("unit_cap", "单位价值不超过500万元", "新购进设备器具最高单位价值", "400000.00", "元", "5000000.00"),
        ], amount="240000.00"),
        finding(ctx, "rd_super_deduction", "unclaimed", [
            scope(),
            compare("rd_expense", "有研发费用", "研发费用", "900000.00", "元", "0.00", op=">", bound=False),
            generic("not_negative_list", "不属于烟草制造、住宿餐饮、批发零售、房地产、租赁和商务服务、娱乐业",
                    "行业代码 I6513"),
        ], amount="225000.00"),
        finding(ctx, "small_low_profit_cit", "unclaimed", [
            scope(),
            generic("not_restricted", "从事国家非限制和禁止行业", "国家限制和禁止行业 否"),
            compare("taxable_income", "年度应纳税所得额不超过300万元", "应纳税所得额", "1860000.00", "元",
                    "3000000.00"),
            compare("employees", "从业人数不超过300人", "从业人数", "120", "人", "300"),
            compare("assets", "资产总额不超过5000万元", "资产总额", "32000000.00", "元", "50000000.00"),
            generic("not_stacked_hnte_15pct", "未同时享受「高新技术企业减按15%税率征收企业所得税」（不得叠加）"),
        ], amount="372000.00"),
        finding(ctx, "six_taxes_two_fees_half", "unclaimed", [
            generic("scope", "小规模纳税人、小型微利企业或个体工商户", "增值税纳税人身份 一般纳税人；纳税人类型 企业"),
            compare("six_taxes_due", "有“六税两费”应纳税额", "六税两费应纳税额", "48000.00", "元", "0.00",
                    op=">", bound=False),
        ], amount="24000.00"),
    ]


def low_risk_reminder() -> list[dict[str, Any]]:
    """One unclaimed relief, one low-risk improper claim (told), one medium and one undetermined (not told)."""
    ctx = taxpayer(ID_REMINDER, "杭州钱塘精工机械有限公司", district="余杭区", tax_authority="13301100000")
    return [
        finding(ctx, "rd_super_deduction", "unclaimed", [
            scope(),
            compare("rd_expense", "有研发费用", "研发费用", "46321.18", "元", "0.00", op=">", bound=False),
            generic("not_negative_list", "不属于烟草制造、住宿餐饮、批发零售、房地产、租赁和商务服务、娱乐业",
                    "行业代码 C3411"),
        ], amount="11580.30"),
        finding(ctx, "disability_fund_relief", "improper", [
            scope(label="用人单位（企业）"),
            compare("employees", "在职职工总数30人（含）以下", "在职职工人数", "45", "人", "30", status="fail"),
        ], amount="8600.00", claimed="8600.00", risk_tier="low"),
        finding(ctx, "equipment_one_off_deduction", "improper", [
            scope(),
            compare("equipment_cost", "当年新购进设备、器具", "新购进设备器具购置额", "6800000.00", "元", "0.00",
                    op=">", bound=False),
            compare("unit_cap", "单位价值不超过500万元", "新购进设备器具最高单位价值", "6800000.00", "元",
                    "5000000.00", status="fail"),
        ], amount="1360000.00", claimed="1360000.00", risk_tier="medium"),
        finding(ctx, "small_low_profit_cit", "undetermined", [
            scope(),
            generic("not_restricted", "从事国家非限制和禁止行业", "国家限制和禁止行业 否"),
            compare("taxable_income", "年度应纳税所得额不超过300万元", "应纳税所得额", "980000.00", "元", "3000000.00"),
            unknown("employees", "从业人数不超过300人", "从业人数"),
            compare("assets", "资产总额不超过5000万元", "资产总额", "18000000.00", "元", "50000000.00"),
        ], amount="196000.00"),
    ]


def opted_out() -> list[dict[str, Any]]:
    """A taxpayer who declined policy pushes: an unclaimed relief, and still no letter."""
    ctx = taxpayer(ID_OPT_OUT, "杭州拱宸桥茶业有限公司", district="拱墅区", tax_authority="13301050000", opt_out=True)
    return [finding(ctx, "disability_fund_relief", "unclaimed", [
        scope(label="用人单位（企业）"),
        compare("employees", "在职职工总数30人（含）以下", "在职职工人数", "12", "人", "30"),
    ], amount="5200.00")]


def only_undetermined() -> list[dict[str, Any]]:
    """An individual business whose figures are missing: only undetermined findings, so no letter."""
    ctx = taxpayer(ID_UNDETERMINED, "桐庐县富春江畔农家乐", district="桐庐县", tax_authority="13301220000",
                   entity_type="individual_business", preferred_channel="sms")
    return [finding(ctx, "six_taxes_two_fees_half", "undetermined", [
        generic("scope", "小规模纳税人、小型微利企业或个体工商户", "纳税人类型 个体工商户"),
        unknown("six_taxes_due", "有“六税两费”应纳税额", "六税两费应纳税额"),
    ])]


def sms_taxpayer(name: str = "杭州萧山湘湖文化旅游发展有限公司") -> list[dict[str, Any]]:
    """A small-scale quarterly filer who prefers SMS."""
    ctx = taxpayer(ID_SMS, name, district="萧山区", tax_authority="13301090000", preferred_channel="sms",
                   phone="13905712345")
    return [finding(ctx, "small_scale_vat_exemption", "unclaimed", [
        {"condition": "scope", "label": "按季申报的小规模纳税人", "status": "pass", "value": "小规模纳税人",
         "threshold": "小规模纳税人", "reason": "增值税纳税人身份为小规模纳税人，属于小规模纳税人"},
        compare("sales", "季度销售额不超过30万元", "销售额", "286400.00", "元", "300000.00"),
    ], period="2025Q3", amount="2864.00")]


ALL_CASES = {
    "one_incentive": one_incentive,
    "five_incentives": five_incentives,
    "low_risk_reminder": low_risk_reminder,
    "opt_out": opted_out,
    "only_undetermined": only_undetermined,
}


def all_rows() -> list[dict[str, Any]]:
    return [row for make in (*ALL_CASES.values(), sms_taxpayer) for row in make()]
