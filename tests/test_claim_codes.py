"""Claim codes (issue 11 §5): claims carry official 减免性质代码, not rule ids. A rule lists its codes (verified or
not) and the bureau maps more in rules/_claim_codes.yaml; a mapped code is a claim of its rule in both
backends; a code no rule knows is quarantined with the code named; a code mapped to two rules is refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue
from engine.errors import RuleError
from engine.realtime import evaluate_period_durable
from engine.run import evaluate_period
from profiles.periods import parse_period
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS
from profiles.validation import Profiles, validate_tables
from tests.test_judged_window import TAXPAYER, TID, _rule
from tests.test_profiles_validation import A, _raw, _taxpayer

MAPPING = """\
codes:
  - code: "0004129999"
    rule: mapped
    verified: true
    source: 减免性质及分类表（测试）
"""


DECLARED = 'claim_codes:\n  - "LEGACY1"\n  - {code: "0001011608", verified: false, source: 第三方申报程序}\n'


def _catalogue(tmp_path: Path, mapping: str = MAPPING):  # type: ignore[no-untyped-def]
    root = tmp_path / "rules"
    root.mkdir(exist_ok=True)
    (root / "mapped.yaml").write_text(_rule("mapped"), encoding="utf-8")
    declared_rule = _rule("declared").replace("granularity:", DECLARED + "granularity:")
    (root / "declared.yaml").write_text(declared_rule, encoding="utf-8")
    (root / "_claim_codes.yaml").write_text(mapping, encoding="utf-8")
    return load_catalogue(root)


def test_codes_of_the_rule_file_and_of_the_mapping_file_are_known_with_their_verification(tmp_path: Path) -> None:
    catalogue = _catalogue(tmp_path)
    assert catalogue.code_to_rule["0004129999"] == "mapped"
    assert catalogue.code_to_rule["0001011608"] == "declared" and catalogue.code_to_rule["LEGACY1"] == "declared"
    info = catalogue.claim_code_info
    assert info["0004129999"].verified is True and info["0004129999"].file.endswith("_claim_codes.yaml")
    assert info["0001011608"].verified is False and info["0001011608"].source == "第三方申报程序"
    assert info["LEGACY1"].verified is None  # a plain code: verification not stated
    assert catalogue.rules["mapped"].claim_codes == ("mapped", "0004129999")
    assert "0004129999" in catalogue.known_incentives


def test_a_mapped_code_is_a_claim_of_its_rule_in_both_backends(tmp_path: Path) -> None:
    catalogue = _catalogue(tmp_path)
    period = parse_period("2024")
    profiles = Profiles(
        taxpayers=pl.DataFrame([TAXPAYER], schema=TAXPAYERS.polars_schema),
        indicators=pl.DataFrame([{"taxpayer_id": TID, "period": "2024", "employees_qavg": 301,
                                  "taxable_income": Decimal(1000)}], schema=INDICATORS.polars_schema),
        claims=pl.DataFrame([{"taxpayer_id": TID, "period": "2024", "incentive": code, "amount": Decimal(200)}
                             for code in ("0004129999", "0001011608")], schema=CLAIMS.polars_schema),
        risk_events=pl.DataFrame(schema=RISK_EVENTS_TABLE.polars_schema),
    )
    for result in (evaluate_period(catalogue, profiles, period), evaluate_period_durable(catalogue, profiles, period)):
        got = {r["rule_id"]: (r["kind"], r["claimed_amount"]) for r in result.findings.iter_rows(named=True)}
        assert got == {"mapped": ("improper", Decimal("200.00")), "declared": ("improper", Decimal("200.00"))}


def test_a_code_no_rule_knows_is_quarantined_naming_the_code(tmp_path: Path) -> None:
    catalogue = _catalogue(tmp_path)
    raw = {
        "taxpayers": _raw("taxpayers", [_taxpayer()]),
        "indicators": _raw("indicators", [{"taxpayer_id": A, "period": "2025"}]),
        "claims": _raw("claims", [{"taxpayer_id": A, "period": "2025", "incentive": "0004129998"},
                                  {"taxpayer_id": A, "period": "2025", "incentive": "0004129999"}]),
    }
    tables, q = validate_tables(raw, known_incentives=catalogue.known_incentives)
    assert tables["claims"]["incentive"].to_list() == ["0004129999"]
    line = q.row(0, named=True)
    assert (line["column"], line["value"]) == ("incentive", "0004129998")
    assert "「0004129998」不在规则目录中" in line["reason"] and "_claim_codes.yaml" in line["reason"]
    assert "您是不是要写 0004129999" in line["reason"]


def test_a_code_mapped_to_two_rules_is_refused_at_load_with_file_and_line(tmp_path: Path) -> None:
    twice = MAPPING + """\
  - code: "0001011608"
    rule: mapped
    verified: false
    source: 误登记
"""
    with pytest.raises(RuleError) as info:
        _catalogue(tmp_path, twice)
    (problem,) = info.value.problems
    assert problem.file.endswith("_claim_codes.yaml")
    assert problem.line == twice.splitlines().index('  - code: "0001011608"') + 1
    assert "已属于规则 declared（declared.yaml:" in problem.message and "不能再对应规则 mapped" in problem.message


def test_a_mapping_to_an_unknown_rule_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(RuleError) as info:
        _catalogue(tmp_path, MAPPING.replace("rule: mapped", "rule: maped"))
    (problem,) = info.value.problems
    assert "没有编号为 'maped' 的规则" in problem.message and "mapped" in problem.suggestion


def test_the_catalogues_code_table_loads_and_states_verification() -> None:
    catalogue = load_catalogue(DEFAULT_RULES_DIR)
    mapping = [c for c in catalogue.claim_code_info.values() if c.file.endswith("_claim_codes.yaml")]
    assert mapping, "rules/_claim_codes.yaml lists no code"
    assert all(c.source for c in mapping), "every mapped code says where it comes from"
    assert all(c.verified is not None for c in mapping)
