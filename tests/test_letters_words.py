"""What letters say (issue 12 §1): each defect found in the sample nightly's letters, held by a test."""

from __future__ import annotations

import re
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.catalogue import load_catalogue
from notifier.letters.build import Letter, OfficeSettings, build_letter
from notifier.letters.formatting import balanced, first_clause, late_claim_note, letter_line, split_clauses
from notifier.letters.pdf import TypstPdf, check_pdf, letter_json, orphan_closing
from notifier.letters.render import LetterRenderer
from tests.builders.letters import (
    AS_OF,
    RULES,
    catalogue,
    compare,
    finding,
    five_incentives,
    generic,
    low_risk_reminder,
    one_incentive,
    scope,
    sms_taxpayer,
    taxpayer,
)

OCT_15 = date(2026, 10, 15)


def _letter(rows: list[dict[str, Any]], as_of: date = AS_OF, cat: Any = None) -> Letter:
    letter = build_letter(rows, cat or catalogue(), as_of=as_of)
    assert isinstance(letter, Letter)
    return letter


def _sms_two_quarters() -> list[dict[str, Any]]:
    """The SMS taxpayer's VAT exemption unclaimed in two quarters: one incentive, two periods."""
    rows = sms_taxpayer()
    second = dict(rows[0], period="2025Q4", estimated_amount=Decimal("124000.00"))
    return [*rows, second]


# ------------------------------------------------------------------------ the opening sentence's periods


def test_opening_names_only_the_periods_of_the_incentives() -> None:
    """A 2026-07 incentive and a 2025 self-check reminder: "您 2026 年 7 月可能符合…", not "2025 年度、…"."""
    ctx = taxpayer("91330106MA2B3C4D11", "杭州云栖数据服务有限公司", district="西湖区", tax_authority="13301060000")
    rows = [
        dict(sms_taxpayer()[0], **{k: v for k, v in ctx.items() if k != "preferred_channel"}, period="2026-07"),
        finding(ctx, "disability_fund_relief", "improper", [
            scope(label="用人单位（企业）"),
            compare("employees", "在职职工总数30人（含）以下", "在职职工人数", "45", "人", "30", status="fail"),
        ], amount="8600.00", claimed="8600.00", risk_tier="low"),
    ]
    letter = _letter(rows)
    assert letter.periods_text == "2026 年 7 月"
    html = LetterRenderer().html(letter)
    assert "您 2026 年 7 月可能符合以下 1 项" in html
    assert "2025 年度、" not in html


# ------------------------------------------------------------------------------- the reminder's form


