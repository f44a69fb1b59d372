"""Regression tests for engine bugs found while writing the catalogue, each on a minimal catalogue."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl

from engine.batch import build_query
from engine.catalogue import load_catalogue
from engine.findings import OUTCOMES
from profiles.ids import make_credit_code
from profiles.periods import parse_period
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS

_TAIL = """\
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
risk:
  severity: high
claim:
  where: 电子税务局
"""

RULES = {
    # `small` qualifies on its figures; it may not be stacked with `rate`.
    "small.yaml": """\
id: small
name: 小企业
tax: 企业所得税
verification: verified
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise"
conditions:
  - id: employees
    label: 人数不超过300
    when: employees_qavg <= 300
excludes: [rate]
benefit:
  label: 金额
  formula: taxable_income * 0.2
""" + _TAIL,
    "rate.yaml": """\
id: rate
name: 低税率
tax: 企业所得税
verification: verified
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise"
benefit:
  label: 金额
  formula: taxable_income * 0.1
""" + _TAIL,
    # `fees` reads `small`'s status through eligible().
    "fees.yaml": """\
id: fees
name: 附加减半
tax: 附加税费
verification: verified
granularity: [year]
scope:
  label: 小企业
  when: eligible("small")
benefit:
  label: 金额
  formula: six_taxes_due * 0.5
""" + _TAIL,
    "cycle_vat.yaml": """\
id: cycle_vat
name: 按申报期
tax: 增值税
verification: verified
granularity: [quarter, month]
scope:
  label: 按申报期
  when: vat_filing_cycle == period_kind()
benefit:
  label: 金额
  formula: sales * 0.01
""" + _TAIL,
}


def _plan(tmp_path: Path, period: str, taxpayers: list[dict], indicators: list[dict], claims: list[dict]):  # type: ignore[no-untyped-def]
    root = tmp_path / "rules"
    root.mkdir(exist_ok=True)
    for name, text in RULES.items():
        (root / name).write_text(text, encoding="utf-8")
    return build_query(
        load_catalogue(root), parse_period(period), outcomes=OUTCOMES,
        taxpayers=pl.DataFrame(taxpayers, schema=TAXPAYERS.polars_schema),
        indicators=pl.DataFrame([{**i, "period": period} for i in indicators], schema=INDICATORS.polars_schema),
        claims=pl.DataFrame([{**c, "period": period} for c in claims], schema=CLAIMS.polars_schema),
        risk_events=pl.DataFrame(schema=RISK_EVENTS_TABLE.polars_schema),
    )


TID = make_credit_code(org_body="00000001")
TAXPAYER = {"taxpayer_id": TID, "name": "测试", "entity_type": "enterprise", "tax_authority": "13301060000",
            "vat_filing_cycle": "quarter"}


def test_eligible_reads_the_other_rules_qualification_not_its_stacking_verdict(tmp_path: Path) -> None:
    """A small enterprise that chose the low rate is no longer eligible for `small`, yet still small for `fees`."""
    plan = _plan(tmp_path, "2025", [TAXPAYER],
                 [{"taxpayer_id": TID, "employees_qavg": 30, "taxable_income": Decimal(100), "six_taxes_due": 10}],
                 [{"taxpayer_id": TID, "incentive": "rate"}, {"taxpayer_id": TID, "incentive": "fees"}])
    row = plan.wide.collect().row(0, named=True)
    assert row["small__eligible"] is False  # not stacked with `rate`
    assert row["small__qualifies"] is True
    assert row["fees__outcome"] == "compliant"


def test_a_claim_without_an_amount_has_an_unknown_amount_not_zero(tmp_path: Path) -> None:
    """An improper claim with an empty amount is valued at the estimated benefit (sum() of nulls was 0)."""
    plan = _plan(tmp_path, "2025", [TAXPAYER],
                 [{"taxpayer_id": TID, "employees_qavg": 301, "taxable_income": Decimal(1000)}],
                 [{"taxpayer_id": TID, "incentive": "small", "amount": None}])
    found = plan.findings.filter(pl.col("rule_id") == "small").collect().row(0, named=True)
    assert found["kind"] == "improper"
    assert found["claimed_amount"] is None
    assert found["estimated_amount"] == Decimal("200.00")


def test_the_filing_cycle_reason_names_the_period_kind(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "2025-05", [TAXPAYER], [{"taxpayer_id": TID, "sales": Decimal(100)}],
                 [{"taxpayer_id": TID, "incentive": "cycle_vat"}])
    found = plan.findings.filter(pl.col("rule_id") == "cycle_vat").collect().row(0, named=True)
    assert found["kind"] == "improper"
    assert found["evidence"][0]["reason"] == "增值税申报期为按季申报，不属于按月申报"
