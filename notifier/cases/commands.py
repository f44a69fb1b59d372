"""`zhixiang cases …`: the case ledger from the command line — sync, list, show, assign, resolve, stats, export.

Each command parses its options, calls one function of notifier/cases/ledger.py, case_queries.py or tasks.py
and prints the result with rich. Every command takes `--state` (a SQLite file or postgresql:// URL;
env ZHIXIANG_STATE_URL); user mistakes come back as Chinese messages and exit codes, never tracebacks.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from engine.cli_zh import ISO_DATE
from engine.errors import InputError, ZhixiangError, exit_on_user_error
from engine.findings import STATUS_LABELS
from engine.findings.figures import money
from notifier.cases.ledger import (
    CASE_TIERS,
    TIER_LABELS,
    ServiceLevels,
    assign,
    close,
    read_findings_folder,
    resolve,
    send_back,
    sync_findings,
)
from notifier.cases.queries import Case, CaseFilter, count_cases, find_cases, get_case, history_of, rule_stats
from notifier.cases.status import (
    CLOSED,
    OPEN_STATUSES,
    RESOLUTIONS,
    STATUSES,
    VERIFYING,
    CaseError,
    allowed_next,
    parse_status,
)
from notifier.cases.tasks import export_task_lists
from notifier.db import StateDatabaseError, open_state
from notifier.nightly.config import BEIJING, load_config, new_state_notice, state_label


def _console() -> Console:
    """stdout; wide when it is not a terminal, so piped tables keep whole case numbers and names."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 200)

_TIER_NAMES = {**{t: t for t in CASE_TIERS}, **{v: k for k, v in TIER_LABELS.items()}, "verify": "verification"}


def _config_option(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    ctx.meta["zhixiang.config"] = value


def _state_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """--state, else the state_url of the configuration the nightly reads (--config, ZHIXIANG_CONFIG,
    ./zhixiang.toml, ZHIXIANG_STATE_URL)."""
    if value:
        return value
    try:
        return load_config(ctx.meta.get("zhixiang.config")).state_url
    except ZhixiangError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--config") from exc


def state_option(fn):  # type: ignore[no-untyped-def]
    """--state and --config, shared by every cases command: the state database the nightly uses."""
    fn = click.option(
        "--state", "state", default=None, callback=_state_url,
        help="状态数据库：SQLite 文件路径或 postgresql://用户@主机/数据库（默认取配置的 state_url，与夜间批处理相同）",
    )(fn)
    return click.option(
        "--config", "config_path", default=None, type=click.Path(path_type=Path, dir_okay=False), is_eager=True,
        expose_value=False, callback=_config_option,
        help="配置文件（TOML）；默认读取环境变量 ZHIXIANG_CONFIG 或当前目录的 zhixiang.toml",
    )(fn)


def _open(state: str) -> Engine:
    notice = new_state_notice(state)
    try:
        engine = open_state(state)
    except StateDatabaseError as exc:
        raise ZhixiangError(str(exc)) from exc
    if notice:
        click.echo(notice, err=True)
    return engine


def _date(value: str | None, option: str) -> date:
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"{option} 日期 {value!r} 格式不正确：应为 YYYY-MM-DD，如 2026-01-31") from exc


def _tiers(values: Sequence[str]) -> list[str]:
    tiers = []
    for v in values:
        if v not in _TIER_NAMES:
            raise CaseError(f"未知的等级 {v!r}：应为 high/medium/verification 或 高风险/中风险/数据核实")
        tiers.append(_TIER_NAMES[v])
    return tiers


def _actor(by: str | None) -> str:
    """Who is acting: --by, else ZHIXIANG_USER, else the login name (history must name a person)."""
    if by:
        return by
    try:
        return os.environ.get("ZHIXIANG_USER") or getpass.getuser()
    except (KeyError, OSError) as exc:  # no login name in some containers
        raise CaseError("无法确定操作人：请用 --by 指明姓名或工号（或设置环境变量 ZHIXIANG_USER）") from exc


