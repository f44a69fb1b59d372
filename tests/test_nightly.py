"""The nightly run end to end: idempotent days, a day whose inputs changed, crashes and the next start.

Synthetic data folders (tests/builders/nightly.py) keep each run to a few seconds; the crash tests
run `zhixiang nightly` in a child process and kill it at a stage for real (the FAULT_ENV hook), then
check that the next start completes the day with the same cases and letters as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.cli import main
from engine.errors import EXIT_USAGE
from notifier.cases.tables import case_history, cases
from notifier.db import open_state
from notifier.letters.outbox import read_manifest
from notifier.letters.suppression import NOTIFICATIONS
from notifier.nightly.pipeline import FAULT_ENV, MARKER, NightlyError, is_complete, run_nightly
from notifier.nightly.runs import EXIT_LOCKED, LockHeldError, get_run, list_runs
from tests.builders.nightly import (
    AS_OF,
    build_data,
    change_data,
    make_config,
    write_config,
    write_data,
    write_data_folder,
)

DAY = date.fromisoformat(AS_OF)
NEXT_DAY = date(2026, 4, 16)
ROOT = Path(__file__).resolve().parent.parent


def _ledger(state_url: str) -> dict[str, Any]:
    """What the state database remembers: cases, their opening entries, letters sent."""
    engine = open_state(state_url)
    try:
        with engine.connect() as conn:
            case_rows = {(r.case_no, r.status, r.tier) for r in conn.execute(select(cases.c.case_no, cases.c.status,
                                                                                       cases.c.tier))}
            openings = Counter(conn.execute(select(case_history.c.case_no)
                                            .where(case_history.c.from_status.is_(None))).scalars())
            sent = [tuple(r) for r in conn.execute(select(
                NOTIFICATIONS.c.taxpayer_id, NOTIFICATIONS.c.rule_id, NOTIFICATIONS.c.period, NOTIFICATIONS.c.kind,
                NOTIFICATIONS.c.sent_on, NOTIFICATIONS.c.package_id))]
    finally:
        engine.dispose()
    return {"cases": case_rows, "openings": openings, "sent": sent}


def _packages(folder: Path) -> set[tuple[str, str]]:
    return {(r["taxpayer_id"], r["package_id"]) for r in read_manifest(folder / "letters" / "manifest.csv")}


def _nightly_process(config: Path, as_of: str, *, fault: str = "",
                     extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    env = {**os.environ, FAULT_ENV: fault} if fault else {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "nightly", "--config", str(config), "--as-of", as_of,
                             *extra], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ------------------------------------------------------------------------------------------------ idempotent


def test_same_day_twice_the_second_does_nothing(tmp_path: Path, state_url: str) -> None:
    config = make_config(tmp_path, state_url, data=write_data_folder(tmp_path / "data"))
    first = run_nightly(config, DAY)
    assert first.status == "succeeded" and first.run.run_id == "20260415-1"
    folder = first.output_dir
    assert is_complete(folder) and json.loads((folder / MARKER).read_text())["run_id"] == "20260415-1"
    before = _ledger(state_url)
    assert before["sent"] and before["cases"]
    stamp = (folder / MARKER).stat().st_mtime_ns

    second = run_nightly(config, DAY)
    assert second.status == "skipped" and second.run.run_id == "20260415-1"
    assert (folder / MARKER).stat().st_mtime_ns == stamp
    assert _ledger(state_url) == before
    engine = open_state(state_url)
    assert [r.run_id for r in list_runs(engine)] == ["20260415-1"]

    forced = run_nightly(config, DAY, force=True)
    assert forced.status == "succeeded" and forced.run.run_id == "20260415-2" and forced.run.forced
    after = _ledger(state_url)
    # the same findings again: no case opened twice, and the suppression ledger keeps every letter back
    assert after["cases"] == before["cases"] and after["openings"] == before["openings"]
    assert after["sent"] == before["sent"]
    assert (forced.run.counts or {})["letters"]["packages"] == 0
    assert (forced.run.counts or {})["letters"]["suppressed_findings"] == len(before["sent"])
    assert json.loads((folder / MARKER).read_text())["run_id"] == "20260415-2"
    assert not any((tmp_path / "runs" / ".staging").iterdir())


def test_cli_nightly_and_runs_commands(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    config = write_config(tmp_path, state, data=write_data_folder(tmp_path / "data"))
    runner = CliRunner()
    result = runner.invoke(main, ["nightly", "--config", str(config), "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    assert "完成：运行 20260415-1" in result.output and "report.html" in result.output
    again = runner.invoke(main, ["nightly", "--config", str(config), "--as-of", AS_OF])
    assert again.exit_code == 0 and "未重复运行" in again.output
    listed = runner.invoke(main, ["runs", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "20260415-1" in listed.output and "成功" in listed.output
    shown = runner.invoke(main, ["runs", "show", "20260415-1", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "输入数据指纹" in shown.output and "各阶段耗时" in shown.output and "taxpayers" in shown.output
    # counts as a table in Chinese, the trigger as runs list names it (issue 18)
    assert "触发：手动" in shown.output and "应享未享" in shown.output and "纳税人（户）" in shown.output
    assert '{"' not in shown.output and "manual" not in shown.output
    as_json = json.loads(runner.invoke(main, ["runs", "show", "20260415-1", "--json", "--config", str(config)]).output)
    assert set(as_json["timings"]) == {"snapshot", "evaluate", "diff", "cases", "letters", "tasks", "report",
                                       "publish", "commit"}
    assert as_json["periods"] == ["2025"] and len(as_json["input_hashes"]["taxpayers"]) == 64
    missing = runner.invoke(main, ["runs", "show", "20990101-1", "--config", str(config)])
    assert missing.exit_code == 4 and "没有运行 20990101-1" in missing.output
    bad = runner.invoke(main, ["nightly", "--config", str(config), "--as-of", "2026-13-01"])
    assert bad.exit_code == EXIT_USAGE and "不是日期" in bad.output


# ------------------------------------------------------------------------------------------- inputs changed


def test_a_day_whose_inputs_changed(tmp_path: Path, state_url: str) -> None:
    data = build_data()
    folder = write_data(tmp_path / "data", data)
    config = make_config(tmp_path, state_url, data=folder)
    day1 = run_nightly(config, DAY)
    touched = change_data(data)
    write_data(folder, data)
    day2 = run_nightly(config, NEXT_DAY)
    assert day2.run.baseline_run_id == day1.run.run_id
    assert day2.run.input_hashes != day1.run.input_hashes

    diff = pl.read_parquet(day2.output_dir / "diff.parquet")
    status = {(t, r): s for t, r, s in diff.select("taxpayer_id", "rule_id", "status").iter_rows()}
    (changed,), (resolved,), (kind_changed,), (new,) = (touched[k] for k in ("changed", "resolved", "kind_changed",
                                                                              "new"))
    assert status[(changed, "small_low_profit_cit")] == "changed"
    assert status[(resolved, "small_low_profit_cit")] == "resolved"
    assert status[(kind_changed, "small_low_profit_cit")] == "changed"
    assert {s for (t, _), s in status.items() if t == new} == {"new"}
    others = {s for (t, _), s in status.items() if t not in (changed, resolved, kind_changed, new)}
    assert others == {"persisting"}
    row = diff.filter((pl.col("taxpayer_id") == changed) & (pl.col("rule_id") == "small_low_profit_cit")).row(
        0, named=True)
    assert row["changes"].startswith("金额 ") and str(row["estimated_amount"]) == "246913.40"
    kind_row = diff.filter((pl.col("taxpayer_id") == kind_changed) & (pl.col("rule_id") == "small_low_profit_cit"))
    assert kind_row["changes"][0].startswith("类型 待核实 → 应享未享")
    counts = day2.run.counts or {}
    assert counts["diff"] == {s: int((diff["status"] == s).sum()) for s in ("new", "changed", "persisting", "resolved")}

    # letters only for the new or changed findings a taxpayer may be told
    told = pl.read_parquet(day2.output_dir / "letters-findings.parquet")
    assert set(told["taxpayer_id"]) <= {changed, kind_changed, new}
    assert resolved not in set(told["taxpayer_id"])
    assert {r["taxpayer_id"] for r in read_manifest(day2.output_dir / "letters" / "manifest.csv")} == \
        set(told["taxpayer_id"])
    assert (diff.filter(pl.col("status") == "persisting").join(told, on=["taxpayer_id", "period", "rule_id"],
                                                                how="semi").height == 0)
    report = (day2.output_dir / "report.html").read_text(encoding="utf-8")
    assert f"比对基线</dt><dd>{day1.run.run_id}" in report
    assert "近期运行发现数趋势" in report


# -------------------------------------------------------------------------------------------------- crashes


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The run the crash tests compare with: the same data, never interrupted (output folder, ledgers)."""
    ref_dir = tmp_path_factory.mktemp("reference")
    ref_state = f"sqlite:///{ref_dir / 'state.sqlite'}"
    reference = run_nightly(make_config(ref_dir, ref_state, data=write_data_folder(ref_dir / "data")), DAY)
    return reference.output_dir, _ledger(ref_state)


