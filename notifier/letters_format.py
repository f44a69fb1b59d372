"""Chinese conventions for letters: amounts, dates, periods, masked ids and "why you qualify" lines.

Everything a letter prints goes through here, so that the HTML, the PDF, the plain text and the SMS
agree to the character. Money is Decimal and rounded 四舍五入 (ROUND_HALF_UP), never float.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from profiles.periods import PeriodError, parse_period

CENT = Decimal("0.01")
WAN = Decimal(10000)


def to_decimal(value: Any) -> Decimal:
    """An amount as Decimal: accepts Decimal, int, str ("1,234.50") and, reluctantly, float (via repr)."""
    if isinstance(value, Decimal):
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


def format_amount(value: Any) -> str:
    """`186.00 万元` from 10,000 元 up (after rounding to the fen), else `1,234.56 元`.

    The taxpayer's own figures always keep two decimals so that they can be found in their returns.
    """
    cents = round_cents(value)
    if abs(cents) >= WAN:
        wan = (cents / WAN).quantize(CENT, rounding=ROUND_HALF_UP)
        return f"{wan:,} 万元"
    return f"{cents:,} 元"


def format_limit(value: Any) -> str:
    """A legal threshold: like `format_amount` but a whole figure drops its `.00` (`300 万元`, `2,000 元`)."""
    text = format_amount(value)
    number, unit = text.split(" ")
    return f"{number.removesuffix('.00')} {unit}"


def format_date(day: date) -> str:
    """`2026年11月27日` — no leading zeros, no spaces, as on official documents."""
    return f"{day.year}年{day.month}月{day.day}日"


@lru_cache(maxsize=4096)
def period_label(period: str) -> str:
    """`2025 年度`, `2026 年第 3 季度`, `2026 年 9 月`; an unparsable period is shown as it is."""
    try:
        p = parse_period(period)
    except PeriodError:
        return str(period)
    if p.kind == "year":
        return f"{p.start.year} 年度"
    if p.kind == "quarter":
        return f"{p.start.year} 年第 {(p.start.month - 1) // 3 + 1} 季度"
    return f"{p.start.year} 年 {p.start.month} 月"


def mask_taxpayer_id(taxpayer_id: str) -> str:
    """`9133**********123X`: the first and last four characters of an 18-character id, the rest hidden.

    A letter never needs the full id: the taxpayer knows it, and a letter that goes astray should not
    leak it. Shorter ids (15- or 20-character legacy numbers) keep a quarter at each end.
    """
    text = str(taxpayer_id).strip()
    keep = 4 if len(text) >= 12 else max(1, len(text) // 4)
    if len(text) <= 2 * keep:
        return "*" * len(text)
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


# ------------------------------------------------------------------------------- reasons in letters

#: A money figure as the engine writes it in reasons: two decimals, with or without thousands commas.
_MONEY = re.compile(r"(?<![\d,.])(-?\d+(?:,\d{3})*\.\d{2}) 元")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
#: Units whose figures belong to the period of the finding ("您 2025 年度从业人数 120 人").
_PERIOD_UNITS = ("元", "万元", "人")


def _chinese_date(match: re.Match[str]) -> str:
    y, m, d = (int(g) for g in match.groups())
    try:
        return format_date(date(y, m, d))
    except ValueError:
        return match.group(0)


def _is_zero(text: str) -> bool:
    try:
        return to_decimal(text) == 0
    except (ValueError, TypeError):
        return False


def letter_line(evidence: dict[str, Any], period: str) -> str:
    """One evidence item as the letter says it, in the taxpayer's own figures.

    The engine's reason (`应纳税所得额 1,860,000.00 元，未超过 3,000,000.00 元上限`) is rewritten for a
    letter: money in 万元 where large, the threshold as the law writes it, dates in Chinese, and the
    sentence addressed to the taxpayer (`您 2025 年度应纳税所得额 186.00 万元，未超过 300 万元上限`).
    Conditions without figures (`从事国家非限制和禁止行业：满足`) read as their label.
    """
    reason = str(evidence.get("reason") or "")
    label = str(evidence.get("label") or "")
    value = str(evidence.get("value") or "")
    threshold = str(evidence.get("threshold") or "")
    status = evidence.get("status")
    verdict = "满足" if status == "pass" else "不满足"
    if evidence.get("condition") == "scope" and label:
        # who the policy is for: "纳税人类型为企业，属于企业" says it less plainly than the rule's label
        return f"您属于该项政策的适用对象：{label}" if status == "pass" else f"您不属于该项政策的适用对象：{label}"
    if not reason or reason.startswith(f"{label}：{verdict}"):
        # A condition without a comparison: its label says what holds; a failed one is negated.
        return label if status == "pass" else f"不符合：{label}"

    value_done = False

    def money(match: re.Match[str]) -> str:
        nonlocal value_done
        token = match.group(1)
        if token == value and not value_done:
            value_done = True
            return format_amount(token)
        if token == threshold:
            return format_limit(token)
        return format_amount(token)

    text = _MONEY.sub(money, reason)
    text = _ISO_DATE.sub(_chinese_date, text)
    head = text.split("，", 1)[0]
    if status == "pass" and _is_zero(threshold) and "，" in text:
        text = head  # "研发费用 90.00 万元，超过 0 元" says no more than "研发费用 90.00 万元"
    if any(head.endswith(f" {unit}") for unit in _PERIOD_UNITS):
        return f"您 {period_label(period)}{text}"
    if "，" in text and evidence.get("condition") != "effective":  # the window is the policy's, not yours
        return f"您的{text}"
    return text
