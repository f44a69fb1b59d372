"""Rule precision over time: per month of decision, cases officers confirmed against those they found 误报."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta, timezone

from sqlalchemy import select
from sqlalchemy.engine import Engine

from notifier.cases.status import CONFIRMED, FALSE_ALARM
from notifier.cases.tables import case_history, cases
from notifier.nightly.report_charts import line_chart

BEIJING = timezone(timedelta(hours=8))


def precision_by_month(engine: Engine, authorities: Sequence[str], rule: str | None = None
                       ) -> tuple[list[dict[str, object]], str]:
    """Decisions (已更正/放弃优惠 = confirmed, 误报) recorded in the case history, by month in Beijing time.

    Counts decisions as they were made (a decision later sent back still counted in its month): the
    chart shows how officers judged each month's work; the table above it shows what stands today.
    """
    stmt = (select(case_history.c.at, case_history.c.to_status, cases.c.rule_id)
            .join(cases, cases.c.case_no == case_history.c.case_no)
            .where(case_history.c.to_status.in_([*sorted(CONFIRMED), FALSE_ALARM]),
                   cases.c.tier.in_(["high", "medium"])))
    if authorities:
        stmt = stmt.where(cases.c.tax_authority.in_(list(authorities)))
    if rule:
        stmt = stmt.where(cases.c.rule_id == rule)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with engine.connect() as conn:
        for at, status, _rule in conn.execute(stmt):
            month = at.astimezone(BEIJING).strftime("%Y-%m")
            counts[month][0 if status in CONFIRMED else 1] += 1
    months = sorted(counts)
    rows: list[dict[str, object]] = []
    for m in months:
        confirmed, false = counts[m]
        rows.append({"month": m, "confirmed": confirmed, "false_alarms": false,
                     "precision": confirmed / (confirmed + false) if confirmed + false else None})
    title = f"各月核实结论（{rule}）" if rule else "各月核实结论（全部规则）"
    chart = line_chart(months, [("确认（已更正＋放弃优惠）", [float(counts[m][0]) for m in months]),
                                ("误报", [float(counts[m][1]) for m in months])],
                       title=title, unit="件", width=900, height=240) if months else ""
    return rows, chart