def _when(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


@click.group("cases")
def cases_group() -> None:
    """风险应对案件：同步运行结果、分派、核实结论、任务清单和规则准确率。"""


# ---------------------------------------------------------------------------------------------- sync


@cases_group.command("sync")
@click.option("--findings", "findings_dir", required=True, type=click.Path(path_type=Path),
              help="zhixiang run 的输出目录（含 findings.parquet、summary.json）")
@state_option
@click.option("--run-id", "run_id", help="运行编号（默认取自 summary.json）")
@click.option("--as-of", "as_of", type=ISO_DATE, help="立案日期，办理期限由此起算（默认今天）")
@click.option("--period", "periods", multiple=True, help="本次运行覆盖的所属期（默认取自 summary.json）")
@click.option("--rule", "rules", multiple=True, help="本次运行覆盖的规则（默认取自 summary.json；未知时为全部规则）")
@click.option("--sla", "sla", multiple=True, metavar="等级=天数",
              help="办理时限，如 --sla high=10 --sla medium=20 --sla verification=30")
@exit_on_user_error
def sync_command(findings_dir: Path, state: str, run_id: str | None, as_of: str | None, periods: tuple[str, ...],
                 rules: tuple[str, ...], sla: tuple[str, ...]) -> None:
    """把一次运行的发现结果同步到案件台账：新立案、更新证据、消除不再发现的问题。"""
    folder = read_findings_folder(findings_dir)
    scope_periods = periods or folder.periods
    if not scope_periods:
        raise InputError(f"{findings_dir} 没有发现结果，也没有 summary.json：请用 --period 指明运行的所属期")
    engine = _open(state)
    report = sync_findings(
        engine, folder.findings, run_id=run_id or folder.run_id, as_of=_date(as_of, "--as-of"),
        periods=scope_periods, rules=rules or folder.rules, service_levels=ServiceLevels.parse(sla),
    )
    console = _console()
    console.print(f"[bold]案件同步[/bold]：运行 {report.run_id}，所属期 {'、'.join(scope_periods)}")
    table = Table()
    table.add_column("项目")
    table.add_column("数量", justify="right")
    for label, n in (("新立案", report.opened), ("证据更新", report.updated), ("重新打开", report.reopened),
                     ("已消除（不再发现）", report.cleared), ("无变化", report.unchanged),
                     ("其中已办结、证据未变", report.kept_decided), ("低风险（改为纳税人提醒）", report.reminders),
                     ("重复行（已忽略）", report.duplicates)):
        table.add_row(label, f"{n:,}")
    for tier in CASE_TIERS:
        table.add_row(f"本次发现·{TIER_LABELS[tier]}", f"{report.by_tier.get(tier, 0):,}")
    console.print(table)


# ---------------------------------------------------------------------------------------------- list


@cases_group.command("list")
@state_option
@click.option("--authority", "authorities", multiple=True, help="主管税务机关代码（可多次）")
@click.option("--tier", "tiers", multiple=True, help="high / medium / verification（高风险/中风险/数据核实）")
@click.option("--rule", "rules", multiple=True, help="规则编号（可多次）")
@click.option("--status", "statuses", multiple=True, help=f"状态：{'、'.join(STATUSES)}（可多次）")
@click.option("--period", "periods", multiple=True, help="所属期（可多次）")
@click.option("--assignee", help="承办人")
@click.option("--taxpayer", help="纳税人识别号")
@click.option("--overdue", is_flag=True, help="只看已超过办理期限的未办结案件")
@click.option("--as-of", "as_of", type=ISO_DATE, help="判断逾期和剩余天数的日期（默认今天）")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1), help="最多显示条数")
@exit_on_user_error
def list_command(state: str, authorities: tuple[str, ...], tiers: tuple[str, ...], rules: tuple[str, ...],
                 statuses: tuple[str, ...], periods: tuple[str, ...], assignee: str | None, taxpayer: str | None,
                 overdue: bool, as_of: str | None, limit: int) -> None:
    """按税务机关、等级、规则、状态、逾期筛选案件。"""
    day = _date(as_of, "--as-of")
    where = CaseFilter(authorities=authorities, tiers=_tiers(tiers), rules=rules,
                       statuses=[parse_status(s) for s in statuses], periods=periods, assignee=assignee,
                       taxpayer=taxpayer, overdue_on=day if overdue else None)
    engine = _open(state)
    rows = find_cases(engine, where, limit=limit)
    total = count_cases(engine, where) if len(rows) == limit else len(rows)
    if not total:
        click.echo(f"状态数据库 {state_label(state)} 中没有符合条件的案件。")
        return
    table = Table(title=f"案件 {total:,} 件" + (f"（显示前 {len(rows):,} 件）" if total > len(rows) else ""))
    table.add_column("案件编号", no_wrap=True)
    for header, justify in (("状态", "left"), ("等级", "left"), ("纳税人", "left"), ("所属期", "left"),
                            ("优惠政策", "left"), ("涉及金额", "right"), ("办理期限", "left"), ("剩余天数", "right"),
                            ("承办人", "left"), ("税务机关", "left")):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for c in rows:
        left = c.days_left(day) if c.is_open else None
        days = "" if left is None else (f"[red]{left}[/red]" if left < 0 else str(left))
        table.add_row(c.case_no, c.status, TIER_LABELS.get(c.tier, c.tier), f"{c.taxpayer_name}\n{c.taxpayer_id}",
                      c.period, c.rule_name, money(c.amount), c.due_on.isoformat(), days, c.assignee or "",
                      c.tax_authority)
    _console().print(table)


# ---------------------------------------------------------------------------------------------- show


