"""Money and periods as people read them — one formatter, one way to show a missing figure.

A missing figure is shown as MISSING ("—") wherever a person reads it (console tables, case notes,
reports); machine outputs (summary.json, whatif.json) carry it as null (`money_plain`). Missing is
never shown as 0: an unknown amount is not an amount of nothing. Money is Decimal rounded 四舍五入
(ROUND_HALF_UP) to the fen, never float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from profiles.periods import PeriodError, parse_period

MISSING = "—"
CENT = Decimal("0.01")
WAN = Decimal(10000)


def to_decimal(value: Any) -> Decimal:
    """An amount as Decimal: accepts Decimal, int, str ("1,234.50") and, reluctantly, float (via repr)."""
    if type(value) is Decimal or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("金额不能是真假值")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).replace(",", "").strip())
    except InvalidOperation as exc:
        raise ValueError(f"不是金额：{value!r}") from exc


def round_cents(value: Any) -> Decimal:
    """四舍五入 to the fen."""
    return to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Any, unit: str = "") -> str:
    """`1,234.56` (with `unit`: `1,234.56 元`), or MISSING for a missing figure."""
    if value is None:
        return MISSING
    text = f"{round_cents(value):,}"
    return f"{text} {unit}" if unit else text


def money_plain(value: Any) -> str | None:
    """`1234.56` for machine outputs (JSON): no separators; a missing figure stays null."""
    return None if value is None else str(round_cents(value))


@lru_cache(maxsize=4096)
def period_label(period: str) -> str:
    """`2025 年度`, `2026 年第 3 季度`, `2026 年 9 月` (profiles.periods.Period.label spaced for a letter or
    a report); an unparsable period is shown as it is."""
    try:
        return parse_period(period).label_spaced
    except PeriodError:
        return str(period)
