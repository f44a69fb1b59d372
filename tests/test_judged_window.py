"""The judged window: "the policy ended" (a claim is 违规享受) against "the catalogue does not cover that
period" (nothing is judged, and the run says so) — in both backends, the summary, the cases and the loader."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from engine.casebook import load_cases, run_cases
from engine.catalogue import load_catalogue
from engine.errors import RuleError
from engine.findings.outcomes import NOT_JUDGED_REASON
from engine.realtime import evaluate_period_durable
from engine.run import RunResult, evaluate_period, summary_document
from profiles.ids import make_credit_code
from profiles.periods import parse_period
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS
from profiles.validation import Profiles

TID = make_credit_code(org_body="00000001")
TAXPAYER = {"taxpayer_id": TID, "name": "测试", "entity_type": "enterprise", "tax_authority": "13301060000",
            "vat_filing_cycle": "quarter"}


def _rule(rid: str, judged: str = "", *, reads: str = "") -> str:
    scope = f'eligible("{reads}")' if reads else 'entity_type == "enterprise"'
    return f"""\
id: {rid}
name: 测试政策{rid}
tax: 企业所得税
verification: verified
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
  to: 2025-12-31
{judged}granularity: [year]
scope:
  label: 企业
  when: {scope}
conditions:
  - id: employees
    label: 从业人数不超过300人
    when: employees_qavg <= 300
benefit:
  label: 减免税额
  formula: taxable_income * 0.2
risk:
  severity: high
claim:
  where: 电子税务局
"""


RULES = {
    "plain": _rule("plain"),  # no `judged`: from effective.from, open-ended
    "earlier": _rule("earlier", "judged:\n  from: 2020-01-01\n"),  # a new policy: earlier claims improper
    "until": _rule("until", "judged:\n  to: 2024-12-31\n"),  # a continuation not verified after 2024
    # Judged from 2020 itself, but reads plain's qualification: judged only where plain is too.
    "reader": _rule("reader", "judged:\n  from: 2020-01-01\n", reads="plain"),
}


def _catalogue(tmp_path: Path, rules: dict[str, str] = RULES):  # type: ignore[no-untyped-def]
    root = tmp_path / "rules"
    root.mkdir(exist_ok=True)
    for rid, text in rules.items():
        (root / f"{rid}.yaml").write_text(text, encoding="utf-8")
    return load_catalogue(root)


def _profiles(period: str, claims: list[str]) -> Profiles:
    return Profiles(
        taxpayers=pl.DataFrame([TAXPAYER], schema=TAXPAYERS.polars_schema),
        indicators=pl.DataFrame([{"taxpayer_id": TID, "period": period, "employees_qavg": 10,
                                  "taxable_income": Decimal(1000)}], schema=INDICATORS.polars_schema),
        claims=pl.DataFrame([{"taxpayer_id": TID, "period": period, "incentive": c, "amount": Decimal(200)}
                             for c in claims], schema=CLAIMS.polars_schema),
        risk_events=pl.DataFrame(schema=RISK_EVENTS_TABLE.polars_schema),
    )


def _both(tmp_path: Path, period: str, claims: list[str]) -> list[RunResult]:
    catalogue = _catalogue(tmp_path)
    p = parse_period(period)
    profiles = _profiles(period, claims)
    return [evaluate_period(catalogue, profiles, p), evaluate_period_durable(catalogue, profiles, p)]


def _kinds(result: RunResult) -> dict[str, str]:
    return {r: k for r, k in result.findings.select("rule_id", "kind").iter_rows()}


def test_a_claim_before_effective_from_of_a_rule_without_judged_is_not_judged(tmp_path: Path) -> None:
    """Was 违规享受: the catalogue does not know what law applied in 2022, so it says nothing about it."""
    for result in _both(tmp_path, "2022", ["plain", "earlier", "reader"]):
        assert "plain" not in _kinds(result)
        assert "reader" not in _kinds(result)  # its qualification comes from a rule not judged for 2022
        assert _kinds(result)["earlier"] == "improper"  # judged from 2020: the policy was not yet in force
        assert "plain" not in set(result.summary["rule_id"])
        unjudged = {row["rule_id"]: row for row in result.not_judged.iter_rows(named=True)}
        assert set(unjudged) == {"plain", "reader", "until"}
        assert unjudged["plain"]["reason"] == NOT_JUDGED_REASON
        assert unjudged["plain"]["claims"] == 1 and unjudged["until"]["claims"] == 0
        assert "2023-01-01 至 长期" in unjudged["plain"]["detail"]
        assert "plain" in unjudged["reader"]["detail"]
        document = json.loads(json.dumps(summary_document(result), ensure_ascii=False, default=str))
        assert {r["rule_id"] for r in document["not_judged"]} == {"plain", "reader", "until"}
        assert all(r["reason"] == "目录未覆盖该所属期" for r in document["not_judged"])


def test_a_streaming_run_counts_the_unjudged_claims_of_every_bucket(tmp_path: Path) -> None:
    from engine.run import evaluate_streaming

    catalogue = _catalogue(tmp_path)
    profiles = _profiles("2022", ["plain"])
    second = {**TAXPAYER, "taxpayer_id": make_credit_code(org_body="00000002")}
    folder = tmp_path / "data"
    folder.mkdir()
    pl.concat([profiles.taxpayers, pl.DataFrame([second], schema=TAXPAYERS.polars_schema)]).write_parquet(
        folder / "taxpayers.parquet")
    profiles.indicators.write_parquet(folder / "indicators.parquet")
    pl.concat([profiles.claims, profiles.claims.with_columns(pl.lit(second["taxpayer_id"]).alias("taxpayer_id"))]
              ).write_parquet(folder / "claims.parquet")
    profiles.risk_events.write_parquet(folder / "risk_events.parquet")
    result = evaluate_streaming(catalogue, folder, parse_period("2022"), tmp_path / "work", buckets=3)
    counted = dict(result.not_judged.select("rule_id", "claims").iter_rows())
    assert counted == {"plain": 2, "reader": 0, "until": 0}
    assert not any(r == "plain" for r in result.findings["rule_id"].to_list())


def test_after_the_end_of_the_policy_a_claim_is_improper_unless_the_catalogue_stops_judging(tmp_path: Path) -> None:
    for result in _both(tmp_path, "2026", ["plain", "until"]):
        assert _kinds(result)["plain"] == "improper"  # judged open-ended: the policy ended
        assert "until" not in _kinds(result)
        assert result.not_judged["rule_id"].to_list() == ["until"]
        assert "2023-01-01 至 2024-12-31" in result.not_judged["detail"].item()


def test_inside_both_windows_the_rule_is_judged_as_before(tmp_path: Path) -> None:
    for result in _both(tmp_path, "2024", ["plain"]):
        assert _kinds(result) == {"until": "unclaimed", "earlier": "unclaimed", "reader": "unclaimed"}
        assert result.not_judged.height == 0


def test_a_rule_case_can_expect_not_judged(tmp_path: Path) -> None:
    _catalogue(tmp_path)
    (tmp_path / "rules" / "plain.cases.yaml").write_text("""\