@pytest.mark.parametrize(("state_url", "stage"), [
    ("sqlite", "cases"), ("sqlite", "letters"), ("sqlite", "commit"),
    pytest.param("postgresql", "commit", marks=pytest.mark.postgres),
], indirect=["state_url"])
def test_killed_mid_run_next_start_completes_without_duplicates(tmp_path: Path, state_url: str, stage: str,
                                                               uninterrupted: tuple[Path, dict[str, Any]]) -> None:
    reference, expected = uninterrupted
    data = write_data_folder(tmp_path / "data")
    state = state_url
    config = write_config(tmp_path, state, data=data)
    crashed = _nightly_process(config, AS_OF, fault=f"{stage}:kill")
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err
    engine = open_state(state)
    dead = get_run(engine, "20260415-1")
    assert dead.status == "running" and dead.stage == stage
    final = tmp_path / "runs" / AS_OF
    assert _ledger(state)["sent"] == []  # letters are recorded only when the run commits
    if stage == "commit":
        assert is_complete(final)  # published, not committed
    else:
        assert not final.exists() and any((tmp_path / "runs" / ".staging").iterdir())

    done = run_nightly(make_config(tmp_path, state, data=data), DAY)
    assert done.status == "succeeded" and done.abandoned == ("20260415-1",)
    assert get_run(engine, "20260415-1").status == "abandoned"
    got = _ledger(state)
    assert got["cases"] == expected["cases"]
    assert set(got["openings"].values()) == {1}  # no case opened twice
    assert Counter(got["sent"]) == Counter(expected["sent"])  # each letter recorded once, same packages
    assert _packages(done.output_dir) == _packages(reference)
    assert json.loads((final / MARKER).read_text())["run_id"] == "20260415-2"
    assert not any((tmp_path / "runs" / ".staging").iterdir())


