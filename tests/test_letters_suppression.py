"""The suppression ledger, on SQLite and on a real PostgreSQL (the `state_url` fixture runs both)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from notifier.db import open_state
from notifier.letters.outbox import read_manifest
from notifier.letters.run import NotifyOptions, notify
from notifier.letters.suppression import SentRecord, SuppressionLedger, SuppressionPolicy, from_fen, history, to_fen
from tests.builders.letters import (
    AS_OF,
    ID_FIVE,
    ID_ONE,
    ID_REMINDER,
    RULES,
    all_rows,
    five_incentives,
    one_incentive,
    write_findings,
)


@pytest.mark.parametrize(("before", "now", "material"), [
    (Decimal("10000.00"), Decimal("10000.00"), False),
    (Decimal("10000.00"), Decimal("10900.00"), False),  # 9 %, 900 元
    (Decimal("10000.00"), Decimal("11000.00"), True),  # 10 %
    (Decimal("5000.00"), Decimal("5600.00"), True),  # 12 %
    (Decimal("1860000.00"), Decimal("1861000.00"), True),  # 1,000 元
    (Decimal("1860000.00"), Decimal("1860999.99"), False),
    (Decimal("100.00"), Decimal("90.00"), True),  # down by 10 % is news too
    (None, Decimal("1.00"), True),
    (Decimal("0.00"), Decimal("0.01"), True),
])
def test_material_change(before: Decimal | None, now: Decimal, material: bool) -> None:
    assert SuppressionPolicy().material(before, now) is material


def test_material_change_thresholds_are_configurable() -> None:
    pct_only = SuppressionPolicy(material_pct=Decimal(50), material_amount=None)
    assert not pct_only.material(Decimal("1000000"), Decimal("1400000"))
    assert pct_only.material(Decimal("1000000"), Decimal("1500000"))
    never = SuppressionPolicy(material_pct=None, material_amount=None)
    assert not never.material(Decimal("1"), Decimal("1000000"))


def test_fen_round_trip() -> None:
    assert to_fen(Decimal("1234.565")) == 123457
    assert from_fen(123457) == Decimal("1234.57")
    assert to_fen(None) is None and from_fen(None) is None


def _record(ledger: SuppressionLedger, amount: str, *, rule: str = "small_low_profit_cit") -> None:
    ledger.record([SentRecord(ID_ONE, rule, "2025", "unclaimed", Decimal(amount), "etax", "file", "p1")])


def test_ledger_cool_down_and_material_change(state_url: str) -> None:
    engine = open_state(state_url)
    key = (ID_ONE, "small_low_profit_cit", "2025", "unclaimed")
    try:
        first = SuppressionLedger(engine, AS_OF)
        assert first.should_send(key, Decimal("372000.00"))
        _record(first, "372000.00")
        assert not first.should_send(key, Decimal("372000.00"))  # the same run sees its own sends

        later = SuppressionLedger(engine, AS_OF + timedelta(days=89))
        assert later.last_sent(key) is not None and later.last_sent(key).amount == Decimal("372000.00")
        assert not later.should_send(key, Decimal("372500.00"))
        assert later.should_send(key, Decimal("373000.00"))  # 1,000 元 more
        assert later.should_send((ID_ONE, "small_low_profit_cit", "2026", "unclaimed"), Decimal("372000.00"))
        assert later.should_send((ID_ONE, "small_low_profit_cit", "2025", "improper"), Decimal("372000.00"))

        after = SuppressionLedger(engine, AS_OF + timedelta(days=90))
        assert after.should_send(key, Decimal("372000.00"))  # the cool-down is over

        short = SuppressionLedger(engine, AS_OF + timedelta(days=10), SuppressionPolicy(cooldown_days=7))
        assert short.should_send(key, Decimal("372000.00"))
        rows = history(engine, ID_ONE)
        assert len(rows) == 1 and rows[0]["estimated_amount"] == Decimal("372000.00")
        assert rows[0]["sent_on"] == AS_OF and rows[0]["backend"] == "file"
    finally:
        engine.dispose()


def test_ledger_compares_with_the_last_send(state_url: str) -> None:
    engine = open_state(state_url)
    key = (ID_ONE, "small_low_profit_cit", "2025", "unclaimed")
    try:
        _record(SuppressionLedger(engine, AS_OF - timedelta(days=30)), "100000.00")
        _record(SuppressionLedger(engine, AS_OF - timedelta(days=5)), "150000.00")
        ledger = SuppressionLedger(engine, AS_OF)
        assert ledger.last_sent(key).amount == Decimal("150000.00")  # type: ignore[union-attr]
        assert not ledger.should_send(key, Decimal("150500.00"))
    finally:
        engine.dispose()


def _run(tmp_path: Path, state_url: str, rows: list[dict], out: str, *, as_of: date = AS_OF,  # type: ignore[type-arg]
         dry_run: bool = False):  # type: ignore[no-untyped-def]
    findings = write_findings(rows, tmp_path / f"findings-{out}")
    return notify(NotifyOptions(findings=findings, out=tmp_path / out, state_url=state_url, as_of=as_of,
                                dry_run=dry_run, rules_dir=RULES))


def test_notify_does_not_send_the_same_news_twice(tmp_path: Path, state_url: str) -> None:
    rows = all_rows()
    dry = _run(tmp_path, state_url, rows, "dry", dry_run=True)
    assert dry.packages == 4 and dry.delivered == {}
    assert {r["status"] for r in read_manifest(tmp_path / "dry" / "manifest.csv")} == {"dry_run"}
    engine = open_state(state_url)
    assert history(engine) == []  # a dry run records nothing

    first = _run(tmp_path, state_url, rows, "first")
    assert first.packages == 4 and first.delivered["file"] == 4
    recorded = history(engine)
    # every finding told: 8 unclaimed and 1 low-risk reminder; nothing undetermined or medium-risk
    assert len(recorded) == 9
    assert {r["kind"] for r in recorded} == {"unclaimed", "improper"}
    assert [r["rule_id"] for r in recorded if r["kind"] == "improper"] == ["disability_fund_relief"]

    second = _run(tmp_path, state_url, rows, "second", as_of=AS_OF + timedelta(days=30))
    assert second.packages == 0
    assert second.suppressed_taxpayers == 4 and second.suppressed_findings == 9
    assert second.opted_out == 1 and second.nothing_to_tell == 1
    assert len(history(engine)) == 9

    # One relief grows materially: only that one is told again, in a package of its own.
    changed = five_incentives()
    for row in changed:
        if row["rule_id"] == "rd_super_deduction":
            row["estimated_amount"] = Decimal("260000.00")
    third = _run(tmp_path, state_url, [*one_incentive(), *changed], "third", as_of=AS_OF + timedelta(days=31))
    assert third.packages == 1 and third.suppressed_findings == 5
    manifest = read_manifest(tmp_path / "third" / "manifest.csv")
    assert [(m["taxpayer_id"], m["incentives"], m["total_estimated_saving"]) for m in manifest] == [
        (ID_FIVE, "rd_super_deduction", "260000.00")]

    # After the cool-down everything is news again.
    fourth = _run(tmp_path, state_url, rows, "fourth", as_of=AS_OF + timedelta(days=90))
    assert fourth.packages == 4 and fourth.suppressed_findings == 0
    assert {r["taxpayer_id"] for r in history(engine)} == {ID_ONE, ID_FIVE, ID_REMINDER, "91330109MA2J0TQ10E"}
    engine.dispose()


def test_record_false_leaves_the_ledger_rows_to_the_caller(tmp_path: Path, state_url: str) -> None:
    findings = write_findings(all_rows(), tmp_path / "findings")
    report = notify(NotifyOptions(findings=findings, out=tmp_path / "out", state_url=state_url, as_of=AS_OF,
                                  rules_dir=RULES, record=False))
    engine = open_state(state_url)
    assert history(engine) == []
    assert len(report.unrecorded) == 9 and {r.backend for r in report.unrecorded} == {"file"}
    SuppressionLedger(engine, AS_OF).record(report.unrecorded)  # e.g. when the nightly run is published
    assert len(history(engine)) == 9
    engine.dispose()
