"""`zhixiang run` and `zhixiang explain`: the batch evaluation from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import polars as pl
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.catalogue import DEFAULT_RULES_DIR, Catalogue, load_catalogue
from engine.errors import InputError, UsageProblem, exit_on_user_error
from engine.findings import KIND_LABELS, KINDS, OUTCOMES, STATUS_LABELS, TIER_LABELS, TIERS
from engine.findings.figures import money
from engine.findings.outcomes import NOT_JUDGED, NOT_JUDGED_LABEL
from engine.run import (
    RunResult,
    cleanup_streaming,
    evaluate_period,
    evaluate_streaming,
    not_judged_rules,
    write_outputs,
)
from profiles.database import display_url
from profiles.periods import Period, PeriodError, parse_period

err = Console(stderr=True)
# A report piped to a file or a log keeps its full width instead of rich's 80-column default.
out = Console() if Console().is_terminal else Console(width=200)

_STATUS_MARK = {"pass": "✔", "fail": "✘", "unknown": "？"}


def finding_headline(row: dict[str, Any]) -> str:
    """`规则名 — 违规享受，高风险，金额 1,234.00 元`: a rule that does not apply or cannot be judged has no
    amount to speak of, whatever was computed."""
    tier = f"，{TIER_LABELS[row['risk_tier']]}" if row.get("risk_tier") else ""
    shown = row.get("estimated_amount") is not None and row["kind"] not in ("not_applicable", "undetermined")
    amount = f"，金额 {money(row['estimated_amount'])} 元" if shown else ""
    return f"[bold]{row['rule_name']}[/bold] — {row['kind_label']}{tier}{amount}"


def condition_line(ev: dict[str, Any]) -> str:
    """One condition's verdict: `✘ 不满足  从业人数 301 人，超过 300 人上限`."""
    return f"{_STATUS_MARK[ev['status']]} {STATUS_LABELS[ev['status']]}  {ev['reason'] or ev['label']}"


def _period(value: str) -> Period:
    try:
        return parse_period(value)
    except PeriodError as exc:  # the command line, not the data: a usage error
        raise UsageProblem(str(exc)) from exc


def load_inputs(data: str, rules: Path, progress: Progress | None = None, *,
                snapshot_dir: Path | None = None) -> tuple[Catalogue, Any]:
    """The catalogue and the validated profiles (claims checked against the catalogue's codes).

    `data` is a folder or a postgresql:// URL; a database is snapshotted to `snapshot_dir` first.
    """
    catalogue = load_rules(rules, progress)
    return catalogue, load_data(data, catalogue, progress, snapshot_dir=snapshot_dir)


def load_rules(rules: Path, progress: Progress | None = None) -> Catalogue:
    """The rule catalogue (its errors stop a command before any data is read)."""
    task = progress.add_task("加载规则目录", total=None) if progress else None
    catalogue = load_catalogue(rules)
    if progress and task is not None:
        progress.update(task, description=f"规则目录 {len(catalogue.rules)} 条（版本 {catalogue.version}）", total=1,
                        completed=1)
    return catalogue


def load_data(data: str, catalogue: Catalogue, progress: Progress | None = None, *,
              snapshot_dir: Path | None = None) -> Any:
    """The validated profiles of a folder or a database (snapshotted to `snapshot_dir` first)."""
    from profiles.sources import load_source

    task = progress.add_task(f"读取并校验档案数据 {display_url(data)}", total=None) if progress else None
    profiles = load_source(data, known_incentives=catalogue.known_incentives, snapshot_dir=snapshot_dir)
    if progress and task is not None:
        progress.update(task, total=1, completed=1)
    return profiles


