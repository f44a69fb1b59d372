"""`zhixiang whatif`: a what-if run (参数调整测算) from the command line (issue 16)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.catalogue import DEFAULT_RULES_DIR
from engine.errors import exit_on_user_error

#: What a what-if writes into its output folder (nothing anywhere else).
WRITTEN = ("changes.parquet", "changes.csv", "by_rule.csv", "whatif.json", "report.html")
PROPOSAL_DIR = "proposal_rules"


@click.command("whatif")
@click.option("--data", "data", required=True, help="档案数据目录（CSV 或 Parquet）")
@click.option("--period", "period", required=True, help="所属期：年度 2025、季度 2026Q3 或月份 2026-09")
@click.option("--set", "sets", multiple=True, metavar="规则编号.参数名=取值",
              help="调整一个参数在该所属期适用的取值，可重复，如 small_low_profit_cit.income_cap=5000000")
@click.option("--replace", "replaces", multiple=True, metavar="rules/规则编号.yaml=方案.yaml",
              help="用方案文件整体替换一个规则文件（按规则文件同样校验），可重复")
@click.option("--rules", "rules", default=str(DEFAULT_RULES_DIR), type=click.Path(path_type=Path),
              show_default="rules/", help="规则目录（不会被修改）")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="输出目录")
@click.option("--adopt-out", "adopt_out", is_flag=True, help="输出目录中已有其他文件时仍写入（这些文件不会被删除）")
@exit_on_user_error
def whatif_command(data: str, period: str, sets: tuple[str, ...], replaces: tuple[str, ...], rules: Path,
                   out_dir: Path, adopt_out: bool) -> None:
    """参数调整测算：现行规则与调整后规则对同一数据各评估一次，输出新增/不再可享名单、减免额变化和报告。

    测算结果只写入 --out，不生成提醒函，不进入案件台账，也不修改规则目录。
    """
    from engine.commands import _period, load_data, load_rules
    from engine.errors import UsageProblem
    from engine.outdir import OWNER_MARKER, claim_output_dir, mark_owned
    from engine.whatif import (
        apply_overrides,
        evaluate_whatif,
        parse_override,
        parse_replacement,
        replaced_catalogue,
        write_whatif,
    )
    from notifier.whatif.report import build_whatif_report, write_whatif_report
    from profiles.database import display_url

    if not sets and not replaces:
        raise UsageProblem("没有给出任何调整：请用 --set 规则编号.参数名=取值"
                           " 或 --replace rules/规则编号.yaml=方案.yaml")
    p = _period(period)
    before = load_rules(rules)
    replacements = [parse_replacement(r) for r in replaces]
    claim_output_dir(out_dir, ours={OWNER_MARKER, PROPOSAL_DIR, *WRITTEN}, adopt=adopt_out, flag="--adopt-out",
                     create=bool(replacements))
    after = replaced_catalogue(Path(rules), replacements, out_dir / PROPOSAL_DIR) if replacements else before
    overrides = [parse_override(s, after, p) for s in sets]
    keys = [o.key for o in overrides]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UsageProblem(f"同一参数被调整了多次：{'、'.join(twice)}")
    after = apply_overrides(after, overrides, p)
    profiles = load_data(data, before)
    result = evaluate_whatif(before, after, profiles, p, overrides=overrides,
                             replacements=[(t, str(s)) for t, s in replacements])
    claim_output_dir(out_dir, ours={OWNER_MARKER, PROPOSAL_DIR, *WRITTEN}, adopt=True, flag="--adopt-out")
    write_whatif(result, out_dir, data_source=display_url(data))
    write_whatif_report(build_whatif_report(result, before, data_source=display_url(data)), out_dir / "report.html")
    mark_owned(out_dir)
    totals = result.totals()
    newly = int(totals.get("newly_eligible") or 0)
    click.echo(
        f"测算完成（{p.label}，{result.taxpayers_evaluated:,} 户）：新增可享 {newly:,} 户次，"
        f"不再可享 {int(totals.get('no_longer_eligible') or 0):,} 户次，测算减免额变化 "
        f"{totals.get('relief_delta') or 0:+,.2f} 元。输出目录 {out_dir}")


COMMANDS = [whatif_command]
