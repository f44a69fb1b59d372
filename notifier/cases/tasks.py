"""Task lists for risk officers: one Excel workbook (and the same as CSV) per tax authority.

Each workbook has a sheet per risk tier (高风险, 中风险) and one for data-verification items (数据核实),
always in that order and always present, so a team's macros and habits keep working, then a summary sheet
(汇总: cases, overdue cases and amounts per sheet and rule). Headers are
Chinese, the header row is frozen and filtered, amounts are numbers with a number format, due dates
are dates, and a case's evidence is spelt out condition by condition. The CSV (UTF-8 with BOM, so
Excel opens it) holds the same rows and columns, all tiers in one file.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy.engine import Engine

from engine.errors import ZhixiangError
from engine.findings import STATUS_LABELS
from notifier.cases.ledger import TIER_LABELS
from notifier.cases.queries import Case, CaseFilter, find_cases
from notifier.cases.status import OPEN_STATUSES
from profiles import excel

#: "id": an id, code or period — text, kept text in Excel when the CSV is opened (profiles.excel).
CellKind = Literal["text", "id", "wrap", "money", "date", "int"]

MONEY_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
#: Excel refuses longer cell texts.
_CELL_LIMIT = 32_767
#: The tiers a workbook has sheets for, in sheet order.
SHEET_TIERS: tuple[str, ...] = ("high", "medium", "verification")


@dataclass(frozen=True)
class TaskColumn:
    """One column of a task list: header, width (in characters), kind and how to get the value."""

    header: str
    width: float
    kind: CellKind
    value: Callable[[Case, date], Any]


#: A figure with decimals and at least four integer digits (money, 3441951.70): years, ids and periods never
#: match, having no decimal part.
_FIGURE = re.compile(r"(?<![\d.,])(-?\d{4,})(\.\d+)(?![\d.])")


def readable_figures(text: str) -> str:
    """Figures in a reason or evidence line with thousands separators: 3441951.70 → 3,441,951.70."""
    return _FIGURE.sub(lambda m: f"{int(m.group(1)):,}{m.group(2)}", text)


def evidence_text(evidence: Iterable[Mapping[str, Any]]) -> str:
    """A case's evidence, one condition a line: 【不满足】从业人数：301 人（标准 300 人）. A threshold equal to the
    value (适用范围：企业) is not repeated; figures get thousands separators."""
    lines = []
    for item in evidence:
        status = STATUS_LABELS.get(str(item.get("status")), str(item.get("status")))
        value = item.get("value") or ("缺失" if item.get("status") == "unknown" else "—")
        threshold = item.get("threshold")
        standard = f"（标准 {threshold}）" if threshold and threshold != value else ""
        lines.append(readable_figures(f"【{status}】{item.get('label') or item.get('condition')}：{value}{standard}"))
    return "\n".join(lines)


COLUMNS: tuple[TaskColumn, ...] = (
    TaskColumn("案件编号", 36, "id", lambda c, _: c.case_no),
    TaskColumn("状态", 9, "text", lambda c, _: c.status),
    TaskColumn("风险等级", 10, "text", lambda c, _: TIER_LABELS.get(c.tier, c.tier)),
    TaskColumn("纳税人识别号", 22, "id", lambda c, _: c.taxpayer_id),
    TaskColumn("纳税人名称", 30, "text", lambda c, _: c.taxpayer_name),
    TaskColumn("区县", 10, "text", lambda c, _: c.district),
    TaskColumn("所属期", 9, "id", lambda c, _: c.period),
    TaskColumn("优惠政策", 28, "text", lambda c, _: c.rule_name),
    TaskColumn("规则编号", 24, "text", lambda c, _: c.rule_id),
    TaskColumn("涉及金额（元）", 16, "money", lambda c, _: c.amount),
    TaskColumn("申报享受金额（元）", 18, "money", lambda c, _: c.claimed_amount),
    TaskColumn("判定理由", 48, "wrap", lambda c, _: readable_figures(c.reasons or "")),
    TaskColumn("证据", 60, "wrap", lambda c, _: evidence_text(c.evidence)),
    TaskColumn("政策依据", 36, "wrap", lambda c, _: c.basis),
    TaskColumn("立案日期", 12, "date", lambda c, _: c.opened_on),
    TaskColumn("办理期限", 12, "date", lambda c, _: c.due_on),
    TaskColumn("剩余天数", 10, "int", lambda c, as_of: c.days_left(as_of) if c.is_open else None),
    TaskColumn("承办人", 10, "text", lambda c, _: c.assignee or ""),
    TaskColumn("核实结论", 10, "text", lambda c, _: c.resolution or ""),
    TaskColumn("主管税务机关", 16, "id", lambda c, _: c.tax_authority),
    TaskColumn("证据所属运行", 22, "id", lambda c, _: c.evidence_run_id),
)
HEADERS: tuple[str, ...] = tuple(col.header for col in COLUMNS)


@dataclass(frozen=True)
class TaskList:
    """The files written for one tax authority and how many rows each sheet got."""

    authority: str
    workbook: Path
    csv: Path
    counts: Mapping[str, int]  # sheet name → rows


def export_task_lists(
    engine: Engine,
    out_dir: str | Path,
    *,
    as_of: date,
    authorities: Sequence[str] = (),
    statuses: Sequence[str] = tuple(sorted(OPEN_STATUSES)),
) -> list[TaskList]:
    """Write `<authority>.xlsx` and `<authority>.csv` into `out_dir` for each authority with cases.

    `authorities` restricts the export; an authority asked for by name gets its (possibly empty) files
    even when it has no cases, so "nothing to do" is an answer, not a missing file. `as_of` fixes the
    remaining-days column and the workbooks' dates, so the same ledger always gives the same files.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZhixiangError(f"无法创建输出目录 {out}：{exc.strerror}") from exc
    selected = find_cases(engine, CaseFilter(authorities=authorities, statuses=statuses, tiers=SHEET_TIERS))
    by_authority: dict[str, list[Case]] = {a: [] for a in authorities}
    for case in selected:
        by_authority.setdefault(case.tax_authority, []).append(case)
    written = []
    stems = authority_file_stems(by_authority)
    for authority in sorted(by_authority):
        rows = by_authority[authority]
        stem = stems[authority]
        sheets = {TIER_LABELS[t]: [c for c in rows if c.tier == t] for t in SHEET_TIERS}
        xlsx, csv_path = out / f"{stem}.xlsx", out / f"{stem}.csv"
        try:
            write_workbook(xlsx, sheets, as_of=as_of, title=f"{authority} 风险应对任务清单")
            write_csv(csv_path, [c for t in SHEET_TIERS for c in rows if c.tier == t], as_of=as_of)
        except OSError as exc:
            raise ZhixiangError(f"无法写入任务清单 {xlsx.parent}：{exc.strerror}") from exc
        written.append(TaskList(authority, xlsx, csv_path, {name: len(v) for name, v in sheets.items()}))
    return written


