"""The built-in functions of the condition language: their signatures and meaning, backend-neutral.

Each backend implements every name listed here; the type-checker uses the signatures, and
`zhixiang rules check` quotes the descriptions when a call is wrong.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date as _date

#: Types of the condition language.
BOOL, NUMBER, DATE, STRING, LIST, BRACKETS, FIELD, RULE = (
    "bool", "number", "date", "string", "list", "brackets", "field", "rule",
)
TYPE_LABELS = {
    BOOL: "真假值", NUMBER: "数值", DATE: "日期", STRING: "文本", LIST: "列表",
    BRACKETS: "累进税率表参数", FIELD: "字段名", RULE: "规则编号（文本）",
}


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[str, ...]  # types of the arguments; "*number" = one or more numbers
    returns: str
    signature: str  # as a tax officer would write it
    doc: str  # Chinese, what it means


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("has", (FIELD,), BOOL, "has(字段)", "字段有值（非空）时为真；空值时为假（不会是未知）"),
        Function("startswith", (STRING, LIST), BOOL, 'startswith(字段, ["F", "H"])',
                 "文本以列表中任一前缀开头"),
        Function("events", (LIST, NUMBER), NUMBER, 'events(["refund_fraud"], 36)',
                 "所属期末前 N 个月内（含期末当日）发生的所列风险事件次数"),
        Function("events_since", (LIST, DATE), NUMBER, 'events_since(["instant_refund"], date("2019-04-01"))',
                 "自某日起（含当日）至所属期末发生的所列风险事件次数"),
        Function("period_start", (), DATE, "period_start()", "所属期第一天"),
        Function("period_end", (), DATE, "period_end()", "所属期最后一天"),
        Function("period_kind", (), STRING, "period_kind()", '所属期类型："year"、"quarter" 或 "month"'),
        Function("months_between", (DATE, DATE), NUMBER, "months_between(registered_on, period_end())",
                 "两个日期之间相差的自然月数（同一月为0）"),
        Function("eligible", (RULE,), BOOL, 'eligible("small_low_profit_cit")',
                 "同一所属期内另一条政策的资格判定结果（适用对象和条件；是否同时申报了互斥政策不影响资格）"),
        Function("claimed", (RULE,), BOOL, 'claimed("hnte_15pct")', "纳税人本所属期是否申报享受了该政策"),
        Function("claimed_amount", (), NUMBER, "claimed_amount()", "纳税人本所属期申报的本政策减免税额"),
        Function("min", ("*number",), NUMBER, "min(taxable_income, 2000000)", "最小值（任一为空则为空）"),
        Function("max", ("*number",), NUMBER, "max(0, sales - 300000)", "最大值（任一为空则为空）"),
        Function("round", (NUMBER, NUMBER), NUMBER, "round(sales * 0.02, 2)", "四舍五入到指定小数位"),
        Function("progressive", (NUMBER, BRACKETS), NUMBER, "progressive(taxable_income, iit_brackets)",
                 "按累进税率表计算税额（应纳税所得额 × 税率 − 速算扣除数）"),
        Function("date", (STRING,), DATE, 'date("2019-04-01")', "日期常量"),
        Function("cit_rate", (), NUMBER, "cit_rate()",
                 "纳税人本所属期适用的企业所得税税率（测算用，取可能适用的最低税率）：符合小型微利企业条件的"
                 "按实际税负5%（2023年以前按2.5%），高新技术企业按15%，其他按25%；小型微利企业条件因缺数无法判断时按5%"),
    )
}

#: Functions written out at parse time into other expressions (no backend implements them).
#: `cit_rate()` is the estimate rate every CIT rule uses, so that "at the taxpayer's own rate" means the
#: same thing everywhere: the lowest rate that may apply, so an estimate never overstates. The 小型微利
#: test reads the rule's eligibility; where that is unknown because a figure it needs is missing
#: (`employees_qavg`, `assets_qavg`, `restricted_industry` — keep in step with rules/small_low_profit_cit.yaml;
#: a missing `taxable_income` leaves every CIT estimate unknown anyway), Kleene `or` makes the test true
#: and the 5% rate is taken. Effective rates: 25% × 20% = 5% (财政部 税务总局公告2023年第12号 第三条);
#: before 2023 the part up to 1,000,000 was taxed at 12.5% × 20% = 2.5% (the lowest rate then);
#: 15% 企业所得税法第二十八条; 25% 企业所得税法第四条.
MACROS: dict[str, str] = {
    "date": "",  # date("YYYY-MM-DD") becomes a date constant
    "cit_rate": (
        '(0.05 if period_start() >= date("2023-01-01") else 0.025) '
        'if (eligible("small_low_profit_cit") or not has(employees_qavg) or not has(assets_qavg) '
        'or not has(restricted_industry)) '
        'else (0.15 if eligible("hnte_15pct") else 0.25)'
    ),
}


# ------------------------------------------------------------------ reference semantics, shared by backends


def add_months(day: _date, months: int) -> _date:
    """`day` moved by whole months, clamped to the month's last day (2024-02-29 − 12 months = 2023-02-28)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return _date(year, month, min(day.day, _calendar.monthrange(year, month)[1]))


def events_window(period_end: _date, months: int) -> tuple[_date, _date]:
    """`events(kinds, N)` counts events with start < occurred_on <= end: the N months before period end."""
    return add_months(period_end, -int(months)), period_end


def months_between(start: _date, end: _date) -> int:
    """Calendar months from `start`'s month to `end`'s month (same month = 0)."""
    return (end.year - start.year) * 12 + (end.month - start.month)
