"""The what-if report (参数调整测算报告): one self-contained HTML page about one `zhixiang whatif`.

Laid out like the run report (notifier/nightly/report.py) and drawn with its chart helpers
(notifier/nightly/report_charts.py): bars are the size of each change, labelled with its sign.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from markupsafe import Markup

from engine.catalogue import Catalogue
from engine.findings.figures import money
from engine.whatif import WhatIfResult
from notifier.nightly.report import Report, _environment
from notifier.nightly.report_charts import PALETTE, bar_chart

WHATIF_TEMPLATE = "whatif.html"
_WAN = Decimal(10000)


def _signed(value: Any) -> str:
    v = Decimal(value or 0).quantize(Decimal("0.01"))
    return f"{'+' if v > 0 else ''}{v:,} 元"


def _delta_chart(items: list[tuple[str, Any]], title: str) -> Markup:
    """Bars as long as each change (万元), the signed change written beside them."""
    shown = [(label, Decimal(v or 0)) for label, v in items if Decimal(v or 0)]
    if not shown:
        return Markup("")
    # bar_chart's formatter sees only the bar's size: the sign is looked up by size (two changes of the same
    # size and opposite signs, which money figures make unlikely, are shown as ±).
    signs: dict[float, set[bool]] = {}
    for _, v in shown:
        signs.setdefault(float(abs(v) / _WAN), set()).add(v > 0)

    def text(size: float) -> str:
        got = signs.get(size, set())
        sign = "±" if len(got) != 1 else ("+" if got == {True} else "−")
        return f"{sign}{size:,.2f} 万元"

    return Markup(bar_chart([(label, float(abs(v) / _WAN)) for label, v in shown], title=title, color=PALETTE[0],
                            value_text=text))


def _breakdown(frame: pl.DataFrame, column: str, title: str, header: str) -> dict[str, Any]:
    rows = [{"name": r[column], "newly": f"{int(r['newly_eligible']):,}", "lost": f"{int(r['no_longer_eligible']):,}",
             "before": money(r["relief_before"], "元"), "after": money(r["relief_after"], "元"),
             "delta": _signed(r["relief_delta"])} for r in frame.iter_rows(named=True)]
    chart = _delta_chart([(str(r[column]), r["relief_delta"]) for r in frame.iter_rows(named=True)],
                         f"{title}：测算减免额变化（万元）")
    return {"title": title, "column": header, "rows": rows, "chart": chart}


def build_whatif_report(result: WhatIfResult, before: Catalogue, *, data_source: str = "") -> Report:
    """The figures and charts of one what-if."""
    totals = result.totals()
    delta = Decimal(totals.get("relief_delta") or 0)
    overrides = []
    for o in result.overrides:
        rule = before.rules[o.rule_id]
        param = rule.parameters[o.parameter]
        overrides.append({"rule": rule.name, "rule_id": o.rule_id, "label": param.label or o.parameter,
                          "parameter": o.parameter, "current": f"{param.at(result.period.start)} {param.unit}".strip(),
                          "value": f"{o.value} {param.unit}".strip()})
    by_rule = []
    for r in result.by_rule.iter_rows(named=True):
        by_rule.append({
            "name": r["rule_name"], "code": r["rule_id"], "newly": f"{r['newly_eligible']:,}",
            "lost": f"{r['no_longer_eligible']:,}",
            "unclaimed": f"{r['unclaimed_before']:,} → {r['unclaimed_after']:,}",
            "improper": f"{r['improper_before']:,} → {r['improper_after']:,}",
            "undetermined": f"{r['undetermined_before']:,} → {r['undetermined_after']:,}",
            "before": money(r["relief_before"], "元"), "after": money(r["relief_after"], "元"),
            "delta": _signed(r["relief_delta"])})
    changed = result.by_rule.filter((pl.col("relief_delta") != 0) | (pl.col("newly_eligible") > 0)
                                    | (pl.col("no_longer_eligible") > 0))
    report = Report(
        title=f"参数调整测算报告 — {result.period.label}",
        meta=[("所属期", result.period.label), ("数据", data_source or "—"),
              ("规则集版本（现行 / 调整后）", f"{result.versions[0]} / {result.versions[1]}"),
              ("评估纳税人", f"{result.taxpayers_evaluated:,} 户")],
        cards=[
            {"label": "测算减免额变化", "value": _signed(delta),
             "note": f"现行 {money(totals.get('relief_before'), '元')}，"
                     f"调整后 {money(totals.get('relief_after'), '元')}"},
            {"label": "新增可享", "value": f"{int(totals.get('newly_eligible') or 0):,} 户次",
             "note": "按政策逐条计"},
            {"label": "不再可享", "value": f"{int(totals.get('no_longer_eligible') or 0):,} 户次",
             "note": "按政策逐条计"},
            {"label": "应享未享 / 违规享受",
             "value": f"{int(totals.get('unclaimed_after') or 0) - int(totals.get('unclaimed_before') or 0):+,} / "
                      f"{int(totals.get('improper_after') or 0) - int(totals.get('improper_before') or 0):+,}",
             "note": "调整后较现行增减的条数"},
        ],
        warnings=["本报告为参数调整测算，不是现行政策的判定结果：不生成提醒函，不进入案件台账。",
                  "测算减免额 = 合规享受和应享未享纳税人的测算优惠额之和；待核实（数据缺失）的不计入。"],
    )
    report.sections = {
        "overrides": overrides,
        "replacements": [{"rule_file": t, "proposal": p} for t, p in result.replacements],
        "by_rule": by_rule,
        "breakdowns": [
            _breakdown(result.by_district, "district", "按区县", "区县"),
            _breakdown(result.by_industry, "industry_section", "按行业门类（行业代码首字母）", "行业门类"),
            _breakdown(result.by_size, "size_band", "按从业人数规模", "从业人数"),
        ],
    }
    items = [(r["rule_name"], r["relief_delta"]) for r in changed.iter_rows(named=True)]
    report.charts = {"by_rule": _delta_chart(items, "按政策：测算减免额变化（万元）")}
    return report


def write_whatif_report(report: Report, path: Path) -> Path:
    path.write_text(_environment().get_template(WHATIF_TEMPLATE).render(report=report), encoding="utf-8")
    return path
