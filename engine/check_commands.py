"""`zhixiang check`: one taxpayer's findings now, through durable-rules (or the batch engine); `--all` runs
a whole period one taxpayer at a time through the same path and writes the batch's files (the parity harness)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue
from engine.commands import _period, condition_line, err, finding_headline, load_inputs, out, print_summary
from engine.errors import InputError, exit_on_user_error


def print_findings(rows: list[dict[str, Any]], taxpayer: str, label: str, name: str | None) -> None:
    """Findings as a tax officer reads them: the verdict, the amount, then every condition."""
    if not rows:
        click.echo(f"纳税人 {taxpayer} 在 {label} 没有应享未享、违规享受或待核实的政策。")
        return
    out.print(f"[bold]{name or taxpayer}[/bold]（{taxpayer}）{label}：{len(rows)} 条需关注")
    for row in rows:
        out.print(f"\n{finding_headline(row)}", highlight=False)
        if row["reasons"]:
            out.print(f"  {row['reasons']}", highlight=False)
        for ev in row["evidence"]:
            out.print(f"    {condition_line(ev)}", highlight=False)
        out.print(f"  [dim]依据：{row['basis']}（规则版本 {row['rule_version']}）[/dim]", highlight=False)


@click.command("check")
@click.option("--data", "data", default=None,
              help="档案数据目录（或 postgresql://…）；写 - 表示从标准输入读取一户纳税人的 JSON 画像")
@click.option("--stdin", "from_stdin", is_flag=True, help="从标准输入读取一户纳税人的 JSON 画像（同 --data -）")
@click.option("--period", "period", required=True, help="所属期：年度 2025、季度 2026Q3 或月份 2026-09")
@click.option("--taxpayer", "taxpayer", default=None, help="纳税人识别号")
@click.option("--all", "all_taxpayers", is_flag=True, help="逐户核查数据中的全部纳税人，按批量格式写出结果")
@click.option("--out", "out_dir", default=None, type=click.Path(path_type=Path), help="--all 的输出目录")
@click.option("--engine", "engine", type=click.Choice(["durable", "polars"]), default="durable", show_default=True,
              help="durable：实时规则引擎；polars：批量引擎（用于比对）")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@click.option("--rules", "rules", default=str(DEFAULT_RULES_DIR), type=click.Path(path_type=Path),
              show_default="rules/", help="规则目录")
@click.option("--quiet", is_flag=True, help="--all 时不显示进度和汇总表")
@exit_on_user_error
def check_command(data: str | None, from_stdin: bool, period: str, taxpayer: str | None, all_taxpayers: bool,
                  out_dir: Path | None, engine: str, as_json: bool, rules: Path, quiet: bool) -> None:
    """实时核查：一户纳税人当前的应享未享、违规享受和待核实事项（与批量评估同样的证据和理由）。"""
    from engine.realtime import RealtimeChecker, profile_from_json, profile_from_tables

    stdin = from_stdin or data == "-"
    if not stdin and data is None:
        raise InputError("请用 --data 指定档案数据目录，或用 --stdin（--data -）从标准输入提供一户纳税人的 JSON 画像")
    if all_taxpayers:
        if stdin:
            raise InputError("--all 需要档案数据目录，不能与 --stdin 同用")
        if out_dir is None:
            raise InputError("--all 需要 --out 输出目录")
        _check_all(str(data), _period(period), out_dir, engine, rules, quiet)
        return
    if not stdin and not taxpayer:
        raise InputError("请用 --taxpayer 指定纳税人识别号，或用 --all 逐户核查全部纳税人")
    p = _period(period)
    if engine == "durable":
        from engine.backends.durable import require_durable

        require_durable()
    if stdin:
        catalogue = load_catalogue(rules)
        profile = profile_from_json(sys.stdin.read(), known_incentives=catalogue.known_incentives)
        if taxpayer and taxpayer != profile.taxpayer_id:
            raise InputError(f"标准输入中的纳税人是 {profile.taxpayer_id}，不是 --taxpayer 指定的 {taxpayer}")
    else:
        catalogue, profiles = load_inputs(str(data), rules)
        found = profile_from_tables(profiles, str(taxpayer))
        if found is None:
            raise InputError(f"纳税人 {taxpayer} 不在 {data} 的 taxpayers 表中"
                             "（或该行因数据问题被隔离，见 quarantine）")
        profile = found
    checker = RealtimeChecker(catalogue, engine=engine)  # type: ignore[arg-type]
    rows = checker.check(profile, p)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not profile.judged_for(p):
        click.echo(f"纳税人 {profile.taxpayer_id} 在 {p.label} 没有指标数据或申报记录，无可核查的政策。")
        return
    print_findings(rows, profile.taxpayer_id, p.label, (profile.taxpayer or {}).get("name"))
    sys.stdout.flush()


def _check_all(data: str, p: Any, out_dir: Path, engine: str, rules: Path, quiet: bool) -> None:
    from engine.realtime import evaluate_period_durable, judged_count
    from engine.run import evaluate_period, write_outputs
    from profiles.database import display_url

    if engine == "durable":
        from engine.backends.durable import require_durable

        require_durable()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
        catalogue, profiles = load_inputs(data, rules, progress, snapshot_dir=out_dir / "snapshot")
        started = time.perf_counter()
        if engine == "durable":
            total = judged_count(profiles, p)
            task = progress.add_task(f"逐户实时核查 {p.label}（durable-rules）", total=total)
            result = evaluate_period_durable(
                catalogue, profiles, p,
                on_taxpayer=lambda done: progress.update(task, completed=done) if done % 50 == 0 or done == total
                else None)
        else:
            task = progress.add_task(f"批量评估 {p.label}（Polars）", total=None)
            result = evaluate_period(catalogue, profiles, p)
            progress.update(task, total=1, completed=1)
        seconds = time.perf_counter() - started
        task = progress.add_task(f"写出结果到 {out_dir}", total=None)
        write_outputs(result, out_dir, data_source=display_url(data))
        progress.update(task, total=1, completed=1)
    if not quiet:
        print_summary(result, out)
    counts = result.counts()
    rate = result.taxpayers_evaluated / seconds if seconds > 0 else 0.0
    click.echo(f"完成（{engine}）：{result.taxpayers_evaluated:,} 户，用时 {seconds:.1f} 秒（{rate:,.0f} 户/秒）；"
               f"应享未享 {counts['unclaimed']:,} 条，违规享受 {counts['improper']:,} 条，"
               f"待核实 {counts['undetermined']:,} 条。输出目录 {out_dir}")


COMMANDS = [check_command]
