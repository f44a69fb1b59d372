"""Rule-loading errors: a broken catalogue reports every problem at once, each at its `file:line:col`.

The expected lists are golden: the whole list is compared, so a lost, duplicated or moved problem fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.casebook import load_cases
from engine.catalogue import load_catalogue
from engine.cli import main
from engine.errors import EXIT_RULE_ERROR, RuleError, RuleProblem

#: The tail every valid rule file below shares (basis, window, benefit, risk, claim guidance).
_TAIL = """\
benefit:
  label: 金额
  formula: sales * 0.1
risk:
  severity: high
claim:
  where: 电子税务局
"""

BROKEN = {
    # Line numbers matter: the golden list below points into these texts.
    "base_rule.yaml": """\
id: base_rule
name: 基础规则
tax: 企业所得税
verification: verified
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise"
conditions:
  - id: income
    label: 所得额
    when: taxable_incom <= 100
  - id: fn
    label: 函数
    when: maxx(sales, 0) > 1
  - id: dated
    label: 日期
    when: registered_on > 5
  - id: kind
    label: 类型
    when: entity_type == "enterpise"
excludes: [no_such_rule]
claim_codes: ["CODE1"]
granularty: [year]
""" + _TAIL,
    "missing_key.yaml": """\
id: missing_key
name: 缺税种
verification: verified
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise"
""" + _TAIL,
    "bad_enum.yaml": """\
id: bad_enum
name: 枚举值
tax: 增值税
verification: verifed
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise"
""" + _TAIL,
    "bad_yaml.yaml": """\
