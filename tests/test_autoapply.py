"""免申即享 (issue 16): rules the bureau applies itself are listed for the collection system, never claimed by letter.

The rule key `apply` (validation, drafting notes), the split of findings between letters and lists, the
ledger listed → applied on SQLite and PostgreSQL, `zhixiang autoapply confirm` with a quarantine, and the
nightly end to end: lists per tax authority, no letter asks to claim a listed relief, the run report counts
them, a confirmed relief is not listed again and the taxpayer's next 政策礼包 says 已为您自动享受.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue
from engine.cli import main
from engine.errors import EXIT_INPUT_ERROR, RuleError
from engine.findings import FINDINGS_SCHEMA
from notifier.autoapply.confirm import confirm_file
from notifier.autoapply.ledger import (
    applied_for,
    autoapply_entries,
    entry_number,
    record_listed,
    state_counts,
)
from notifier.autoapply.lists import HEADERS, automatic_findings, without_automatic, write_xlsx
from notifier.db import open_state
from notifier.letters.outbox import read_manifest
from notifier.letters.run import NotifyOptions, notify
from notifier.letters.suppression import AUTO_APPLIED, NOTIFICATIONS, SuppressionPolicy
from notifier.nightly.pipeline import run_nightly
from tests.builders.nightly import AS_OF, YEAR, build_data, make_config, write_data

DAY = date.fromisoformat(AS_OF)
NEXT_DAY = date(2026, 4, 16)
RULE = "disability_fund_relief"
CATALOGUE = load_catalogue(DEFAULT_RULES_DIR)


# ------------------------------------------------------------------------------------------- the rule key


def test_catalogue_marks_only_rules_with_an_official_basis_automatic() -> None:
    assert CATALOGUE.automatic_rules == frozenset({RULE})
    rule = CATALOGUE.rules[RULE]
    assert "第32项" in rule.apply_basis_text and rule.apply_label
    # pre-filling 六税两费 for small-scale taxpayers was not found in an official text: it stays a claim
    assert CATALOGUE.rules["six_taxes_two_fees_half"].apply_mode == "claim"


def _rules_copy(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, folder)
    path = folder / f"{RULE}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def test_automatic_without_basis_is_refused(tmp_path: Path) -> None:
    start = "apply:\n  mode: automatic\n"
    text = (DEFAULT_RULES_DIR / f"{RULE}.yaml").read_text(encoding="utf-8")
    block = text[text.index(start):text.index("records:\n")]
    folder = _rules_copy(tmp_path, block, start + "  label: 由税务部门直接批扣，无需申报\n")
    with pytest.raises(RuleError) as err:
        load_catalogue(folder)
    messages = [f"{p.file}:{p.line} {p.message}" for p in err.value.problems]
    assert any(f"{RULE}.yaml" in m and "apply.basis" in m for m in messages), messages


def test_drafting_note_in_the_apply_label_is_refused(tmp_path: Path) -> None:
    folder = _rules_copy(tmp_path, "  label: 杭州市残疾人就业保障金由税务部门直接批扣",
                         "  label: 待确认：杭州市残疾人就业保障金由税务部门直接批扣")
    with pytest.raises(RuleError) as err:
        load_catalogue(folder)
    assert any("apply.label" in p.message and "待确认" in p.message for p in err.value.problems)


# --------------------------------------------------------------------------------------- letters vs lists


def _finding(tid: str, rule: str, kind: str, amount: str | None) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in FINDINGS_SCHEMA}
    row.update(taxpayer_id=tid, period=YEAR, rule_id=rule, kind=kind, rule_name=rule, reasons="理由",
               basis="依据", tax_authority="13301060000", taxpayer_name="杭州测试有限公司",
               estimated_amount=Decimal(amount) if amount is not None else None, evidence=[])
    return row


def test_automatic_unclaimed_goes_to_the_list_and_never_to_a_letter() -> None:
    frame = pl.DataFrame([
        _finding("A", RULE, "unclaimed", "3000.00"),
        _finding("A", "small_low_profit_cit", "unclaimed", "50000.00"),
        _finding("B", RULE, "improper", "5000.00"),  # an improper claim is a reminder or a case as before
        _finding("C", RULE, "unclaimed", "0.00"),  # nothing to apply: neither listed nor told
    ], schema=FINDINGS_SCHEMA)
    told = without_automatic(frame, CATALOGUE)
    listed = automatic_findings(frame, CATALOGUE)
    assert sorted(told.select("taxpayer_id", "rule_id", "kind").iter_rows()) == [
        ("A", "small_low_profit_cit", "unclaimed"), ("B", RULE, "improper")]
    assert listed.select("taxpayer_id", "rule_id").rows() == [("A", RULE)]
    keys = set(listed.select("taxpayer_id", "rule_id").iter_rows())
    assert not keys & set(told.filter(pl.col("kind") == "unclaimed").select("taxpayer_id", "rule_id").iter_rows())


# ------------------------------------------------------------------------------------- ledger and confirm


def _rows(*tids: str, amount: str = "3000.00") -> list[dict[str, object]]:
    return [{"taxpayer_id": t, "period": YEAR, "rule_id": RULE, "rule_name": "残保金", "taxpayer_name": f"企业{t}",
             "tax_authority": "13301060000", "amount": Decimal(amount), "basis": "依据", "evidence": "证据"}
            for t in tids]


def _confirmation(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["清单编号", "纳税人识别号", "所属期", "政策编号", "减免金额（元）", "办理日期"])
        writer.writerows(rows)
    return path


def test_ledger_listed_then_applied_and_a_reconfirm_is_idempotent(state_url: str, tmp_path: Path) -> None:
    engine = open_state(state_url)
    try:
        first = record_listed(engine, _rows("T1", "T2", "T3"), as_of=DAY, run_id="r1")
        assert (first.new, first.relisted, first.already_applied, len(first.entries)) == (3, 0, 0, 3)
        again = record_listed(engine, _rows("T1", "T2", "T3", amount="3100.00"), as_of=DAY, run_id="r1")
        assert (again.new, again.relisted) == (0, 3)
        assert {e.amount for e in again.entries} == {Decimal("3100.00")}
        assert state_counts(engine) == {"listed": 3, "applied": 0}

        n1, n2, n3 = (entry_number(t, YEAR, RULE) for t in ("T1", "T2", "T3"))
        path = _confirmation(tmp_path / "回执.csv", [
            [n1, "T1", YEAR, RULE, "3100.00", "2026-04-20"],
            [f'="{n2}"', '="T2"', '="2025"', RULE, "3,100.00", ""],  # Excel's text form and a thousands mark
            ["ZA000000000000", "T9", YEAR, RULE, "10.00", ""],  # not on any list
            [n3, "T4", YEAR, RULE, "3100.00", ""],  # the wrong taxpayer for that list number
            [n3, "T3", YEAR, RULE, "9999.00", "2026/04/20"],  # the same number again, amount and date wrong
        ])
        result = confirm_file(engine, path, today=NEXT_DAY)
        assert (result.rows, result.applied, result.already_applied, result.quarantined_rows) == (5, 2, 0, 3)
        with result.quarantine.open(encoding="utf-8-sig") as fh:  # type: ignore[union-attr]
            quarantined = list(csv.DictReader(fh))
        assert [(q["行"], q["字段"]) for q in quarantined] == [
            ("4", "清单编号"), ("5", "纳税人识别号"), ("6", "清单编号"), ("6", "减免金额（元）"), ("6", "办理日期")]
        assert all(q["文件"] == str(path) for q in quarantined)
        assert "台账中没有该清单编号" in quarantined[0]["原因"] and "清单为 T3" in quarantined[1]["原因"]

        def ledger() -> list[tuple[object, ...]]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(select(
                    autoapply_entries.c.taxpayer_id, autoapply_entries.c.state, autoapply_entries.c.applied_on,
                    autoapply_entries.c.applied_amount).order_by(autoapply_entries.c.taxpayer_id))]

        after = ledger()
        assert after == [("T1", "applied", date(2026, 4, 20), Decimal("3100.00")),
                         ("T2", "applied", NEXT_DAY, Decimal("3100.00")),
                         ("T3", "listed", None, None)]
        again_result = confirm_file(engine, path, today=date(2026, 5, 1))
        assert (again_result.applied, again_result.already_applied, again_result.quarantined_rows) == (0, 2, 3)
        assert ledger() == after  # nothing applied twice, dates kept

        # an applied entry is never listed again; the listed one is
        third = record_listed(engine, _rows("T1", "T2", "T3"), as_of=NEXT_DAY, run_id="r2")
        assert (third.new, third.relisted, third.already_applied) == (0, 1, 2)
        assert [e.taxpayer_id for e in third.entries] == ["T3"]
        assert set(applied_for(engine)) == {"T1", "T2"} and set(applied_for(engine, ["T2", "T3"])) == {"T2"}
    finally:
        engine.dispose()


def test_the_excel_list_itself_confirms_the_rows_left_in_it(tmp_path: Path) -> None:
    """The collection system may send back the .xlsx list, with the rows it did not apply deleted and
    Excel's own cells: a real date in 办理日期, an amount typed as a number, an id typed as a number."""
    engine = open_state(tmp_path / "state.sqlite")
    try:
        listed = record_listed(engine, _rows("T1", "T2", "T3", amount="3100.50"), as_of=DAY, run_id="r1")
        path = tmp_path / "清单.xlsx"
        write_xlsx(path, listed.entries, as_of=DAY, title="清单")
        wb = load_workbook(path)
        ws = wb.worksheets[0]
        header = [c.value for c in ws[1]]
        by_taxpayer = {ws.cell(r, header.index("纳税人识别号") + 1).value: r for r in range(2, ws.max_row + 1)}
        ws.cell(1, len(header) + 1, "办理日期")
        ws.cell(by_taxpayer["T1"], len(header) + 1, datetime(2026, 4, 20))
        ws.cell(by_taxpayer["T3"], header.index("所属期") + 1, 2025)  # typed as a number: still 2025
        ws.cell(by_taxpayer["T3"], header.index("减免金额（元）") + 1, 3100.5)
        ws.delete_rows(by_taxpayer["T2"])  # not applied by the collection system
        wb.save(path)

        result = confirm_file(engine, path, today=NEXT_DAY)
        assert (result.rows, result.applied, result.quarantined_rows) == (2, 2, 0), result.problems
        applied = applied_for(engine)
        assert set(applied) == {"T1", "T3"}
        assert applied["T1"][0].applied_on == date(2026, 4, 20) and applied["T3"][0].applied_on == NEXT_DAY
        assert applied["T3"][0].applied_amount == Decimal("3100.50")

        # a wrong amount in the workbook is quarantined with its Excel row number
        wb = load_workbook(path)
        wb.worksheets[0].cell(2, header.index("减免金额（元）") + 1, 1.0)
        wb.save(bad := tmp_path / "改过.xlsx")
        result = confirm_file(engine, bad, today=NEXT_DAY)
        assert [(p.row, p.field) for p in result.problems] == [(2, "减免金额（元）")]
    finally:
        engine.dispose()