- name: 2022年度申报，目录未覆盖
  period: "2022"
  taxpayer: {entity_type: enterprise}
  indicators: {employees_qavg: 10, taxable_income: 1000}
  claims: [{incentive: plain, amount: 200}]
  expect: not_judged
- name: 2022年度申报，误写为违规享受
  period: "2022"
  taxpayer: {entity_type: enterprise}
  claims: [{incentive: plain}]
  expect: improper
""", encoding="utf-8")
    root = tmp_path / "rules"
    good, wrong = run_cases(load_catalogue(root), load_cases(root))
    assert good.passed, good.message()
    assert not wrong.passed and "未判定（not_judged）" in wrong.message()


def test_judged_to_before_its_start_is_refused_with_its_position(tmp_path: Path) -> None:
    text = _rule("plain", "judged:\n  from: 2022-01-01\n  to: 2021-12-31\n")
    with pytest.raises(RuleError) as info:
        _catalogue(tmp_path, {"plain": text})
    problem = info.value.problems[0]
    assert problem.line == text.splitlines().index("  to: 2021-12-31") + 1
    assert "judged.to" in problem.message
    # Defaulted start: effective.from.
    with pytest.raises(RuleError, match=r"judged\.to"):
        _catalogue(tmp_path, {"plain": _rule("plain", "judged:\n  to: 2022-12-31\n")})


def test_a_valid_judged_window_loads_without_problems(tmp_path: Path) -> None:
    catalogue = _catalogue(tmp_path)
    assert catalogue.rules["earlier"].judged_label == "2020-01-01 至 长期"
    assert catalogue.rules["until"].judged_label == "2023-01-01 至 2024-12-31"
