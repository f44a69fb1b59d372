"""Chinese conventions of letters: amounts, dates, periods, masked ids, evidence lines, channels."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from notifier.letters.build import TaxAuthorities, basis_lines, resolve_channel
from notifier.letters.formatting import (
    format_amount,
    format_date,
    format_limit,
    letter_line,
    mask_taxpayer_id,
    period_label,
)
from tests.builders.letters import catalogue, compare, generic, scope


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("1860000"), "186.00 万元"),
    (Decimal("10000"), "1.00 万元"),
    (Decimal("9999.99"), "9,999.99 元"),
    (Decimal("9999.995"), "1.00 万元"),  # rounds to 10,000.00 元 first, then shown in 万元
    (Decimal("1234.565"), "1,234.57 元"),  # 四舍五入, not banker's rounding
    (Decimal("1234.575"), "1,234.58 元"),
    (Decimal("15005"), "1.50 万元"),
    (Decimal("15050"), "1.51 万元"),  # 1.505 万 → 1.51 (half up)
    (Decimal("123456789.01"), "12,345.68 万元"),
    (Decimal("0"), "0.00 元"),
    (Decimal("-2500.5"), "-2,500.50 元"),
    ("1,234.5", "1,234.50 元"),
    (372000, "37.20 万元"),
])
def test_format_amount(value: object, text: str) -> None:
    assert format_amount(value) == text


@pytest.mark.parametrize(("value", "text"), [
    ("3000000.00", "300 万元"), ("50000000", "5,000 万元"), ("2000", "2,000 元"), ("25000", "2.50 万元"),
    ("0.00", "0 元"),
])
def test_format_limit(value: str, text: str) -> None:
    assert format_limit(value) == text


def test_format_date_and_periods() -> None:
    assert format_date(date(2026, 11, 27)) == "2026年11月27日"
    assert format_date(date(2026, 1, 5)) == "2026年1月5日"
    assert period_label("2025") == "2025 年度"
    assert period_label("2026Q3") == "2026 年第 3 季度"
    assert period_label("2026-09") == "2026 年 9 月"
    assert period_label("garbage") == "garbage"


def test_mask_taxpayer_id() -> None:
    assert mask_taxpayer_id("91330106MA2B3C4D5X") == "9133**********4D5X"
    assert len(mask_taxpayer_id("91330106MA2B3C4D5X")) == 18
    assert mask_taxpayer_id("330106123456789") == "3301*******6789"
    assert mask_taxpayer_id("1234") == "1**4"
    assert mask_taxpayer_id("12") == "**"


def test_evidence_line_in_the_taxpayers_own_figures() -> None:
    ev = compare("taxable_income", "年度应纳税所得额不超过300万元", "应纳税所得额", "1860000.00", "元", "3000000.00")
    assert letter_line(ev, "2025") == "您 2025 年度应纳税所得额 186.00 万元，未超过 300 万元上限"
    grouped = compare("assets", "资产总额不超过5000万元", "资产总额", "32,000,000.00", "元", "50,000,000.00")
    assert letter_line(grouped, "2025") == "您 2025 年度资产总额 3,200.00 万元，未超过 5,000 万元上限"
    people = compare("employees", "从业人数不超过300人", "从业人数", "301", "人", "300", status="fail")
    assert letter_line(people, "2025") == "您 2025 年度从业人数 301 人，超过 300 人上限"
    quarter = compare("sales", "季度销售额不超过30万元", "销售额", "286400.00", "元", "300000.00")
    assert letter_line(quarter, "2025Q3") == "您 2025 年第 3 季度销售额 28.64 万元，未超过 30 万元上限"


def test_evidence_line_at_the_boundary_keeps_the_taxpayers_figure_exact() -> None:
    ev = compare("taxable_income", "x", "应纳税所得额", "3000000.00", "元", "3000000.00")
    assert letter_line(ev, "2025") == "您 2025 年度应纳税所得额 300.00 万元，未超过 300 万元上限"


def test_evidence_line_drops_a_comparison_with_zero_and_reads_generic_conditions_as_labels() -> None:
    rd = compare("rd_expense", "有研发费用", "研发费用", "900000.00", "元", "0.00", op=">", bound=False)
    assert letter_line(rd, "2025") == "您 2025 年度研发费用 90.00 万元"
    assert letter_line(generic("not_restricted", "从事国家非限制和禁止行业", "国家限制和禁止行业 否"), "2025") \
        == "从事国家非限制和禁止行业"
    assert letter_line(generic("x", "持有证书", status="fail"), "2025") == "不符合：持有证书"
    assert letter_line(scope(), "2025") == "您属于该项政策的适用对象：企业所得税纳税人（企业）"


def test_evidence_line_dates_in_chinese() -> None:
    ev = {"condition": "effective", "label": "政策执行期限", "status": "fail", "value": "2025",
          "threshold": "2019-01-01 至 2021-12-31",
          "reason": "政策执行期限为 2019-01-01 至 2021-12-31，所属期 2025年度 不在执行期内"}
    assert letter_line(ev, "2025") == "政策执行期限为 2019年1月1日 至 2021年12月31日，所属期 2025年度 不在执行期内"


def test_basis_leaves_out_unverified_articles_without_repeating_the_document() -> None:
    assert basis_lines(catalogue().rules["small_low_profit_cit"]) == (
        "财政部 税务总局公告2023年第12号第三条", "国家税务总局公告2023年第6号")


def test_tax_authority_names() -> None:
    authorities = TaxAuthorities({"13301999999": "国家税务总局杭州市测试税务局"})
    assert authorities.lookup("13301060000", "西湖区").name == "国家税务总局杭州市西湖区税务局"
    assert authorities.lookup("13301999999", None).name == "国家税务总局杭州市测试税务局"
    assert authorities.lookup("99999999999", "临平区").name == "国家税务总局杭州市临平区税务局"
    assert authorities.lookup("99999999999", "杭州市上城区").name == "国家税务总局杭州市上城区税务局"
    assert authorities.lookup("99999999999", "淳安县").name == "国家税务总局淳安县税务局"
    assert authorities.lookup(None, None).name == "国家税务总局杭州市税务局"


def test_tax_authorities_from_csv(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "authorities.csv"
    path.write_bytes("code,name\r\n13301061000,国家税务总局杭州市西湖区税务局第一税务所\r\n".encode("gb18030"))
    assert TaxAuthorities.from_csv(path).lookup("13301061000", "西湖区").name.endswith("第一税务所")


@pytest.mark.parametrize(("preferred", "email", "phone", "override", "expected"), [
    ("email", "a@b.cn", None, None, ("email", "")),
    ("email", "", None, None, ("etax", "缺少电子邮箱，改由电子税务局送达")),
    ("sms", None, None, None, ("etax", "缺少联系电话，改由电子税务局送达")),
    (None, None, None, None, ("etax", "未设置首选通知渠道，经电子税务局送达")),
    ("etax", None, None, "post", ("post", "按指定改为邮寄")),
    ("post", None, None, None, ("post", "")),
])
def test_resolve_channel(preferred, email, phone, override, expected) -> None:  # type: ignore[no-untyped-def]
    assert resolve_channel(preferred, email=email, phone=phone, override=override) == expected
