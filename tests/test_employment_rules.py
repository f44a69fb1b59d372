"""Official worked examples of the employment rules, reproduced to the fen.

The hiring deduction of 重点群体 (2023年第15号 第二条) accrues month by month per person employed. The
official example (two hires in January and February at 7,800 a person-year — a province's raised amount)
gives quarterly cumulative limits of 3,250 / 7,150 / 11,050 / 14,950. The catalogue uses the national
6,000 until Zhejiang's amount is verified, so this test loads the rule with 7,800 in its place and checks
that the formula of the committed rule reproduces the example.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

from engine.casebook import load_cases, run_cases
from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue

RULE = "key_groups_startup_employment"

# (person-months at the quarter's end, cumulative limit): hires in January and February.
EXAMPLE = [(3 + 2, "3250"), (6 + 5, "7150"), (9 + 8, "11050"), (12 + 11, "14950")]


def _catalogue_with_quota(tmp_path: Path, quota: int) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in Path(DEFAULT_RULES_DIR).glob("*.yaml"):
        if not path.name.endswith(".cases.yaml"):
            shutil.copy(path, rules / path.name)
    text = (rules / f"{RULE}.yaml").read_text(encoding="utf-8")
    start = text.index("  hire_quota:")
    head, tail = text[:start], text[start:]
    assert "value: 6000" in tail, "the committed rule's hiring quota moved; update this test"
    (rules / f"{RULE}.yaml").write_text(head + tail.replace("value: 6000", f"value: {quota}", 1), encoding="utf-8")
    cases = "\n".join(
        f"- name: 季度末累计{months}人月\n"
        f'  period: "2025"\n'
        f"  indicators: {{key_group_hires: 2, key_group_hire_months: {months}, startup_taxes_due: 100000}}\n"
        f"  expect: unclaimed\n"
        f"  expect_amount: {amount}\n"
        for months, amount in EXAMPLE
    )
    (rules / f"{RULE}.cases.yaml").write_text(cases, encoding="utf-8")
    return rules


def test_hiring_limit_accrues_by_month_as_in_the_official_example(tmp_path: Path) -> None:
    rules = _catalogue_with_quota(tmp_path, 7800)
    results = run_cases(load_catalogue(rules), load_cases(rules))
    assert len(results) == len(EXAMPLE)
    for result, (months, amount) in zip(results, EXAMPLE, strict=True):
        assert result.passed, result.message()
        assert result.amount == Decimal(amount), (months, result.amount)


def test_the_committed_rule_never_exceeds_the_national_quota() -> None:
    """6,000 a person-year (the national amount) per person-month: the estimate never assumes the raise."""
    cases = [c for c in load_cases(DEFAULT_RULES_DIR) if c.rule_id == RULE and "人月" in c.name]
    assert cases, "the rule's cases must cover the month-by-month accrual"
    for result in run_cases(load_catalogue(DEFAULT_RULES_DIR), cases):
        assert result.passed, result.message()
        hire_months = result.case.indicators.get("key_group_hire_months")
        if hire_months is not None and result.amount is not None:
            assert result.amount <= Decimal(6000) * hire_months / 12