def write_workbook(path: Path, sheets: Mapping[str, Sequence[Case]], *, as_of: date, title: str = "",
                   summary: bool = True) -> None:
    """One sheet per entry of `sheets` (name → cases), in the given order, then the summary sheet (汇总)
    (write-only: big lists are fine)."""
    wb = excel.workbook(title, as_of)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        _write_sheet(ws, rows, as_of)
    if summary:
        _write_summary(wb.create_sheet(SUMMARY_SHEET), sheets, as_of)
    wb.save(path)


#: The last sheet of every workbook (after the tier sheets, so that macros counting sheets from the first
#: keep working): cases, overdue cases and amounts per sheet and rule.
SUMMARY_SHEET = "汇总"
SUMMARY_HEADERS: tuple[str, ...] = ("风险等级", "优惠政策", "规则编号", "案件数", "其中逾期", "涉及金额（元）")
_SUMMARY_WIDTHS = (10, 40, 28, 10, 10, 18)


def _write_summary(ws: WriteOnlyWorksheet, sheets: Mapping[str, Sequence[Case]], as_of: date) -> None:
    for i, width in enumerate(_SUMMARY_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    header = []
    for text in SUMMARY_HEADERS:
        cell = WriteOnlyCell(ws, value=text)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        header.append(cell)
    ws.append(header)
    for name, rows in sheets.items():
        # a data-verification item's amount is what it would be worth if eligible: not a figure to add up
        adds_up = name != TIER_LABELS["verification"]
        by_rule: dict[str, list[Case]] = {}
        for case in rows:
            by_rule.setdefault(case.rule_id, []).append(case)
        for rule_id in sorted(by_rule):
            group = by_rule[rule_id]
            ws.append(_summary_row(ws, name, group[0].rule_name, rule_id, group, as_of, adds_up, bold=False))
        ws.append(_summary_row(ws, name, "合计", "", rows, as_of, adds_up, bold=True))


def _summary_row(ws: WriteOnlyWorksheet, sheet: str, rule_name: str, rule_id: str, cases: Sequence[Case],
                 as_of: date, adds_up: bool, *, bold: bool) -> list[WriteOnlyCell]:
    amount = sum((c.amount for c in cases if c.amount is not None), Decimal("0.00")) if adds_up else None
    overdue = sum(1 for c in cases if c.is_overdue(as_of))
    cells = [WriteOnlyCell(ws, value=v) for v in (sheet, rule_name, rule_id, len(cases), overdue, amount)]
    cells[5].number_format = MONEY_FORMAT
    for cell in cells:
        cell.alignment = _TOP
        if bold:
            cell.font = _HEADER_FONT
    return cells


_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_HEADER_ALIGN = Alignment(horizontal="center", vertical="center", wrap_text=True)
_TOP = Alignment(vertical="top")
_WRAP = Alignment(vertical="top", wrap_text=True)
_OVERDUE_FONT = Font(color="9C0006", bold=True)
_OVERDUE_FILL = PatternFill("solid", fgColor="FFC7CE")


def _write_sheet(ws: WriteOnlyWorksheet, rows: Sequence[Case], as_of: date) -> None:
    # Layout first: a write-only sheet takes widths, panes and filters before any row.
    for i, col in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
    ws.freeze_panes = "A2"
    last = get_column_letter(len(COLUMNS))
    ws.auto_filter.ref = f"A1:{last}{len(rows) + 1}"
    days = get_column_letter(HEADERS.index("剩余天数") + 1)
    if rows:
        ws.conditional_formatting.add(
            f"{days}2:{days}{len(rows) + 1}",
            CellIsRule(operator="lessThan", formula=["0"], font=_OVERDUE_FONT, fill=_OVERDUE_FILL),
        )
    header = []
    for col in COLUMNS:
        cell = WriteOnlyCell(ws, value=col.header)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        header.append(cell)
    ws.append(header)
    for case in rows:
        ws.append([_cell(ws, col, col.value(case, as_of)) for col in COLUMNS])


def _cell(ws: WriteOnlyWorksheet, col: TaskColumn, value: Any) -> WriteOnlyCell:
    if col.kind in ("text", "id", "wrap"):
        text = ILLEGAL_CHARACTERS_RE.sub("", str(value or ""))[:_CELL_LIMIT]
        cell = WriteOnlyCell(ws, value=text)
        cell.data_type = "s"  # never a formula, whatever the text starts with
        cell.alignment = _WRAP if col.kind == "wrap" else _TOP
        return cell
    cell = WriteOnlyCell(ws, value=value)
    cell.alignment = _TOP
    if col.kind == "money":
        cell.number_format = MONEY_FORMAT
    elif col.kind == "date":
        cell.number_format = DATE_FORMAT
    return cell


def write_csv(path: Path, rows: Sequence[Case], *, as_of: date) -> None:
    """The task list as CSV: UTF-8 with BOM, the workbook's headers and columns, plain numbers and ISO dates,
    Excel-safe texts and ids kept text (profiles.excel)."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        for case in rows:
            writer.writerow([_csv_value(col, col.value(case, as_of)) for col in COLUMNS])


def _csv_value(col: TaskColumn, value: Any) -> str:
    if value is None:
        return ""
    if col.kind == "id":
        return excel.keep_text(str(value))
    if col.kind in ("text", "wrap"):
        return excel.neutralise(str(value))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def _file_stem(authority: str) -> str:
    return _UNSAFE.sub("_", authority).strip(" .") or "未注明税务机关"


def authority_file_stems(authorities: Iterable[str]) -> dict[str, str]:
    """A distinct file name (without suffix) per authority code: the cleaned code, and where two codes clean
    to the same name (`13301020000.` and `13301020000`), each but an exact one gets a short hash of its code,
    so no authority's task list ever overwrites another's. Names compare case-insensitively (file systems)."""
    codes = sorted(set(authorities))
    by_stem: dict[str, list[str]] = {}
    for code in codes:
        by_stem.setdefault(_file_stem(code).lower(), []).append(code)
    out: dict[str, str] = {}
    for group in by_stem.values():
        for code in group:
            stem = _file_stem(code)
            if len(group) > 1 and stem != code:
                stem = f"{stem}-{hashlib.sha256(code.encode('utf-8')).hexdigest()[:8]}"
            out[code] = stem
    return out
