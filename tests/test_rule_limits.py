"""Hostile rule files (issue 13): expressions too deep or too large, and YAML alias bombs, are refused
with file:line errors in well under a second — no MemoryError, RecursionError or minutes of CPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.catalogue import load_catalogue
from engine.errors import RuleError
from engine.expressions import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, parse_expression

RULE = """\
id: hostile
name: 恶意规则
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
  - id: big
    label: 条件
    when: {when}
benefit:
  label: 金额
  formula: sales * 0.1
risk:
  severity: high
claim:
  where: 电子税务局
"""


def _load(tmp_path: Path, text: str) -> RuleError:
    (tmp_path / "hostile.yaml").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(RuleError) as err:
        load_catalogue(tmp_path)
    assert time.perf_counter() - started < 1.0
    return err.value


@pytest.mark.parametrize("when", [
    "not " * 10_000 + "restricted_industry",
    " + ".join(["sales"] * 500) + " > 0",
    "(" * 3_000 + "sales" + ")" * 3_000 + " > 0",
    "".join("(sales if restricted_industry else " for _ in range(3_000)) + "sales" + ")" * 3_000 + " > 0",
    "not " * 150 + "restricted_industry",
])
def test_too_deep_or_too_large_expressions_are_refused(tmp_path: Path, when: str) -> None:
    err = _load(tmp_path, RULE.format(when=when))
    [problem] = err.problems
    assert problem.file.endswith("hostile.yaml") and problem.line == 16
    assert "过" in problem.message  # 过深 / 过长


def test_the_limits_leave_room_for_real_rules() -> None:
    parse_expression(" + ".join(["sales"] * 40) + " > 0")
    parse_expression("not " * 20 + "restricted_industry")
    assert MAX_EXPRESSION_CHARS >= 1000 and MAX_EXPRESSION_DEPTH >= 30


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    bomb = "\n".join(['a: &a ["x","x","x","x","x","x","x","x","x"]']
                     + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
                        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]"
                        for i in range(8)]) + "\n"
    err = _load(tmp_path, RULE.format(when="sales > 0") + bomb)
    assert any("别名" in p.message or "锚点" in p.message for p in err.problems)
    assert min(p.line for p in err.problems) == 24


def test_yaml_aliases_in_a_cases_file_are_refused(tmp_path: Path) -> None:
    from engine.casebook import load_cases

    (tmp_path / "hostile.cases.yaml").write_text("- &a {name: x}\n- *a\n", encoding="utf-8")
    with pytest.raises(RuleError) as err:
        load_cases(tmp_path)
    assert any("别名" in p.message or "锚点" in p.message for p in err.value.problems)
