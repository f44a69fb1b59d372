"""`zhixiang autoapply …`: the 免申即享 ledger from the command line — confirm, status."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from engine.errors import InputError, exit_on_user_error
from notifier.cases.commands import _open, state_option


@click.group("autoapply")
def autoapply_group() -> None:
    """免申即享：税务机关自动享受的优惠——征收系统回执确认、台账状态。

    夜间批处理把此类优惠的应享未享写入自动享受清单（输出目录 autoapply/<主管税务机关>.csv、.xlsx），
    不发信请纳税人申报；征收系统办理后用 confirm 回写，台账由“已列入清单”变为“已自动享受”。
    """


@autoapply_group.command("confirm")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--quarantine", "quarantine", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="无法确认的行写入的隔离文件（默认：回执文件旁的 <文件名>.quarantine.csv）")
@click.option("--date", "on", default=None, help="办理日期缺省值 YYYY-MM-DD（回执中没有“办理日期”列时；默认今天）")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出结果")
@state_option
@exit_on_user_error
def confirm_command(file: Path, quarantine: Path | None, on: str | None, as_json: bool, state: str) -> None:
    """读入征收系统的回执文件 FILE（CSV 或 Excel 工作簿 .xlsx：清单编号、纳税人识别号、所属期、政策编号、
    减免金额（元），可选办理日期），
    把相符的事项记为“已自动享受”；清单中没有或与清单不符的行写入隔离文件（文件、行、字段、原因），其余照常确认。
    同一回执重复读入不会重复确认。

    \b
    示例：
      zhixiang autoapply confirm 回执/13301060000.csv --state out/state.sqlite
      zhixiang autoapply confirm 回执/13301060000.xlsx --state out/state.sqlite
    """
    from notifier.autoapply.confirm import confirm_file

    try:
        today = date.fromisoformat(on) if on else date.today()
    except ValueError as exc:
        raise InputError(f"--date 日期 {on!r} 格式不正确：应为 YYYY-MM-DD") from exc
    engine = _open(state)
    try:
        result = confirm_file(engine, file, today=today, quarantine=quarantine)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(result.summary(), ensure_ascii=False, indent=2))
        return
    click.echo(f"回执 {file}：{result.rows} 行，确认自动享受 {result.applied} 项，"
               f"此前已确认 {result.already_applied} 项，隔离 {result.quarantined_rows} 行")
    if result.quarantine is not None:
        for p in result.problems[:20]:
            click.echo(f"  {p.file} 第 {p.row} 行 {p.field}：{p.reason}", err=True)
        if len(result.problems) > 20:
            click.echo(f"  ……共 {len(result.problems)} 处问题", err=True)
        click.echo(f"隔离文件：{result.quarantine}", err=True)


@autoapply_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出结果")
@state_option
@exit_on_user_error
def status_command(as_json: bool, state: str) -> None:
    """自动享受台账中各状态的事项数（已列入清单、已自动享受）。"""
    from notifier.autoapply.ledger import STATE_LABELS, state_counts

    engine = _open(state)
    try:
        counts = state_counts(engine)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(counts, ensure_ascii=False))
        return
    for key, label in STATE_LABELS.items():
        click.echo(f"{label}：{counts[key]}")


COMMANDS = [autoapply_group]
