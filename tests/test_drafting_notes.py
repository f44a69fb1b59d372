"""Taxpayer-facing text is never a drafting note (issue 11 §3): the loader, and so `zhixiang rules check`,
refuses one at its file:line:col and says where it belongs; staff-only fields may say anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue
from engine.cli import main
from engine.drafting import DRAFTING_NOTE, taxpayer_facing_texts
from engine.errors import EXIT_RULE_ERROR, RuleError
from engine.rulefile import RuleFile

RULE = """\
id: noted
name: 测试政策
tax: 企业所得税
verification: partial
verification_note: 申报表行次未核实；口径待确认？TODO verify
basis:
  - document: 测试文件
    article: 第三条（条款号未核实）
    verification: unverified
    note: 条款号凭记忆，存疑
effective:
  from: 2023-01-01
granularity: [year]
scope:
  label: 企业
  when: entity_type == "enterprise"
parameters:
  cap:
    label: 行业代码（近似口径）
    values:
      - {from: 2023-01-01, value: 300, basis: 测试文件（未核实）}
conditions:
  - id: employees
    label: 从业人数不超过300人
    when: employees_qavg <= cap
benefit:
  label: 减免税额
  formula: taxable_income * 0.2
risk:
  severity: high
  patterns: [行次待核实的申报]
claim:
  where: 电子税务局
  form: 年度申报表A107040（行次未核实），另附 A107041（栏次未核实）
  deadline: 次年5月31日前？
  steps:
    - 填报申报表
    - "TODO: 写办理步骤"
records:
  - 从业人数计算底稿（名称待确认）
"""


def _load(tmp_path: Path, text: str = RULE) -> RuleError:
    (tmp_path / "noted.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_catalogue(tmp_path)
    return info.value


def test_every_note_in_a_taxpayer_facing_field_is_refused_where_it_is(tmp_path: Path) -> None:
    error = _load(tmp_path)
    lines = RULE.splitlines()

    def at(line_text: str, word: str, nth: int = 0) -> tuple[int, int]:
        n = lines.index(line_text)
        col = -1
        for _ in range(nth + 1):
            col = lines[n].index(word, col + 1)
        return n + 1, col + 1

    form = "  form: 年度申报表A107040（行次未核实），另附 A107041（栏次未核实）"
    got = [(p.line, p.col, p.message.split("：")[0], p.message.split("「")[1].split("」")[0]) for p in error.problems]
    assert sorted(got) == sorted([
        (*at(form, "未核实"), "claim.form", "未核实"),
        (*at(form, "未核实", 1), "claim.form", "未核实"),
        (*at("  deadline: 次年5月31日前？", "？"), "claim.deadline", "？"),
        (*at('    - "TODO: 写办理步骤"', "TODO"), "claim.steps.1", "TODO"),
        (*at("  - 从业人数计算底稿（名称待确认）", "待确认"), "records.0", "待确认"),
        (*at("    label: 行业代码（近似口径）", "口径"), "parameters.cap.label", "口径"),
    ])
    assert all(p.file.endswith("noted.yaml") for p in error.problems)
    assert all("verification_note" in p.expected for p in error.problems)
    # verification_note, basis notes, the article of an unverified basis, parameter bases and risk patterns
    # are staff-only: nothing reported there.


def test_the_cli_check_refuses_with_exit_code_and_position(tmp_path: Path) -> None:
    (tmp_path / "noted.yaml").write_text(RULE, encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == EXIT_RULE_ERROR
    line = RULE.splitlines().index("  deadline: 次年5月31日前？") + 1
    assert f"noted.yaml:{line}:" in result.output
    assert "起草备注「？」" in result.output and "verification_note" in result.output


def test_finished_text_passes(tmp_path: Path) -> None:
    clean = (RULE.replace("（行次未核实）", "").replace("（栏次未核实）", "").replace("前？", "前")
             .replace("TODO: 写办理步骤", "核对后提交").replace("（名称待确认）", "").replace("（近似口径）", "")
             .replace("article: 第三条（条款号未核实）", "article: 第三条"))
    catalogue = load_catalogue(_write(tmp_path, clean))
    assert "noted" in catalogue.rules
    # Bare 核实/确认 are finished Chinese; a verified basis's article is taxpayer-facing.
    assert DRAFTING_NOTE.search("经税务机关核实后办理退税，确认无误后提交") is None
    noted = (clean.replace("article: 第三条", "article: 第三条（条款号未核实）")
             .replace("    verification: unverified\n", ""))
    assert [p.message.split("：")[0] for p in _load(tmp_path, noted).problems] == ["basis.0.article"]


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "noted.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_catalogue_has_no_drafting_note_in_taxpayer_facing_text() -> None:
    """Also what the letters print: every field taxpayer_facing_texts yields, over the real catalogue."""
    from ruamel.yaml import YAML

    for path in sorted(DEFAULT_RULES_DIR.glob("*.yaml")):
        if path.name.startswith("_") or path.name.endswith(".cases.yaml"):
            continue
        spec = RuleFile.model_validate(YAML(typ="safe").load(path.read_text(encoding="utf-8")))
        notes = [(loc, text) for loc, text in taxpayer_facing_texts(spec) if DRAFTING_NOTE.search(text or "")]
        assert notes == [], path.name