@cases_group.command("show")
@click.argument("case_no")
@state_option
@click.option("--as-of", "as_of", type=ISO_DATE, help="判断逾期的日期（默认今天）")
@exit_on_user_error
def show_command(case_no: str, state: str, as_of: str | None) -> None:
    """显示一个案件：基本信息、逐项证据和全部处理记录。"""
    engine = _open(state)
    case = get_case(engine, case_no)
    console = _console()
    print_case(case, _date(as_of, "--as-of"), console)
    history = Table(title="处理记录")
    for header in ("时间（北京时间）", "操作人", "状态变化", "说明", "运行"):
        history.add_column(header)
    for h in history_of(engine, case.case_no):
        move = h.to_status if h.from_status is None else (
            h.from_status if h.from_status == h.to_status else f"{h.from_status} → {h.to_status}")
        history.add_row(_when(h.at), h.actor, move, h.note, h.run_id or "")
    console.print(history)


def print_case(case: Case, as_of: date, console: Console) -> None:
    """The case's facts and its evidence table."""
    facts = Table(show_header=False, title=f"案件 {case.case_no}")
    facts.add_column(style="bold")
    facts.add_column()
    overdue = f"（已逾期 {-case.days_left(as_of)} 天）" if case.is_overdue(as_of) else ""
    resolution = f"{case.resolution}：{case.resolution_reason}" if case.resolution_reason else (case.resolution or "")
    nexts = "、".join(allowed_next(case.status)) or "无"
    for label, value in (
        ("状态", f"{case.status}（可变更为：{nexts}）"), ("等级", TIER_LABELS.get(case.tier, case.tier)),
        ("纳税人", f"{case.taxpayer_name}（{case.taxpayer_id}）"),
        ("区县 / 税务机关", f"{case.district} / {case.tax_authority}"),
        ("所属期", case.period), ("优惠政策", f"{case.rule_name}（{case.rule_id}）"), ("政策依据", case.basis),
        ("涉及金额（元）", money(case.amount)), ("申报享受金额（元）", money(case.claimed_amount)),
        ("判定理由", case.reasons), ("立案日期 / 办理期限", f"{case.opened_on} / {case.due_on}{overdue}"),
        ("承办人", case.assignee or "（未分派）"), ("核实结论", resolution or "—"),
        ("首次发现 / 证据所属运行", f"{case.first_run_id} / {case.evidence_run_id}"),
        ("不再发现的运行", case.cleared_run_id or "—"),
        ("规则版本", f"{case.rule_version or '—'}（目录 {case.ruleset_version or '—'}）"),
    ):
        facts.add_row(label, value)
    console.print(facts)
    evidence = Table(title="证据（逐项条件）")
    for header in ("条件", "结果", "纳税人数据", "标准", "说明"):
        evidence.add_column(header)
    colour = {"pass": "green", "fail": "red", "unknown": "yellow"}
    for item in case.evidence:
        status = str(item.get("status"))
        evidence.add_row(str(item.get("label") or item.get("condition")),
                         f"[{colour.get(status, 'white')}]{STATUS_LABELS.get(status, status)}[/]",
                         str(item.get("value") or ""), str(item.get("threshold") or ""), str(item.get("reason") or ""))
    console.print(evidence)


# ------------------------------------------------------------------------------------ assign / resolve


@cases_group.command("assign")
@click.argument("case_nos", nargs=-1, required=True)
@click.option("--to", "officer", required=True, help="承办人（姓名或工号）")
@state_option
@click.option("--by", "by", help="操作人（默认环境变量 ZHIXIANG_USER 或登录名）")
@click.option("--note", default="", help="备注")
@exit_on_user_error
def assign_command(case_nos: tuple[str, ...], officer: str, state: str, by: str | None, note: str) -> None:
    """分派案件给承办人（待分派 → 核实中；核实中的案件改派）。"""
    changes = assign(_open(state), case_nos, officer, actor=_actor(by), note=note)
    for ch in changes:
        click.echo(f"{ch.case_no}：{ch.from_status} → {ch.to_status}，承办人 {officer}")


_OUTCOMES = (*RESOLUTIONS, CLOSED, VERIFYING)


@cases_group.command("resolve")
@click.argument("case_nos", nargs=-1, required=True)
@click.option("--outcome", required=True,
              help="已更正 / 放弃优惠 / 误报（核实结论），已关闭（办结），核实中（退回重新核实）；"
                   "也可用 corrected / waived / false_alarm / close / verifying")
