"""CSV files for Excel: one place that decides how a cell is written so that opening it is safe and exact.

Every CSV Zhixiang writes (findings, diff, periods/*/findings, quarantine, the outbox manifest and skipped
list, task lists) goes through here. Three decisions, all about what Excel does when it opens a CSV:

* **UTF-8 with BOM.** Without the BOM, Excel on a Chinese Windows reads the file as GBK.
* **Formula-leading texts are neutralised** (CSV injection): a text cell that starts with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so Excel shows it as text and never runs
  it. Numbers are written as numbers (a negative amount stays ``-12.50``).
* **Ids and periods stay text.** Excel turns an all-digit credit code into ``9.13301E+17`` (losing
  digits), a tax-authority code into a number and a period ``2026-08`` into a date. Such cells — plain
  ``[0-9A-Za-z-]`` values of the id and period columns, optionally with a leading ``+`` (phone numbers)
  — are written ``="91330106…"``: Excel evaluates the constant string formula and shows exactly the
  characters, left-aligned, and copying the cell copies the characters. A leading tab, the other
  common trick, leaves an invisible tab in every copied id, and a leading ``'`` in a CSV shows
  literally. The form is only used for values of that shape, so no taxpayer text ever reaches a formula.

Headers are Chinese (:data:`HEADERS`, one label per column name); coded values (kinds, risk tiers)
are written as their Chinese labels by the writer of each file. Tools that read these files back use
:func:`plain` (or :func:`plain_frame`) to undo the ``="…"`` form.
Machines should read the Parquet files, which are written untouched.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import polars as pl

if TYPE_CHECKING:
    from openpyxl import Workbook

#: Columns whose values are ids, codes or periods (kept as text in Excel), by CSV column name.
TEXT_COLUMNS: frozenset[str] = frozenset({
    "taxpayer_id", "period", "tax_authority", "package_id", "run_id", "case_no", "recipient",
    "phone", "evidence_run_id", "ruleset_version", "rule_version",
})

#: The Chinese header of every column a CSV for Excel shows, by column name (one label per name, whichever
#: file it appears in). Parquet files keep the names.
HEADERS: dict[str, str] = {
    "taxpayer_id": "纳税人识别号",
    "taxpayer_name": "纳税人名称",
    "period": "所属期",
    "rule_id": "规则编号",
    "rule_name": "优惠政策",
    "kind": "结果",
    "kind_prev": "上次结果",
    "estimated_amount": "涉及金额（元）",
    "estimated_amount_prev": "上次涉及金额（元）",
    "amount_delta": "金额变化（元）",
    "claimed_amount": "申报享受金额（元）",
    "risk_tier": "风险等级",
    "risk_tier_prev": "上次风险等级",
    "reasons": "判定理由",
    "basis": "政策依据",
    "district": "区县",
    "tax_authority": "主管税务机关",
    "ruleset_version": "规则集版本",
    "status": "状态",
    "status_label": "变化",
    "changes": "变化内容",
    # quarantine
    "file": "文件",
    "row": "行号",
    "column": "列",
    "value": "内容",
    "reason": "原因",
    # outbox manifest and skipped list
    "channel": "渠道",
    "recipient": "收件地址",
    "files": "文件",
    "incentives": "优惠政策编号",
    "incentive_names": "优惠政策",
    "reminders": "提醒条数",
    "total_estimated_saving": "预计可享金额合计（元）",
    "package_id": "发件包编号",
    "note": "说明",
    # what-if (zhixiang whatif)
    "change_label": "变化",
    "industry_section": "行业门类",
    "size_band": "从业人数规模",
    "outcome_before": "现行结果",
    "outcome_after": "调整后结果",
    "relief_before": "现行测算减免额（元）",
    "relief_after": "调整后测算减免额（元）",
    "relief_delta": "减免额变化（元）",
    "newly_eligible": "新增可享户数",
    "no_longer_eligible": "不再可享户数",
    "unclaimed_before": "现行应享未享",
    "unclaimed_after": "调整后应享未享",
    "improper_before": "现行违规享受",
    "improper_after": "调整后违规享受",
    "undetermined_before": "现行待核实",
    "undetermined_after": "调整后待核实",
}


def headers(columns: Iterable[str]) -> list[str]:
    """The Chinese headers of these columns (KeyError names a column without a label)."""
    return [HEADERS[c] for c in columns]


_FORMULA_START = r"^[=+\-@\t\r]"
_TEXT_SHAPE = r"^\+?[0-9A-Za-z][0-9A-Za-z\-]{0,63}$"
_FORMULA_START_RE = re.compile(_FORMULA_START)
_TEXT_SHAPE_RE = re.compile(_TEXT_SHAPE)
_AS_TEXT_RE = re.compile(r'^="(.*)"$', re.DOTALL)


def neutralise(text: str) -> str:
    """A text cell Excel cannot take for a formula."""
    return "'" + text if _FORMULA_START_RE.match(text) else text


def keep_text(value: str) -> str:
    """An id or period cell that Excel shows as exactly these characters (neutralised if not id-shaped)."""
    if _TEXT_SHAPE_RE.match(value):
        return f'="{value}"'
    return neutralise(value)


def cell(column: str, value: object) -> str:
    """One CSV cell of the named column (None → empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return keep_text(value) if column in TEXT_COLUMNS else neutralise(value)
    return str(value)


def plain(value: str) -> str:
    """The value behind a ``="…"`` cell (other cells unchanged): for tools reading these CSVs back."""
    m = _AS_TEXT_RE.match(value)
    return m.group(1) if m and _TEXT_SHAPE_RE.match(m.group(1)) else value


def excel_frame(frame: pl.DataFrame, text_columns: Iterable[str] = TEXT_COLUMNS) -> pl.DataFrame:
    """`frame` with every String column made safe for Excel (vectorised; other dtypes untouched)."""
    keep = set(text_columns)
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype != pl.String:
            continue
        col = pl.col(name)
        safe = pl.when(col.str.contains(_FORMULA_START)).then(pl.lit("'") + col).otherwise(col)
        if name in keep:
            safe = pl.when(col.str.contains(_TEXT_SHAPE)).then(pl.lit('="') + col + pl.lit('"')).otherwise(safe)
        exprs.append(safe.alias(name))
    return frame.with_columns(exprs) if exprs else frame


def plain_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame read from one of these CSVs with the ``="…"`` cells turned back into their values."""
    exprs = [
        pl.col(name).str.replace(r'^="(\+?[0-9A-Za-z][0-9A-Za-z\-]{0,63})"$', "$1")
        for name, dtype in frame.schema.items() if dtype == pl.String
    ]
    return frame.with_columns(exprs) if exprs else frame


def write_frame(frame: pl.DataFrame, target: Path | BinaryIO, *, include_header: bool = True) -> None:
    """Write `frame` as an Excel-safe CSV with Chinese headers (:data:`HEADERS`) and a BOM; with
    `include_header` false, rows only (for writers that append bucket after bucket to an open file)."""
    safe = excel_frame(frame)
    safe = safe.rename(dict(zip(safe.columns, headers(safe.columns), strict=True)))
    safe.write_csv(target, include_header=include_header, include_bom=include_header)


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]],
               header: Sequence[str] | None = None) -> Path:
    """Write rows (one value per column name) as an Excel-safe CSV; the file shows `header`, by default
    the columns' Chinese headers."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(header or headers(columns))
        for row in rows:
            writer.writerow([cell(c, v) for c, v in zip(columns, row, strict=True)])
    return path


def workbook(title: str, as_of: date) -> Workbook:
    """A write-only Excel workbook (big lists are fine) signed 直享 Zhixiang and dated `as_of`, not the
    wall clock, so the same night's list is the same file."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    stamp = datetime(as_of.year, as_of.month, as_of.day)
    wb.properties.creator = "直享 Zhixiang"
    wb.properties.title = title
    wb.properties.created = stamp
    wb.properties.modified = stamp
    return wb
