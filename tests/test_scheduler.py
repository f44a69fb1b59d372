"""`zhixiang schedule` for real: a child process with a short cron trigger, two at once, and misfires.

Every test starts the real scheduler command (APScheduler, the lock, the nightly child) and watches
the run ledger and the JSON log; none calls the job function. Misfires are produced the two ways they
happen in production: the scheduler was down at the fire time (started later, within or beyond the
grace), and the scheduler was frozen across it (SIGSTOP/SIGCONT, as a suspended VM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from notifier.db import open_state
from notifier.nightly.config import Schedule
from notifier.nightly.runs import EXIT_LOCKED, lock_info, succeeded_run
from notifier.nightly.scheduler import business_date, last_fire_time
from tests.builders.nightly import write_config, write_data_folder

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")


# ------------------------------------------------------------------------------------------- pure helpers


def test_last_fire_time_every_second_and_daily() -> None:
    now = datetime(2026, 4, 16, 2, 30, 0, 500_000, tzinfo=ZONE)
    every = CronTrigger(second="*", timezone=ZONE)
    assert last_fire_time(every, now, timedelta(hours=6)) == now.replace(microsecond=0)
    daily = CronTrigger(hour=2, minute=0, second=0, timezone=ZONE)
    assert last_fire_time(daily, now, timedelta(hours=6)) == datetime(2026, 4, 16, 2, 0, tzinfo=ZONE)
    assert last_fire_time(daily, now, timedelta(minutes=29)) is None
    assert last_fire_time(daily, now.replace(hour=1), timedelta(hours=6)) is None
    weekdays = CronTrigger(day_of_week="mon-fri", hour=2, minute=0, timezone=ZONE)
    monday = datetime(2026, 4, 20, 1, 0, tzinfo=ZONE)
    assert last_fire_time(weekdays, monday, timedelta(days=4)) == datetime(2026, 4, 17, 2, 0, tzinfo=ZONE)


def test_business_date_is_the_day_before_by_default() -> None:
    fire = datetime(2026, 4, 16, 2, 0, tzinfo=ZONE)
    assert business_date(fire, Schedule()) == date(2026, 4, 15)
    assert business_date(fire.astimezone(ZoneInfo("UTC")), Schedule()) == date(2026, 4, 15)
    assert business_date(fire, Schedule(as_of_offset_days=0)) == date(2026, 4, 16)


# ------------------------------------------------------------------------------------------ the real thing


class Harness:
    """A config and data folder in tmp_path, scheduler processes started on it, and ways to watch them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = f"sqlite:///{tmp_path / 'state.sqlite'}"
        self.data = write_data_folder(tmp_path / "data")
        self.procs: list[subprocess.Popen[str]] = []
        self.config: Path | None = None

    def configure(self, **schedule: object) -> Path:
        lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in schedule.items())
        self.config = write_config(self.tmp, self.state, data=self.data, extra=f"[schedule]\n{lines}\n")
        return self.config

    def start(self) -> subprocess.Popen[str]:
        assert self.config is not None
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "schedule", "--config", str(self.config)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={k: v for k, v in os.environ.items() if not k.startswith("ZHIXIANG_NIGHTLY")})
        self.procs.append(proc)
        return proc

    def log(self) -> list[dict[str, object]]:
        path = self.tmp / "logs" / "zhixiang.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def logged(self, text: str) -> bool:
        return any(text in str(r["msg"]) for r in self.log())

    def succeeded(self, day: date) -> bool:
        engine = open_state(self.state)
        try:
            return succeeded_run(engine, day) is not None
        finally:
            engine.dispose()

    def stop(self, proc: subprocess.Popen[str]) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        return proc.returncode


@pytest.fixture()
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    for proc in h.procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            h.stop(proc)


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what or condition}")


def _today() -> date:
    return datetime.now(ZONE).date()


def _cron_at(moment: datetime) -> dict[str, str]:
    local = moment.astimezone(ZONE)
    return {"hour": str(local.hour), "minute": str(local.minute), "second": str(local.second)}