id: bad_yaml
name: 格式错误
tax: [增值税
verification: verified
""",
    "cycle_a.yaml": """\
id: cycle_a
name: 循环甲
tax: 增值税
verification: verified
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise" and eligible("cycle_b")
claim_codes: ["SHARED"]
""" + _TAIL,
    "cycle_b.yaml": """\
id: cycle_b
name: 循环乙
tax: 增值税
verification: verified
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
granularity: [year]
scope:
  label: 企业
  when: eligible("cycle_a")
claim_codes: ["SHARED"]
""" + _TAIL,
}

_NO_SELF = "eligible() 不能直接或间接引用自身"
_BAD_PERIOD = "所属期 '2025Q5' 格式不正确：应为年度 2025、季度 2026Q3 或月份 2026-09"

#: (file, line, col, message, expected, suggestion) of every problem, in the order reported.
GOLDEN = [
    ("bad_enum.yaml", 4, 15, "verification: 取值不正确", "'verified', 'partial' or 'unverified'", ""),
    ("bad_yaml.yaml", 4, 13,
     "YAML 格式错误：expected ',' or ']', but got ':'（while parsing a flow sequence，始于第3行第6列）", "",
     "检查缩进是否对齐、冒号后是否有空格、括号和引号是否成对"),
    ("base_rule.yaml", 16, 11, "未知名称 taxable_incom：既不是纳税人档案字段，也不是本规则的参数",
     "profiles/schema.py 中的字段，或本文件 parameters 下定义的参数", "taxable_income"),
    ("base_rule.yaml", 19, 11, "未知函数 maxx()",
     "内置函数之一：cit_rate, claimed, claimed_amount, date, eligible, events, events_since, has, max, min, "
     "months_between, period_end, period_kind, period_start, progressive, round, startswith", "max"),
    ("base_rule.yaml", 22, 11, "不能比较日期和数值", "比较两边类型相同（数值与数值、日期与日期、文本与文本）", ""),
    ("base_rule.yaml", 25, 26, "entity_type 没有取值 'enterpise'", "enterprise、individual_business", "enterprise"),
    ("base_rule.yaml", 26, 12, "没有编号为 'no_such_rule' 的规则", "", ""),
    ("base_rule.yaml", 28, 1, "granularty: 不认识的键 granularty", "", "granularity"),
    ("cycle_a.yaml", 12, 41, "规则之间存在循环依赖：cycle_a → cycle_b → cycle_a", "", _NO_SELF),
    ("cycle_b.yaml", 12, 9, "规则之间存在循环依赖：cycle_b → cycle_a → cycle_b", "", _NO_SELF),
    ("cycle_b.yaml", 13, 15, "申报代码 'SHARED' 已属于规则 cycle_a（cycle_a.yaml:13），不能再对应规则 cycle_b",
     "每个申报代码只对应一条规则", ""),
    ("missing_key.yaml", 1, 1, "tax: 缺少必填项 tax", "", ""),
]


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _rows(problems: list[RuleProblem], root: Path) -> list[tuple[str, int, int, str, str, str]]:
    return [(str(Path(p.file).relative_to(root)), p.line, p.col, p.message, p.expected, p.suggestion)
            for p in problems]


def test_every_problem_of_a_broken_catalogue_is_listed_at_once(tmp_path: Path) -> None:
    root = _write(tmp_path / "rules", BROKEN)
    with pytest.raises(RuleError) as info:
        load_catalogue(root)
    assert _rows(info.value.problems, root) == GOLDEN


def test_rules_check_prints_the_problems_and_exits_with_the_rule_error_code(tmp_path: Path) -> None:
    root = _write(tmp_path / "rules", BROKEN)
    result = CliRunner().invoke(main, ["rules", "check", str(root)])
    assert result.exit_code == EXIT_RULE_ERROR
    assert f"{root / 'base_rule.yaml'}:16:11: 未知名称 taxable_incom" in result.output
    assert "您是不是要写: taxable_income" in result.output
    assert f"规则目录有 {len(GOLDEN)} 处错误" in result.output
    assert "Traceback" not in result.output


def test_events_arguments_must_be_written_out(tmp_path: Path) -> None:
    """Regression: a parameter as events()' window was accepted, then crashed (or counted nothing) at run time."""
    rule = """\
id: ev_rule
name: 风险事件
tax: 增值税
verification: verified
basis:
  - document: 测试文件
effective:
  from: 2023-01-01
granularity: [year]
parameters:
  months:
    label: 月数
    values:
      - {from: 2023-01-01, value: 36, basis: 测试}
  kinds:
    label: 事件
    values:
      - {from: 2023-01-01, value: ["refund_fraud"], basis: 测试}
scope:
  label: 企业
  when: events(["refund_fraud"], months) == 0 and events(kinds, 12) == 0
""" + _TAIL
    root = _write(tmp_path / "rules", {"ev_rule.yaml": rule})
    with pytest.raises(RuleError) as info:
        load_catalogue(root)
    assert [(p.line, p.col, p.message) for p in info.value.problems] == [
        (21, 34, "events() 的事件列表和月数须直接写出，不能用参数或字段"),
        (21, 58, "events() 的事件列表和月数须直接写出，不能用参数或字段"),
    ]


CASE_FILE = """\
- name: 正确的案例
  period: "2025"
  indicators: {sales: 1}
  expect: unclaimed
- name: 字段拼错
  period: "2025"
  taxpayer: {entity_typ: enterprise}
  indicators: {employes: 3}
  expect: unclaimed
- name: 取值拼错
  period: 2025Q5
  taxpayer: {entity_type: enterpise, registered_on: "2025-02-30"}
  claims: [{incentive: x, amont: 1}]
  risk_events: [{event: refund_fraud, occurred_on: 2024-01-01}]
  expect: unclaimd
- name: 正确的案例
  period: "2025"
  expect: compliant
"""


def test_case_files_report_every_problem_at_once(tmp_path: Path) -> None:
    root = _write(tmp_path / "rules", {"base_rule.cases.yaml": CASE_FILE})
    with pytest.raises(RuleError) as info:
        load_cases(root)
    assert _rows(info.value.problems, root) == [
        ("base_rule.cases.yaml", 7, 14, "taxpayer 中没有字段 entity_typ", "纳税人基础信息（taxpayers）的字段",
         "entity_type"),
        ("base_rule.cases.yaml", 8, 16, "indicators 中没有字段 employes", "纳税人期间指标（indicators）的字段",
         "employees"),
        ("base_rule.cases.yaml", 15, 3,
         "案例 expect：Input should be 'unclaimed', 'improper', 'undetermined', 'compliant', 'not_applicable' "
         "or 'not_judged'",
         "", ""),
        ("base_rule.cases.yaml", 16, 3, "案例名称「正确的案例」重复", "每个案例名称唯一", ""),
    ]


def test_case_values_are_checked_against_the_contract(tmp_path: Path) -> None:
    text = CASE_FILE.replace("  expect: unclaimd\n", "  expect: unclaimed\n")
    root = _write(tmp_path / "rules", {"base_rule.cases.yaml": text})
    with pytest.raises(RuleError) as info:
        load_cases(root)
    assert _rows(info.value.problems, root) == [
        ("base_rule.cases.yaml", 7, 14, "taxpayer 中没有字段 entity_typ", "纳税人基础信息（taxpayers）的字段",
         "entity_type"),
        ("base_rule.cases.yaml", 8, 16, "indicators 中没有字段 employes", "纳税人期间指标（indicators）的字段",
         "employees"),
        ("base_rule.cases.yaml", 11, 11, _BAD_PERIOD, "", ""),
        ("base_rule.cases.yaml", 12, 27,
         "taxpayer.entity_type：没有取值 'enterpise'，应为 enterprise、individual_business（您是不是要写 enterprise）",
         "", ""),
        ("base_rule.cases.yaml", 12, 53, "taxpayer.registered_on：应为日期 YYYY-MM-DD，这里是 '2025-02-30'", "", ""),
        ("base_rule.cases.yaml", 13, 27, "claims 中没有字段 amont", "incentive、amount、period", "amount"),
        ("base_rule.cases.yaml", 16, 3, "案例名称「正确的案例」重复", "每个案例名称唯一", ""),
    ]


def test_an_impossible_date_is_located_not_a_traceback(tmp_path: Path) -> None:
    """Regression: YAML builds dates while reading, and 2023-02-30 raised a bare ValueError."""
    rule = BROKEN["missing_key.yaml"].replace("id: missing_key", "id: bad_date").replace(
        "  from: 2023-01-01", "  from: 2023-02-30").replace("name: 缺税种", "name: 日期\ntax: 增值税")
    cases = "- name: 案例\n  period: \"2025\"\n  taxpayer: {registered_on: 2025-02-30}\n  expect: compliant\n"
    root = _write(tmp_path / "rules", {"bad_date.yaml": rule, "bad_date.cases.yaml": cases})
    with pytest.raises(RuleError) as info:
        load_catalogue(root)
    assert _rows(info.value.problems, root) == [
        ("bad_date.yaml", 8, 9, "日期 2023-02-30 不存在", "YYYY-MM-DD 格式的真实日期，如 2023-02-28", ""),
    ]
    with pytest.raises(RuleError) as info:
        load_cases(root)
    assert _rows(info.value.problems, root) == [
        ("bad_date.cases.yaml", 3, 29, "日期 2025-02-30 不存在", "YYYY-MM-DD 格式的真实日期，如 2023-02-28", ""),
    ]
