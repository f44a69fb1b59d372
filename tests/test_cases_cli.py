"""`zhixiang cases …` through the command line: sync a findings folder, work cases, stats and task lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook

from engine.cli import main
from engine.errors import EXIT_INPUT_ERROR, EXIT_USAGE
from notifier.cases.ledger import case_number, read_findings_folder
from notifier.cases.queries import find_cases, get_case, history_of
from notifier.db import open_state
from tests.builders.cases import finding, findings_frame

A, B, C = "91330106MA2B3C4D5E", "91330106MA2B3C4D6X", "91330106MA2B3C4D7Y"
RULE = "small_low_profit_cit"


def zx(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def write_run(folder: Path, rows: list[dict[str, Any]], *, summary: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    findings_frame(rows).write_parquet(folder / "findings.parquet")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    return folder


def summary_for(*rules: str, generated_at: str = "2026-01-10T02:00:00+08:00") -> dict[str, Any]:
    return {"period": "2025", "generated_at": generated_at,
            "by_rule": [{"rule_id": r, "outcome": "compliant", "count": 1} for r in rules]}


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "state.sqlite")


@pytest.fixture
def synced(tmp_path: Path, state: str) -> str:
    run = write_run(tmp_path / "run1", [finding(A), finding(B, tier="medium", authority="13301050000"),
                                        finding(C, kind="undetermined", amount=None)],
                    summary=summary_for(RULE, "hnte_15pct"))
    result = zx("cases", "sync", "--findings", str(run), "--state", state, "--as-of", "2026-01-10")
    assert result.exit_code == 0, result.output
    return state


def test_sync_reports_what_it_did_and_uses_the_summary(tmp_path: Path, state: str, synced: str) -> None:
    engine = open_state(state)
    assert {c.taxpayer_id for c in find_cases(engine)} == {A, B, C}
    run_id = get_case(engine, case_number(A, RULE, "2025")).first_run_id
    assert run_id.startswith("run-2025-20260110T020000-")
    # The same folder again: nothing new. The rule scope from summary.json lets a later run clear.
    result = zx("cases", "sync", "--findings", str(tmp_path / "run1"), "--state", state, "--as-of", "2026-01-11")
    assert result.exit_code == 0 and "无变化" in result.output
    run2 = write_run(tmp_path / "run2", [finding(A)], summary=summary_for(RULE, generated_at="2026-01-12T02:00:00"))
    result = zx("cases", "sync", "--findings", str(run2), "--state", state, "--run-id", "nightly-0112")
    assert result.exit_code == 0, result.output
    assert "已消除（不再发现）" in result.output
    statuses = {c.taxpayer_id: (c.status, c.cleared_run_id) for c in find_cases(engine)}
    assert statuses == {A: ("待分派", None), B: ("已消除", "nightly-0112"), C: ("已消除", "nightly-0112")}


def test_sync_without_summary_takes_the_periods_of_the_findings(tmp_path: Path, state: str) -> None:
    run = write_run(tmp_path / "run", [finding(A)])
    folder = read_findings_folder(run)
    assert (folder.periods, folder.rules) == (("2025",), None)
    assert folder.run_id.startswith("findings-")
    result = zx("cases", "sync", "--findings", str(run / "findings.parquet"), "--state", state)
    assert result.exit_code == 0, result.output


def test_sync_of_an_empty_folder_without_summary_asks_for_the_period(tmp_path: Path, state: str) -> None:
    run = write_run(tmp_path / "run", [])
    result = zx("cases", "sync", "--findings", str(run), "--state", state)
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "--period" in result.output


def test_sync_of_a_missing_folder_says_what_to_give(tmp_path: Path, state: str) -> None:
    result = zx("cases", "sync", "--findings", str(tmp_path / "nowhere"), "--state", state)
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "找不到" in result.output and "findings.parquet" in result.output


def test_sync_takes_service_levels(tmp_path: Path, state: str) -> None:
    run = write_run(tmp_path / "run", [finding(A)])
    result = zx("cases", "sync", "--findings", str(run), "--state", state, "--as-of", "2026-01-10", "--sla", "high=3")
    assert result.exit_code == 0, result.output
    assert str(get_case(open_state(state), case_number(A, RULE, "2025")).due_on) == "2026-01-13"
    bad = zx("cases", "sync", "--findings", str(run), "--state", state, "--sla", "high:3")
    assert bad.exit_code == EXIT_USAGE and "等级=天数" in bad.output


def test_list_filters_and_shows_overdue(synced: str) -> None:
    result = zx("cases", "list", "--state", synced, "--as-of", "2026-01-25")
    assert result.exit_code == 0, result.output
    assert "案件 3 件" in result.output and case_number(A, RULE, "2025") in result.output
    result = zx("cases", "list", "--state", synced, "--overdue", "--as-of", "2026-01-25")
    assert "案件 1 件" in result.output and case_number(A, RULE, "2025") in result.output
    result = zx("cases", "list", "--state", synced, "--authority", "13301050000", "--tier", "中风险")
    assert "案件 1 件" in result.output and case_number(B, RULE, "2025") in result.output
    result = zx("cases", "list", "--state", synced, "--status", "pending", "--limit", "1")
    assert "案件 3 件（显示前 1 件）" in result.output
    result = zx("cases", "list", "--state", synced, "--tier", "urgent")
    assert result.exit_code == EXIT_USAGE and "未知的等级" in result.output


def test_state_comes_from_the_environment(synced: str) -> None:
    result = zx("cases", "list", env={"ZHIXIANG_STATE_URL": synced})
    assert result.exit_code == 0 and "案件 3 件" in result.output


def test_bad_state_url_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = zx("cases", "list", "--state", "mysql://nobody@nowhere/db")
    assert result.exit_code != 0 and "不支持的状态数据库地址" in result.output


def test_show_prints_the_case_with_its_evidence_and_history(synced: str) -> None:
    number = case_number(A, RULE, "2025")
    zx("cases", "assign", number, "--to", "张三", "--by", "李科长", "--state", synced)
    result = zx("cases", "show", number, "--state", synced, "--as-of", "2026-01-25")
    assert result.exit_code == 0, result.output
    for text in ("杭州示例科技有限公司", "从业人数 301 人，超过 300 人上限", "不满足", "300 人", "处理记录", "新立案",
                 "待分派 → 核实中", "李科长", "已逾期 5 天", "可变更为：核实中、已更正、放弃优惠、误报"):
        assert text in result.output, text
    missing = zx("cases", "show", "FX-2025-nothing-0000", "--state", synced)
    assert missing.exit_code == EXIT_USAGE and "没有编号为 FX-2025-nothing-0000 的案件" in missing.output


def test_assign_and_resolve_through_the_cli(synced: str) -> None:
    a, b = case_number(A, RULE, "2025"), case_number(B, RULE, "2025")
    result = zx("cases", "assign", a, b, "--to", "张三", "--by", "李科长", "--state", synced)
    assert result.exit_code == 0 and f"{a}：待分派 → 核实中，承办人 张三" in result.output
    result = zx("cases", "resolve", a, "--outcome", "误报", "--state", synced, "--by", "张三")
    assert result.exit_code == EXIT_USAGE and "误报必须说明理由" in result.output
    result = zx("cases", "resolve", a, "--outcome", "false_alarm", "--reason", "社保人数 280", "--state", synced,
                "--by", "张三")
    assert result.exit_code == 0 and f"{a}：核实中 → 误报" in result.output
    assert zx("cases", "resolve", b, "--outcome", "corrected", "--state", synced, "--by", "张三").exit_code == 0
    assert zx("cases", "resolve", a, b, "--outcome", "已关闭", "--state", synced, "--by", "李科长").exit_code == 0
    engine = open_state(synced)
    assert [h.actor for h in history_of(engine, a)] == ["system", "李科长", "张三", "李科长"]
    assert get_case(engine, b).resolution == "已更正"


def test_forbidden_transition_exits_with_a_clear_message(synced: str) -> None:
    number = case_number(A, RULE, "2025")
    result = zx("cases", "resolve", number, "--outcome", "已更正", "--state", synced, "--by", "张三")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip() == (f"错误: 案件 {number} 当前状态为「待分派」，不能从「待分派」变更为「已更正」。"
                                     "允许的下一状态：核实中")
    result = zx("cases", "resolve", number, "--outcome", "已消除", "--state", synced, "--by", "张三")
    assert result.exit_code == EXIT_USAGE and "由分派或系统设置" in result.output


def test_stats_show_precision_per_rule(synced: str) -> None:
    a, b = case_number(A, RULE, "2025"), case_number(B, RULE, "2025")
    zx("cases", "assign", a, b, "--to", "张三", "--by", "李科长", "--state", synced)
    zx("cases", "resolve", a, "--outcome", "误报", "--reason", "口径", "--state", synced, "--by", "张三")
    zx("cases", "resolve", b, "--outcome", "放弃优惠", "--state", synced, "--by", "张三")
    result = zx("cases", "stats", "--state", synced)
    assert result.exit_code == 0, result.output
    assert "小型微利企业所得税优惠" in result.output and "50.0%（1/2）" in result.output
    result = zx("cases", "stats", "--state", synced, "--tier", "verification")
    assert "—" in result.output and "另有 1 件未办结" in result.output


def test_export_writes_a_workbook_and_csv_per_authority(tmp_path: Path, synced: str) -> None:
    out = tmp_path / "tasks"
    result = zx("cases", "export", "--state", synced, "--out", str(out), "--as-of", "2026-01-25")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "13301050000.csv", "13301050000.xlsx", "13301060000.csv", "13301060000.xlsx"]
    wb = load_workbook(out / "13301060000.xlsx")
    assert [ws.max_row for ws in wb.worksheets[:3]] == [2, 1, 2]
    result = zx("cases", "export", "--state", synced, "--out", str(tmp_path / "none"), "--status", "已关闭")
    assert result.exit_code == 0 and "没有符合条件的案件" in result.output