def print_summary(result: RunResult, console: Console) -> None:
    """Counts and amounts by rule and kind, then by district."""
    table = Table(title=f"{result.period.label} 评估结果（规则版本 {result.ruleset_version}，"
                        f"评估纳税人 {result.taxpayers_evaluated:,} 户）")
    table.add_column("政策")
    for kind in ("unclaimed", "improper", "undetermined", "compliant", "not_applicable"):
        table.add_column(KIND_LABELS[kind], justify="right")
    table.add_column("应享未享测算金额（元）", justify="right")
    table.add_column("违规享受涉及金额（元）", justify="right")
    counts: dict[str, dict[str, tuple[int, Any]]] = {}
    names: dict[str, str] = {}
    for rid, name, outcome, count, amount in result.summary.iter_rows():
        counts.setdefault(rid, {})[outcome] = (count, amount)
        names[rid] = name
    for rid, row in counts.items():
        table.add_row(
            names[rid],
            *[f"{row.get(k, (0, None))[0]:,}" for k in OUTCOMES],
            money(row.get("unclaimed", (0, None))[1]),
            money(row.get("improper", (0, None))[1]),
        )
    console.print(table)
    if result.findings.height:
        by_district = (result.findings.group_by("district").agg(
            [(pl.col("kind") == k).sum().alias(k) for k in KINDS]
            + [pl.col("estimated_amount").filter(pl.col("kind") == "unclaimed").sum().alias("amount")])
            .sort("district", nulls_last=True))
        dt = Table(title="按区县")
        dt.add_column("区县")
        for k in KINDS:
            dt.add_column(KIND_LABELS[k], justify="right")
        dt.add_column("应享未享测算金额（元）", justify="right")
        for d in by_district.iter_rows(named=True):
            dt.add_row(d["district"] or "（未知）", *[f"{d[k]:,}" for k in KINDS], money(d["amount"]))
        console.print(dt)
    tiers = result.findings.filter(pl.col("kind") == "improper").group_by("risk_tier").len()
    if tiers.height:
        by_tier = dict(tiers.iter_rows())
        parts = [f"{TIER_LABELS[t]} {by_tier[t]:,} 条" for t in TIERS if t in by_tier]
        console.print("违规享受风险分级：" + "，".join(parts))
    for row in result.not_judged.iter_rows(named=True):
        claims = f"，其申报 {row['claims']:,} 条未作判定" if row["claims"] else ""
        console.print(f"[yellow]未判定：{row['rule_name']}（{row['rule_id']}）— {row['reason']}"
                      f"（{row['detail']}）{claims}[/yellow]")
    if result.quarantine.height:
        console.print(f"[yellow]隔离的问题数据 {result.quarantine.height:,} 处，详见 quarantine.csv[/yellow]")


def needs_streaming(folder: str | Path) -> bool:
    """Whether a data folder is too large to evaluate in memory here (Parquet metadata vs free memory)."""
    from profiles.streaming import too_large_for_memory

    return Path(folder).is_dir() and too_large_for_memory(folder)


def _run_streaming(catalogue: Catalogue, folder: Path, p: Period, out_dir: Path, buckets: int | None,
                   progress: Progress) -> RunResult:
    """A streaming run over a data folder; the work folder is removed if it fails."""
    work = out_dir / ".streaming"
    task = progress.add_task(f"流式评估 {p.label}：按纳税人分桶", total=None)

    def on_bucket(done: int, total: int) -> None:
        progress.update(task, description=f"流式评估 {p.label}：已完成 {done}/{total} 桶", total=total,
                        completed=done)

    try:
        result = evaluate_streaming(catalogue, folder, p, work, buckets=buckets, on_bucket=on_bucket)
        progress.update(task, description=f"流式评估 {p.label}：{result.timings.get('buckets', 0):.0f} 桶")
        return result
    except BaseException:
        cleanup_streaming(work)
        raise


@click.command("run")
@click.option("--data", "data", required=True,
              help="档案数据目录（taxpayers/indicators/claims/risk_events 的 CSV 或 Parquet），"
                   "或 PostgreSQL 地址 postgresql://…（读取后在输出目录 snapshot/ 下保存 Parquet 快照；"
                   "--engine postgres 时直接在该库内评估），"
                   "或 spark:库名.表名前缀（--engine spark，在 Spark 目录的表上评估）")
