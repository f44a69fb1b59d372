"""The run report: one self-contained HTML page (Chinese) about one nightly run.

Counts and amounts by rule, kind, district and tax authority; the diff against the baseline; the
trend over recent runs (from the run ledger); the top rules by unclaimed amount; the case ledger by
tier and status; data quality (quarantined rows by file and reason); the stages' timings. Figures
are aggregated here with Polars and SQL; the template (notifier/templates/report.html) only lays
them out, and the charts are inline SVG (notifier/nightly/report_charts.py), so the file opens anywhere —
mail attachment, intranet share, archive — with nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine.findings import KIND_LABELS, KINDS, TIER_LABELS
from engine.findings.figures import money
from notifier.letters.formatting import period_label
from notifier.nightly.config import BEIJING, Config
from notifier.nightly.diff import DIFF_LABELS, DIFF_STATUSES
from notifier.nightly.report_charts import KIND_COLORS, PALETTE, bar_chart, line_chart, stacked_bar_chart
from notifier.nightly.runs import STATUS_LABELS, RunRecord, interrupted_since, recent_successes

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
REPORT_TEMPLATE = "report.html"
_WAN = Decimal(10000)


@dataclass
class Report:
    """Everything the template shows (plain values, formatted text and SVG markup)."""

    title: str
    meta: list[tuple[str, str]]
    cards: list[dict[str, str]]
    warnings: list[str]
    sections: dict[str, Any] = field(default_factory=dict)
    charts: dict[str, Markup] = field(default_factory=dict)


def _wan(value: Any) -> float:
    return float(Decimal(value or 0) / _WAN)


def _count(value: Any) -> str:
    return f"{int(value or 0):,}"


def _by(findings: pl.DataFrame, column: str) -> list[dict[str, Any]]:
    """Counts per kind and the unclaimed / improper amounts, grouped by one column, largest first."""
    if findings.height == 0:
        return []
    agg = (findings.group_by(column)
           .agg(*[(pl.col("kind") == k).sum().alias(k) for k in KINDS],
                pl.col("estimated_amount").filter(pl.col("kind") == "unclaimed").sum().alias("unclaimed_amount"),
                pl.col("estimated_amount").filter(pl.col("kind") == "improper").sum().alias("improper_amount"),
                pl.col("taxpayer_id").n_unique().alias("taxpayers"))
           .sort(["unclaimed_amount", column], descending=[True, False], nulls_last=True))
    return agg.to_dicts()


def _rows(groups: list[dict[str, Any]], column: str, names: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    labels: dict[str, str] = dict(names) if names else {}
    out: list[dict[str, str]] = []
    for g in groups:
        key = str(g[column]) if g[column] is not None else "（未知）"
        row = {"name": labels.get(key, key), "code": key, "taxpayers": _count(g["taxpayers"]),
               "unclaimed_amount": money(g["unclaimed_amount"], "元"),
               "improper_amount": money(g["improper_amount"], "元")}
        row.update({k: _count(g[k]) for k in KINDS})
        out.append(row)
    return out


def _quarantine(quarantine: pl.DataFrame) -> list[dict[str, str]]:
    if quarantine.height == 0:
        return []
    agg = (quarantine.with_columns(pl.col("file").map_elements(lambda f: Path(str(f)).name, return_dtype=pl.String))
           .group_by(["file", "reason"]).agg(pl.len().alias("rows"), pl.col("column").first().alias("column"))
           .sort(["rows", "file"], descending=[True, False]))
    return [{"file": r["file"], "column": r["column"] or "", "reason": r["reason"], "rows": _count(r["rows"])}
            for r in agg.iter_rows(named=True)]


def _cases_by_tier(engine: Engine) -> tuple[list[tuple[str, list[float]]], list[str], list[dict[str, str]]]:
    """Rows per case tier with counts per status, the statuses, and a table of open amounts."""
    from notifier.cases.ledger import CASE_TIERS
    from notifier.cases.ledger import TIER_LABELS as CASE_TIER_LABELS
    from notifier.cases.status import OPEN_STATUSES
    from notifier.cases.tables import cases

    with engine.connect() as conn:
        got = conn.execute(select(cases.c.tier, cases.c.status, func.count(), func.sum(cases.c.amount))
                           .group_by(cases.c.tier, cases.c.status)).all()
    statuses = sorted({status for _, status, _, _ in got}, key=lambda s: (s not in OPEN_STATUSES, s))
    table = []
    rows = []
    for tier in CASE_TIERS:
        counts = {status: n for t, status, n, _ in got if t == tier}
        open_amount = sum((Decimal(a or 0) for t, s, _, a in got if t == tier and s in OPEN_STATUSES), Decimal(0))
        rows.append((CASE_TIER_LABELS[tier], [float(counts.get(s, 0)) for s in statuses]))
        table.append({"tier": CASE_TIER_LABELS[tier], "open": _count(sum(counts.get(s, 0) for s in OPEN_STATUSES)),
                      "total": _count(sum(counts.values())), "open_amount": money(open_amount, "元")})
    return rows, statuses, table


def _autoapply_card(c: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """免申即享: tonight's auto-apply lists and the ledger's applied entries (none when no rule is automatic)."""
    if not c:
        return []
    return [{"label": "免申即享：列入清单 / 已自动享受",
             "value": f"{_count(c.get('listed'))} / {_count(c.get('applied'))}",
             "note": f"新列入 {_count(c.get('new'))}，待征收系统确认 {_count(c.get('ledger_listed'))}；"
                     "清单见 autoapply/"}]


def build_report(engine: Engine, config: Config, *, run: RunRecord, findings: pl.DataFrame,
                 diff: pl.DataFrame | None, quarantine: pl.DataFrame, counts: Mapping[str, Any],
                 timings: Mapping[str, float], baseline: RunRecord | None, warnings: Sequence[str],
                 periods: Sequence[str]) -> Report:
    """Aggregate one run's outputs and the ledgers into the report's figures and charts."""
    from notifier.nightly.runs import STAGE_LABELS
    from profiles.authorities import tax_authority_name

    day = run.business_date
    findings_counts = counts.get("findings", {})
    amounts = counts.get("amounts", {})
    diff_c = counts.get("diff", {})
    letters = counts.get("letters", {})
    case_c = counts.get("cases", {})
    report = Report(
        title=f"直享夜间批处理运行报告 · 业务日期 {day.isoformat()}",
        meta=[
            ("运行编号", run.run_id + (f"（第 {run.attempt} 次尝试）" if run.attempt > 1 else "")),
            ("数据来源", run.data_source),
            ("所属期", "、".join(period_label(p) for p in periods)),
            ("规则目录版本", run.ruleset_version or ""),
            ("比对基线", f"{baseline.run_id}（业务日期 {baseline.business_date}）" if baseline
             else "无（首次运行，全部为新增）"),
            ("输入数据指纹", "；".join(f"{k} {v[:12]}" for k, v in sorted((run.input_hashes or {}).items()))),
            ("生成时间", datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S 北京时间")),
        ],
        cards=[
            {"label": "评估纳税人", "value": _count(counts.get("taxpayers")), "note": f"{len(periods)} 个所属期"},
            {"label": KIND_LABELS["unclaimed"], "value": _count(findings_counts.get("unclaimed")),
             "note": "测算 " + money(amounts.get("unclaimed"), "元")},
            {"label": KIND_LABELS["improper"], "value": _count(findings_counts.get("improper")),
             "note": "涉及 " + money(amounts.get("improper"), "元")},
            {"label": KIND_LABELS["undetermined"], "value": _count(findings_counts.get("undetermined")),
             "note": "需核实数据"},
            {"label": "比对：新增 / 变化", "value": f"{_count(diff_c.get('new'))} / {_count(diff_c.get('changed'))}",
             "note": f"持续 {_count(diff_c.get('persisting'))}，消除 {_count(diff_c.get('resolved'))}"},
            {"label": "政策礼包", "value": _count(letters.get("packages")),
             "note": f"冷却期内不重复 {_count(letters.get('suppressed_findings'))} 条"},
            {"label": "案件：新立 / 消除", "value": f"{_count(case_c.get('opened'))} / {_count(case_c.get('cleared'))}",
             "note": f"更新 {_count(case_c.get('updated'))}，重开 {_count(case_c.get('reopened'))}"},
            {"label": "隔离问题数据", "value": _count(counts.get("quarantine")), "note": "见“数据质量”"},
            *_autoapply_card(counts.get("autoapply")),
        ],
        warnings=list(warnings),
    )
    gaps = interrupted_since(engine, baseline.business_date if baseline else None, day)
    if baseline is not None and (day - baseline.business_date).days > 1:
        gap_days = (day - baseline.business_date).days
        report.warnings.append(f"与上次成功运行（{baseline.business_date}）相隔 {gap_days} 天，"
                               "其间的变化合并在本次比对中")
    for gap in gaps:
        report.warnings.append(f"运行 {gap.run_id}（业务日期 {gap.business_date}）{STATUS_LABELS[gap.status]}："
                               f"{gap.error or ''}")

    # -- by rule, kind, period --------------------------------------------------------------------
    by_rule = _by(findings, "rule_id")
    names = dict(findings.select("rule_id", "rule_name").unique().iter_rows()) if findings.height else {}
    report.sections["by_rule"] = _rows(by_rule, "rule_id", names)
    top = [g for g in by_rule if g["unclaimed_amount"]][: config.report.top_rules]
    report.charts["top_rules"] = Markup(bar_chart(
        [(names.get(g["rule_id"], g["rule_id"]), _wan(g["unclaimed_amount"])) for g in top],
        title="应享未享测算金额最高的政策（万元）", value_text=lambda v: f"{v:,.2f} 万元"))
    report.sections["by_kind"] = [
        # an undetermined finding's amount is what it would be worth if eligible: not a figure to add up
        {"kind": KIND_LABELS[k], "count": _count(findings_counts.get(k)),
         "amount": money(amounts.get(k), "元") if k != "undetermined" else "—"}
        for k in KINDS]
    report.charts["by_kind"] = Markup(stacked_bar_chart(
        [(period_label(p), [float(counts.get("by_period", {}).get(p, {}).get(k, 0)) for k in KINDS]) for p in periods],
        [KIND_LABELS[k] for k in KINDS], title="各所属期发现数（按类型）", colors=[KIND_COLORS[k] for k in KINDS]))

    # -- by district and authority ------------------------------------------------------------------
    by_district = _by(findings, "district")
    report.sections["by_district"] = _rows(by_district, "district")
    report.charts["by_district"] = Markup(stacked_bar_chart(
        [(g["district"] or "（未知）", [float(g[k]) for k in KINDS]) for g in by_district],
        [KIND_LABELS[k] for k in KINDS], title="各区县发现数（按类型）", colors=[KIND_COLORS[k] for k in KINDS]))
    by_authority = _by(findings, "tax_authority")
    report.sections["by_authority"] = _rows(
        by_authority, "tax_authority", {g["tax_authority"]: tax_authority_name(g["tax_authority"])
                                        for g in by_authority if g["tax_authority"]})

    # -- diff -------------------------------------------------------------------------------------------
    diff_rows = []
    if diff is not None and diff.height:
        agg = diff.group_by(["rule_id", "status"]).len()
        table: dict[str, dict[str, int]] = {}
        for rid, status, n in agg.iter_rows():
            table.setdefault(rid, {})[status] = n
        def moved(rid: str) -> tuple[int, int]:  # rules with the most news first, then the most findings
            return (-sum(table[rid].get(s, 0) for s in ("new", "changed", "resolved")),
                    -table[rid].get("persisting", 0))

        for rid in sorted(table, key=moved):
            diff_rows.append({"rule": names.get(rid) or _rule_name(diff, rid),
                              **{s: _count(table[rid].get(s, 0)) for s in DIFF_STATUSES}})
    report.sections["diff"] = diff_rows
    report.sections["diff_labels"] = [DIFF_LABELS[s] for s in DIFF_STATUSES]
    report.sections["diff_statuses"] = list(DIFF_STATUSES)
    report.sections["diff_totals"] = {s: _count(diff_c.get(s, 0)) for s in DIFF_STATUSES}

    # -- trend --------------------------------------------------------------------------------------------
    history = [r for r in recent_successes(engine, up_to=day, limit=config.report.trend_runs)
               if r.business_date != day]
    points = [(r.business_date, r.counts or {}) for r in history] + [(day, dict(counts))]
    labels = [d.strftime("%m-%d") for d, _ in points]
    report.charts["trend_counts"] = Markup(line_chart(
        labels, [(KIND_LABELS[k], [float(c.get("findings", {}).get(k, 0)) for _, c in points]) for k in KINDS],
        title="近期运行发现数趋势", unit="条", colors=[KIND_COLORS[k] for k in KINDS]))
    report.charts["trend_amounts"] = Markup(line_chart(
        labels, [("应享未享测算金额", [_wan(c.get("amounts", {}).get("unclaimed")) for _, c in points]),
                 ("违规享受涉及金额", [_wan(c.get("amounts", {}).get("improper")) for _, c in points])],
        title="近期运行金额趋势（万元）", unit="万元", colors=[KIND_COLORS["unclaimed"], KIND_COLORS["improper"]]))
    report.sections["trend_runs"] = len(points)

    # -- cases ----------------------------------------------------------------------------------------------
    tier_rows, statuses, tier_table = _cases_by_tier(engine)
    report.charts["cases"] = Markup(stacked_bar_chart(tier_rows, statuses, title="案件台账：各等级案件数（按状态）",
                                                      colors=PALETTE)) if statuses else Markup("")
    report.sections["cases"] = tier_table
    report.sections["case_sync"] = [
        ("新立案", case_c.get("opened", 0)), ("证据更新", case_c.get("updated", 0)),
        ("重新打开", case_c.get("reopened", 0)), ("已消除", case_c.get("cleared", 0)),
        ("未变化", case_c.get("unchanged", 0)), ("低风险转提醒", case_c.get("reminders", 0)),
    ]
    report.sections["improper_tiers"] = [
        {"tier": TIER_LABELS[t], "count": _count((findings["risk_tier"] == t).sum() if findings.height else 0)}
        for t in TIER_LABELS]

    # -- letters ----------------------------------------------------------------------------------------------
    report.sections["letters"] = [
        ("生成政策礼包", _count(letters.get("packages"))),
        ("告知事项", _count(letters.get("findings_told"))),
        ("冷却期内不重复告知的事项", _count(letters.get("suppressed_findings"))),
        ("拒收推送", _count(letters.get("opted_out"))),
        ("生成或发送失败", _count(letters.get("failed"))),
        ("预计为纳税人减免", money(letters.get("total_saving"), "元")),
    ] + [(f"渠道：{_channel(c)}", _count(n)) for c, n in sorted(letters.get("by_channel", {}).items())]

    # -- data quality ---------------------------------------------------------------------------------------
    dq = _quarantine(quarantine)
    report.sections["quarantine"] = dq
    if dq:
        by_file = quarantine.with_columns(
            pl.col("file").map_elements(lambda f: Path(str(f)).name, return_dtype=pl.String)
        ).group_by("file").len().sort("len", descending=True)
        report.charts["quarantine"] = Markup(bar_chart([(f, float(n)) for f, n in by_file.iter_rows()],
                                                       title="各文件隔离行数", unit=" 处", color=PALETTE[3]))

    # -- timings ----------------------------------------------------------------------------------------------
    report.sections["timings"] = [(STAGE_LABELS.get(s, s), f"{t:.2f}") for s, t in timings.items()]
    report.charts["timings"] = Markup(bar_chart([(STAGE_LABELS.get(s, s), float(t)) for s, t in timings.items()],
                                                title="各阶段耗时（秒）", unit=" 秒", color=PALETTE[5]))
    return report


def _rule_name(diff: pl.DataFrame, rule_id: str) -> str:
    names = diff.filter(pl.col("rule_id") == rule_id)["rule_name"].drop_nulls()
    return names[0] if names.len() else rule_id


def _channel(code: str) -> str:
    from notifier.letters.build import CHANNEL_LABELS

    return CHANNEL_LABELS.get(code, code)


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(loader=FileSystemLoader(str(TEMPLATES_DIR)),
                                         autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                                         trim_blocks=True, lstrip_blocks=True)


def render_report(report: Report) -> str:
    """The report as HTML."""
    template = _environment().get_template(REPORT_TEMPLATE)
    return template.render(report=report, kinds=[KIND_LABELS[k] for k in KINDS], kind_keys=list(KINDS))


def write_report(report: Report, path: Path) -> Path:
    path.write_text(render_report(report), encoding="utf-8")
    return path