def test_a_second_nightly_is_refused_while_one_runs_and_an_interrupted_run_is_recorded(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    data = write_data_folder(tmp_path / "data")
    config = write_config(tmp_path, state, data=data)
    slow = _nightly_process(config, AS_OF, fault="evaluate:sleep=60")
    engine = open_state(state)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list_runs(engine)
        if runs and runs[0].stage == "evaluate":
            break
        time.sleep(0.2)
    else:
        slow.kill()
        pytest.fail("the slow nightly never reached its evaluate stage: " + slow.communicate()[1])
    refused = CliRunner().invoke(main, ["nightly", "--config", str(config), "--as-of", AS_OF])
    assert refused.exit_code == EXIT_LOCKED
    assert "夜间批处理（业务日期 2026-04-15）" in refused.output and "正在运行" in refused.output
    with pytest.raises(LockHeldError):
        run_nightly(make_config(tmp_path, state, data=data), NEXT_DAY)

    slow.send_signal(signal.SIGTERM)
    slow.communicate(timeout=30)
    assert slow.returncode != 0
    interrupted = get_run(engine, "20260415-1")
    assert interrupted.status == "failed" and "中断" in (interrupted.error or "")
    done = run_nightly(make_config(tmp_path, state, data=data), DAY)
    assert done.status == "succeeded" and done.run.attempt == 2


def test_a_failed_stage_is_recorded_and_the_day_runs_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    config = make_config(tmp_path, state, data=write_data_folder(tmp_path / "data"))
    monkeypatch.setenv(FAULT_ENV, "diff:raise")
    with pytest.raises(NightlyError, match="故障注入"):
        run_nightly(config, DAY)
    engine = open_state(state)
    failed = get_run(engine, "20260415-1")
    assert failed.status == "failed" and failed.error == "[diff] 故障注入：阶段 diff 失败"
    assert set(failed.timings or {}) == {"snapshot", "evaluate"}
    monkeypatch.delenv(FAULT_ENV)
    assert run_nightly(config, DAY).status == "succeeded"


def test_a_broken_data_folder_fails_with_the_readers_message(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    data = write_data_folder(tmp_path / "data")
    (data / "indicators.csv").unlink()
    result = CliRunner().invoke(main, ["nightly", "--config", str(write_config(tmp_path, state, data=data)),
                                       "--as-of", AS_OF])
    assert result.exit_code == 2 and "indicators" in result.output
    run = get_run(open_state(state), "20260415-1")
    assert run.status == "failed" and run.stage == "snapshot" and "indicators" in (run.error or "")


# ------------------------------------------------------------------------------------------ outputs and logs


def test_outputs_report_and_masked_logs(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    data = build_data()
    data.taxpayers.append({**data.taxpayers[0], "taxpayer_id": "91330106MA2B3C4D5X"})  # bad check digit
    folder = write_data(tmp_path / "data", data)
    config = write_config(tmp_path, state, data=folder, kinds=("year", "quarter", "month"))
    result = CliRunner().invoke(main, ["nightly", "--config", str(config), "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    out = tmp_path / "runs" / AS_OF
    marker = json.loads((out / MARKER).read_text())
    for name in ("findings.parquet", "findings.csv", "diff.parquet", "diff.csv", "quarantine.csv", "report.html",
                 "run.json", "inputs.json", "letters/manifest.csv", "periods/2025/findings.parquet",
                 "periods/2026Q1/summary.json", "periods/2026-03/findings.csv"):
        assert name in marker["files"], name
    assert any(f.startswith("tasks/") and f.endswith(".xlsx") for f in marker["files"])
    run = json.loads((out / "run.json").read_text())
    assert run["periods"] == ["2025", "2026Q1", "2026-03"] and run["counts"]["quarantine"] >= 1

    report = (out / "report.html").read_text(encoding="utf-8")
    for heading in ("按类型", "按政策", "与基线比对", "按区县", "按主管税务机关", "风险应对案件", "政策礼包",
                    "数据质量",
                    "各阶段耗时", "近期运行发现数趋势"):
        assert heading in report, heading
    assert report.count("<svg") >= 6
    assert "taxpayers.csv" in report and "校验" in report  # the quarantined row, by file and reason
    assert "国家税务总局杭州市" in report  # authorities by name
    # one labelled time zone; amounts in 元 in every table cell, never 万元 beside 元 (issue 18)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 北京时间", report)
    cells = re.findall(r'<td class="n">([^<]*元)</td>', report)
    assert cells and not [c for c in cells if "万元" in c]
    assert "<script" not in report and "src=" not in report and "<link" not in report  # self-contained

    lines = (tmp_path / "logs" / "zhixiang.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert {"阶段开始：评估", "阶段完成：提交（0.00 秒）"} & {r["msg"] for r in records}
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    text = "\n".join(lines)
    for taxpayer in data.taxpayers:
        assert taxpayer["taxpayer_id"] not in text


@pytest.mark.postgres
def test_database_source_is_snapshotted_to_parquet(tmp_path: Path) -> None:
    import psycopg

    admin = os.environ.get("ZHIXIANG_TEST_PG_URL")
    if not admin:
        pytest.skip("no PostgreSQL server (set ZHIXIANG_TEST_PG_URL or use scripts/test)")
    name = f"zx_src_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        folder = write_data_folder(tmp_path / "data")
        loaded = CliRunner().invoke(main, ["load", "--data", str(folder), "--to", url])
        assert loaded.exit_code == 0, loaded.output
        state = f"sqlite:///{tmp_path / 'state.sqlite'}"
        done = run_nightly(make_config(tmp_path, state, data=url), DAY)
        inputs = done.output_dir / "inputs"
        assert sorted(p.name for p in inputs.glob("*.parquet")) == [
            "claims.parquet", "indicators.parquet", "risk_events.parquet", "taxpayers.parquet"]
        manifest = json.loads((inputs / "manifest.json").read_text())
        assert {t: m["sha256"] for t, m in manifest["tables"].items()} == done.run.input_hashes
        assert done.run.data_source.startswith("postgresql://")
        # the same findings as from the folder
        (tmp_path / "f").mkdir()
        from_folder = run_nightly(make_config(tmp_path / "f", f"sqlite:///{tmp_path / 'f.sqlite'}", data=folder), DAY)
        key = ["taxpayer_id", "period", "rule_id", "kind"]
        assert pl.read_parquet(done.output_dir / "findings.parquet").select(key).sort(key).equals(
            pl.read_parquet(from_folder.output_dir / "findings.parquet").select(key).sort(key))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_count_of_runs_is_one_row_per_attempt(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    config = make_config(tmp_path, state, data=write_data_folder(tmp_path / "data"))
    run_nightly(config, DAY)
    run_nightly(config, NEXT_DAY)
    engine = open_state(state)
    from notifier.nightly.runs import nightly_runs

    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(nightly_runs)).scalar() == 2
    second = get_run(engine, "20260416-1")
    assert second.baseline_run_id == "20260415-1"
    assert (second.counts or {})["diff"]["new"] == 0 and (second.counts or {})["letters"]["packages"] == 0


def test_a_day_without_findings_still_reports(tmp_path: Path) -> None:
    """Periods with no figures at all: empty findings, an empty diff, a report without charts to draw."""
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    config = make_config(tmp_path, state, data=write_data_folder(tmp_path / "data"), kinds=("month",))
    done = run_nightly(config, date(2027, 7, 1))  # 2027-06: no indicators for it
    assert done.status == "succeeded" and done.run.periods == ["2027-06"]
    assert (done.run.counts or {})["findings"] == {"unclaimed": 0, "improper": 0, "undetermined": 0}
    assert pl.read_parquet(done.output_dir / "diff.parquet").height == 0
    report = (done.output_dir / "report.html").read_text(encoding="utf-8")
    assert "本次运行没有发现" in report and "没有被隔离的问题数据" in report


def test_runs_list_flags_a_running_attempt_whose_heartbeat_stopped(tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from notifier.nightly.runs import nightly_runs, start_run, utcnow

    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    config = write_config(tmp_path, state, data=tmp_path)
    engine = open_state(state)
    start_run(engine, DAY, trigger="schedule", forced=False, data_source="data")
    live = CliRunner().invoke(main, ["runs", "list", "--config", str(config)])
    assert "运行中" in live.output and "心跳已停止" not in live.output
    with engine.begin() as conn:
        conn.execute(update(nightly_runs).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    stale = CliRunner().invoke(main, ["runs", "show", "20260415-1", "--config", str(config)])
    assert "心跳已停止 300 秒，下次启动将重做" in stale.output
