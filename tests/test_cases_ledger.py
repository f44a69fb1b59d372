"""The case ledger fed by findings: triage, idempotent syncs, clearing, reopening — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from engine.errors import InputError
from notifier.cases import ledger
from notifier.cases.ledger import ServiceLevels, assign, case_number, close, resolve, sync_findings, triage
from notifier.cases.queries import find_cases, get_case, history_of
from notifier.cases.status import CLEARED, CLOSED, CORRECTED, FALSE_ALARM, PENDING, VERIFYING, WAIVED
from notifier.cases.tables import Money, case_history, case_syncs, cases
from notifier.db import open_state
from tests.builders.cases import evidence_item, finding, findings_frame

AS_OF = date(2026, 1, 10)
AT = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
A, B, C, D = "91330106MA2B3C4D5E", "91330106MA2B3C4D6X", "91330106MA2B3C4D7Y", "91330106MA2B3C4D8T"


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    e = open_state(state_url)
    yield e
    e.dispose()


def sync(engine: Engine, rows: list[dict[str, Any]], run_id: str, *, days: int = 0, **kw: Any) -> ledger.SyncReport:
    kw.setdefault("periods", ["2025"])
    return sync_findings(engine, findings_frame(rows), run_id=run_id, as_of=AS_OF + timedelta(days=days),
                         at=AT + timedelta(days=days), **kw)


def ledger_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every case, every column."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(cases).order_by(cases.c.case_no)).mappings()]


def history_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(case_history)).scalar_one())


def status(engine: Engine, taxpayer: str, rule: str = "small_low_profit_cit", period: str = "2025") -> str:
    return get_case(engine, case_number(taxpayer, rule, period)).status


# ------------------------------------------------------------------------------------------------ triage


def test_triage_sorts_findings_into_cases_verification_and_reminders() -> None:
    frame = findings_frame([
        finding(A, tier="high"), finding(B, tier="medium"), finding(C, tier="low"),
        finding(D, kind="undetermined", amount=None), finding("91330106MA2B3C4D9R", kind="unclaimed", tier=None),
    ])
    out = triage(frame)
    assert sorted(zip(out.cases["taxpayer_id"], out.cases["tier"], strict=True)) == [
        (A, "high"), (B, "medium"), (D, "verification")]
    assert out.reminders["taxpayer_id"].to_list() == [C]
    assert out.duplicates == 0


def test_improper_without_tier_is_a_medium_case_not_lost() -> None:
    out = triage(findings_frame([finding(A, tier=None)]))
    assert out.cases["tier"].to_list() == ["medium"]


def test_duplicate_keys_keep_the_most_serious_finding() -> None:
    out = triage(findings_frame([finding(A, tier="medium", amount="10"), finding(A, tier="high", amount="5")]))
    assert out.cases.height == 1 and out.cases["tier"].item() == "high" and out.duplicates == 1


def test_findings_without_required_columns_are_refused_with_their_names() -> None:
    with pytest.raises(InputError, match="evidence, basis"):
        triage(findings_frame([finding()]).drop("evidence", "basis"))


# ---------------------------------------------------------------------------------------------- numbers


def test_case_number_is_a_stable_function_of_the_key() -> None:
    number = case_number(A, "small_low_profit_cit", "2025")
    # Pinned: a case keeps this number in every run and every database; changing the scheme renumbers cases.
    assert number == "FX-2025-small_low_profit_cit-H26BSBH962KN"
    assert re.fullmatch(r"FX-2025-small_low_profit_cit-[0-9A-HJKMNP-TV-Z]{12}", number)
    assert case_number(A, "small_low_profit_cit", "2025Q3").startswith("FX-2025-")
    assert case_number(A, "small_low_profit_cit", "2025Q3") != case_number(A, "small_low_profit_cit", "2025Q2")


def test_fingerprint_ignores_wording_but_not_figures() -> None:
    base = finding(A)
    reworded = finding(A, evidence=[{**e, "label": e["label"] + "（新）", "reason": "改写"} for e in base["evidence"]],
                       reasons="改写")
    changed = finding(A, employees=305)
    prints = ledger.fingerprints(findings_frame([base, reworded, changed])).to_list()
    assert prints[0] == prints[1] != prints[2]


# ------------------------------------------------------------------------------------------------- sync


def test_first_sync_opens_risk_cases_and_verification_items(engine: Engine) -> None:
    rows = [finding(A, tier="high"), finding(B, tier="medium", authority="13301050000", district="拱墅区"),
            finding(C, tier="low"), finding(D, kind="undetermined", amount=None)]
    report = sync(engine, rows, "run-1")
    assert (report.opened, report.reminders, report.verification) == (3, 1, 1)
    assert report.by_tier == {"high": 1, "medium": 1, "verification": 1}
    got = {c.taxpayer_id: c for c in find_cases(engine)}
    assert set(got) == {A, B, D}
    assert [got[t].tier for t in (A, B, D)] == ["high", "medium", "verification"]
    assert {c.status for c in got.values()} == {PENDING}
    # Due dates by tier from the service levels: 10 / 20 / 30 calendar days.
    assert [got[t].due_on for t in (A, B, D)] == [date(2026, 1, 20), date(2026, 1, 30), date(2026, 2, 9)]
    a = got[A]
    assert a.amount == Decimal("125000.00") and a.claimed_amount == Decimal("125000.00")
    assert a.evidence == rows[0]["evidence"]
    assert a.reasons == "从业人数 301 人，超过 300 人上限"
    assert (a.tax_authority, a.district, a.taxpayer_name) == ("13301060000", "西湖区", "杭州示例科技有限公司")
    assert (a.first_run_id, a.evidence_run_id, a.cleared_run_id) == ("run-1", "run-1", None)
    assert got[B].tax_authority == "13301050000"
    assert got[D].amount is None
    [entry] = history_of(engine, a.case_no)
    assert (entry.actor, entry.from_status, entry.to_status, entry.run_id) == ("system", None, PENDING, "run-1")
    assert entry.note == "新立案：高风险，涉及金额 125,000.00 元"
    assert entry.at == AT


def test_service_levels_are_configurable(engine: Engine) -> None:
    levels = ServiceLevels.parse(["high=5", "数据核实=45"])
    assert levels == ServiceLevels(high=5, medium=20, verification=45)
    sync(engine, [finding(A), finding(D, kind="undetermined", amount=None)], "run-1", service_levels=levels)
    assert {c.taxpayer_id: c.due_on for c in find_cases(engine)} == {A: date(2026, 1, 15), D: date(2026, 2, 24)}


@pytest.mark.parametrize("bad", ["high", "urgent=3", "high=0", "medium=ten"])
def test_bad_service_levels_are_refused(bad: str) -> None:
    with pytest.raises(ledger.CaseError, match="等级=天数"):
        ServiceLevels.parse([bad])


def test_two_syncs_of_the_same_findings_leave_the_same_cases(engine: Engine) -> None:
    rows = [finding(A), finding(B, tier="medium"), finding(D, kind="undetermined", amount=None)]
    sync(engine, rows, "run-1")
    before, entries = ledger_rows(engine), history_count(engine)
    report = sync(engine, rows, "run-2", days=1)
    assert (report.opened, report.updated, report.reopened, report.cleared, report.unchanged) == (0, 0, 0, 0, 3)
    assert ledger_rows(engine) == before
    assert history_count(engine) == entries
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(case_syncs)).scalar_one() == 2


def test_sync_after_the_data_is_corrected_clears_exactly_the_corrected_cases(engine: Engine) -> None:
    rows = [finding(A), finding(B, tier="medium"), finding(D, kind="undetermined", amount=None),
            finding(A, rule_id="hnte_15pct"), finding(C, period="2024")]
    sync(engine, rows[:4], "run-1")
    sync(engine, [rows[4]], "run-2024", periods=["2024"])
    # A corrected its small low-profit claim and D's missing figure arrived: neither is found any more.
    report = sync(engine, [rows[1], rows[3]], "run-2", days=3)
    assert report.cleared == 2
    assert status(engine, A) == CLEARED and status(engine, D) == CLEARED
    assert status(engine, B) == PENDING and status(engine, A, "hnte_15pct") == PENDING
    assert status(engine, C, period="2024") == PENDING  # another period: outside the run's scope
    cleared = get_case(engine, case_number(A, "small_low_profit_cit", "2025"))
    assert cleared.cleared_run_id == "run-2"
    last = history_of(engine, cleared.case_no)[-1]
    assert (last.actor, last.from_status, last.to_status, last.run_id) == ("system", PENDING, CLEARED, "run-2")
    assert last.note == "运行 run-2 未再发现该问题"


def test_rule_scope_limits_clearing_to_the_rules_the_run_judged(engine: Engine) -> None:
    sync(engine, [finding(A), finding(A, rule_id="hnte_15pct")], "run-1")
    report = sync(engine, [], "run-2", rules=["hnte_15pct"])
    assert report.cleared == 1
    assert status(engine, A, "hnte_15pct") == CLEARED
    assert status(engine, A) == PENDING


def test_case_that_drops_to_low_tier_is_cleared_and_left_to_the_reminder(engine: Engine) -> None:
    sync(engine, [finding(A, tier="medium")], "run-1")
    report = sync(engine, [finding(A, tier="low", amount="1500.00")], "run-2")
    assert (report.cleared, report.reminders) == (1, 1)
    assert status(engine, A) == CLEARED
    assert "改为向纳税人发送提醒" in history_of(engine, case_number(A, "small_low_profit_cit", "2025"))[-1].note


def test_open_case_takes_new_evidence_amount_and_tier(engine: Engine) -> None:
    sync(engine, [finding(A, tier="medium", amount="1000.00")], "run-1")
    number = case_number(A, "small_low_profit_cit", "2025")
    assign(engine, [number], "张三", actor="李科长", at=AT)
    report = sync(engine, [finding(A, tier="high", amount="600000.00", employees=320)], "run-2", days=4)
    assert report.updated == 1 and report.opened == 0
    case = get_case(engine, number)
    assert (case.status, case.assignee, case.tier, case.amount) == (VERIFYING, "张三", "high", Decimal("600000.00"))
    assert case.evidence[1]["value"] == "320 人" and case.evidence_run_id == "run-2"
    assert case.opened_on == AS_OF and case.due_on == date(2026, 1, 20)  # high tier, counted from the opening
    last = history_of(engine, number)[-1]
    assert (last.from_status, last.to_status) == (VERIFYING, VERIFYING)
    assert last.note == "证据更新：涉及金额 1,000.00 → 600,000.00 元；等级 中风险 → 高风险"


def test_false_alarm_is_not_reopened_by_the_same_evidence(engine: Engine) -> None:
    rows = [finding(A)]
    sync(engine, rows, "run-1")
    number = case_number(A, "small_low_profit_cit", "2025")
    assign(engine, [number], "张三", actor="李科长", at=AT)
    resolve(engine, [number], FALSE_ALARM, actor="张三", reason="社保数据显示从业人数 280 人", at=AT)
    report = sync(engine, rows, "run-2", days=1)
    assert (report.reopened, report.kept_decided, report.unchanged) == (0, 1, 1)
    case = get_case(engine, number)
    assert (case.status, case.resolution, case.assignee) == (FALSE_ALARM, FALSE_ALARM, "张三")
    close(engine, [number], actor="李科长", at=AT)
    sync(engine, rows, "run-3", days=2)
    assert status(engine, A) == CLOSED
    # Gone for a run, then back with the very evidence judged a false alarm: still not reopened.
    sync(engine, [], "run-4", days=3)
    assert get_case(engine, number).cleared_run_id == "run-4"
    assert sync(engine, rows, "run-5", days=4).reopened == 0
    case = get_case(engine, number)
    assert (case.status, case.cleared_run_id, case.evidence_run_id) == (CLOSED, None, "run-1")


@pytest.mark.parametrize("closed", [False, True])
def test_false_alarm_is_reopened_when_the_evidence_changes(engine: Engine, closed: bool) -> None:
    sync(engine, [finding(A)], "run-1")
    number = case_number(A, "small_low_profit_cit", "2025")
    assign(engine, [number], "张三", actor="李科长", at=AT)
    resolve(engine, [number], FALSE_ALARM, actor="张三", reason="社保数据显示从业人数 280 人", at=AT)
    if closed:
        close(engine, [number], actor="李科长", at=AT)
    report = sync(engine, [finding(A, employees=340, amount="130000.00")], "run-2", days=5)
    assert report.reopened == 1
    case = get_case(engine, number)
    assert (case.status, case.resolution, case.resolution_reason, case.assignee) == (PENDING, None, None, None)
    assert case.opened_on == date(2026, 1, 15) and case.due_on == date(2026, 1, 25)
    last = history_of(engine, number)[-1]
    assert (last.from_status, last.to_status, last.run_id) == (CLOSED if closed else FALSE_ALARM, PENDING, "run-2")
    assert last.note.startswith("新一轮运行的证据与误报认定时不同，重新打开")


def test_cleared_case_reopens_when_the_problem_returns(engine: Engine) -> None:
    sync(engine, [finding(A)], "run-1")
    sync(engine, [], "run-2", days=1)
    assert status(engine, A) == CLEARED
    report = sync(engine, [finding(A)], "run-3", days=2)
    assert report.reopened == 1
    case = get_case(engine, case_number(A, "small_low_profit_cit", "2025"))
    assert (case.status, case.cleared_run_id, case.opened_on) == (PENDING, None, date(2026, 1, 12))
    assert history_of(engine, case.case_no)[-1].note.startswith("问题再次出现")


def test_corrected_case_stays_until_the_problem_goes_and_reopens_if_it_comes_back(engine: Engine) -> None:
    rows = [finding(A)]
    sync(engine, rows, "run-1")
    number = case_number(A, "small_low_profit_cit", "2025")
    assign(engine, [number], "张三", actor="李科长", at=AT)
    resolve(engine, [number], CORRECTED, actor="张三", at=AT)
    # The correction has not reached the data yet: same evidence, nothing happens.
    assert sync(engine, rows, "run-2", days=1).kept_decided == 1
    assert status(engine, A) == CORRECTED
    # The correction shows: the run no longer finds it; the decision stands and the run is noted once.
    sync(engine, [], "run-3", days=2)
    sync(engine, [], "run-4", days=3)
    case = get_case(engine, number)
    assert (case.status, case.cleared_run_id) == (CORRECTED, "run-3")
    notes = [h.note for h in history_of(engine, number)]
    assert notes.count("运行 run-3 未再发现该问题（状态不变）") == 1 and not any("run-4" in n for n in notes)
    # The same problem comes back: reopened.
    assert sync(engine, rows, "run-5", days=4).reopened == 1
    assert status(engine, A) == PENDING
    assert history_of(engine, number)[-1].note.startswith("问题在更正后再次出现")


def test_verification_item_that_turns_into_a_risk_case_keeps_its_number(engine: Engine) -> None:
    sync(engine, [finding(A, kind="undetermined", amount=None)], "run-1")
    report = sync(engine, [finding(A, tier="high")], "run-2", days=1)
    assert report.updated == 1
    [case] = find_cases(engine)
    assert (case.case_no, case.kind, case.tier) == (case_number(A, "small_low_profit_cit", "2025"), "improper", "high")


def test_waived_case_counts_as_decided_and_is_kept(engine: Engine) -> None:
    sync(engine, [finding(A)], "run-1")
    number = case_number(A, "small_low_profit_cit", "2025")
    assign(engine, [number], "张三", actor="李科长", at=AT)
    resolve(engine, [number], WAIVED, actor="张三", at=AT)
    sync(engine, [finding(A)], "run-2")
    assert status(engine, A) == WAIVED


def test_findings_outside_the_sync_periods_are_refused(engine: Engine) -> None:
    with pytest.raises(InputError, match="2024"):
        sync(engine, [finding(A, period="2024")], "run-1")


def test_empty_run_id_is_refused(engine: Engine) -> None:
    with pytest.raises(ledger.CaseError, match="run_id"):
        sync(engine, [finding(A)], " ")


def test_a_failed_sync_changes_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    sync(engine, [finding(A)], "run-1")
    before, entries = ledger_rows(engine), history_count(engine)

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledger, "update_keys", boom)
    with pytest.raises(RuntimeError):
        sync(engine, [finding(B)], "run-2")
    assert ledger_rows(engine) == before and history_count(engine) == entries
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(case_syncs)).scalar_one() == 1


def test_money_is_exact_at_the_top_of_numeric_18_2(engine: Engine) -> None:
    big = "9999999999999999.99"
    sync(engine, [finding(A, amount=big, claimed="0.01"), finding(B, amount="-12.50")], "run-1")
    got = {c.taxpayer_id: c for c in find_cases(engine)}
    assert got[A].amount == Decimal(big) and got[A].claimed_amount == Decimal("0.01")
    assert got[B].amount == Decimal("-12.50")
    # Sums stay exact in SQL on both backends (SQLite keeps integer fen).
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(cases.c.amount))).scalar_one() == Decimal("9999999999999987.49")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_money_rounds_half_up_to_the_fen(dialect: str) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    d = (sqlite if dialect == "sqlite" else postgresql).dialect()
    money = Money()
    bound = [money.process_bind_param(Decimal(v), d) for v in ("0.005", "2.675", "-0.005")]
    assert bound == ([1, 268, -1] if dialect == "sqlite" else [Decimal("0.01"), Decimal("2.68"), Decimal("-0.01")])
    assert money.process_result_value(bound[1], d) == Decimal("2.68")


def test_history_is_append_only_in_the_database(engine: Engine) -> None:
    sync(engine, [finding(A)], "run-1")
    for statement in ("UPDATE case_history SET note = 'x'", "DELETE FROM case_history"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert history_count(engine) == 1


def test_thousands_of_findings_sync_in_bulk(engine: Engine) -> None:
    rows = [finding(f"9133010{i:011d}", tier=("high", "medium", "low")[i % 3], amount=f"{1000 + i}.25",
                    authority=f"1330{i % 7:02d}00000") for i in range(3000)]
    first = sync(engine, rows, "run-1")
    assert (first.opened, first.reminders) == (2000, 1000)
    changed = [{**r, "estimated_amount": r["estimated_amount"] + 1} if i % 10 == 0 else r for i, r in enumerate(rows)]
    second = sync(engine, changed[:2400], "run-2", days=1)
    # Rows 0..2399 stay (every tenth with a new amount: 160 of them are cases); 2400..2999 (400 cases) are gone.
    assert (second.updated, second.cleared, second.unchanged) == (160, 400, 1440)
    assert history_count(engine) == 2000 + 160 + 400
    amounts = {c.taxpayer_id: c.amount for c in find_cases(engine, ledger_filter_open())}
    assert amounts["9133010" + f"{30:011d}"] == Decimal("1031.25")


def ledger_filter_open() -> Any:
    from notifier.cases.queries import CaseFilter

    return CaseFilter(statuses=[PENDING])


def test_evidence_with_odd_text_round_trips(engine: Engine) -> None:
    evidence = [evidence_item("name", "fail", '引号"\\反斜杠\n换行', "≤ 300", label="名称")]
    sync(engine, [finding(A, evidence=evidence)], "run-1")
    assert get_case(engine, case_number(A, "small_low_profit_cit", "2025")).evidence == evidence


def test_sync_reads_a_polars_frame_with_extra_columns(engine: Engine) -> None:
    frame = findings_frame([finding(A)]).with_columns(pl.lit("x").alias("something_new"))
    report = sync_findings(engine, frame, run_id="run-1", as_of=AS_OF, periods=["2025"], at=AT)
    assert report.opened == 1
