"""The case runner itself: defaults, batching, the cut-down catalogue and its failure messages."""

from __future__ import annotations

from pathlib import Path

from engine.casebook import TAXPAYER_DEFAULTS, load_cases, needed_rules, run_cases
from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue

RULE_FILES = ("small_scale_vat_exemption.yaml", "small_scale_vat_1pct.yaml", "small_low_profit_cit.yaml",
              "hnte_15pct.yaml")


def _catalogue_with_cases(tmp_path: Path, rule_id: str, cases: str) -> Path:
    root = tmp_path / "rules"
    root.mkdir()
    for name in RULE_FILES:
        (root / name).write_bytes((DEFAULT_RULES_DIR / name).read_bytes())
    (root / f"{rule_id}.cases.yaml").write_text(cases, encoding="utf-8")
    return root


def test_needed_rules_follow_dependencies_exclusions_and_claimed_targets() -> None:
    catalogue = load_catalogue(DEFAULT_RULES_DIR)
    # cit_rate() reads both CIT rate rules; 小型微利's estimate reads the HNTE one.
    assert needed_rules(catalogue, ["rd_super_deduction"]) == ["hnte_15pct", "small_low_profit_cit",
                                                                "rd_super_deduction"]
    assert needed_rules(catalogue, ["six_taxes_two_fees_half"]) == ["six_taxes_two_fees_half"]
    assert set(needed_rules(catalogue, ["small_scale_vat_1pct"])) == {"small_scale_vat_1pct",
                                                                     "small_scale_vat_exemption"}
    assert needed_rules(catalogue, ["individual_business_iit_half"]) == ["individual_business_iit_half"]


def test_filing_cycle_defaults_to_the_period_kind_and_ids_may_repeat(tmp_path: Path) -> None:
    cases = """\
- name: 季度
  period: 2025Q2
  taxpayer: {taxpayer_id: 913301060000000000, vat_status: small_scale}
  indicators: {sales: 1000}
  expect: unclaimed
- name: 同一纳税人另一案例
  period: 2025Q2
  taxpayer: {taxpayer_id: 913301060000000000, vat_status: small_scale}
  indicators: {sales: 300000.01}
  expect: not_applicable
- name: 月度
  period: 2025-05
  taxpayer: {vat_status: small_scale}
  indicators: {sales: 1000}
  expect: unclaimed
"""
    root = _catalogue_with_cases(tmp_path, "small_scale_vat_exemption", cases)
    results = run_cases(load_catalogue(root), load_cases(root))
    assert [r.passed for r in results] == [True, True, True], [r.message() for r in results]
    assert "vat_filing_cycle" not in TAXPAYER_DEFAULTS


def test_a_failure_names_the_case_and_shows_the_evidence(tmp_path: Path) -> None:
    cases = """\
- name: 从业人数301人
  period: "2025"
  indicators: {taxable_income: 100, employees_qavg: 301, assets_qavg: 1}
  claims: [small_low_profit_cit]
  expect: compliant
  expect_conditions: {employees: pass, assets: unknown}
  expect_amount: 1
- name: 按年判定的规则用季度所属期
  period: 2025Q1
  expect: compliant
"""
    root = _catalogue_with_cases(tmp_path, "small_low_profit_cit", cases)
    first, second = run_cases(load_catalogue(root), load_cases(root))
    where = root / "small_low_profit_cit.cases.yaml"
    assert first.message().splitlines() == [
        f"{where}:1: 案例「从业人数301人」（small_low_profit_cit，所属期 2025）未通过",
        "  结论：期望 合规享受（compliant），实际 违规享受（improper）",
        "  条件 employees：期望 满足（pass），实际 不满足（fail）",
        "  条件 assets：期望 无法判断（unknown），实际 满足（pass）",
        "  金额：期望 1.00，实际 20.00",
        "  判定依据：",
        "    [满足] scope：纳税人类型为企业，属于企业",
        "    [满足] not_restricted：从事国家非限制和禁止行业：满足（国家限制和禁止行业 否）",
        "    [满足] taxable_income：应纳税所得额 100.00 元，未超过 3000000.00 元上限",
        "    [不满足] employees：从业人数 301 人，超过 300 人上限",
        "    [满足] assets：资产总额 1.00 元，未超过 50000000.00 元上限",
        "    [满足] not_stacked_hnte_15pct：未同时申报享受「高新技术企业减按15%税率征收企业所得税」",
    ]
    assert second.mismatches == ("规则按年度判定，所属期 2025Q1 为季度，不会判定本规则",)
    assert second.case.test_id == "small_low_profit_cit::按年判定的规则用季度所属期"