@click.option("--period", "period", required=True, help="所属期：年度 2025、季度 2026Q3 或月份 2026-09")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="输出目录")
@click.option("--rules", "rules", default=str(DEFAULT_RULES_DIR), type=click.Path(path_type=Path),
              show_default="rules/", help="规则目录")
@click.option("--quiet", is_flag=True, help="不显示进度和汇总表")
@click.option("--streaming/--in-memory", "streaming", default=None,
              help="流式评估超出内存的数据（按纳税人分桶逐桶校验、评估，结果流式写出）；"
                   "默认在估计内存需求超过 2 GiB 或可用内存一半时自动启用")
@click.option("--buckets", type=click.IntRange(min=1), default=None,
              help="流式评估的分桶数（默认每桶约十二万五千户）")
@click.option("--adopt-out", "adopt_out", is_flag=True,
              help="输出目录中已有其他文件时仍写入（这些文件不会被删除）")
@click.option("--engine", "engine", type=click.Choice(["polars", "duckdb", "postgres", "spark"]),
              default="polars", show_default=True,
              help="执行引擎：polars（内置批量引擎），或在 DuckDB / PostgreSQL / 本地 Spark（需 PySpark）内以 SQL 判定")
@click.option("--pg-url", "pg_url", envvar="ZHIXIANG_PG_URL", default=None,
              help="--engine postgres 使用的数据库地址（默认读环境变量 ZHIXIANG_PG_URL）；数据载入临时表")
@exit_on_user_error
def run_command(data: str, period: str, out_dir: Path, rules: Path, quiet: bool, streaming: bool | None,
                buckets: int | None, adopt_out: bool, engine: str, pg_url: str | None) -> None:
    """评估一个所属期：输出应享未享、违规享受、待核实清单及汇总。"""
    from engine.outdir import OWNER_MARKER, claim_output_dir, mark_owned
    from profiles.database import is_database_url
    from profiles.sources import relabel_quarantine, write_snapshot

    p = _period(period)
    if engine != "polars" and streaming:
        raise InputError(f"--streaming 只适用于 polars 引擎；--engine {engine} 在数据库内评估")
    written = ("findings.parquet", "findings.csv", "quarantine.csv", "summary.json")
    ours = {OWNER_MARKER, "snapshot", ".streaming", *written, *(f".{name}.tmp" for name in written)}
    claim_output_dir(out_dir, ours=ours, adopt=adopt_out, flag="--adopt-out", create=False)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                  disable=quiet, transient=False) as progress:
        catalogue = load_rules(rules, progress)
        if engine != "polars":  # a construct the dialect cannot express is refused before any data is read
            from engine.backends.sql import check_catalogue

            check_catalogue(catalogue, engine)
        from engine.sql_run import engine_tables

        snapshot = None
        folder = Path(data)
        in_engine = engine_tables(data, engine)
        if in_engine is not None:  # the engine's own tables: evaluated where they are, nothing copied
            from engine.sql_run import evaluate_period_sql

            task = progress.add_task(f"在 {in_engine.shown} 内评估 {p.label}（{engine}）", total=None)
            result = evaluate_period_sql(catalogue, None, p, engine, tables=in_engine)
            progress.update(task, total=1, completed=1)
        else:
            if is_database_url(data):  # copied to Parquet first; from then on a folder like any other
                task = progress.add_task(f"读取数据库快照 {display_url(data)}", total=None)
                snapshot = write_snapshot(data, out_dir / "snapshot")
                folder = out_dir / "snapshot"
                progress.update(task, total=1, completed=1)
            if engine == "polars" and (streaming or (streaming is None and needs_streaming(folder))):
                result = _run_streaming(catalogue, folder, p, out_dir, buckets, progress)
            else:
                profiles = load_data(str(folder), catalogue, progress)
                task = progress.add_task(f"评估 {p.label}（{len(catalogue.active(p))} 条适用规则，{engine}）",
                                         total=None)
                if engine == "polars":
                    result = evaluate_period(catalogue, profiles, p)
                else:
                    from engine.sql_run import evaluate_period_sql

                    result = evaluate_period_sql(catalogue, profiles, p, engine, pg_url)
                progress.update(task, total=1, completed=1)
        if snapshot is not None:
            result.quarantine = relabel_quarantine(result.quarantine, snapshot)
        task = progress.add_task(f"写出结果到 {out_dir}", total=None)
        try:
            write_outputs(result, out_dir, data_source=display_url(data))
            mark_owned(out_dir)
        finally:
            if result.findings_files:
                cleanup_streaming(out_dir / ".streaming")
        progress.update(task, total=1, completed=1)
    if not quiet:
        print_summary(result, out)
    counts = result.counts()
    click.echo(
        f"完成：应享未享 {counts['unclaimed']:,} 条，违规享受 {counts['improper']:,} 条，"
        f"待核实 {counts['undetermined']:,} 条；"
        f"隔离数据 {result.quarantine.height:,} 处。输出目录 {out_dir}"
    )


