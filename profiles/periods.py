"""Tax periods: `2025` (year), `2026Q3` (quarter), `2026-09` (month) — parsing, bounds and labels."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

import polars as pl

PeriodKind = Literal["year", "quarter", "month"]
KIND_LABELS: dict[str, str] = {"year": "年度", "quarter": "季度", "month": "月度"}

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
#: The same three forms, for vectorized validation.
PERIOD_PATTERN = r"^(\d{4}|\d{4}Q[1-4]|\d{4}-(0[1-9]|1[0-2]))$"


class PeriodError(ValueError):
    """A period string is not one of the three accepted forms."""


@dataclass(frozen=True, order=True)
class Period:
    """One tax period with its first and last day."""

    text: str
    kind: PeriodKind
    start: date
    end: date

    @property
    def label(self) -> str:
        """Chinese label, e.g. 2025年度, 2026年第3季度, 2026年9月 (as reasons and reports write it)."""
        return self._label("")

    @property
    def label_spaced(self) -> str:
        """The label with spaces around the figures, as letters print it: 2025 年度, 2026 年第 3 季度."""
        return self._label(" ")

    def _label(self, sp: str) -> str:
        if self.kind == "year":
            return f"{self.start.year}{sp}年度"
        if self.kind == "quarter":
            return f"{self.start.year}{sp}年第{sp}{(self.start.month - 1) // 3 + 1}{sp}季度"
        return f"{self.start.year}{sp}年{sp}{self.start.month}{sp}月"

    def __str__(self) -> str:
        return self.text


def parse_period(text: str) -> Period:
    """Parse `2025`, `2026Q3` or `2026-09`; raise PeriodError naming the accepted forms."""
    s = str(text).strip()
    if m := _YEAR.match(s):
        y = int(m.group(1))
        return Period(s, "year", date(y, 1, 1), date(y, 12, 31))
    if m := _QUARTER.match(s):
        y, q = int(m.group(1)), int(m.group(2))
        first = 3 * (q - 1) + 1
        last = first + 2
        return Period(s, "quarter", date(y, first, 1), date(y, last, calendar.monthrange(y, last)[1]))
    if m := _MONTH.match(s):
        y, mo = int(m.group(1)), int(m.group(2))
        return Period(s, "month", date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1]))
    raise PeriodError(f"所属期 {text!r} 格式不正确：应为年度 2025、季度 2026Q3 或月份 2026-09")


def period_kind_expr(col: pl.Expr) -> pl.Expr:
    """Vectorized kind of a period string column: year / quarter / month, null when malformed."""
    return (
        pl.when(col.str.contains(r"^\d{4}$"))
        .then(pl.lit("year"))
        .when(col.str.contains(r"^\d{4}Q[1-4]$"))
        .then(pl.lit("quarter"))
        .when(col.str.contains(r"^\d{4}-(0[1-9]|1[0-2])$"))
        .then(pl.lit("month"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
