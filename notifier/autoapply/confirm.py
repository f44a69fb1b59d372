"""`zhixiang autoapply confirm FILE`: the collection system's confirmation moves entries listed → applied.

The confirmation file is a CSV (UTF-8, with or without BOM, or GBK) or an Excel workbook (.xlsx, its first
sheet, the header in row 1) with at least the columns 清单编号, 纳税人识别号, 所属期, 政策编号 and 减免金额（元）
— the first columns of the auto-apply list, so the list itself (CSV or .xlsx) with the rows the collection
system applied is a valid confirmation — and optionally 办理日期 (YYYY-MM-DD, or an Excel date; default: the
day of the confirmation). Cells in Excel's ="…" form are read as their text. A row is named by its line in
the CSV, or its row number in the workbook (the header being 1).

A row is applied only when its list number is in the ledger and the taxpayer, period, rule and amount are
those of the list; every other row goes to the quarantine file (file, row, field, value, reason) and the
rest are applied. Reading the same file again changes nothing (entries already applied are counted, not
applied twice).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy.engine import Engine

from engine.errors import InputError
from notifier.autoapply.ledger import get_entries, mark_applied
from profiles import excel

REQUIRED = ("清单编号", "纳税人识别号", "所属期", "政策编号", "减免金额（元）")
APPLIED_ON = "办理日期"
QUARANTINE_HEADERS = ("文件", "行", "字段", "值", "原因")
_KEY_FIELDS = (("纳税人识别号", "taxpayer_id"), ("所属期", "period"), ("政策编号", "rule_id"))


@dataclass(frozen=True)
class Problem:
    file: str
    row: int  # the line of the file, the header being line 1
    field: str
    value: str
    reason: str


@dataclass
class ConfirmResult:
    file: Path
    rows: int = 0
    applied: int = 0  # listed → applied now
    already_applied: int = 0  # applied by an earlier confirmation (the same file read again)
    problems: list[Problem] = field(default_factory=list)
    quarantine: Path | None = None

    @property
    def quarantined_rows(self) -> int:
        return len({p.row for p in self.problems})

    def summary(self) -> dict[str, object]:
        return {"file": str(self.file), "rows": self.rows, "applied": self.applied,
                "already_applied": self.already_applied, "quarantined_rows": self.quarantined_rows,
                "quarantine": str(self.quarantine) if self.quarantine else None}


def default_quarantine(path: Path) -> Path:
    return path.with_name(f"{path.stem}.quarantine.csv")


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line, row)]) of a confirmation file; a structural problem is an InputError (exit 2)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"无法读取确认文件 {path}：{exc.strerror or exc}") from exc
    records = _xlsx_records(path, data) if data[:4] == b"PK\x03\x04" else _csv_records(path, data)
    try:
        header = [h.strip() for h in next(records)]
    except StopIteration:
        raise InputError(f"确认文件 {path} 是空文件：应有表头 {'、'.join(REQUIRED)}") from None
    missing = [h for h in REQUIRED if h not in header]
    if missing:
        raise InputError(f"确认文件 {path} 缺少列：{'、'.join(missing)}（应有 {'、'.join(REQUIRED)}，"
                         f"可选 {APPLIED_ON}；可直接用自动享受清单删去未办理的行）")
    rows = []
    for line, values in enumerate(records, start=2):
        if not any(v.strip() for v in values):
            continue
        padded = list(values) + [""] * (len(header) - len(values))
        rows.append((line, {h: excel.plain(padded[i].strip()) for i, h in enumerate(header) if h}))
    return header, rows


def _csv_records(path: Path, data: bytes) -> Iterator[Sequence[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gbk")
        except UnicodeDecodeError as exc:
            raise InputError(f"确认文件 {path} 既不是 UTF-8 也不是 GBK 编码的 CSV，"
                             "也不是 Excel 工作簿（.xlsx）") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from reader
    except csv.Error as exc:
        raise InputError(f"确认文件 {path} 第 {reader.line_num} 行不是可读的 CSV：{exc}") from exc


def _xlsx_records(path: Path, data: bytes) -> Iterator[Sequence[str]]:
    """The first sheet's rows as text, row 1 first; rows are numbered as Excel numbers them."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(f"确认文件 {path} 不是可读的 Excel 工作簿（.xlsx）：{exc}") from exc
    try:
        sheet = wb.worksheets[0]
        expected = 1
        for row in sheet.iter_rows():
            number = next((c.row for c in row if getattr(c, "row", None)), expected)
            while expected < number:  # rows Excel left empty keep the numbering
                yield ()
                expected += 1
            yield [_cell_text(c.value) for c in row]
            expected += 1
    finally:
        wb.close()


def _cell_text(value: object) -> str:
    """A cell as the text a CSV would hold: numbers without float noise, dates as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def confirm_file(engine: Engine, path: Path, *, today: date, quarantine: Path | None = None) -> ConfirmResult:
    """Apply the confirmation file's good rows; write the quarantine file when any row is refused."""
    path = Path(path)
    _, rows = read_rows(path)
    result = ConfirmResult(path, rows=len(rows))
    name = str(path)
    entries = get_entries(engine, (r.get("清单编号", "") for _, r in rows if r.get("清单编号")))
    good: list[tuple[int, str, date, Decimal]] = []
    seen: dict[str, int] = {}
    for line, r in rows:
        problems: list[Problem] = []

        def bad(field_name: str, reason: str, line: int = line, r: dict[str, str] = r,
                problems: list[Problem] = problems) -> None:
            problems.append(Problem(name, line, field_name, r.get(field_name, ""), reason))

        no = r.get("清单编号", "")
        entry = entries.get(no)
        if not no:
            bad("清单编号", "缺少清单编号")
        elif entry is None:
            bad("清单编号", "台账中没有该清单编号：不是本系统列出的自动享受事项")
        elif no in seen:
            bad("清单编号", f"同一清单编号在本文件第 {seen[no]} 行已出现")
        if entry is not None:
            for header, attr in _KEY_FIELDS:
                if r.get(header, "") != getattr(entry, attr):
                    bad(header, f"与清单 {no} 不符：清单为 {getattr(entry, attr)}")
        amount: Decimal | None = None
        try:
            amount = Decimal(r.get("减免金额（元）", "").replace(",", ""))
            if not amount.is_finite() or amount < 0:
                raise InvalidOperation
        except InvalidOperation:
            bad("减免金额（元）", "不是有效金额（应为不小于0的数字，如 12500.00）")
            amount = None
        if amount is not None and entry is not None and amount.quantize(Decimal("0.01")) != entry.amount:
            bad("减免金额（元）", f"与清单 {no} 的减免金额 {entry.amount} 元不符")
        applied_on = today
        if r.get(APPLIED_ON):
            try:
                applied_on = date.fromisoformat(r[APPLIED_ON])
            except ValueError:
                bad(APPLIED_ON, "不是日期（应为 YYYY-MM-DD）")
        if no and no not in seen:
            seen[no] = line
        if problems:
            result.problems.extend(problems)
        elif entry is not None and amount is not None:
            good.append((line, no, applied_on, amount))
    with engine.begin() as conn:
        for line, no, applied_on, amount in good:
            if mark_applied(conn, no, applied_on=applied_on, amount=amount, file=name, row=line):
                result.applied += 1
            else:
                result.already_applied += 1
    if result.problems:
        result.quarantine = quarantine or default_quarantine(path)
        excel.write_rows(result.quarantine, ("file", "row", "field", "value", "reason"),
                         ((p.file, p.row, p.field, p.value, p.reason) for p in result.problems),
                         header=QUARANTINE_HEADERS)
    return result
