"""Planted cases: hand-written taxpayers at exact thresholds, with the outcome each must get.

Each case is one taxpayer (id `9?3301..MA2Y####.`, a range the random generator never uses) with
only the figures its rule needs, defaults chosen so that its other rules come out compliant or not
applicable. `planted_tables()` returns the rows to add to the generated tables and the expectations
written to planted.csv (taxpayer_id, period, rule_id, expected_kind, note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl

from profiles.authorities import DISTRICTS_BY_REGION
from profiles.ids import make_credit_code
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS

PLANTED_SCHEMA: dict[str, pl.DataType] = {
    "taxpayer_id": pl.String(),
    "period": pl.String(),
    "rule_id": pl.String(),
    "expected_kind": pl.String(),
    "note": pl.String(),
}


@dataclass
class Case:
    """One planted taxpayer and what must be found for it."""

    number: int
    name: str
    expect: list[tuple[str, str, str, str]]  # (period, rule_id, expected_kind, note)
    taxpayer: dict[str, Any] = field(default_factory=dict)
    year: dict[str, Any] | None = field(default_factory=dict)  # 2025 row overrides; None = no row
    vat: dict[str, dict[str, Any]] = field(default_factory=dict)  # period -> row
    claims: list[tuple[str, str, str | None]] = field(default_factory=list)  # (period, incentive, amount)
    events: list[tuple[str, str]] = field(default_factory=list)  # (event, YYYY-MM-DD)
    individual: bool = False
    region: str = "330106"

    @property
    def taxpayer_id(self) -> str:
        return make_credit_code(
            self.region, f"MA2Y{self.number:04d}", category="2" if self.individual else "1"
        )


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _m(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


# Defaults: a general-taxpayer software firm, small low-profit, claiming what it is due for 2025.
ENTERPRISE = {
    "entity_type": "enterprise",
    "vat_status": "general",
    "vat_filing_cycle": "month",
    "industry_code": "I6513",
    "restricted_industry": False,
    "credit_grade": "B",
    "registered_on": "2018-05-10",
    "preferred_channel": "etax",
    "opt_out": False,
    "software_copyright": False,
    "key_group_owner": False,
}
INDIVIDUAL = {
    "entity_type": "individual_business",
    "vat_status": "small_scale",
    "vat_filing_cycle": "quarter",
    "industry_code": "F5213",
    "restricted_industry": False,
    "credit_grade": None,
    "registered_on": "2019-03-01",
    "preferred_channel": "sms",
    "opt_out": False,
    "software_copyright": None,
    "key_group_owner": False,
}
YEAR = {
    "sales": "8000000.00",
    "taxable_income": "1000000.00",
    "employees_qavg": 50.0,
    "assets_qavg": "20000000.00",
    "employees": 50,
    "disabled_employees": 1,
    "rd_expense": "0.00",
    "six_taxes_due": "30000.00",
    "disability_fund_due": "0.00",
    # 小型微利 by the last 汇算清缴, for 六税两费 of a general taxpayer (国家税务总局公告2022年第3号 一)
    "slp_settled_h1": True,
    "slp_settled_h2": True,
}
YEAR_INDIVIDUAL = {
    "sales": "600000.00",
    "taxable_income": "90000.00",
    "employees_qavg": 3.0,
    "assets_qavg": "200000.00",
    "employees": 3,
    "disabled_employees": 0,
    "six_taxes_due": "1800.00",
}
SLP = ("2025", "small_low_profit_cit", "200000.00")


def _manufacturer_credit(credit: str) -> dict[str, Any]:
    """A manufacturer's VAT month with the same incremental and period-end credit (进项构成比例 100%)."""
    return {"sales": "900000.00", "incremental_credit": credit, "period_end_credit": credit,
            "input_composition_ratio": 1.0}
SIX = ("2025", "six_taxes_two_fees_half", "15000.00")