@click.command("explain")
@click.option("--data", "data", required=True, help="档案数据目录")
@click.option("--period", "period", required=True, help="所属期")
@click.option("--taxpayer", "taxpayer", required=True, help="纳税人识别号")
@click.option("--rules", "rules", default=str(DEFAULT_RULES_DIR), type=click.Path(path_type=Path),
              show_default="rules/", help="规则目录")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@exit_on_user_error
def explain_command(data: str, period: str, taxpayer: str, rules: Path, as_json: bool) -> None:
    """逐条政策说明一户纳税人的判定结果和每个条件。"""
    from engine.batch import build_query

    p = _period(period)
    catalogue, profiles = load_inputs(data, rules)
    if taxpayer not in set(profiles.taxpayers["taxpayer_id"].to_list()):
        raise InputError(f"纳税人 {taxpayer} 不在 {data} 的 taxpayers 表中（或该行因数据问题被隔离，见 quarantine）")
    only = pl.col("taxpayer_id") == taxpayer
    plan = build_query(catalogue, p, taxpayers=profiles.taxpayers.filter(only),
                       indicators=profiles.indicators.filter(only), claims=profiles.claims.filter(only),
                       risk_events=profiles.risk_events.filter(only), outcomes=OUTCOMES)
    rows = plan.findings.collect().to_dicts()
    unjudged = not_judged_rules(catalogue, p, profiles.claims.filter(only)).to_dicts() if rows else []
    if as_json:
        click.echo(json.dumps([*rows, *[{"rule_id": u["rule_id"], "rule_name": u["rule_name"], "kind": NOT_JUDGED,
                                          "kind_label": NOT_JUDGED_LABEL, "reasons": f"{u['reason']}（{u['detail']}）",
                                          "claims": u["claims"]} for u in unjudged]],
                              ensure_ascii=False, indent=2, default=str))
        return
    if not rows:
        click.echo(f"纳税人 {taxpayer} 在 {p.label} 没有指标数据或申报记录，无可评估的政策。")
        return
    out.print(f"[bold]{rows[0]['taxpayer_name']}[/bold]（{taxpayer}）{p.label} 逐项判定：")
    for row in rows:
        out.print(f"\n{finding_headline(row)}")
        for ev in row["evidence"]:
            out.print(f"  {condition_line(ev)}")
    for u in unjudged:
        claimed = "（本期有申报，未作判定）" if u["claims"] else ""
        out.print(f"\n[bold]{u['rule_name']}[/bold] — {NOT_JUDGED_LABEL}：{u['reason']}{claimed}\n  {u['detail']}")
    sys.stdout.flush()


COMMANDS = [run_command, explain_command]