def test_a_damaged_workbook_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "回执.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    result = CliRunner().invoke(main, ["autoapply", "confirm", str(path), "--state", str(tmp_path / "s.sqlite")])
    assert result.exit_code == EXIT_INPUT_ERROR, result.output
    assert "不是可读的 Excel 工作簿" in result.output and str(path) in result.output


def test_confirm_command_refuses_a_file_without_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("纳税人识别号,金额\nT1,1\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["autoapply", "confirm", str(path), "--state", str(tmp_path / "s.sqlite")])
    assert result.exit_code == EXIT_INPUT_ERROR, result.output
    assert "缺少列" in result.output and "清单编号" in result.output


# ------------------------------------------------------------------------------------------ end to end


def _data(folder: Path) -> tuple[Path, dict[str, str]]:
    """The nightly's synthetic folder with 残保金 due for three enterprises: ≤ 30 staff (exempt), ≤ 30 staff
    with a small-low-profit relief also unclaimed (a letter for that, the list for this), and 420 staff
    with no disabled employee (90% payable: 10% relief)."""
    data = build_data(36)
    chosen = {"exempt": 7, "exempt_with_letter": 4, "big": 0}
    ids = {label: data.taxpayers[i]["taxpayer_id"] for label, i in chosen.items()}
    assert all(data.taxpayers[i]["entity_type"] == "enterprise" for i in chosen.values())
    write_data(folder, data)
    # the builder writes the contract's required columns; 残保金 应缴费额 is an optional one
    path = folder / "indicators.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        due = r["period"] == YEAR and r["taxpayer_id"] in ids.values()
        r["disability_fund_due"] = "20000.00" if due else ""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder, ids


def _list_rows(day_folder: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((day_folder / "autoapply").glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames or ()) == HEADERS
            rows += [{k: _plain(v) for k, v in r.items()} | {"_file": path.name} for r in reader]
    return rows


def _plain(value: str) -> str:
    from profiles import excel

    return excel.plain(value)


def test_nightly_lists_automatic_reliefs_and_never_asks_to_claim_them(state_url: str, tmp_path: Path) -> None:
    folder, ids = _data(tmp_path / "data")
    config = make_config(tmp_path, state_url, data=folder)
    day1 = run_nightly(config, DAY).output_dir

    listed = _list_rows(day1)
    assert {(r["纳税人识别号"], r["政策编号"]) for r in listed} == {(t, RULE) for t in ids.values()}
    amounts = {r["纳税人识别号"]: r["减免金额（元）"] for r in listed}
    assert amounts == {ids["exempt"]: "20000.00", ids["exempt_with_letter"]: "20000.00", ids["big"]: "2000.00"}
    for r in listed:  # the list of the taxpayer's own authority, with the basis of automatic application
        assert r["_file"] == f"{r['主管税务机关']}.csv"
        assert "第32项" in r["依据"] and r["证据摘要"] and r["所属期"] == YEAR
    workbook = load_workbook(day1 / "autoapply" / listed[0]["_file"].replace(".csv", ".xlsx"), read_only=True)
    sheet = workbook.worksheets[0]
    assert tuple(c.value for c in next(sheet.iter_rows(max_row=1))) == HEADERS
    workbook.close()

    # never both listed and told to claim: not in any letter, not in the suppression ledger
    manifest = read_manifest(day1 / "letters" / "manifest.csv")
    told = {(m["taxpayer_id"], rid) for m in manifest for rid in m["incentives"].split(";") if rid}
    assert (ids["exempt_with_letter"], "small_low_profit_cit") in told  # that taxpayer does get a letter
    assert not told & {(r["纳税人识别号"], r["政策编号"]) for r in listed}
    letter = next((day1 / "letters").rglob(f"{ids['exempt_with_letter']}*.*"))
    assert "残疾人就业保障金" not in letter.read_text(encoding="utf-8")
    engine = open_state(state_url)
    try:
        with engine.connect() as conn:
            sent = {tuple(r) for r in conn.execute(select(NOTIFICATIONS.c.taxpayer_id, NOTIFICATIONS.c.rule_id))}
        assert not sent & {(t, RULE) for t in ids.values()}
    finally:
        engine.dispose()

    counts = json.loads((day1 / "run.json").read_text(encoding="utf-8"))["counts"]["autoapply"]
    assert (counts["listed"], counts["new"], counts["applied"], counts["authorities"]) == (
        3, 3, 0, len({r["_file"] for r in listed}))
    assert "免申即享：列入清单 / 已自动享受" in (day1 / "report.html").read_text(encoding="utf-8")

    # the collection system applied all three; its file also holds a row of no list (quarantined)
    confirmation = _confirmation(tmp_path / "回执.csv", [
        *[[r["清单编号"], r["纳税人识别号"], r["所属期"], r["政策编号"], r["减免金额（元）"], ""] for r in listed],
        ["ZAFFFFFFFFFFFF", ids["big"], YEAR, RULE, "1.00", ""],
    ])
    run = CliRunner().invoke(main, ["autoapply", "confirm", str(confirmation), "--state", state_url,
                                    "--date", "2026-04-15", "--json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.output)
    assert (summary["applied"], summary["quarantined_rows"]) == (3, 1)
    assert Path(summary["quarantine"]).read_text(encoding="utf-8-sig").count("\n") == 2  # header + the row
    again = CliRunner().invoke(main, ["autoapply", "confirm", str(confirmation), "--state", state_url, "--json"])
    assert json.loads(again.output)["already_applied"] == 3 and json.loads(again.output)["applied"] == 0

    # the next night: still eligible in the data, but applied — not listed again
    day2 = run_nightly(config, NEXT_DAY).output_dir
    assert _list_rows(day2) == []
    counts2 = json.loads((day2 / "run.json").read_text(encoding="utf-8"))["counts"]["autoapply"]
    assert (counts2["listed"], counts2["already_applied"], counts2["applied"]) == (0, 3, 3)

    # the taxpayer's next 政策礼包 says the relief was applied for them
    report = notify(NotifyOptions(findings=day2, out=tmp_path / "outbox", state_url=state_url,
                                  as_of=date(2026, 9, 1), dry_run=True,
                                  suppression=SuppressionPolicy(cooldown_days=0)))
    assert report.packages > 0
    text = next((tmp_path / "outbox").rglob(f"{ids['exempt_with_letter']}.txt")).read_text(encoding="utf-8")
    assert "已为您自动享受2025 年度「残疾人就业保障金分档减缴和30人（含）以下企业暂免征收」，减免 2.00 万元" in text
    assert "尚未申报享受" in text  # the small-low-profit relief it still has to claim
    assert text.count("残疾人就业保障金分档减缴") == 1  # said once, in the applied section, never as a claim

    # said once: the package that delivered it records it, and later packages do not repeat it
    said = "已为您自动享受2025 年度「残疾人就业保障金分档减缴"
    for outbox, expected in (("sent-1", True), ("sent-2", False)):
        report = notify(NotifyOptions(findings=day2, out=tmp_path / outbox, state_url=state_url,
                                      as_of=date(2026, 9, 1), suppression=SuppressionPolicy(cooldown_days=0)))
        text = next((tmp_path / outbox).rglob(f"{ids['exempt_with_letter']}.txt")).read_text(encoding="utf-8")
        assert (said in text) is expected and "尚未申报享受" in text, outbox
    engine = open_state(state_url)
    try:
        with engine.connect() as conn:
            told_rows = [tuple(r) for r in conn.execute(select(NOTIFICATIONS.c.taxpayer_id, NOTIFICATIONS.c.kind)
                                                   .where(NOTIFICATIONS.c.rule_id == RULE))]
    finally:
        engine.dispose()
    said_in = applied_letters(tmp_path / "sent-1")
    assert sorted(told_rows) == sorted((t, AUTO_APPLIED) for t in ids.values() if t in said_in)


def applied_letters(outbox: Path) -> set[str]:
    """The taxpayers whose letter in this outbox says 已为您自动享受."""
    return {p.stem for p in outbox.rglob("*.txt") if "已为您自动享受" in p.read_text(encoding="utf-8")}


def test_build_letter_never_asks_to_claim_an_automatic_relief() -> None:
    from notifier.letters.build import Skip, build_letter

    rows = [_finding("91330106MA2Y05013B", RULE, "unclaimed", "30000.00")]
    assert isinstance(build_letter(rows, CATALOGUE, as_of=DAY), Skip)
    rows.append(_finding("91330106MA2Y05013B", "six_taxes_two_fees_half", "unclaimed", "15000.00"))
    letter = build_letter(rows, CATALOGUE, as_of=DAY)
    assert not isinstance(letter, Skip)
    assert [i.rule_id for i in letter.incentives] == ["six_taxes_two_fees_half"]
    assert [f[1] for f in letter.findings] == ["six_taxes_two_fees_half"]  # only that is recorded as told
