"""The run ledger and the locks, on SQLite and PostgreSQL: one holder, dead and stale takeover, lost leases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select, update

from notifier.db import open_state
from notifier.nightly.runs import (
    LockHeldError,
    abandon_running,
    acquire,
    get_run,
    list_runs,
    lock_info,
    locks,
    nightly_runs,
    previous_success,
    recent_successes,
    start_run,
    succeeded_run,
    this_host,
    update_run,
    utcnow,
)

DAY = date(2026, 4, 15)


def _lease(engine, name="nightly", **kw):  # type: ignore[no-untyped-def]
    return acquire(engine, name, detail="测试", heartbeat=kw.pop("heartbeat", 60), stale_after=kw.pop("stale", 120),
                   **kw)


def test_one_holder_at_a_time(state_url: str) -> None:
    engine = open_state(state_url)
    lease = _lease(engine)
    with pytest.raises(LockHeldError, match="测试（主机"):
        _lease(engine)
    other = _lease(engine, "scheduler")  # another name is another lock
    lease.release()
    again = _lease(engine)
    assert lock_info(engine, "nightly").holder == again.holder  # type: ignore[union-attr]
    again.release()
    other.release()
    assert lock_info(engine, "nightly") is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_holder_on_this_machine_is_taken_over_at_once(state_url: str) -> None:
    engine = open_state(state_url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(locks).values(name="nightly", holder="x:1:dead", host=this_host(), pid=_dead_pid(),
                                          acquired_at=now, heartbeat_at=now, detail="崩溃的运行"))
    lease = _lease(engine)
    assert lock_info(engine, "nightly").pid == os.getpid()  # type: ignore[union-attr]
    lease.release()


def test_live_holder_elsewhere_is_respected_until_stale(state_url: str) -> None:
    engine = open_state(state_url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(locks).values(name="nightly", holder="other:99:live", host="other-host/x/1", pid=99,
                                          acquired_at=now, heartbeat_at=now, detail="另一台机器"))
    with pytest.raises(LockHeldError, match="另一台机器（主机 other-host，进程 99"):
        _lease(engine)
    with engine.begin() as conn:
        conn.execute(update(locks).values(heartbeat_at=now - timedelta(seconds=121)))
    lease = _lease(engine)  # stale: taken over
    lease.release()


def test_heartbeat_keeps_the_lease_and_notices_when_it_is_lost(state_url: str) -> None:
    engine = open_state(state_url)
    lost: list[bool] = []
    lease = acquire(engine, "nightly", detail="测试", heartbeat=0.05, stale_after=5, on_lost=lambda: lost.append(True))
    first = lock_info(engine, "nightly").heartbeat_at  # type: ignore[union-attr]
    time.sleep(0.3)
    assert lock_info(engine, "nightly").heartbeat_at > first  # type: ignore[union-attr]
    with engine.begin() as conn:  # somebody else takes it over
        conn.execute(update(locks).values(holder="thief"))
    assert lease.lost.wait(2)
    assert lost == [True]
    lease.release()
    assert lock_info(engine, "nightly").holder == "thief"  # type: ignore[union-attr]  # not ours to delete


def test_run_ledger_lifecycle(state_url: str) -> None:
    engine = open_state(state_url)
    first = start_run(engine, DAY, trigger="manual", forced=False, data_source="data")
    assert first.run_id == "20260415-1" and first.status == "running"
    update_run(engine, first.run_id, status="failed", error="[evaluate] boom", finished_at=utcnow())
    second = start_run(engine, DAY, trigger="schedule", forced=False, data_source="data")
    assert second.run_id == "20260415-2"
    assert succeeded_run(engine, DAY) is None
    update_run(engine, second.run_id, status="succeeded", counts={"findings": {"unclaimed": 3}},
               timings={"evaluate": 1.5}, input_hashes={"taxpayers": "ab"}, periods=["2025"], finished_at=utcnow())
    done = succeeded_run(engine, DAY)
    assert done is not None and done.counts == {"findings": {"unclaimed": 3}} and done.periods == ["2025"]
    assert previous_success(engine, DAY) is None
    assert previous_success(engine, DAY + timedelta(days=1)).run_id == "20260415-2"  # type: ignore[union-attr]
    assert [r.run_id for r in list_runs(engine)] == ["20260415-2", "20260415-1"]
    assert [r.run_id for r in recent_successes(engine, up_to=DAY, limit=5)] == ["20260415-2"]
    assert get_run(engine, "20260415-1").error == "[evaluate] boom"


def test_abandon_marks_running_attempts(state_url: str) -> None:
    engine = open_state(state_url)
    run = start_run(engine, DAY, trigger="manual", forced=False, data_source="data")
    with engine.begin() as conn:
        conn.execute(update(nightly_runs).values(pid=_dead_pid(), stage="letters"))
    abandoned = abandon_running(engine)
    assert [r.run_id for r in abandoned] == [run.run_id]
    got = get_run(engine, run.run_id)
    assert got.status == "abandoned" and "letters" in (got.error or "") and "进程已退出" in (got.error or "")
    with engine.connect() as conn:
        assert conn.execute(select(nightly_runs.c.status)).scalars().all() == ["abandoned"]
