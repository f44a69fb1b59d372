"""Letters from prepared findings (issue 12 §3): the fast path says exactly what the row-by-row path says.

`notify` turns the night's evidence into letter lines column-wise (with_evidence_lines) and drops the
columns letters never read; a letter built that way must equal, field by field and byte by byte once
rendered, the letter built from the plain findings rows (the golden letters' path).
"""

from __future__ import annotations

from pathlib import Path

from notifier.letters.build import EVIDENCE_LINES, Letter, build_letter, with_evidence_lines
from notifier.letters.formatting import letter_line
from notifier.letters.render import LetterRenderer
from notifier.letters.run import UNREAD_COLUMNS, NotifyOptions, notify, taxpayer_groups
from tests.builders.letters import AS_OF, RULES, all_rows, catalogue, compare, frame, scope, write_findings


def test_prepared_rows_give_the_same_letters() -> None:
    rows = all_rows()
    plain = list(taxpayer_groups(frame(rows)))
    prepared = list(taxpayer_groups(with_evidence_lines(frame(rows)).drop(UNREAD_COLUMNS, strict=False)))
    assert [g[0]["taxpayer_id"] for g in plain] == [g[0]["taxpayer_id"] for g in prepared]
    assert all(EVIDENCE_LINES in r and "evidence" not in r for g in prepared for r in g)
    letters = 0
    for a, b in zip(plain, prepared, strict=True):
        built = build_letter(a, catalogue(), as_of=AS_OF), build_letter(b, catalogue(), as_of=AS_OF)
        assert built[0] == built[1]
        letters += isinstance(built[0], Letter)
    assert letters >= 3  # incentives, several periods and a reminder among them


def test_evidence_lines_keep_order_and_pick_by_kind() -> None:
    """Passed items of an unclaimed finding, failed ones of an improper finding, in the engine's order."""
    rows = all_rows()
    prepared = with_evidence_lines(frame(rows))
    for row, lines in zip(rows, prepared.get_column(EVIDENCE_LINES).to_list(), strict=True):
        want = "fail" if row["kind"] == "improper" else "pass"
        assert lines == [letter_line(e, row["period"]) for e in row["evidence"] or [] if e["status"] == want]


def test_empty_and_missing_evidence() -> None:
    rows = all_rows()[:2]
    rows[0] = {**rows[0], "evidence": []}
    rows[1] = {**rows[1], "evidence": None}
    prepared = with_evidence_lines(frame(rows))
    assert prepared.get_column(EVIDENCE_LINES).to_list() == [[], []]
    assert prepared.height == 2


def test_notify_letters_match_the_row_by_row_letters(tmp_path: Path) -> None:
    findings = write_findings(all_rows(), tmp_path / "findings")
    out = tmp_path / "outbox"
    notify(NotifyOptions(findings=findings, out=out, state_url=str(tmp_path / "state.sqlite"), as_of=AS_OF,
                         rules_dir=RULES, channel_override="etax", pdf_channels=()))
    renderer = LetterRenderer()
    checked = 0
    for group in taxpayer_groups(frame(all_rows())):
        letter = build_letter(group, catalogue(), as_of=AS_OF, channel_override="etax")
        if isinstance(letter, Letter):
            assert (out / "etax" / f"{letter.taxpayer_id}.html").read_text("utf-8") == renderer.html(letter)
            checked += 1
    assert checked >= 3


def test_letter_line_memo_is_keyed_on_every_field() -> None:
    """Two items that differ in one field the line reads are never answered from each other's memo."""
    income = compare("income", "应纳税所得额", "应纳税所得额", "1860000.00", "元", "3000000.00")
    assert letter_line(income, "2025") == "您 2025 年度应纳税所得额 186.00 万元，未超过 300 万元上限"
    assert letter_line(income, "2025Q3").startswith("您 2025 年第 3 季度")
    assert letter_line(scope("企业所得税纳税人（企业）"), "2025").endswith("（企业）")
    assert letter_line(scope("增值税小规模纳税人"), "2025").endswith("增值税小规模纳税人")
    assert letter_line({**income, "condition": "scope"}, "2025") == "您属于该项政策的适用对象：应纳税所得额"
