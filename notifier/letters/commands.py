"""`zhixiang notify`: parse flags, run the notifier (notifier/letters/run.py), print what it did.

Exit codes: 0 when every letter was made and delivered; 4 (runtime error) when some letter or
delivery failed — the outbox, manifest and ledger are still written for everything that worked;
2 for unusable input (no findings file), 3 for a rule catalogue that does not load.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from engine.catalogue import DEFAULT_RULES_DIR
from engine.cli_zh import ISO_DATE
from engine.errors import EXIT_LETTERS_FAILED, exit_on_user_error
from notifier.db import DEFAULT_STATE_URL, STATE_URL_ENV
from notifier.letters.build import CHANNEL_LABELS
from notifier.letters.delivery import Backend, RetryPolicy, smtp_backend, webhook_backend
from notifier.letters.outbox import STATUS_LABELS
from notifier.letters.run import DEFAULT_PDF_CHANNELS, SKIP_LABELS, NotifyOptions, NotifyReport, notify
from notifier.letters.suppression import SuppressionPolicy
from profiles.schema import CHANNELS

STATE_ENV = STATE_URL_ENV


def _parse_overrides(values: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    everyone: str | None = None
    per_taxpayer: dict[str, str] = {}
    for value in values:
        taxpayer, _, channel = value.rpartition("=")
        channel = channel.strip()
        if channel not in CHANNELS:
            raise click.BadParameter(f"渠道 {channel!r} 不正确，应为 {'/'.join(CHANNELS)}，"
                                     "或 纳税人识别号=渠道", param_hint="--channel-override")
        if taxpayer:
            per_taxpayer[taxpayer.strip()] = channel
        else:
            everyone = channel
    return everyone, per_taxpayer


def _decimal_or_none(value: str, flag: str) -> Decimal | None:
    if value.strip().lower() in ("", "none", "off"):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} 不是数字（或用 off 关闭该项）", param_hint=flag) from None


@click.command("notify")
@click.option("--findings", "findings", required=True, type=click.Path(path_type=Path),
              help="zhixiang run 的输出目录（含 findings.parquet）")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="发件箱目录")
@click.option("--state", "state", default=None, envvar=STATE_ENV, show_envvar=True,
              help=f"状态数据库：SQLite 文件路径或 postgresql://…（默认 {DEFAULT_STATE_URL}）")
@click.option("--as-of", "as_of", type=ISO_DATE, default=None,
              help="信函日期和冷却期计算日（默认今天），如 2026-11-27")
@click.option("--dry-run", is_flag=True, help="只生成信函，不发送、不记入发送台账")
@click.option("--channel-override", "overrides", multiple=True, metavar="[纳税人识别号=]渠道",
              help="改用指定渠道（etax/sms/email/post）：对全部纳税人，或 ID=渠道 只对一户；可重复")
@click.option("--deliver", "deliver", multiple=True, type=click.Choice(["file", "smtp", "webhook"]),
              default=("file",), show_default=True,
              help="发送方式：file 只写发件箱；smtp 发送电子邮件渠道；webhook 推送到消息中心；可重复")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False),
              default=DEFAULT_RULES_DIR, show_default=False, help="规则目录（默认 rules/）")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="本局修改过的信函模板目录（同名文件覆盖 notifier/templates/ 中的模板）")
@click.option("--authorities", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="主管税务机关名称表 CSV（列 code,name），补充或覆盖内置的杭州各局名称")
@click.option("--cooldown-days", type=click.IntRange(min=0), default=90, show_default=True,
              help="同一纳税人、同一政策、同一所属期在该天数内不重复告知")
@click.option("--material-pct", default="10", show_default=True,
              help="冷却期内预计金额变动达到上次金额的该百分比即视为重大变化、重新告知（off 关闭）")
@click.option("--material-amount", default="1000", show_default=True,
              help="冷却期内预计金额变动达到该金额（元）即视为重大变化、重新告知（off 关闭）")
@click.option("--smtp-host", default=None, help="SMTP 服务器（--deliver smtp 时必填）")
@click.option("--smtp-port", type=int, default=25, show_default=True, help="SMTP 端口")
@click.option("--smtp-from", "smtp_from", default=None, help="发件人地址（--deliver smtp 时必填）")
@click.option("--smtp-starttls", is_flag=True, help="连接后用 STARTTLS 加密")
@click.option("--smtp-ssl", is_flag=True, help="用 SMTPS（SSL）连接")
@click.option("--webhook-url", default=None, help="消息中心接收地址（--deliver webhook 时必填）")
@click.option("--webhook-channels", default="etax,sms", show_default=True,
              help="经消息中心送达的渠道，逗号分隔")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True, help="发送失败后的重试次数")
@click.option("--retry-delay", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="首次重试前等待的秒数（此后每次加倍）")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="并行生成 PDF 的进程数")
@click.option("--pdf-for", "pdf_for", multiple=True, type=click.Choice(["etax", "email", "post"]),
              help="哪些渠道的信函附 PDF（可重复；默认仅邮寄 post；电子税务局默认只推送可打印的 HTML）")
@exit_on_user_error
def notify_command(findings: Path, out: Path, state: str | None, as_of: str | None, dry_run: bool,
                   overrides: tuple[str, ...], deliver: tuple[str, ...], rules_dir: Path, templates: Path | None,
                   authorities: Path | None, cooldown_days: int, material_pct: str, material_amount: str,
                   smtp_host: str | None, smtp_port: int, smtp_from: str | None, smtp_starttls: bool,
                   smtp_ssl: bool, webhook_url: str | None, webhook_channels: str, retries: int,
                   retry_delay: float, jobs: int, pdf_for: tuple[str, ...]) -> None:
    """生成政策礼包：每户纳税人一份信函（HTML、PDF、纯文本、短信），写入发件箱并按渠道发送。

    应享未享的优惠按预计减免额从大到小排列；低风险的违规享受作为“低风险预提醒”一并告知；
    中高风险和待核实事项不发给纳税人。拒收推送的纳税人不发送。冷却期内已告知的同一事项不重复发送，
    除非预计金额有重大变化。
    """
    everyone, per_taxpayer = _parse_overrides(overrides)
    backends: list[Backend] = []
    if "smtp" in deliver:
        if not smtp_host or not smtp_from:
            raise click.UsageError("--deliver smtp 需要 --smtp-host 和 --smtp-from")
        backends.append(smtp_backend(host=smtp_host, port=smtp_port, sender=smtp_from, starttls=smtp_starttls,
                                     use_ssl=smtp_ssl))
    if "webhook" in deliver:
        if not webhook_url:
            raise click.UsageError("--deliver webhook 需要 --webhook-url")
        channels = frozenset(c.strip() for c in webhook_channels.split(",") if c.strip())
        unknown = channels - set(CHANNELS)
        if unknown:
            raise click.BadParameter(f"未知渠道 {', '.join(sorted(unknown))}", param_hint="--webhook-channels")
        backends.append(webhook_backend(url=webhook_url, channels=channels))
    options = NotifyOptions(
        findings=findings,
        out=out,
        state_url=state or DEFAULT_STATE_URL,
        as_of=date.fromisoformat(as_of) if as_of is not None else date.today(),
        dry_run=dry_run,
        rules_dir=rules_dir,
        templates=templates,
        authorities=authorities,
        channel_override=everyone,
        taxpayer_channels=per_taxpayer,
        backends=tuple(backends),
        retry=RetryPolicy(attempts=retries + 1, delay=retry_delay),
        suppression=SuppressionPolicy(
            cooldown_days=cooldown_days,
            material_pct=_decimal_or_none(material_pct, "--material-pct"),
            material_amount=_decimal_or_none(material_amount, "--material-amount"),
        ),
        jobs=jobs,
        pdf_channels=tuple(pdf_for) or DEFAULT_PDF_CHANNELS,
    )
    console = Console(stderr=True)
    with Progress(TextColumn("生成政策礼包"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("notify", total=None)
        shown = [-1]

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            tenth = done * 10 // max(total, 1)
            if not console.is_terminal and tenth > shown[0]:  # a log or a pipe gets a line per tenth
                shown[0] = tenth
                console.print(f"生成政策礼包：{done:,}/{total:,} 户", highlight=False)

        report = notify(options, progress=advance)
    print_report(report, out, Console())
    if report.failed:
        sys.exit(EXIT_LETTERS_FAILED)


def print_report(report: NotifyReport, out: Path, console: Console) -> None:
    """The run's counts as a table, then failures and warnings."""
    title = "政策礼包" + ("（试运行：未发送、未记入台账）" if report.dry_run else "")
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("项目")
    table.add_column("数量", justify="right")
    table.add_row("发现涉及纳税人", str(report.taxpayers))
    table.add_row("生成礼包", str(report.packages))
    for channel, n in sorted(report.by_channel.items()):
        table.add_row(f"  其中{CHANNEL_LABELS[channel]}", str(n))
    table.add_row("应享未享事项", str(report.incentives))
    table.add_row("低风险预提醒", str(report.reminders))
    table.add_row("预计可减免合计（元）", f"{report.total_saving:,}")
    table.add_row(SKIP_LABELS["opt_out"], str(report.opted_out))
    table.add_row(SKIP_LABELS["nothing_to_tell"], str(report.nothing_to_tell))
    table.add_row(f"{SKIP_LABELS['suppressed']}（户）", str(report.suppressed_taxpayers))
    table.add_row("冷却期内未重复告知的事项", str(report.suppressed_findings))
    for backend, n in sorted(report.delivered.items()):
        label = STATUS_LABELS["queued"] if backend == "file" else f"经 {backend} 发送"
        table.add_row(label, str(n))
    table.add_row("失败", str(report.failed))
    console.print(table)
    console.print(f"发件箱：{out}（manifest.csv、index.html）")
    for taxpayer_id, error in report.letter_failures:
        console.print(f"[red]信函失败[/red] {taxpayer_id}：{escape(error)}", markup=True, highlight=False)
    for taxpayer_id, backend, error in report.delivery_failures:
        console.print(f"[red]发送失败[/red] {taxpayer_id}（{backend}）：{escape(error)}", markup=True, highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]注意[/yellow] {escape(warning)}", markup=True, highlight=False)


COMMANDS = [notify_command]