def test_form_text_is_never_cut_inside_a_bracket(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / "disability_fund_relief.yaml"
    text = path.read_text(encoding="utf-8")
    form = "残疾人就业保障金缴费申报表（在职职工30人及以下的；由系统自动判定）“减免额”栏"
    text = text.replace("form: 残疾人就业保障金缴费申报表“减免额”栏", f"form: {form}；附表二")
    path.write_text(text, encoding="utf-8")
    letter = _letter(low_risk_reminder(), cat=load_catalogue(rules))
    correction = letter.reminders[0].correction
    assert f"更正{form}，并按规定补缴税费" in correction
    assert balanced(correction)
    assert first_clause("A表（栏次；说明）；B表") == "A表（栏次；说明）"
    assert split_clauses("甲（乙；丙）；丁") == ["甲（乙；丙）", "丁"]
    assert not balanced("…栏（栏次未核实，并按规定补缴税费")


# ------------------------------------------------------------------------------------------- "您的"


@pytest.mark.parametrize(("evidence", "expected"), [
    (generic("not_stacked", "未同时申报享受「高新技术企业减按15%税率征收企业所得税」"),
     "未同时申报享受「高新技术企业减按15%税率征收企业所得税」"),
    ({"condition": "not_stacked", "label": "不得叠加", "status": "fail", "value": "是", "threshold": "否",
      "reason": "同时申报享受了「小型微利企业减免企业所得税」，不得叠加享受"},
     "同时申报享受了「小型微利企业减免企业所得税」，不得叠加享受"),
    ({"condition": "credit", "label": "纳税信用等级为A或B", "status": "pass", "value": "B", "threshold": "A、B",
      "reason": "纳税信用等级为B，属于A、B"}, "您的纳税信用等级为B，属于A、B"),
])
def test_you_is_prefixed_only_to_a_figure_of_the_taxpayer(evidence: dict[str, str], expected: str) -> None:
    assert letter_line(evidence, "2025") == expected


# ------------------------------------------------------------------------------------------ deadlines


def test_a_passed_filing_deadline_gives_the_route_still_open() -> None:
    """Dated 2026-10-15, a 2025 CIT incentive: 汇算清缴 (31 May 2026) has passed; say so and give the route."""
    letter = _letter(one_incentive(), as_of=OCT_15)
    note = letter.incentives[0].periods[0].deadline_note
    assert note.startswith("2025 年度的申报期限（2026年5月31日）已过。")
    assert "更正申报或补充申报" in note and "三年内申请退还" in note
    assert "《中华人民共和国税收征收管理法》第五十一条" in note
    renderer = LetterRenderer()
    assert note in renderer.html(letter) and note in renderer.text(letter)
    # before the deadline the letter keeps the rule's own wording, and adds nothing
    early = _letter(one_incentive(), as_of=date(2026, 3, 1))
    assert early.incentives[0].periods[0].deadline_note == ""
    assert "已过" not in renderer.html(early)


def test_deadline_passed_only_beyond_any_holiday_extension() -> None:
    # the 2026Q3 VAT return is due 15 Oct 2026 and may be extended past the National Day holiday
    assert late_claim_note("增值税", "2026Q3", OCT_15, "电子税务局") == ""
    assert late_claim_note("增值税", "2026Q3", date(2026, 10, 31), "电子税务局") == ""
    assert "2026年10月15日" in late_claim_note("增值税", "2026Q3", date(2026, 11, 1), "电子税务局")
    assert late_claim_note("企业所得税", "2025", date(2026, 6, 10), "电子税务局") == ""
    assert "2027年3月31日" in late_claim_note("个人所得税（经营所得）", "2026", date(2027, 5, 1), "电子税务局")
    # taxes whose deadline the law leaves to each tax or the province: no judgement
    assert late_claim_note("残疾人就业保障金", "2025", OCT_15, "电子税务局") == ""
    # a rule that closes late choices ("以后年度不得再变更") is never promised a correction
    closed = late_claim_note("企业所得税", "2025", OCT_15, "电子税务局", "未选择享受的以后年度不得再变更")
    assert "已过" in closed and "更正申报" not in closed and "咨询" in closed
    # three years after the deadline the refund route is no longer promised
    old = late_claim_note("企业所得税", "2021", OCT_15, "电子税务局")
    assert "三年期限" in old and "可能已过" in old


# --------------------------------------------------------------------- SMS, counting, amounts, wording


def test_sms_amount_has_no_stray_space() -> None:
    sms = LetterRenderer().sms(_letter(_sms_two_quarters()))
    assert "12.69万元" in sms
    assert not re.search(r"\d 万?元", sms)


def test_incentives_are_counted_once_with_their_periods_listed_under_them() -> None:
    letter = _letter(_sms_two_quarters())
    assert len(letter.incentives) == 1
    item = letter.incentives[0]
    assert [p.period for p in item.periods] == ["2025Q3", "2025Q4"]
    assert item.period_label == "2025 年第 3 季度、2025 年第 4 季度"
    assert item.saving == Decimal("126864.00") == letter.total_saving
    renderer = LetterRenderer()
    assert "您可能有1项税费优惠未享受" in renderer.sms(letter)
    html = renderer.html(letter)
    assert "可能符合以下 1 项" in html
    assert "12.69 万元（2025 年第 3 季度 2,864.00 元；2025 年第 4 季度 12.40 万元）" in html
    assert html.count('<p class="period">') == 2
    # the suppression ledger and the webhook still see one finding a period
    assert [(f[2], f[3]) for f in letter.findings] == [("2025Q3", Decimal("2864.00")), ("2025Q4", Decimal("124000.00"))]


def test_every_amount_is_the_findings_estimate_with_its_wording() -> None:
    rows = five_incentives()
    letter = _letter(rows)
    by_rule = {r["rule_id"]: Decimal(r["estimated_amount"]) for r in rows}
    for item in letter.incentives:
        assert item.saving == by_rule[item.rule_id]
    html = LetterRenderer().html(letter)
    for item in letter.incentives:
        section = html[html.index(f'id="incentive-{item.rule_id}"'):]
        assert f'<tr><th>预计可减免</th><td class="amount">{item.saving_text} ' in section[:2000]
        assert f"（{item.benefit_label}）" in section[:2000]
    assert f"合计预计可减免税费：<strong id=\"total\">{letter.total_saving_text}</strong>" in html
    assert letter.total_saving == sum(by_rule.values())


# ------------------------------------------------------------------------------- the signature page


def test_closing_is_never_alone_on_a_page() -> None:
    """Letters of growing length: the notes and signature stay together, never a page of their own.

    With a breakable closing, 35 to 38 extra lines put the signature alone on a page of this letter.
    """
    compiler = TypstPdf()
    office = OfficeSettings()
    pages_seen = set()
    for extra in range(0, 48):
        rows = low_risk_reminder()
        lines = [generic(f"x{k}", f"补充说明第{k + 1}项条件已满足") for k in range(extra)]
        rows[0] = dict(rows[0], evidence=[*rows[0]["evidence"], *lines])  # push the closing down, line by line
        letter = _letter(rows)
        pages = check_pdf(compiler.compile(letter_json(letter, office)), letter.key_texts())
        assert not orphan_closing(pages, [letter.authority.name, letter.date_text]), f"{extra} extra lines"
        pages_seen.add(len(pages))
    assert len(pages_seen) > 1  # the sweep did cross a page break
