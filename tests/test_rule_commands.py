"""`zhixiang rules check | test | schema` through the CLI runner, and the committed JSON schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from engine.catalogue import DEFAULT_RULES_DIR
from engine.cli import main
from engine.errors import EXIT_RULE_ERROR
from engine.rule_commands import SCHEMA_FILE, schema_text

#: Two rules that read each other's claims (declared exclusion), with their cases.
SMALL = ("_catalogue.yaml", "small_low_profit_cit.yaml", "small_low_profit_cit.cases.yaml", "hnte_15pct.yaml",
         "hnte_15pct.cases.yaml")


def _small_catalogue(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    root.mkdir()
    for name in SMALL:
        shutil.copy(DEFAULT_RULES_DIR / name, root / name)
    return root


def test_committed_schema_is_the_generated_one() -> None:
    committed = (DEFAULT_RULES_DIR / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_text(), "rules/rule.schema.json is stale: run `zhixiang rules schema`"


def test_schema_command_writes_the_schema(tmp_path: Path) -> None:
    out = tmp_path / SCHEMA_FILE
    result = CliRunner().invoke(main, ["rules", "schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema["title"] == "直享 Zhixiang 政策规则文件"
    assert {"id", "name", "basis", "effective", "granularity", "scope", "benefit"} <= set(schema["required"])


def test_check_lists_every_rule() -> None:
    result = CliRunner().invoke(main, ["rules", "check"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for column in ("编号", "名称", "税种", "判定期间", "执行期限", "核实状态"):
        assert column in result.output
    assert "small_low_profit_cit" in result.output
    assert "2023-01-01 至 2027-12-31" in result.output
    rules = [p for p in DEFAULT_RULES_DIR.glob("*.yaml") if not p.name.startswith("_") and ".cases." not in p.name]
    assert f"规则目录检查通过：{len(rules)} 条规则" in result.output


def test_test_passes_and_reports_per_rule(tmp_path: Path) -> None:
    root = _small_catalogue(tmp_path)
    result = CliRunner().invoke(main, ["rules", "test", str(root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "hnte_15pct" in result.output and "small_low_profit_cit" in result.output
    assert "个案例通过" in result.output


def test_test_fails_with_the_case_location_and_exit_code_3(tmp_path: Path) -> None:
    root = _small_catalogue(tmp_path)
    cases = root / "hnte_15pct.cases.yaml"
    text = cases.read_text(encoding="utf-8")
    cases.write_text(text.replace("  expect: unclaimed\n", "  expect: compliant\n", 1), encoding="utf-8")
    line = text.splitlines().index("- name: 证书覆盖全年、未申报") + 1
    result = CliRunner().invoke(main, ["rules", "test", str(root)], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_RULE_ERROR
    assert f"{cases}:{line}: 案例「证书覆盖全年、未申报」（hnte_15pct，所属期 2025）未通过" in result.output
    assert "结论：期望 合规享受（compliant），实际 应享未享（unclaimed）" in result.output
    assert "1 个案例未通过" in result.output


def test_test_of_a_broken_catalogue_exits_with_the_rule_error(tmp_path: Path) -> None:
    root = _small_catalogue(tmp_path)
    (root / "hnte_15pct.yaml").write_text("id: hnte_15pct\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "test", str(root)])
    assert result.exit_code == EXIT_RULE_ERROR
    assert "缺少必填项" in result.output
    assert "Traceback" not in result.output


def test_table_writes_the_readme_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- zhixiang rules table: start -->\n<!-- zhixiang rules table: end -->\n",
                      encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "table", "--write", "--readme", str(readme)])
    assert result.exit_code == 0, result.output
    text = readme.read_text(encoding="utf-8")
    assert "| `small_low_profit_cit` | 小型微利企业" in text and "| 编号 | 名称 | 依据 |" in text
    printed = CliRunner().invoke(main, ["rules", "table"])
    assert printed.exit_code == 0 and printed.output in text
