"""Which findings are applied by the bureau itself, and the auto-apply lists for the collection system.

A finding is *automatic* when its rule says `apply: {mode: automatic}` and it is 应享未享: the taxpayer is
eligible and has not enjoyed the relief. Such findings never reach a letter (`without_automatic`); those
with an estimated relief above zero go on the night's list of their tax authority (`automatic_findings`,
`write_lists`): `autoapply/<主管税务机关>.csv` (UTF-8 with BOM, Chinese headers, ids kept text) and `.xlsx`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from engine.catalogue import Catalogue
from notifier.autoapply.ledger import Entry
from notifier.cases.tasks import authority_file_stems
from profiles import excel

LIST_DIR = "autoapply"

#: The columns of an auto-apply list: (header, Entry attribute, kind, width). The confirmation file the
#: collection system sends back carries the first columns (see confirm.py).
LIST_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("清单编号", "entry_no", "id", 18),
    ("纳税人识别号", "taxpayer_id", "id", 22),
    ("纳税人名称", "taxpayer_name", "text", 30),
    ("主管税务机关", "tax_authority", "id", 14),
    ("所属期", "period", "id", 10),
    ("政策编号", "rule_id", "id", 24),
    ("优惠名称", "rule_name", "text", 40),
    ("减免金额（元）", "amount", "money", 16),
    ("依据", "basis", "wrap", 50),
    ("证据摘要", "evidence", "wrap", 60),
    ("首次列入日期", "first_listed_on", "date", 12),
)
HEADERS: tuple[str, ...] = tuple(c[0] for c in LIST_COLUMNS)


def _automatic(catalogue: Catalogue) -> pl.Expr:
    return (pl.col("kind") == "unclaimed") & pl.col("rule_id").is_in(sorted(catalogue.automatic_rules))


def without_automatic(findings: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    """The findings a letter may tell: all but the 应享未享 of reliefs the bureau applies itself."""
    if not catalogue.automatic_rules:
        return findings
    return findings.filter(~_automatic(catalogue))


def automatic_findings(findings: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    """The 应享未享 findings of automatic rules with an estimated relief above zero (what the lists carry)."""
    if not catalogue.automatic_rules or findings.is_empty():
        return findings.clear()
    return findings.filter(_automatic(catalogue) & (pl.col("estimated_amount") > 0))


def listing_rows(findings: pl.DataFrame, catalogue: Catalogue) -> list[dict[str, Any]]:
    """The automatic findings as ledger rows (ledger.record_listed): the basis says why the bureau applies it."""
    rows = automatic_findings(findings, catalogue).select(
        "taxpayer_id", "period", "rule_id", "rule_name", "taxpayer_name", "tax_authority",
        pl.col("estimated_amount").alias("amount"), "basis", pl.col("reasons").alias("evidence")).to_dicts()
    for r in rows:
        rule = catalogue.rules[r["rule_id"]]
        r["basis"] = f"{r['basis'] or rule.basis_text}。自动享受：{rule.apply_label}（{rule.apply_basis_text}）"
    return rows


@dataclass(frozen=True)
class AutoApplyList:
    """One tax authority's list written for the night."""

    authority: str
    csv: Path
    xlsx: Path
    rows: int


def write_lists(entries: Sequence[Entry], out_dir: Path, *, as_of: date) -> list[AutoApplyList]:
    """`<authority>.csv` and `<authority>.xlsx` per tax authority with entries; nothing when there are none."""
    by_authority: dict[str, list[Entry]] = {}
    for e in entries:
        by_authority.setdefault(e.tax_authority, []).append(e)
    if not by_authority:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = authority_file_stems(by_authority)
    written = []
    for authority, rows in sorted(by_authority.items()):
        rows = sorted(rows, key=lambda e: (e.period, e.rule_id, e.taxpayer_id))
        csv_path, xlsx = out_dir / f"{stems[authority]}.csv", out_dir / f"{stems[authority]}.xlsx"
        write_csv(csv_path, rows)
        write_xlsx(xlsx, rows, as_of=as_of, title=f"{authority} 免申即享自动享受清单")
        written.append(AutoApplyList(authority, csv_path, xlsx, len(rows)))
    return written


def _value(e: Entry, attr: str) -> Any:
    return getattr(e, attr)


def write_csv(path: Path, rows: Iterable[Entry]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADERS)
        for e in rows:
            out = []
            for _, attr, kind, _ in LIST_COLUMNS:
                value = _value(e, attr)
                if value is None:
                    out.append("")
                elif kind == "id":
                    out.append(excel.keep_text(str(value)))
                elif kind in ("text", "wrap"):
                    out.append(excel.neutralise(str(value)))
                elif isinstance(value, date):
                    out.append(value.isoformat())
                else:
                    out.append(str(value))
            writer.writerow(out)


_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_HEADER_ALIGN = Alignment(horizontal="center", vertical="center", wrap_text=True)
_TOP = Alignment(vertical="top")
_WRAP = Alignment(vertical="top", wrap_text=True)
_CELL_LIMIT = 32_000


def write_xlsx(path: Path, rows: Sequence[Entry], *, as_of: date, title: str) -> None:
    wb = excel.workbook(title, as_of)
    ws = wb.create_sheet("自动享受清单")
    for i, (_, _, _, width) in enumerate(LIST_COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(LIST_COLUMNS))}{len(rows) + 1}"
    header = []
    for text in HEADERS:
        cell = WriteOnlyCell(ws, value=text)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        header.append(cell)
    ws.append(header)
    for e in rows:
        cells = []
        for _, attr, kind, _ in LIST_COLUMNS:
            value = _value(e, attr)
            if kind in ("id", "text", "wrap"):
                cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", str(value or ""))[:_CELL_LIMIT])
                cell.data_type = "s"  # never a formula, whatever the text starts with
                cell.alignment = _WRAP if kind == "wrap" else _TOP
            else:
                cell = WriteOnlyCell(ws, value=value)
                cell.alignment = _TOP
                cell.number_format = "#,##0.00" if kind == "money" else "yyyy-mm-dd"
            cells.append(cell)
        ws.append(cells)
    wb.save(path)
