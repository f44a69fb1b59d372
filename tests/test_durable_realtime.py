"""The embedding API: check one taxpayer, then feed filing events and get the findings that changed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from engine.catalogue import Catalogue, load_catalogue
from engine.findings import FINDINGS_SCHEMA
from engine.realtime import FilingEvent, RealtimeChecker, TaxpayerProfile, apply_event, profile_from_json
from profiles.errors import ProfileDataError
from profiles.periods import parse_period

TAXPAYER = "91330106MA2Y0001XP"  # a valid 统一社会信用代码 (GB 32100 check digit)
YEAR = parse_period("2025")
QUARTER = parse_period("2026Q3")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def small_firm(**indicators: Any) -> dict[str, Any]:
    figures = {"period": "2025", "taxable_income": "1000000", "employees_qavg": 120, "assets_qavg": "8000000",
               "six_taxes_due": "20000", "rd_expense": None, "slp_settled_h1": True, "slp_settled_h2": True}
    figures.update(indicators)
    return {
        "taxpayer": {"taxpayer_id": TAXPAYER, "name": "杭州样例科技有限公司", "entity_type": "enterprise",
                     "vat_status": "general", "vat_filing_cycle": "quarter", "industry_code": "I6510",
                     "restricted_industry": False, "tax_authority": "13301060000", "district": "西湖区",
                     "credit_grade": "A", "registered_on": "2015-03-01"},
        "indicators": [figures],
    }


def by_rule(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["rule_id"]: r for r in rows}


def test_check_gives_batch_columns_and_the_same_rows_as_the_batch(catalogue: Catalogue) -> None:
    profile = profile_from_json(small_firm(), known_incentives=catalogue.known_incentives)
    durable = RealtimeChecker(catalogue).check(profile, YEAR)
    assert [list(r) for r in durable] == [list(FINDINGS_SCHEMA)] * len(durable)
    assert durable == RealtimeChecker(catalogue, engine="polars").check(profile, YEAR)
    found = by_rule(durable)
    assert found["small_low_profit_cit"]["kind"] == "unclaimed"
    assert found["small_low_profit_cit"]["estimated_amount"] == Decimal("200000.00")
    assert found["six_taxes_two_fees_half"]["kind"] == "unclaimed"  # 小型微利 by the last 汇算清缴
    assert found["rd_super_deduction"]["kind"] == "undetermined"  # R&D expense missing: unknown, not improper
    assert "缺少研发费用" in found["rd_super_deduction"]["reasons"]


def test_a_taxpayer_without_figures_or_claims_for_the_period_has_no_findings(catalogue: Catalogue) -> None:
    profile = profile_from_json(small_firm(), known_incentives=catalogue.known_incentives)
    assert RealtimeChecker(catalogue).check(profile, parse_period("2024")) == []


def test_events_report_new_changed_and_resolved_findings(catalogue: Catalogue) -> None:
    checker = RealtimeChecker(catalogue)
    state = checker.start(profile_from_json(small_firm(), known_incentives=catalogue.known_incentives), YEAR)
    assert state.findings["small_low_profit_cit"]["kind"] == "unclaimed"

    # Claiming it: the 应享未享 finding is resolved (the claim is compliant, not a finding).
    changes = apply_event(state, FilingEvent("claim", {"period": "2025", "incentive": "small_low_profit_cit",
                                                       "amount": "200000"}))
    assert [(c.change, c.finding["rule_id"]) for c in changes] == [("resolved", "small_low_profit_cit")]
    assert changes[0].finding["kind"] == "unclaimed"

    # A corrected return with 301 employees: the claim becomes 违规享受 — a new finding with its reason.
    changes = apply_event(state, FilingEvent("indicators", {**small_firm(employees_qavg=301)["indicators"][0]}))
    new = {c.finding["rule_id"]: c for c in changes}
    assert new["small_low_profit_cit"].change == "new"
    assert new["small_low_profit_cit"].finding["kind"] == "improper"
    assert new["small_low_profit_cit"].finding["reasons"] == "从业人数 301 人，超过 300 人上限"
    assert new["small_low_profit_cit"].finding["risk_tier"] == "high"
    # 六税两费 of a general taxpayer follows the last 汇算清缴, not this year's headcount (2022年第3号 一).
    assert "six_taxes_two_fees_half" not in new
    changes = apply_event(state, FilingEvent("indicators", {**small_firm(employees_qavg=301, slp_settled_h1=False,
                                                                          slp_settled_h2=False)["indicators"][0]}))
    assert [(c.change, c.finding["rule_id"]) for c in changes] == [("resolved", "six_taxes_two_fees_half")]

    # A larger claimed amount changes the improper finding's amount at stake.
    changes = apply_event(state, FilingEvent("claim", {"period": "2025", "incentive": "small_low_profit_cit",
                                                       "amount": "250000.50"}))
    assert [(c.change, c.finding["rule_id"]) for c in changes] == [("changed", "small_low_profit_cit")]
    assert changes[0].previous is not None and changes[0].previous["estimated_amount"] == Decimal("200000.00")
    assert changes[0].finding["estimated_amount"] == Decimal("250000.50")

    # A claim of another period changes nothing for this one.
    assert apply_event(state, FilingEvent("claim", {"period": "2024", "incentive": "hnte_15pct"})) == []


def test_risk_events_move_the_vat_refund_in_and_out_of_the_window(catalogue: Catalogue) -> None:
    doc = small_firm()
    # 留抵退税 is judged for 2023–2025 (the 2026 rules under the VAT Law are not verified).
    doc["indicators"] = [{"period": "2025Q3", "incremental_credit": "100000", "sales": "5000000",
                          "input_composition_ratio": 0.9}]
    checker = RealtimeChecker(catalogue)
    state = checker.start(profile_from_json(doc, known_incentives=catalogue.known_incentives),
                          parse_period("2025Q3"))
    assert state.findings["vat_credit_refund"]["kind"] == "unclaimed"
    # 36 months before 2025-09-30 starts after 2022-09-30: an older fraud does not count, a later one does.
    assert apply_event(state, FilingEvent("risk_event", {"event": "refund_fraud", "occurred_on": "2022-09-30"})) == []
    changes = apply_event(state, FilingEvent("risk_event", {"event": "refund_fraud", "occurred_on": "2022-10-01"}))
    assert [(c.change, c.finding["rule_id"]) for c in changes] == [("resolved", "vat_credit_refund")]


def test_bad_events_are_refused_with_the_field_named(catalogue: Catalogue) -> None:
    checker = RealtimeChecker(catalogue)
    state = checker.start(profile_from_json(small_firm(), known_incentives=catalogue.known_incentives), YEAR)
    with pytest.raises(ProfileDataError, match=r"claims\[0\]\.incentive"):
        apply_event(state, FilingEvent("claim", {"period": "2025", "incentive": "small_low_profit"}))
    with pytest.raises(ProfileDataError, match="不是"):
        apply_event(state, FilingEvent("claim", {"taxpayer_id": "91330106MA2Y00028P", "period": "2025",
                                                 "incentive": "hnte_15pct"}))
    with pytest.raises(ProfileDataError, match=r"indicators\[0\]\.sales"):
        apply_event(state, FilingEvent("indicators", {"period": "2025", "sales": "a lot"}))
    assert FilingEvent.from_json('{"kind": "claim", "row": {"period": "2025"}}').kind == "claim"
    with pytest.raises(ProfileDataError):
        FilingEvent.from_json('{"kind": "payment", "row": {}}')


def test_profile_json_problems_are_all_listed(catalogue: Catalogue) -> None:
    doc = small_firm(salse=1, employees_qavg="many")
    doc["taxpayer"]["entity_type"] = "enterprize"
    doc["claim"] = []
    with pytest.raises(ProfileDataError) as info:
        profile_from_json(doc, known_incentives=catalogue.known_incentives)
    paths = [p for p, _ in info.value.problems]
    assert "claim" in paths and "indicators[0].salse" in paths and "taxpayer.entity_type" in paths
    assert "indicators[0].employees_qavg" in paths
    assert "您是不是要写 claims" in str(info.value)


def test_profiles_built_in_python_work_too(catalogue: Catalogue) -> None:
    profile = TaxpayerProfile(
        "T1", {"taxpayer_id": "T1", "name": "个体户", "entity_type": "individual_business",
               "vat_status": "small_scale", "vat_filing_cycle": "quarter", "tax_authority": "x"},
        {"2025": {"taxpayer_id": "T1", "period": "2025", "taxable_income": Decimal("80000.00"),
                  "six_taxes_due": Decimal("1000.00")}},
        [{"taxpayer_id": "T1", "period": "2025", "incentive": "individual_business_iit_half", "amount": None}],
        [{"taxpayer_id": "T1", "event": "refund_fraud", "occurred_on": date(2025, 1, 1)}],
    )
    durable = RealtimeChecker(catalogue).check(profile, YEAR, outcomes=("compliant", "unclaimed", "not_applicable",
                                                                        "improper", "undetermined"))
    assert durable == RealtimeChecker(catalogue, engine="polars").check(
        profile, YEAR, outcomes=("compliant", "unclaimed", "not_applicable", "improper", "undetermined"))
    assert by_rule(durable)["individual_business_iit_half"]["kind"] == "compliant"
