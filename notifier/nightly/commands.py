"""`zhixiang nightly`, `zhixiang schedule`, `zhixiang runs list|show`: thin edges over notifier/nightly/pipeline.py,
notifier/nightly/scheduler.py and the run ledger (notifier/nightly/runs.py).

Exit codes: 0 done (or already done); 2 input unusable; 3 rule catalogue broken; 4 runtime failure;
64 configuration wrong; 75 (EXIT_LOCKED) another nightly or scheduler holds the lock — try later.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from engine.cli_zh import ISO_DATE
from engine.errors import EXIT_LETTERS_FAILED, ZhixiangError, exit_on_user_error
from notifier.db import StateDatabaseError
from notifier.nightly.config import BEIJING, Config, load_config, new_state_notice, state_label
from notifier.nightly.logs import LOG_FILE, setup_logging
from notifier.nightly.runs import STATUS_LABELS, LockHeldError, RunRecord, get_run, list_runs, utcnow

_CONFIG_HELP = "配置文件（TOML）；默认读取环境变量 ZHIXIANG_CONFIG 或当前目录的 zhixiang.toml"


def _config(path: Path | None, **overrides: object) -> Config:
    config = load_config(path).with_overrides(**overrides)
    setup_logging(level=config.logging.level, console=config.logging.console, log_dir=config.log_dir)
    return config


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} 不是日期：应为 YYYY-MM-DD，如 2026-04-15", param_hint="--as-of") from None


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # Turned into an exception so the run records itself as failed (interrupted) before exiting.
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@click.command("nightly")
@click.option("--data", "data", default=None, help="档案数据目录或 postgresql:// 地址（覆盖配置 paths.data）")
@click.option("--as-of", "as_of", type=ISO_DATE, required=True, help="业务日期：据此确定应评估的所属期")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="运行输出根目录（覆盖配置 paths.out）；结果发布到 OUT/业务日期/")
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help=_CONFIG_HELP)
@click.option("--state", "state", default=None, help="状态数据库（覆盖配置 state_url）")
@click.option("--rules", "rules", default=None, type=click.Path(path_type=Path, file_okay=False), help="规则目录")
@click.option("--force", is_flag=True, help="该业务日期已成功运行过也重新运行")
@click.option("--accept-shrink", "accept_shrink", is_flag=True,
              help="输入数据比上次成功运行明显减少时仍照常运行（确认减少属实时使用；配置 guards.accept_shrink）")
@click.option("--adopt-out", "adopt_out", is_flag=True,
              help="输出目录中已有其他文件时仍使用它（这些文件不会被删除）")
@click.option("--trigger", "trigger", type=click.Choice(["manual", "schedule"]), default="manual", hidden=True)
@exit_on_user_error
def nightly_command(data: str | None, as_of: str, out: Path | None, config_path: Path | None, state: str | None,
                    rules: Path | None, force: bool, accept_shrink: bool, adopt_out: bool,
                    trigger: str) -> None:
    """运行一个业务日期的夜间批处理：评估、比对、案件台账、政策礼包、任务清单、运行报告。

    同一业务日期已成功运行过则不重复运行（除非 --force）；中途崩溃的运行在下次启动时从头重做，
    不会重复立案，也不会重复发送信函。
    """
    from notifier.nightly.pipeline import run_nightly

    day = _date(as_of)
    config = _config(config_path, data=data, out=out, rules=rules, state_url=state)
    if accept_shrink:
        config = config.model_copy(update={"guards": config.guards.model_copy(update={"accept_shrink": True})})
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = run_nightly(config, day, force=force, trigger=trigger, adopt_out=adopt_out)
    except StateDatabaseError as exc:
        raise ZhixiangError(str(exc)) from exc
    except (ZhixiangError, KeyboardInterrupt):
        raise
    except Exception as exc:  # not a user error: the traceback is in the log, the user gets the gist
        where = config.log_dir / LOG_FILE if config.log_dir else "终端输出"
        raise ZhixiangError(f"夜间批处理内部错误（{type(exc).__name__}: {exc}）；运行已记为失败，详细信息见 {where}") \
            from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    run = outcome.run
    if outcome.status == "skipped":
        click.echo(f"业务日期 {day} 已于运行 {run.run_id} 成功完成，未重复运行（输出 {run.output_dir}）。"
                   "如需重跑请加 --force。")
        return
    if outcome.abandoned:
        click.echo(f"已清理中断的运行：{'、'.join(outcome.abandoned)}")
    counts = run.counts or {}
    findings = counts.get("findings", {})
    diff = counts.get("diff", {})
    letters = counts.get("letters", {})
    cases = counts.get("cases", {})
    click.echo(
        f"完成：运行 {run.run_id}，业务日期 {day}，所属期 {'、'.join(run.periods or [])}。\n"
        f"  发现：应享未享 {findings.get('unclaimed', 0):,}，违规享受 {findings.get('improper', 0):,}，"
        f"待核实 {findings.get('undetermined', 0):,}\n"
        f"  比对：新增 {diff.get('new', 0):,}，变化 {diff.get('changed', 0):,}，持续 {diff.get('persisting', 0):,}，"
        f"消除 {diff.get('resolved', 0):,}\n"
        f"  案件：新立 {cases.get('opened', 0):,}，更新 {cases.get('updated', 0):,}，消除 {cases.get('cleared', 0):,}；"
        f"政策礼包 {letters.get('packages', 0):,} 份\n"
        f"  输出：{outcome.output_dir}（报告 report.html）")
    if letters.get("failed"):
        click.echo(f"{letters['failed']:,} 户的信函生成或发送失败（其余信函均已写出），"
                   "详见 letters/manifest.csv", err=True)
        sys.exit(EXIT_LETTERS_FAILED)


@click.command("schedule")
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help=_CONFIG_HELP)
@exit_on_user_error
def schedule_command(config_path: Path | None) -> None:
    """按配置的时间（默认每天 02:00 北京时间）自动运行夜间批处理；同一状态数据库只能有一个调度器。"""
    from notifier.nightly.config import config_file
    from notifier.nightly.scheduler import NightlyScheduler

    config = _config(config_path)
    file = config_file(config_path, os.environ)
    try:
        code = NightlyScheduler(config, config_file=file.resolve() if file else None).run()
    except LockHeldError as exc:
        raise LockHeldError(f"已有调度器在运行，本调度器退出：{exc}") from None
    except StateDatabaseError as exc:
        raise ZhixiangError(str(exc)) from exc
    sys.exit(code)


@click.group("runs")
def runs_group() -> None:
    """夜间批处理运行台账。"""


def _console() -> Console:
    """stdout; wide when piped, so ids and paths are not wrapped."""
    return Console(width=None if sys.stdout.isatty() else 200)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _open(config_path: Path | None, state: str | None) -> tuple[Config, Engine]:
    from notifier.db import open_state

    config = load_config(config_path).with_overrides(state_url=state)
    notice = new_state_notice(config.state_url)
    try:
        engine = open_state(config.state_url)
    except StateDatabaseError as exc:
        raise ZhixiangError(str(exc)) from exc
    if notice:
        click.echo(notice, err=True)
    return config, engine


def _status(run: RunRecord, config: Config) -> str:
    """The status label; a `running` attempt whose heartbeat stopped is flagged (it will be redone)."""
    if run.status == "running":
        silent = (utcnow() - run.heartbeat_at).total_seconds()
        if silent > config.locks.stale_after_seconds:
            return f"运行中？（心跳已停止 {silent:.0f} 秒，下次启动将重做）"
    return run.status_label


@runs_group.command("list")
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help=_CONFIG_HELP)
@click.option("--state", "state", default=None, help="状态数据库（覆盖配置 state_url）")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(min=1), help="最多列出的运行数")
@click.option("--status", type=click.Choice(sorted(STATUS_LABELS)), default=None,
              help="只列出该状态的运行（" + "、".join(f"{k} {v}" for k, v in sorted(STATUS_LABELS.items())) + "）")
@exit_on_user_error
def runs_list_command(config_path: Path | None, state: str | None, limit: int, status: str | None) -> None:
    """列出最近的运行（新的在前）。"""
    config, engine = _open(config_path, state)
    runs = list_runs(engine, limit=limit, status=status)
    if not runs:
        click.echo(f"状态数据库 {state_label(config.state_url)} 的运行台账为空。")
        return
    table = Table(title="夜间批处理运行台账")
    for col, justify in (("运行", "left"), ("业务日期", "left"), ("状态", "left"), ("阶段", "left"),
                         ("触发", "left"), ("开始（北京时间）", "left"), ("耗时（秒）", "right"), ("应享未享", "right"),
                         ("违规享受", "right"), ("待核实", "right"), ("新增/变化/消除", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in runs:
        f = (r.counts or {}).get("findings", {})
        d = (r.counts or {}).get("diff", {})
        table.add_row(r.run_id, str(r.business_date), _status(r, config), r.stage or "",
                      TRIGGER_LABELS.get(r.trigger, r.trigger) + ("·强制" if r.forced else ""),
                      _when(r.started_at), f"{r.seconds:.1f}" if r.seconds is not None else "",
                      f"{f.get('unclaimed', '')}", f"{f.get('improper', '')}", f"{f.get('undetermined', '')}",
                      f"{d.get('new', '')}/{d.get('changed', '')}/{d.get('resolved', '')}" if d else "")
    _console().print(table)


@runs_group.command("show")
@click.argument("run_id")
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help=_CONFIG_HELP)
@click.option("--state", "state", default=None, help="状态数据库（覆盖配置 state_url）")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@exit_on_user_error
def runs_show_command(run_id: str, config_path: Path | None, state: str | None, as_json: bool) -> None:
    """显示一次运行的全部记录：输入指纹、所属期、计数、各阶段耗时、错误和输出目录。"""
    config, engine = _open(config_path, state)
    run = get_run(engine, run_id)
    if as_json:
        click.echo(json.dumps(_as_dict(run), ensure_ascii=False, indent=2, default=str))
        return
    print_run(run, _console(), status=_status(run, config))


def _as_dict(run: RunRecord) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(run)


def print_run(run: RunRecord, console: Console, *, status: str | None = None) -> None:
    """A run, section by section."""
    from notifier.nightly.runs import STAGE_LABELS

    console.print(f"[bold]运行 {run.run_id}[/bold]  业务日期 {run.business_date}  状态 {status or run.status_label}"
                  + (f"（阶段 {STAGE_LABELS.get(run.stage or '', run.stage)}）" if run.status != "succeeded" else ""))
    trigger = TRIGGER_LABELS.get(run.trigger, run.trigger)
    console.print(f"触发：{trigger}{'（强制重跑）' if run.forced else ''}  第 {run.attempt} 次尝试  "
                  f"主机 {run.host.split('/', 1)[0]} 进程 {run.pid}")
    console.print(f"开始 {_when(run.started_at)}  结束 {_when(run.finished_at)}  "
                  f"最近心跳 {_when(run.heartbeat_at)}（北京时间）")
    console.print(f"数据来源：{run.data_source}")
    console.print(f"规则目录版本：{run.ruleset_version or ''}")
    console.print(f"所属期：{'、'.join(run.periods or [])}")
    console.print(f"比对基线：{run.baseline_run_id or '无'}")
    console.print(f"输出目录：{run.output_dir or ''}")
    if run.error:
        console.print(f"[red]错误：{run.error}[/red]")
    if run.input_hashes:
        hashes = Table(title="输入数据指纹（sha256）")
        hashes.add_column("表")
        hashes.add_column("sha256")
        for name, digest in run.input_hashes.items():
            hashes.add_row(name, digest)
        console.print(hashes)
    if run.timings:
        timing = Table(title="各阶段耗时")
        timing.add_column("阶段")
        timing.add_column("秒", justify="right")
        for stage, seconds in run.timings.items():
            timing.add_row(STAGE_LABELS.get(stage, stage), f"{seconds:.2f}")
        console.print(timing)
    if run.counts:
        table = Table(title="计数")
        table.add_column("项目")
        table.add_column("数量", justify="right")
        for label, value in count_rows(run.counts):
            table.add_row(label, value)
        console.print(table)


#: How `runs list` and `runs show` name a run's trigger.
TRIGGER_LABELS: dict[str, str] = {"manual": "手动", "schedule": "调度"}


def _count_labels() -> dict[str, str]:
    from engine.findings import KIND_LABELS, TIER_LABELS
    from notifier.nightly.diff import DIFF_LABELS
    from profiles.schema import ENUM_LABELS

    return {
        **KIND_LABELS, **TIER_LABELS, **DIFF_LABELS, **ENUM_LABELS["preferred_channel"],
        "taxpayers": "纳税人（户）", "findings": "发现（条）", "amounts": "涉及金额（元）",
        "by_period": "按所属期", "diff": "与上次运行比对", "quarantine": "隔离的数据行", "cases": "案件台账",
        "tasks": "任务清单", "authorities": "税务机关", "rows": "行", "warnings": "警告", "letters": "政策礼包",
        "packages": "礼包", "by_channel": "按渠道", "suppressed_findings": "冷却期内未重复告知的事项",
        "suppressed_taxpayers": "冷却期内已告知（户）", "opted_out": "拒收政策推送（户）", "failed": "失败",
        "total_saving": "预计可减免合计（元）", "findings_told": "告知的事项", "opened": "新立案",
        "updated": "更新证据", "reopened": "重新打开", "cleared": "已消除", "unchanged": "未变化",
        "kept_decided": "已有结论、证据未变", "reminders": "低风险预提醒", "verification": "数据核实",
        "duplicates": "重复行", "by_tier": "按风险等级",
    }


def count_rows(counts: Mapping[str, Any], depth: int = 0) -> list[tuple[str, str]]:
    """A run's counts as (label, value) lines, nested keys indented; numbers with thousands separators."""
    labels = _count_labels()
    rows: list[tuple[str, str]] = []
    for key, value in counts.items():
        label = "  " * depth + labels.get(str(key), str(key))
        if isinstance(value, Mapping):
            rows.append((label, ""))
            rows.extend(count_rows(value, depth + 1))
        elif isinstance(value, int) and not isinstance(value, bool):
            rows.append((label, f"{value:,}"))
        else:
            try:
                rows.append((label, f"{Decimal(str(value)):,.2f}"))
            except ArithmeticError:
                rows.append((label, str(value)))
    return rows


COMMANDS = [nightly_command, schedule_command, runs_group]
