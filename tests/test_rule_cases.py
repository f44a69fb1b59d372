"""Every case beside every rule (`rules/<id>.cases.yaml`) as its own test, id `<rule_id>::<case name>`.

The cases are evaluated together, once, by engine.casebook.run_cases (one batch query per period);
each test then reports its own case. A failure names the case file and line, expected against got,
and the engine's evidence for every condition.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.casebook import Case, CaseResult, load_cases, run_cases
from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue

CASES = load_cases(DEFAULT_RULES_DIR)


class _CaseIds:
    """Gives each case its readable id: pytest would escape the Chinese name of an id passed as text."""

    @pytest.hookimpl
    def pytest_make_parametrize_id(self, config: pytest.Config, val: object, argname: str) -> str | None:
        return val.test_id if isinstance(val, Case) else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rule_case" in metafunc.fixturenames:
        manager = metafunc.config.pluginmanager
        if manager.get_plugin("zhixiang-rule-case-ids") is None:
            manager.register(_CaseIds(), "zhixiang-rule-case-ids")
        metafunc.parametrize("rule_case", CASES)


@pytest.fixture(scope="module")
def case_results() -> dict[Any, CaseResult]:
    return {r.case.key: r for r in run_cases(load_catalogue(DEFAULT_RULES_DIR), CASES)}


def test_rule_case(rule_case: Case, case_results: dict[Any, CaseResult]) -> None:
    result = case_results[rule_case.key]
    if not result.passed:
        pytest.fail(result.message(), pytrace=False)


def test_every_rule_has_cases() -> None:
    catalogue = load_catalogue(DEFAULT_RULES_DIR)
    covered = {c.rule_id for c in CASES}
    assert sorted(set(catalogue.rules) - covered) == []
    assert sorted(covered - set(catalogue.rules)) == []


def test_every_rule_has_missing_data_and_window_cases() -> None:
    """Per rule: an undetermined case (missing figure), an improper one, and — where the catalogue judges
    periods outside the effective window (the policy not yet or no longer in force) — a claim there."""
    catalogue = load_catalogue(DEFAULT_RULES_DIR)
    for rule_id, rule in catalogue.rules.items():
        mine = [c for c in CASES if c.rule_id == rule_id]
        assert any(c.spec.expect == "undetermined" for c in mine), f"{rule_id}: 没有缺数（待核实）案例"
        judged_from = rule.judged_from or rule.effective_from
        before = judged_from < rule.effective_from
        after = rule.effective_to is not None and (rule.judged_to is None or rule.judged_to > rule.effective_to)
        if before or after:
            assert any(c.spec.expect_conditions.get("effective") == "fail" for c in mine), \
                f"{rule_id}: 没有执行期外案例"
        assert any(c.spec.expect == "improper" for c in mine), f"{rule_id}: 没有违规享受案例"
