"""Officers' moves on cases: the transition table, refusals with clear messages, filters and rule precision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine

from notifier.cases.ledger import assign, case_number, close, resolve, send_back, sync_findings
from notifier.cases.queries import CaseFilter, count_cases, find_cases, get_case, history_of, rule_stats
from notifier.cases.status import (
    CLEARED,
    CLOSED,
    CORRECTED,
    FALSE_ALARM,
    OPEN_STATUSES,
    PENDING,
    STATUSES,
    TRANSITIONS,
    VERIFYING,
    WAIVED,
    CaseError,
    CaseNotFoundError,
    TransitionError,
    allowed_next,
    check_transition,
    parse_status,
)
from notifier.db import open_state
from tests.builders.cases import finding, findings_frame

AS_OF = date(2026, 1, 10)
AT = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
RULE = "small_low_profit_cit"


def tp(i: int) -> str:
    return f"9133010{i:011d}"


def no(i: int, rule: str = RULE) -> str:
    return case_number(tp(i), rule, "2025")


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    e = open_state(state_url)
    rows = [finding(tp(i), tier="high" if i % 2 else "medium", amount=f"{1000 * (i + 1)}.00",
                    authority="13301060000" if i < 4 else "13301050000") for i in range(6)]
    rows += [finding(tp(10), rule_id="hnte_15pct"), finding(tp(11), rule_id="hnte_15pct"),
             finding(tp(12), kind="undetermined", amount=None)]
    sync_findings(e, findings_frame(rows), run_id="run-1", as_of=AS_OF, periods=["2025"], at=AT)
    yield e
    e.dispose()


# ------------------------------------------------------------------------------------------ the table


def test_the_transition_table_covers_every_status_and_reaches_every_status() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    reachable = {PENDING} | {to for moves in TRANSITIONS.values() for to in moves}
    assert reachable == set(STATUSES)
    # Only the system clears a case or reopens it to 待分派.
    for moves in TRANSITIONS.values():
        assert moves.get(CLEARED, "system") == "system" and moves.get(PENDING, "system") == "system"


def test_allowed_next_statuses() -> None:
    assert allowed_next(PENDING) == (VERIFYING,)
    assert allowed_next(VERIFYING) == (VERIFYING, CORRECTED, WAIVED, FALSE_ALARM)
    assert allowed_next(FALSE_ALARM) == (VERIFYING, CLOSED)
    assert allowed_next(CLOSED) == ()
    assert allowed_next(CLOSED, "system") == (PENDING,)
    assert allowed_next(VERIFYING, "system") == (CLEARED,)


def test_forbidden_transition_message_names_case_status_and_allowed_moves() -> None:
    with pytest.raises(TransitionError) as err:
        check_transition("FX-2025-x-1", PENDING, CORRECTED)
    assert str(err.value) == (
        "案件 FX-2025-x-1 当前状态为「待分派」，不能从「待分派」变更为「已更正」。允许的下一状态：核实中")
    with pytest.raises(TransitionError, match="「已消除」只能由系统在比对运行结果时设置"):
        check_transition("FX-2025-x-1", VERIFYING, CLEARED)
    with pytest.raises(TransitionError, match="允许的下一状态：无（该案件已办结"):
        check_transition("FX-2025-x-1", CLOSED, VERIFYING)


@pytest.mark.parametrize(("text", "status"), [("误报", FALSE_ALARM), ("false_alarm", FALSE_ALARM),
                                              (" Corrected ", CORRECTED), ("close", CLOSED), ("gave_up", WAIVED)])
def test_parse_status_accepts_chinese_and_english(text: str, status: str) -> None:
    assert parse_status(text) == status


def test_parse_status_lists_the_valid_names() -> None:
    with pytest.raises(CaseError, match="待分派、核实中、已更正、放弃优惠、误报、已关闭、已消除"):
        parse_status("done")


# ------------------------------------------------------------------------------------------- the moves


def test_assign_then_resolve_then_close_records_every_change(engine: Engine) -> None:
    number = no(0)
    assign(engine, [number], "张三", actor="李科长", at=AT)
    assign(engine, [number], "王五", actor="李科长", at=AT)  # reassignment
    resolve(engine, [number], CORRECTED, actor="王五", reason="企业已更正申报", at=AT)
    close(engine, [number], actor="李科长", at=AT)
    case = get_case(engine, number)
    assert (case.status, case.resolution, case.resolution_reason, case.assignee) == (
        CLOSED, CORRECTED, "企业已更正申报", "王五")
    moves = [(h.actor, h.from_status, h.to_status, h.note) for h in history_of(engine, number)]
    assert moves == [
        ("system", None, PENDING, "新立案：中风险，涉及金额 1,000.00 元"),
        ("李科长", PENDING, VERIFYING, "分派给 张三"),
        ("李科长", VERIFYING, VERIFYING, "分派给 王五"),
        ("王五", VERIFYING, CORRECTED, "企业已更正申报"),
        ("李科长", CORRECTED, CLOSED, ""),
    ]


def test_forbidden_transition_is_refused_and_nothing_is_written(engine: Engine) -> None:
    number = no(0)
    with pytest.raises(TransitionError) as err:
        resolve(engine, [number], CORRECTED, actor="王五", at=AT)
    assert str(err.value) == (f"案件 {number} 当前状态为「待分派」，不能从「待分派」变更为「已更正」。"
                              "允许的下一状态：核实中")
    with pytest.raises(TransitionError, match="当前状态为「待分派」"):
        close(engine, [number], actor="李科长", at=AT)
    assert get_case(engine, number).status == PENDING
    assert len(history_of(engine, number)) == 1


def test_closed_case_cannot_be_moved_by_an_officer(engine: Engine) -> None:
    number = no(1)
    assign(engine, [number], "张三", actor="李科长", at=AT)
    resolve(engine, [number], WAIVED, actor="张三", at=AT)
    close(engine, [number], actor="李科长", at=AT)
    with pytest.raises(TransitionError, match=r"当前状态为「已关闭」.*允许的下一状态：无"):
        assign(engine, [number], "王五", actor="李科长", at=AT)


def test_false_alarm_needs_a_reason(engine: Engine) -> None:
    assign(engine, [no(0)], "张三", actor="李科长", at=AT)
    with pytest.raises(CaseError, match="误报必须说明理由"):
        resolve(engine, [no(0)], FALSE_ALARM, actor="张三", reason="  ", at=AT)
    assert get_case(engine, no(0)).status == VERIFYING


def test_moves_on_several_cases_are_all_or_nothing(engine: Engine) -> None:
    assign(engine, [no(0)], "张三", actor="李科长", at=AT)
    with pytest.raises(TransitionError, match=no(1)):
        resolve(engine, [no(0), no(1)], CORRECTED, actor="张三", at=AT)
    assert get_case(engine, no(0)).status == VERIFYING
    changes = assign(engine, [no(1), no(2), no(1)], "张三", actor="李科长", at=AT)
    assert [c.case_no for c in changes] == [no(1), no(2)]


def test_unknown_case_number_is_reported_with_similar_numbers(engine: Engine) -> None:
    real = no(0)
    typo = real[:-1] + ("0" if real[-1] != "0" else "1")
    with pytest.raises(CaseNotFoundError, match="没有编号为"):
        assign(engine, [typo], "张三", actor="李科长", at=AT)
    with pytest.raises(CaseNotFoundError, match=f"您是不是要找 {real}"):
        get_case(engine, real.rsplit("-", 1)[0] + "-" + real.rsplit("-", 1)[1][2:])


def test_officer_and_actor_are_required(engine: Engine) -> None:
    with pytest.raises(CaseError, match="承办人"):
        assign(engine, [no(0)], " ", actor="李科长", at=AT)
    with pytest.raises(CaseError, match="操作人"):
        assign(engine, [no(0)], "张三", actor="", at=AT)
    with pytest.raises(CaseError, match="至少指定一个案件编号"):
        assign(engine, [], "张三", actor="李科长", at=AT)


def test_send_back_withdraws_the_decision(engine: Engine) -> None:
    assign(engine, [no(0)], "张三", actor="李科长", at=AT)
    resolve(engine, [no(0)], FALSE_ALARM, actor="张三", reason="数据口径不同", at=AT)
    with pytest.raises(CaseError, match="理由"):
        send_back(engine, [no(0)], actor="李科长", note="", at=AT)
    send_back(engine, [no(0)], actor="李科长", note="需补充社保数据", at=AT)
    case = get_case(engine, no(0))
    assert (case.status, case.resolution, case.assignee) == (VERIFYING, None, "张三")


# ------------------------------------------------------------------------------------------ the lists


def test_filters_by_authority_tier_rule_status_and_assignee(engine: Engine) -> None:
    assign(engine, [no(0), no(5)], "张三", actor="李科长", at=AT)

    def numbers(where: CaseFilter) -> set[str]:
        return {c.case_no for c in find_cases(engine, where)}

    assert numbers(CaseFilter(authorities=["13301050000"])) == {no(4), no(5)}
    assert numbers(CaseFilter(tiers=["verification"])) == {no(12)}
    assert numbers(CaseFilter(rules=["hnte_15pct"])) == {no(10, "hnte_15pct"), no(11, "hnte_15pct")}
    assert numbers(CaseFilter(statuses=[VERIFYING])) == {no(0), no(5)}
    assert numbers(CaseFilter(assignee="张三", tiers=["high"])) == {no(5)}
    assert numbers(CaseFilter(taxpayer=tp(3))) == {no(3)}
    assert count_cases(engine) == 9 and count_cases(engine, CaseFilter(tiers=["high", "medium"])) == 8


def test_overdue_means_open_and_past_its_due_date(engine: Engine) -> None:
    # Opened 2026-01-10: high due 01-20, medium 01-30, verification 02-09.
    assert count_cases(engine, CaseFilter(overdue_on=date(2026, 1, 20))) == 0
    overdue = find_cases(engine, CaseFilter(overdue_on=date(2026, 1, 21)))
    assert {c.tier for c in overdue} == {"high"} and len(overdue) == 5
    assign(engine, [no(1)], "张三", actor="李科长", at=AT)
    resolve(engine, [no(1)], CORRECTED, actor="张三", at=AT)  # decided: no longer overdue
    assert count_cases(engine, CaseFilter(overdue_on=date(2026, 1, 21))) == 4
    assert count_cases(engine, CaseFilter(overdue_on=date(2026, 2, 10))) == 8
    case = get_case(engine, no(3))
    assert case.days_left(date(2026, 1, 25)) == -5 and case.is_overdue(date(2026, 1, 25))


def test_list_order_is_most_urgent_first_then_largest_amount(engine: Engine) -> None:
    listed = find_cases(engine, CaseFilter(rules=[RULE], tiers=["high", "medium"]))
    assert [c.tier for c in listed] == ["high"] * 3 + ["medium"] * 3
    assert [c.amount for c in listed[:3]] == [Decimal("6000.00"), Decimal("4000.00"), Decimal("2000.00")]


# ------------------------------------------------------------------------------------------- precision


def test_rule_stats_give_confirmed_versus_false_alarms(engine: Engine) -> None:
    # small_low_profit_cit: 2 corrected, 1 waived (then closed), 1 false alarm, 1 open, 1 cleared below.
    every = [no(i) for i in range(4)]
    assign(engine, every, "张三", actor="李科长", at=AT)
    resolve(engine, [no(0), no(1)], CORRECTED, actor="张三", at=AT)
    resolve(engine, [no(2)], WAIVED, actor="张三", at=AT)
    close(engine, [no(2)], actor="李科长", at=AT)
    resolve(engine, [no(3)], FALSE_ALARM, actor="张三", reason="从业人数口径有误", at=AT)
    # hnte_15pct: both false alarms.
    assign(engine, [no(10, "hnte_15pct"), no(11, "hnte_15pct")], "王五", actor="李科长", at=AT)
    resolve(engine, [no(10, "hnte_15pct"), no(11, "hnte_15pct")], FALSE_ALARM, actor="王五", reason="证书有效",
            at=AT)
    # The next run no longer finds taxpayer 5's problem; everything else is found again.
    rows = [finding(tp(i), tier="high" if i % 2 else "medium", amount=f"{1000 * (i + 1)}.00",
                    authority="13301060000" if i < 4 else "13301050000") for i in range(5)]
    rows += [finding(tp(10), rule_id="hnte_15pct"), finding(tp(11), rule_id="hnte_15pct"),
             finding(tp(12), kind="undetermined", amount=None)]
    sync_findings(engine, findings_frame(rows), run_id="run-2", as_of=AS_OF, periods=["2025"], at=AT)

    stats = {s.rule_id: s for s in rule_stats(engine)}
    slp = stats[RULE]
    assert (slp.cases, slp.open, slp.corrected, slp.waived, slp.confirmed, slp.false_alarms, slp.cleared) == (
        6, 1, 2, 1, 3, 1, 1)
    assert slp.precision == 0.75
    assert slp.confirmed_amount == Decimal("6000.00")  # 1,000 + 2,000 + 3,000
    hnte = stats["hnte_15pct"]
    assert (hnte.confirmed, hnte.false_alarms, hnte.precision) == (0, 2, 0.0)
    assert slp.rule_name == "小型微利企业所得税优惠"
    # Verification items are not part of a rule's precision unless asked for.
    assert rule_stats(engine, tiers=["verification"])[0].cases == 1
    assert {s.rule_id for s in rule_stats(engine, authorities=["13301050000"])} == {RULE}


def test_rule_stats_without_decisions_have_no_precision(engine: Engine) -> None:
    [hnte] = [s for s in rule_stats(engine) if s.rule_id == "hnte_15pct"]
    assert hnte.decided == 0 and hnte.precision is None
    assert all(s.open == s.cases for s in rule_stats(engine))
    assert {PENDING, VERIFYING} == OPEN_STATUSES