def _cases() -> list[Case]:
    y = "2025"
    slp, six = "small_low_profit_cit", "six_taxes_two_fees_half"
    return [
        # 小型微利: 从业人数 300 / 301
        Case(
            1,
            "杭州临界三百科技有限公司",
            [(y, slp, "compliant", "从业人数恰为300人（含本数），享受小型微利合规")],
            year={"employees_qavg": 300.0, "employees": 300},
            claims=[SLP, SIX],
        ),
        Case(
            2,
            "杭州超员科技有限公司",
            [
                (y, slp, "improper", "从业人数301人，超过300人仍享受小型微利"),
                (y, six, "improper", "一般纳税人，汇算清缴确定不是小型微利企业，却享受六税两费减半"),
            ],
            year={"employees_qavg": 301.0, "employees": 301, "slp_settled_h1": False, "slp_settled_h2": False},
            claims=[SLP, SIX],
        ),
        Case(
            3,
            "杭州漏享微利科技有限公司",
            [(y, slp, "unclaimed",
              "从业人数恰为300人，符合条件但未享受小型微利")],
            year={"employees_qavg": 300.0, "employees": 300},
            claims=[SIX],
        ),
        # 应纳税所得额 3,000,000.00 / 3,000,000.01
        Case(
            4,
            "杭州三百万整科技有限公司",
            [(y, slp, "compliant", "应纳税所得额恰为300万元（含本数）")],
            year={"taxable_income": "3000000.00"},
            claims=[SLP, SIX],
        ),
        Case(
            5,
            "杭州多一分科技有限公司",
            [(y, slp, "improper",
              "应纳税所得额3,000,000.01元，超过300万元一分钱")],
            year={"taxable_income": "3000000.01"},
            claims=[SLP],
        ),
        Case(
            6,
            "杭州未报微利科技有限公司",
            [(y, slp, "unclaimed",
              "应纳税所得额恰为300万元，可减免60万元但未享受")],
            year={"taxable_income": "3000000.00"},
            claims=[SIX],
        ),
        # 资产总额 50,000,000 / 50,000,000.01
        Case(
            7,
            "杭州五千万资产科技有限公司",
            [(y, slp, "unclaimed",
              "资产总额恰为5000万元（含本数），未享受小型微利")],
            year={"assets_qavg": "50000000.00"},
            claims=[SIX],
        ),
        Case(
            8,
            "杭州资产超限科技有限公司",
            [(y, slp, "improper",
              "资产总额50,000,000.01元，超过5000万元")],
            year={"assets_qavg": "50000000.01"},
            claims=[SLP],
        ),
        # 缺少从业人数: 待核实, never improper or unclaimed
        Case(
            9,
            "杭州缺数申报科技有限公司",
            [(y, slp, "undetermined", "缺少从业人数，已享受小型微利：待核实，不判违规")],
            year={"employees_qavg": None},
            claims=[SLP],
        ),
        Case(
            10,
            "杭州缺数未报科技有限公司",
            [(y, slp, "undetermined", "缺少从业人数，未享受小型微利：待核实，不判应享未享")],
            year={"employees_qavg": None},
            claims=[],
        ),
        Case(
            11,
            "杭州限制行业实业有限公司",
            [(y, slp, "improper",
              "从事国家限制和禁止行业仍享受小型微利")],
            taxpayer={"restricted_industry": True, "industry_code": "C3484"},
            claims=[SLP],
        ),
        # 小规模纳税人增值税免征: 季度 300,000 / 300,000.01，月度 100,000 / 100,000.01
        Case(
            12,
            "杭州季度临界商贸有限公司",
            [
                (
                    "2025Q3",
                    "small_scale_vat_exemption",
                    "unclaimed",
                    "按季申报，季度销售额恰为30万元（含本数）未享受免征",
                )
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "quarter", "industry_code": "L7251"},
            vat={"2025Q3": {"sales": "300000.00"}},
            claims=[SLP, SIX],
        ),
        Case(
            13,
            "杭州季度超额商贸有限公司",
            [
                (
                    "2025Q3",
                    "small_scale_vat_exemption",
                    "improper",
                    "季度销售额300,000.01元，超过30万元仍享受免征",
                )
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "quarter", "industry_code": "L7251"},
            vat={"2025Q3": {"sales": "300000.01"}},
            claims=[SLP, SIX, ("2025Q3", "small_scale_vat_exemption", "3000.00")],
        ),
        Case(
            14,
            "杭州月度临界商贸有限公司",
            [
                (
                    "2025-06",
                    "small_scale_vat_exemption",
                    "compliant",
                    "按月申报，月销售额恰为10万元（含本数）享受免征",
                )
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "month", "industry_code": "L7251"},
            vat={"2025-06": {"sales": "100000.00"}},
            claims=[SLP, SIX, ("2025-06", "small_scale_vat_exemption", "1000.00")],
        ),
        Case(
            15,
            "杭州月度超额商贸有限公司",
            [
                (
                    "2025-06",
                    "small_scale_vat_exemption",
                    "improper",
                    "月销售额100,000.01元，超过10万元仍享受免征",
                )
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "month", "industry_code": "L7251"},
            vat={"2025-06": {"sales": "100000.01"}},
            claims=[SLP, SIX, ("2025-06", "small_scale_vat_exemption", "1000.00")],
        ),
        Case(
            16,
            "杭州月度漏享商贸有限公司",
            [("2025-06", "small_scale_vat_exemption", "unclaimed",
              "月销售额恰为10万元，未享受免征")],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "month", "industry_code": "L7251"},
            vat={"2025-06": {"sales": "100000.00"}},
            claims=[SLP, SIX],
        ),
        # 高新技术企业 15%
        Case(
            17,
            "杭州证书过期科技有限公司",
            [(y, "hnte_15pct", "improper",
              "高新技术企业证书已于2024-12-15到期，2025年度仍按15%享受")],
            taxpayer={"hnte_cert_issued_on": "2021-12-16", "hnte_cert_valid_until": "2024-12-15"},
            year={"taxable_income": "5000000.00"},
            claims=[("2025", "hnte_15pct", "500000.00")],
        ),
        Case(
            18,
            "杭州高新漏享科技有限公司",
            [(y, "hnte_15pct", "unclaimed",
              "高新技术企业证书有效至2026-12-07，2025年度未享受15%税率")],
            taxpayer={"hnte_cert_issued_on": "2023-12-08", "hnte_cert_valid_until": "2026-12-07"},
            year={"taxable_income": "5000000.00"},
            claims=[],
        ),
        Case(
            19,
            "杭州高新合规科技有限公司",
            [(y, "hnte_15pct", "compliant", "高新技术企业证书有效，享受15%税率合规")],
            taxpayer={"hnte_cert_issued_on": "2023-12-08", "hnte_cert_valid_until": "2026-12-07"},
            year={"taxable_income": "5000000.00"},
            claims=[("2025", "hnte_15pct", "500000.00")],
        ),
        # 留抵退税
        Case(
            20,
            "杭州信用M级制造有限公司",
            [("2025-09", "vat_credit_refund", "improper",
              "纳税信用等级为M级，仍申请留抵退税")],
            taxpayer={"credit_grade": "M", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-09": _manufacturer_credit("200000.00")},
            claims=[("2025-09", "vat_credit_refund", "120000.00")],
        ),
        Case(
            21,
            "杭州骗退未满制造有限公司",
            [
                (
                    "2025-12",
                    "vat_credit_refund",
                    "improper",
                    "所属期末前35个月（2023-01-31）有骗取留抵退税记录",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-12": _manufacturer_credit("150000.00")},
            claims=[("2025-12", "vat_credit_refund", "90000.00")],
            events=[("refund_fraud", "2023-01-31")],
        ),
        Case(
            22,
            "杭州骗退已满制造有限公司",
            [
                (
                    "2025-12",
                    "vat_credit_refund",
                    "compliant",
                    "骗取留抵退税记录在期末前37个月（2022-11-30），已出36个月",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-12": _manufacturer_credit("150000.00")},
            claims=[("2025-12", "vat_credit_refund", "90000.00")],
            events=[("refund_fraud", "2022-11-30")],
        ),
        Case(
            23,
            "杭州即退早前制造有限公司",
            [
                (
                    "2025-12",
                    "vat_credit_refund",
                    "unclaimed",
                    "即征即退在2019-03-31（2019-04-01之前），可申请留抵退税但未申请",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-12": _manufacturer_credit("120000.00")},
            events=[("instant_refund", "2019-03-31")],
        ),
        Case(
            24,
            "杭州即退当日制造有限公司",
            [("2025-12", "vat_credit_refund", "improper",
              "2019-04-01享受过即征即退，仍申请留抵退税")],
            taxpayer={"credit_grade": "B", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-12": _manufacturer_credit("120000.00")},
            claims=[("2025-12", "vat_credit_refund", "72000.00")],
            events=[("instant_refund", "2019-04-01")],
        ),
        Case(
            25,
            "杭州两次偷税制造有限公司",
            [("2025-12", "vat_credit_refund", "improper",
              "36个月内两次因偷税受处罚，仍申请留抵退税")],
            taxpayer={"credit_grade": "A", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-12": _manufacturer_credit("100000.00")},
            claims=[("2025-12", "vat_credit_refund", "60000.00")],
            events=[("tax_evasion_penalty", "2024-03-15"), ("tax_evasion_penalty", "2025-05-20")],
        ),
        Case(
            26,
            "杭州一次偷税制造有限公司",
            [
                (
                    "2025-12",
                    "vat_credit_refund",
                    "compliant",
                    "36个月内一次因偷税受处罚（少于两次），申请留抵退税合规",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-12": _manufacturer_credit("100000.00")},
            claims=[("2025-12", "vat_credit_refund", "60000.00")],
            events=[("tax_evasion_penalty", "2024-03-15")],
        ),
        # 已到期政策
        Case(
            27,
            "杭州加计抵减咨询有限公司",
            [
                (
                    "2025Q1",
                    "service_vat_credit_plus",
                    "improper",
                    "生产、生活性服务业加计抵减已于2023-12-31到期，2025Q1仍申报",
                )
            ],
            taxpayer={"vat_filing_cycle": "quarter", "industry_code": "L7212"},
            year={"taxable_income": "5000000.00"},
            vat={
                "2025Q1": {
                    "sales": "2000000.00",
                    "creditable_input_vat": "150000.00",
                    "incremental_credit": "0",
                }
            },
            claims=[("2025Q1", "service_vat_credit_plus", "7500.00")],
        ),
        # 研发费用加计扣除
        Case(
            28,
            "杭州百货研发商贸有限公司",
            [
                (
                    y,
                    "rd_super_deduction",
                    "improper",
                    "行业F5211（批发和零售业）属负面清单，不得享受研发费用加计扣除",
                )
            ],
            taxpayer={"industry_code": "F5211"},
            year={"taxable_income": "5000000.00", "rd_expense": "500000.00"},
            claims=[("2025", "rd_super_deduction", "125000.00")],
        ),
        Case(
            29,
            "杭州研发漏享机械有限公司",
            [(y, "rd_super_deduction", "unclaimed",
              "制造业企业研发费用80万元，未享受加计扣除")],
            taxpayer={"industry_code": "C3484"},
            year={"taxable_income": "5000000.00", "rd_expense": "800000.00"},
        ),
        # 个体工商户个税减半
        Case(
            30,
            "西湖区漏享便利店",
            [(y, "individual_business_iit_half", "unclaimed",
              "个体工商户经营所得18万元，未享受个税减半")],
            individual=True,
            year={"taxable_income": "180000.00"},
            claims=[SIX],
        ),
        Case(
            31,
            "西湖区亏损便利店",
            [(y, "individual_business_iit_half", "not_applicable", "经营所得为负（亏损），不适用个税减半")],
            individual=True,
            year={"taxable_income": "-20000.00"},
            claims=[SIX],
        ),
        Case(
            32,
            "西湖区缺数便利店",
            [(y, "individual_business_iit_half", "undetermined", "缺少经营所得，待核实")],
            individual=True,
            year={"taxable_income": None},
            claims=[SIX],
        ),
        # 残疾人就业保障金 30 人以下免征
        Case(
            33,
            "杭州三十人科技有限公司",
            [(y, "disability_fund_relief", "unclaimed",
              "在职职工恰为30人（含本数），应免征残保金但未享受")],
            year={
                "employees": 30,
                "employees_qavg": 30.0,
                "disabled_employees": 0,
                "disability_fund_due": "52000.00",
            },
            claims=[SLP, SIX],
        ),
        Case(
            34,
            "杭州三十一人科技有限公司",
            [(y, "disability_fund_relief", "improper",
              "在职职工31人，超过30人仍享受残保金免征")],
            year={
                "employees": 31,
                "employees_qavg": 31.0,
                "disabled_employees": 0,
                "disability_fund_due": "53000.00",
            },
            claims=[SLP, SIX, ("2025", "disability_fund_relief", "53000.00")],
        ),
        # 设备器具一次性扣除 500 万元
        Case(
            35,
            "杭州设备临界机械有限公司",
            [
                (
                    y,
                    "equipment_one_off_deduction",
                    "unclaimed",
                    "单位价值恰为500万元（含本数）的设备，未一次性扣除",
                )
            ],
            taxpayer={"industry_code": "C3484"},
            year={"equipment_cost": "5000000.00", "equipment_max_unit_cost": "5000000.00"},
            claims=[SLP, SIX],
        ),
        Case(
            36,
            "杭州设备超限机械有限公司",
            [
                (
                    y,
                    "equipment_one_off_deduction",
                    "improper",
                    "设备单位价值5,000,000.01元，超过500万元仍一次性扣除",
                )
            ],
            taxpayer={"industry_code": "C3484"},
            year={"equipment_cost": "5000000.01", "equipment_max_unit_cost": "5000000.01"},
            claims=[SLP, SIX, ("2025", "equipment_one_off_deduction", "1125000.00")],
        ),
        # 六税两费: 小规模纳税人未享受
        Case(
            37,
            "杭州小规模漏享贸易有限公司",
            [(y, six, "unclaimed",
              "小规模纳税人，六税两费应纳8000元，未享受减半")],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "quarter", "industry_code": "F5179"},
            year={"six_taxes_due": "8000.00"},
            claims=[SLP],
        ),
        # 小规模纳税人：免税与减按1%同期并存；2026年起不动产租售不适用1%（问题单11）
        Case(
            61,
            "杭州部分专票商贸有限公司",
            [
                ("2025Q3", "small_scale_vat_exemption", "compliant",
                 "部分销售额放弃免税开具专票按1%纳税，其余免税，两项并存合规"),
                ("2025Q3", "small_scale_vat_1pct", "compliant", "就开具专票的部分销售额按1%纳税，与免税并存合规"),
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "quarter", "industry_code": "F5213"},
            vat={"2025Q3": {"sales": "200000.00", "real_estate_sales": "0.00"}},
            claims=[SLP, SIX, ("2025Q3", "small_scale_vat_exemption", "1500.00"),
                    ("2025Q3", "small_scale_vat_1pct", "1000.00")],
        ),
        Case(
            62,
            "杭州商铺出租商贸有限公司",
            [
                (
                    "2026Q1",
                    "small_scale_vat_1pct",
                    "unclaimed",
                    "季度销售额50万元，其中出租不动产10万元不适用1%，其余40万元未减按1%（预计少缴8000元）",
                )
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "quarter", "industry_code": "F5213"},
            vat={"2026Q1": {"sales": "500000.00", "real_estate_sales": "100000.00"}},
            claims=[SLP, SIX],
        ),
        Case(
            63,
            "杭州租售不明商贸有限公司",
            [
                (
                    "2026Q1",
                    "small_scale_vat_1pct",
                    "undetermined",
                    "2026年起不动产租售不适用1%，缺少不动产租售销售额，无法判断",
                )
            ],
            taxpayer={"vat_status": "small_scale", "vat_filing_cycle": "quarter", "industry_code": "K7020"},
            vat={"2026Q1": {"sales": "500000.00"}},
            claims=[SLP, SIX],
        ),
        # 留抵退税：39号六个月与50万元、2025年第7号（问题单11、20）
        Case(
            64,
            "杭州连续六月咨询有限公司",
            [
                (
                    "2025-06",
                    "vat_credit_refund",
                    "unclaimed",
                    "一般行业连续6个月增量留抵大于零、第六个月50万元，未申请（预计500000 × 80% × 60% = 240000元）",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "L7212"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-06": {"sales": "900000.00", "incremental_credit": "500000.00", "period_end_credit": "500000.00",
                             "incremental_credit_positive_months": 6, "small_micro_enterprise": False,
                             "input_composition_ratio": 0.8}},
        ),
        Case(
            65,
            "杭州连续五月咨询有限公司",
            [("2025-06", "vat_credit_refund", "improper", "一般行业非小微企业，增量留抵只连续5个月大于零，仍申请退税")],
            taxpayer={"credit_grade": "A", "industry_code": "L7212"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-06": {"sales": "900000.00", "incremental_credit": "600000.00", "period_end_credit": "600000.00",
                             "incremental_credit_positive_months": 5, "small_micro_enterprise": False,
                             "input_composition_ratio": 0.8}},
            claims=[("2025-06", "vat_credit_refund", "288000.00")],
        ),
        Case(
            66,
            "杭州划型不明咨询有限公司",
            [
                (
                    "2025-06",
                    "vat_credit_refund",
                    "undetermined",
                    "一般行业只连续5个月，是否小微企业（可全额退还）不明，申请退税待核实",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "L7212"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-06": {"sales": "900000.00", "incremental_credit": "600000.00", "period_end_credit": "600000.00",
                             "incremental_credit_positive_months": 5, "input_composition_ratio": 0.8}},
            claims=[("2025-06", "vat_credit_refund", "288000.00")],
        ),
        Case(
            67,
            "杭州期末留抵制造有限公司",
            [
                (
                    "2025-09",
                    "vat_credit_refund",
                    "unclaimed",
                    "制造业2025年9月期末留抵1234567.89元 × 进项构成比例80%，未申请（预计987654.31元）",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "C3484"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-09": {"sales": "900000.00", "incremental_credit": "0.00", "period_end_credit": "1234567.89",
                             "input_composition_ratio": 0.8}},
        ),
        Case(
            68,
            "杭州新增不足咨询有限公司",
            [
                (
                    "2025-10",
                    "vat_credit_refund",
                    "improper",
                    "一般行业新增留抵税额499999.99元，低于50万元，仍申请退税",
                )
            ],
            taxpayer={"credit_grade": "A", "industry_code": "L7212"},
            year={"taxable_income": "5000000.00"},
            vat={"2025-10": {"sales": "900000.00", "incremental_credit": "499999.99", "period_end_credit": "800000.00",
                             "period_end_credit_positive_months": 6, "new_credit_vs_prior_year_end": "499999.99",
                             "input_composition_ratio": 1.0}},
            claims=[("2025-10", "vat_credit_refund", "299999.99")],
        ),
        *_cit_cases(),
    ]


def _cit_cases() -> list[Case]:
    """Issue 11 §1/§2 and issue 20 (个体工商户): item-by-item equipment, HNTE lapse, 六税两费 by 汇算清缴, owners."""
    y = "2025"
    eq, hnte, six, iit = (
        "equipment_one_off_deduction", "hnte_15pct", "six_taxes_two_fees_half", "individual_business_iit_half",
    )
    settled = {"slp_settled_h1": True, "slp_settled_h2": True}
    return [
        Case(
            300,
            "杭州逐台扣除机械有限公司",
            [(y, eq, "compliant", "一台设备600万元不能一次性扣除，其余300万元设备一次性扣除合规（逐项判断）")],
            taxpayer={"industry_code": "C3484"},
            year={"equipment_cost": "9000000.00", "equipment_max_unit_cost": "6000000.00",
                  "equipment_cost_eligible": "3000000.00", **settled},
            claims=[SLP, SIX, (y, eq, "50000.00")],
        ),
        Case(
            301,
            "杭州设备待核机械有限公司",
            [(y, eq, "undetermined", "有一台设备超过500万元，未报送500万元以下设备金额，待核实")],
            taxpayer={"industry_code": "C3484"},
            year={"equipment_cost": "9000000.00", "equipment_max_unit_cost": "6000000.00", **settled},
            claims=[SLP, SIX, (y, eq, "50000.00")],
        ),
        Case(
            302,
            "杭州高企待认定科技有限公司",
            [(y, hnte, "undetermined", "高新技术企业证书2025-06-29到期，重新认定结果不明，按15%享受待核实")],
            taxpayer={"hnte_cert_issued_on": "2022-06-30", "hnte_cert_valid_until": "2025-06-29"},
            year={"taxable_income": "5000000.00", **settled},
            claims=[SIX, (y, hnte, "500000.00")],
        ),
        Case(
            303,
            "杭州高企未续科技有限公司",
            [(y, hnte, "improper", "高新技术企业证书2025-06-29到期，年底前未重新取得资格，仍按15%享受")],
            taxpayer={"hnte_cert_issued_on": "2022-06-30", "hnte_cert_valid_until": "2025-06-29",
                      "hnte_recert_failed": True},
            year={"taxable_income": "5000000.00", **settled},
            claims=[SIX, (y, hnte, "500000.00")],
        ),
        Case(
            304,
            "杭州汇算非小微制造有限公司",
            [(y, six, "improper", "一般纳税人，本年指标符合但两次汇算清缴均不是小型微利企业，仍享受六税两费减半")],
            year={"slp_settled_h1": False, "slp_settled_h2": False},
            claims=[SLP, SIX],
        ),
        Case(
            305,
            "杭州汇算待核制造有限公司",
            [(y, six, "undetermined", "一般纳税人，没有汇算清缴确定的小型微利企业身份，六税两费减半待核实")],
            year={"slp_settled_h1": None, "slp_settled_h2": None},
            claims=[SLP, SIX],
        ),
        Case(
            306,
            "杭州下半年小微制造有限公司",
            [(y, six, "unclaimed", "一般纳税人，本年汇算清缴确定为小型微利企业，7—12月可减半而未享受")],
            year={"slp_settled_h1": False, "slp_settled_h2": True},
            claims=[SLP],
        ),
        Case(
            307,
            "西湖区其他减免便利店",
            [(y, iit, "unclaimed", "个体工商户经营所得8万元、其他减免2000元，预计减免2250元未享受")],
            individual=True,
            year={"taxable_income": "80000.00", "other_iit_relief": "2000.00"},
            claims=[SIX],
        ),
        Case(
            308,
            "西湖区同一经营者甲店",
            [(y, iit, "unclaimed", "同一经营者两户合计230万元，本户80万元，按合计200万元部分分摊减半")],
            individual=True,
            taxpayer={"owner_id": "hplanted308"},
            year={"taxable_income": "800000.00"},
            claims=[SIX],
        ),
        Case(
            309,
            "西湖区同一经营者乙店",
            [(y, iit, "compliant", "同一经营者两户合计230万元，本户150万元，已享受减半")],
            individual=True,
            taxpayer={"owner_id": "hplanted308"},
            year={"taxable_income": "1500000.00"},
            claims=[SIX, (y, iit, "206902.17")],
        ),
        # Employment rules (numbers 201–219): 残保金分档, 重点群体人月, 退役士兵, 安置残疾人即征即退, 残疾人工资加计扣除
        Case(
            201,
            "杭州五百人制造有限公司",
            [(y, "disability_fund_relief", "unclaimed",
              "在职500人、安置2人（0.4%），应缴55万元应按90%缴纳，批扣未减免5.5万元")],
            taxpayer={"industry_code": "C3484"},
            year={
                "employees": 500,
                "employees_qavg": 500.0,
                "assets_qavg": "80000000.00",
                "disabled_employees": 2,
                "disability_fund_due": "550000.00",
            },
        ),
        Case(
            202,
            "杭州五百零一人制造有限公司",
            [(y, "disability_fund_relief", "improper",
              "在职501人、安置5人（低于1%），应按90%缴纳却按50%减免")],
            taxpayer={"industry_code": "C3484"},
            year={
                "employees": 501,
                "employees_qavg": 501.0,
                "assets_qavg": "80000000.00",
                "disabled_employees": 5,
                "disability_fund_due": "251500.00",
            },
            claims=[(y, "disability_fund_relief", "125750.00")],
        ),
        Case(
            203,
            "杭州按月招用科技有限公司",
            [(y, "key_groups_startup_employment", "unclaimed",
              "1月、2月各招用1名重点群体人员，全年23人月，可扣减11500元（不是2人×6000元）")],
            year={"key_group_hires": 2, "key_group_hire_months": 23, "startup_taxes_due": "50000.00"},
            claims=[SLP, SIX],
        ),
        Case(
            204,
            "杭州缺人月科技有限公司",
            [(y, "key_groups_startup_employment", "undetermined",
              "招用2名重点群体人员但缺在职人月数，不按全年估算，待核实")],
            year={"key_group_hires": 2, "startup_taxes_due": "50000.00"},
            claims=[SLP, SIX],
        ),
        Case(
            205,
            "西湖区退役士兵便利店",
            [(y, "veterans_startup_employment", "unclaimed",
              "退役士兵2024年3月登记的个体工商户，未扣减2万元")],
            individual=True,
            taxpayer={"veteran_owner": True, "registered_on": "2024-03-15"},
            year={"startup_taxes_due": "30000.00"},
            claims=[SIX, (y, "individual_business_iit_half", "3750.00")],
        ),
        Case(
            206,
            "杭州退役人月为零科技有限公司",
            [(y, "veterans_startup_employment", "improper",
              "招用的退役士兵本年度在职0个月，仍扣减")],
            year={"veteran_hires": 1, "veteran_hire_months": 0, "startup_taxes_due": "50000.00"},
            claims=[SLP, SIX, (y, "veterans_startup_employment", "6000.00")],
        ),
        Case(
            207,
            "杭州福利四十人制造有限公司",
            [("2025-03", "disabled_employment_vat_refund", "unclaimed",
              "安置残疾人10人、占40人的25%（含本数），未申请即征即退（限额99600元）")],
            taxpayer={"industry_code": "C3484"},
            vat={
                "2025-03": {
                    "sales": "1500000.00",
                    "employees": 40,
                    "disabled_employees": 10,
                    "vat_paid": "200000.00",
                    "min_wage_monthly": "2490.00",
                    "disabled_vat_income_share": 0.8,
                }
            },
            claims=[SLP, SIX],
        ),
        Case(
            208,
            "杭州福利四十一人制造有限公司",
            [
                ("2025-03", "disabled_employment_vat_refund", "improper",
                 "安置残疾人10人、占41人的24.4%（低于25%），仍申请即征即退"),
                ("2026-01", "disabled_employment_vat_refund", "not_judged",
                 "2026年起是否延续未核实，不判定（不判为违规享受）"),
            ],
            taxpayer={"industry_code": "C3484"},
            vat={
                period: {
                    "sales": "1500000.00",
                    "employees": 41,
                    "disabled_employees": 10,
                    "vat_paid": "200000.00",
                    "min_wage_monthly": "2490.00",
                    "disabled_vat_income_share": 0.8,
                }
                for period in ("2025-03", "2026-01")
            },
            claims=[
                SLP,
                SIX,
                ("2025-03", "disabled_employment_vat_refund", "99600.00"),
                ("2026-01", "disabled_employment_vat_refund", "99600.00"),
            ],
        ),
        Case(
            209,
            "杭州残疾职工工资科技有限公司",
            [(y, "disabled_wage_extra_deduction", "unclaimed",
              "支付残疾职工工资10万元未加计扣除，小型微利企业按5%预计少缴5000元")],
            year={"disabled_employees": 2, "disabled_wages": "100000.00"},
            claims=[SLP, SIX],
        ),
        *_tech_cases(),
    ]


def _tech_cases() -> list[Case]:
    """Technology and other incentives (issue 11 §4); numbers 400–419 (other helpers use 61–68, 201–209, 300–309)."""
    y = "2025"
    big = {"taxable_income": "10000000.00", "employees_qavg": 400.0, "employees": 400, "assets_qavg": "80000000.00"}
    vat_month = {"sales": "2000000.00", "creditable_input_vat": "100000.00", "incremental_credit": "0"}
    return [
        Case(
            400,
            "杭州技转临界科技有限公司",
            [(y, "technology_transfer_cit", "unclaimed",
              "技术转让所得恰为500万元（全额免征部分的上限），合同已登记，未享受减免")],
            year={**big, "tech_transfer_income": "5000000.00", "tech_contract_registered": True},
        ),
        Case(
            401,
            "杭州技转未登记科技有限公司",
            [(y, "technology_transfer_cit", "improper",
              "技术转让合同未经科技部门认定登记，仍享受技术转让所得减免")],
            year={**big, "tech_transfer_income": "800000.00", "tech_contract_registered": False},
            claims=[(y, "technology_transfer_cit", "200000.00")],
        ),
        Case(
            402,
            "杭州技转缺数科技有限公司",
            [(y, "technology_transfer_cit", "undetermined", "缺少技术合同认定登记信息，申报技术转让所得减免待核实")],
            year={**big, "tech_transfer_income": "800000.00"},
            claims=[(y, "technology_transfer_cit", "200000.00")],
        ),
        Case(
            403,
            "杭州技术开发漏享网络科技有限公司",
            [("2025-06", "technology_transfer_vat_exempt", "unclaimed",
              "技术开发收入100万元、合同已登记，未免征增值税（扣除分摊进项后预计少缴1万元）")],
            year={**big},
            vat={"2025-06": {**vat_month, "tech_service_sales": "1000000.00", "tech_contract_registered": True}},
        ),
        Case(
            404,
            "杭州技术开发未登记网络科技有限公司",
            [("2025-06", "technology_transfer_vat_exempt", "improper",
              "技术开发合同未经省级科技主管部门认定登记，仍免征增值税")],
            year={**big},
            vat={"2025-06": {**vat_month, "tech_service_sales": "1000000.00", "tech_contract_registered": False}},
            claims=[("2025-06", "technology_transfer_vat_exempt", "40000.00")],
        ),
        Case(
            405,
            "杭州芯片清单微电子有限公司",
            [(y, "ic_machine_tool_rd_120", "unclaimed",
              "列入集成电路企业清单、研发费用200万元，只按100%加计扣除，未享受提高的20%")],
            taxpayer={"industry_code": "I6520"},
            year={**big, "rd_expense": "2000000.00", "ic_machine_tool_listed": True},
            claims=[(y, "rd_super_deduction", "500000.00")],
        ),
        Case(
            406,
            "杭州芯片未入清单微电子有限公司",
            [(y, "ic_machine_tool_rd_120", "improper",
              "未列入集成电路企业或工业母机企业清单，仍按120%加计扣除")],
            taxpayer={"industry_code": "I6520"},
            year={**big, "rd_expense": "2000000.00", "ic_machine_tool_listed": False},
            claims=[(y, "rd_super_deduction", "500000.00"), (y, "ic_machine_tool_rd_120", "100000.00")],
        ),
        Case(
            407,
            "杭州创新孵化器有限公司",
            [(y, "incubator_tax_exempt", "unclaimed",
              "省级科技企业孵化器，孵化用房产土地应纳房产税和城镇土地使用税18万元，未享受免征")],
            taxpayer={"industry_code": "M7320"},
            year={**big, "incubator_certified": True, "incubator_property_land_tax": "180000.00"},
        ),
        Case(
            408,
            "杭州未认定众创空间管理有限公司",
            [(y, "incubator_tax_exempt", "improper",
              "不具有孵化器、大学科技园或国家备案众创空间资格，仍免征房产税和城镇土地使用税")],
            taxpayer={"industry_code": "L7212"},
            year={**big, "incubator_certified": False, "incubator_property_land_tax": "90000.00"},
            claims=[(y, "incubator_tax_exempt", "90000.00")],
        ),
        Case(
            409,
            "余杭区自产鲜果店",
            [("2025Q3", "agri_self_produced_vat_exempt", "unclaimed",
              "自产水果的农业生产者，季度销售额300,000.01元超过免税标准，自产农产品25万元未免税")],
            individual=True,
            region="330110",
            taxpayer={"industry_code": "F5223", "agri_producer": True},
            year={},
            vat={"2025Q3": {"sales": "300000.01", "agri_self_produced_sales": "250000.00"}},
            claims=[SIX, ("2025Q3", "small_scale_vat_1pct", "500.00")],
        ),
        Case(
            410,
            "余杭区贩销鲜果店",
            [("2025Q3", "agri_self_produced_vat_exempt", "improper",
              "不从事农业生产的水果零售店，销售购进水果按自产农产品免税")],
            individual=True,
            region="330110",
            taxpayer={"industry_code": "F5223", "agri_producer": False},
            year={},
            vat={"2025Q3": {"sales": "280000.00", "agri_self_produced_sales": "0"}},
            claims=[SIX, ("2025Q3", "small_scale_vat_exemption", "2800.00"),
                    ("2025Q3", "agri_self_produced_vat_exempt", "2800.00")],
        ),
        Case(
            411,
            "杭州新能源购车漏享贸易有限公司",
            [(y, "nev_purchase_tax", "unclaimed",
              "购置1辆目录内新能源汽车、应纳车辆购置税恰为3万元，未申报免征")],
            year={**big, "nev_listed_vehicles": 1, "nev_purchase_tax": "30000.00", "nev_max_vehicle_tax": "30000.00"},
        ),
        Case(
            412,
            "杭州非目录车型物流有限公司",
            [(y, "nev_purchase_tax", "improper",
              "未购置列入减免目录的新能源汽车，仍申报免征车辆购置税")],
            taxpayer={"industry_code": "G5821"},
            year={**big, "nev_listed_vehicles": 0, "nev_purchase_tax": "0", "nev_max_vehicle_tax": "0"},
            claims=[(y, "nev_purchase_tax", "25000.00")],
        ),
        # 免申即享 (numbers 501–): an automatic relief not enjoyed goes on the auto-apply list, never in a letter
        Case(
            501,
            "杭州免申即享科技有限公司",
            [(y, "disability_fund_relief", "unclaimed",
              "在职职工20人，应免征残保金3万元但批扣未减免：免申即享，列入自动享受清单，不发信请其申报"),
             (y, "six_taxes_two_fees_half", "unclaimed",
              "小型微利企业未享受六税两费减半：政策礼包只提醒六税两费，不提残保金")],
            year={"employees": 20, "employees_qavg": 20.0, "disabled_employees": 0,
                  "disability_fund_due": "30000.00"},
            claims=[SLP],
        ),
    ]


def planted_tables() -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Rows to add to taxpayers, indicators, claims and risk_events, and the expectations."""
    taxpayers, indicators, claims, events, expected = [], [], [], [], []
    for case in _cases():
        tid = case.taxpayer_id
        district = DISTRICTS_BY_REGION[case.region]
        row = {**(INDIVIDUAL if case.individual else ENTERPRISE), **case.taxpayer}
        row.update(
            taxpayer_id=tid,
            name=case.name,
            tax_authority=district.tax_authority,
            district=district.name,
            phone=f"1388888{case.number:04d}",
            email=f"planted{case.number:02d}@example.com",
        )
        for k in ("registered_on", "hnte_cert_issued_on", "hnte_cert_valid_until"):
            row[k] = _d(row.get(k))
        taxpayers.append(row)
        if case.year is not None:
            year = {**(YEAR_INDIVIDUAL if case.individual else YEAR), **case.year}
            indicators.append({"taxpayer_id": tid, "period": "2025", **year})
        for period, figures in case.vat.items():
            indicators.append({"taxpayer_id": tid, "period": period, **figures})
        for period, incentive, amount in case.claims:
            claims.append(
                {"taxpayer_id": tid, "period": period, "incentive": incentive, "amount": _m(amount)}
            )
        for event, when in case.events:
            events.append({"taxpayer_id": tid, "event": event, "occurred_on": _d(when)})
        for period, rule, kind, note in case.expect:
            expected.append(
                {"taxpayer_id": tid, "period": period, "rule_id": rule, "expected_kind": kind, "note": note}
            )
    money = {c.name for c in INDICATORS.columns if c.kind == "money"}
    for row in indicators:
        for k in list(row):
            if k in money:
                row[k] = _m(row[k])
    tables = {
        "taxpayers": pl.DataFrame(taxpayers, schema=TAXPAYERS.polars_schema),
        "indicators": pl.DataFrame(indicators, schema=INDICATORS.polars_schema),
        "claims": pl.DataFrame(claims, schema=CLAIMS.polars_schema),
        "risk_events": pl.DataFrame(events, schema=RISK_EVENTS_TABLE.polars_schema),
    }
    return tables, pl.DataFrame(expected, schema=PLANTED_SCHEMA)