def test_scheduler_runs_the_nightly_on_a_short_trigger(harness: Harness) -> None:
    harness.configure(hour="*", minute="*", second="*/2", as_of_offset_days=0)
    proc = harness.start()
    day = _today()
    wait_for(lambda: harness.succeeded(day), what="a scheduled nightly run")
    engine = open_state(harness.state)
    run = succeeded_run(engine, day)
    assert run is not None and run.trigger == "schedule"
    assert lock_info(engine, "scheduler") is not None
    assert harness.stop(proc) == 0
    assert lock_info(engine, "scheduler") is None  # released on a clean stop
    messages = [str(r["msg"]) for r in harness.log()]
    assert any(m.startswith("调度器已启动") for m in messages)
    assert any(m.startswith("触发夜间批处理") for m in messages)


def test_two_schedulers_started_together_one_runs(harness: Harness) -> None:
    harness.configure(hour="*", minute="*", second="*/2", as_of_offset_days=0)
    first, second = harness.start(), harness.start()
    wait_for(lambda: first.poll() is not None or second.poll() is not None, timeout=30, what="one to give up")
    refused, running = (first, second) if first.poll() is not None else (second, first)
    _, err = refused.communicate()
    assert refused.returncode == EXIT_LOCKED
    assert "已有调度器在运行" in err and "夜间批处理调度器" in err
    wait_for(lambda: harness.succeeded(_today()), what="the remaining scheduler's run")
    assert running.poll() is None
    assert harness.stop(running) == 0
    assert sum(str(r["msg"]).startswith("调度器已启动") for r in harness.log()) == 1


def test_a_fire_missed_while_down_runs_at_start_within_the_grace(harness: Harness) -> None:
    fire = datetime.now(ZONE).replace(microsecond=0) - timedelta(seconds=20)
    harness.configure(**_cron_at(fire), misfire_grace_hours=1)
    harness.start()
    day = fire.date() - timedelta(days=1)
    wait_for(lambda: harness.succeeded(day), what="the catch-up run")
    assert harness.logged("发现启动前错过的触发时间")


def test_a_fire_missed_beyond_the_grace_is_not_run(harness: Harness) -> None:
    fire = datetime.now(ZONE).replace(microsecond=0) - timedelta(seconds=60)
    harness.configure(**_cron_at(fire), misfire_grace_hours=0.005)  # 18 seconds
    proc = harness.start()
    wait_for(lambda: harness.logged("调度器已启动"), timeout=30, what="the scheduler to start")
    time.sleep(3)
    assert not harness.succeeded(fire.date() - timedelta(days=1))
    started = next(str(r["msg"]) for r in harness.log() if str(r["msg"]).startswith("调度器已启动"))
    assert f"首次触发 {(fire + timedelta(days=1)).isoformat()}" in started
    assert harness.stop(proc) == 0


@pytest.mark.parametrize(("grace_hours", "runs"), [(1, True), (0.0005, False)])  # 1 hour / 1.8 seconds
def test_a_scheduler_frozen_across_its_fire_time(harness: Harness, grace_hours: float, runs: bool) -> None:
    # The fire time leaves a loaded machine (CI shares two cores) up to 18 s to start the scheduler
    # process before it is frozen; starting took > 8 s at load 12.
    fire = datetime.now(ZONE).replace(microsecond=0) + timedelta(seconds=20)
    harness.configure(**_cron_at(fire), misfire_grace_hours=grace_hours)
    proc = harness.start()
    wait_for(lambda: harness.logged("调度器已启动"), timeout=18, what="the scheduler to start")
    assert datetime.now(ZONE) < fire, "the scheduler started after its fire time: the test proves nothing"
    os.kill(proc.pid, signal.SIGSTOP)  # frozen (a suspended VM, a stalled host) across the fire time
    time.sleep(max((fire - datetime.now(ZONE)).total_seconds(), 0) + 4)
    os.kill(proc.pid, signal.SIGCONT)
    day = fire.date() - timedelta(days=1)
    if runs:
        wait_for(lambda: harness.succeeded(day), what="the late run within the grace")
    else:
        wait_for(lambda: harness.logged("错过夜间批处理触发时间"), timeout=20, what="the missed-fire log")
        assert not harness.succeeded(day)
    assert harness.stop(proc) == 0
