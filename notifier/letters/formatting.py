"""Chinese conventions for letters: amounts, dates, periods, masked ids and "why you qualify" lines.

Everything a letter prints goes through here, so that the HTML, the PDF, the plain text and the SMS
agree to the character. Money is Decimal and rounded 四舍五入 (ROUND_HALF_UP), never float.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP
from functools import lru_cache
from typing import Any

from engine.findings.figures import CENT, WAN, period_label, round_cents, to_decimal
from profiles.periods import PeriodError, parse_period


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


#: letter_line's answers by (period, the evidence fields it reads): pure text → text. Two in three
#: evidence items of a night repeat one already seen (conditions without figures, shared thresholds).
_LINE_CACHE: dict[tuple[Any, ...], str] = {}
_LINE_CACHE_MAX = 200_000


def letter_line(evidence: dict[str, Any], period: str) -> str:
    """evidence_line, memoised: a night says the same condition for many taxpayers."""
    get = evidence.get
    key = (period, get("condition"), get("status"), get("label"), get("reason"), get("value"), get("threshold"))
    try:
        return _LINE_CACHE[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable field: no memo
        return evidence_line(evidence, period)
    if len(_LINE_CACHE) >= _LINE_CACHE_MAX:
        _LINE_CACHE.clear()
    line = _LINE_CACHE[key] = evidence_line(evidence, period)
    return line


def evidence_line(evidence: dict[str, Any], period: str) -> str:
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
    if "，" in text and evidence.get("condition") != "effective" and _names_a_figure(head):
        return f"您的{text}"  # "您的纳税信用等级为B，…"; not "您的同时申报享受了「…」"
    return text


#: A head naming one of the taxpayer's figures: "纳税信用等级为B", "…受处罚次数 0 次", "…应纳增值税 1.00 万元".
_FIGURE_HEAD = re.compile(r"^[^「」]*?(为|\s-?[\d,.]+\s?\S{0,2})$")
#: Words that open a sentence about an act rather than a figure ("同时申报享受了…", "未…", "已…").
_ACT_OPENINGS = ("同时", "未", "已", "不", "没有", "申报", "享受")


def _names_a_figure(head: str) -> bool:
    text = re.sub(r"「[^」]*」", "", head)
    return not text.startswith(_ACT_OPENINGS) and bool(_FIGURE_HEAD.search(text) or "为" in text)


_OPENING = "（(《「“【["
_CLOSING = "）)》」”】]"


def first_clause(text: str, sep: str = "；") -> str:
    """The text up to the first `sep` outside brackets and quotes (the whole text if there is none).

    `A表（栏次；说明）；B表` gives `A表（栏次；说明）`, never a clause cut inside its bracket.
    """
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPENING:
            depth += 1
        elif ch in _CLOSING:
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            return text[:i]
    return text


def split_clauses(text: str, sep: str = "；") -> list[str]:
    """`text` cut at every `sep` outside brackets and quotes."""
    parts = []
    while text:
        head = first_clause(text, sep)
        parts.append(head)
        text = text[len(head) + 1:]
    return parts


def balanced(text: str) -> bool:
    """Whether every bracket and quote of `text` closes, in order (for checks over letters)."""
    stack: list[str] = []
    for ch in text:
        if ch in _OPENING:
            stack.append(_CLOSING[_OPENING.index(ch)])
        elif ch in _CLOSING and (not stack or stack.pop() != ch):
            return False
    return not stack


# ------------------------------------------------------------------------------- filing deadlines

#: The statutory filing deadline of a period, for the taxes whose deadline the law fixes for everyone
#: (other taxes and fees — 残保金, 六税两费 — follow the deadline of each tax or the province's rule, and
#: the letter keeps the rule's own wording for them):
#:   企业所得税, tax year: 年度终了之日起五个月内 (企业所得税法第五十四条) → 31 May;
#:   个人所得税（经营所得）, tax year: 次年三月三十一日前 (个人所得税法第十二条) → 31 March;
#:   a month or quarter of 增值税: 期满之日起十五日内 → the 15th of the next month.
#: A deadline falling on a holiday is extended (征管法实施细则第一百零九条), by days, never past the end of
#: the month after; so a letter says a deadline "has passed" only once that margin is over too.
LATE_ROUTE_LAW = "《中华人民共和国税收征收管理法》第五十一条"


def filing_deadline(tax: str, period: str) -> date | None:
    """The statutory filing deadline of `period` for `tax`, or None when the law leaves it to each tax."""
    try:
        p = parse_period(period)
    except PeriodError:
        return None
    after = p.end + timedelta(days=1)
    if p.kind == "year":
        if tax == "企业所得税":
            return date(after.year, 5, 31)
        if tax.startswith("个人所得税"):
            return date(after.year, 3, 31)
        return None
    if tax == "增值税":
        return date(after.year, after.month, 15)
    return None


def _margin_end(deadline: date) -> date:
    """The last day a holiday extension can move `deadline` to: the end of its month, at least 10 days on."""
    first_next = date(deadline.year + deadline.month // 12, deadline.month % 12 + 1, 1)
    return max(first_next - timedelta(days=1), deadline + timedelta(days=10))


@lru_cache(maxsize=4096)
def late_claim_note(tax: str, period: str, as_of: date, etax_name: str, deadline_text: str = "") -> str:
    """What a letter dated `as_of` says once `period`'s filing deadline has passed ("" before).

    Where the rule's own deadline says a late choice is closed ("不得再变更"), the letter says the
    deadline has passed and to ask the tax office, never that a correction still works. Otherwise the
    incentive can still be claimed by correcting the return (更正申报) or filing a supplementary
    one (补充申报); tax overpaid for want of it is refunded when claimed within three years of payment,
    with interest (税收征收管理法第五十一条).
    """
    deadline = filing_deadline(tax, period)
    if deadline is None or as_of <= _margin_end(deadline):
        return ""
    passed = f"{period_label(period)}的申报期限（{format_date(deadline)}）已过。"
    if "不得" in deadline_text:  # "未选择享受的以后年度不得再变更": a late claim may be closed
        return passed + "按上述办理期限的规定，逾期可能不能再享受，请向主管税务机关咨询。"
    text = passed + f"您仍可通过{etax_name}办理更正申报或补充申报申请享受"
    if as_of <= date(deadline.year + 3, deadline.month, deadline.day):
        return text + ("；因此多缴的税款，可自结算缴纳税款之日起三年内申请退还，"
                       f"经税务机关核实后退还并加算银行同期存款利息（{LATE_ROUTE_LAW}）。")
    return text + f"；多缴税款申请退还的三年期限（{LATE_ROUTE_LAW}）可能已过，请向主管税务机关咨询。"