@click.option("--reason", default="", help="理由（误报和退回时必填）")
@state_option
@click.option("--by", "by", help="操作人（默认环境变量 ZHIXIANG_USER 或登录名）")
@exit_on_user_error
def resolve_command(case_nos: tuple[str, ...], outcome: str, reason: str, state: str, by: str | None) -> None:
    """登记核实结论（已更正、放弃优惠、误报），或关闭、退回案件。"""
    target = parse_status(outcome)
    if target not in _OUTCOMES:
        raise CaseError(f"--outcome 应为 {'、'.join(_OUTCOMES)} 之一；「{target}」由分派或系统设置")
    engine = _open(state)
    if target in RESOLUTIONS:
        changes = resolve(engine, case_nos, target, actor=_actor(by), reason=reason)
    elif target == CLOSED:
        changes = close(engine, case_nos, actor=_actor(by), note=reason)
    else:
        changes = send_back(engine, case_nos, actor=_actor(by), note=reason)
    for ch in changes:
        click.echo(f"{ch.case_no}：{ch.from_status} → {ch.to_status}")


# ---------------------------------------------------------------------------------------------- stats


@cases_group.command("stats")
@state_option
@click.option("--authority", "authorities", multiple=True, help="主管税务机关代码（可多次）")
@click.option("--period", "periods", multiple=True, help="所属期（可多次）")
@click.option("--tier", "tiers", multiple=True, help="默认 high + medium（风险案件）；verification 看数据核实")
@exit_on_user_error
def stats_command(state: str, authorities: tuple[str, ...], periods: tuple[str, ...], tiers: tuple[str, ...]) -> None:
    """各规则的核实结果：确认（已更正 + 放弃优惠）与误报之比，即规则的准确率。"""
    stats = rule_stats(_open(state), authorities=authorities, periods=periods,
                       tiers=_tiers(tiers) or ("high", "medium"))
    if not any(s.cases for s in stats):
        click.echo(f"状态数据库 {state_label(state)} 中没有符合条件的案件。")
        return
    table = Table(title="规则准确率（确认 ÷（确认 + 误报））")
    for header, justify in (("规则", "left"), ("案件", "right"), ("未办结", "right"), ("已更正", "right"),
                            ("放弃优惠", "right"), ("误报", "right"), ("已消除", "right"), ("准确率", "right"),
                            ("确认金额（元）", "right")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    totals = {"cases": 0, "open": 0, "corrected": 0, "waived": 0, "false_alarms": 0, "cleared": 0}
    amount = Decimal("0.00")
    for s in stats:
        table.add_row(f"{s.rule_name}\n[dim]{s.rule_id}[/dim]", f"{s.cases:,}", f"{s.open:,}", f"{s.corrected:,}",
                      f"{s.waived:,}", f"{s.false_alarms:,}", f"{s.cleared:,}", _precision(s.confirmed, s.decided),
                      money(s.confirmed_amount))
        for key in totals:
            totals[key] += getattr(s, key)
        amount += s.confirmed_amount
    confirmed = totals["corrected"] + totals["waived"]
    table.add_section()
    table.add_row("合计", *(f"{totals[k]:,}" for k in totals),
                  _precision(confirmed, confirmed + totals["false_alarms"]), money(amount), style="bold")
    _console().print(table)
    open_total = sum(s.open for s in stats)
    if open_total:
        click.echo(f"另有 {open_total:,} 件未办结（{'、'.join(sorted(OPEN_STATUSES))}），不计入准确率。")


def _precision(confirmed: int, decided: int) -> str:
    return "—" if not decided else f"{confirmed / decided:.1%}（{confirmed}/{decided}）"


# --------------------------------------------------------------------------------------------- export


@cases_group.command("export")
@state_option
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="输出目录")
@click.option("--authority", "authorities", multiple=True, help="只导出这些主管税务机关（可多次）")
@click.option("--status", "statuses", multiple=True, help="导出哪些状态（默认未办结：待分派、核实中）")
@click.option("--as-of", "as_of", type=ISO_DATE, help="计算剩余天数的日期（默认今天）")
@exit_on_user_error
def export_command(state: str, out_dir: Path, authorities: tuple[str, ...], statuses: tuple[str, ...],
                   as_of: str | None) -> None:
    """按主管税务机关导出任务清单：每个机关一个 Excel 工作簿（高风险、中风险、数据核实）和 CSV。"""
    chosen = [parse_status(s) for s in statuses] or sorted(OPEN_STATUSES)
    lists = export_task_lists(_open(state), out_dir, as_of=_date(as_of, "--as-of"), authorities=authorities,
                              statuses=chosen)
    table = Table(title=f"任务清单已写入 {out_dir}")
    table.add_column("主管税务机关")
    for tier in CASE_TIERS:
        table.add_column(TIER_LABELS[tier], justify="right")
    table.add_column("文件")
    for t in lists:
        table.add_row(t.authority, *(f"{n:,}" for n in t.counts.values()), f"{t.workbook.name}, {t.csv.name}")
    _console().print(table)
    if not lists:
        click.echo("没有符合条件的案件，未生成任务清单。")


COMMANDS = [cases_group]
