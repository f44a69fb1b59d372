"""`zhixiang schedule`: an APScheduler 3 blocking scheduler that starts the nightly run on a cron trigger.

One scheduler per state database: it holds the `scheduler` lock (notifier/nightly/runs.py) for as long as it
runs and heartbeats it; a second one exits at once with EXIT_LOCKED and names the holder. The trigger
is a CronTrigger (default 02:00 Asia/Shanghai) with coalescing, one instance at a time and a misfire
grace of hours. A fire missed while the scheduler was down is not forgotten: at start the scheduler
gives the job the latest fire time within the grace (when that business day has not succeeded), and
APScheduler's own misfire handling runs it at once — or skips it, logged, when it is older than the
grace. Each run is a child process (`zhixiang nightly --trigger schedule`), so a crash or a memory
blow-up of one night never takes the scheduler down, and the nightly's own lock, idempotency and
crash recovery apply exactly as to a manual run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from notifier.db import open_state
from notifier.nightly.config import Config, Schedule
from notifier.nightly.runs import EXIT_LOCKED, acquire, succeeded_run

log = logging.getLogger("zhixiang.scheduler")

SCHEDULER_LOCK = "scheduler"
JOB_ID = "nightly"


def build_trigger(schedule: Schedule) -> CronTrigger:
    return CronTrigger(hour=schedule.hour, minute=schedule.minute, second=schedule.second,
                       day_of_week=schedule.day_of_week, timezone=schedule.zone)


def last_fire_time(trigger: CronTrigger, now: datetime, horizon: timedelta) -> datetime | None:
    """The latest fire time of `trigger` in (now − horizon, now], or None.

    Widens a window back from `now` until it holds a fire time, then walks forward: a handful of
    steps for any trigger, an every-second one included.
    """
    window = timedelta(seconds=1)
    first = None
    while True:
        window = min(window, horizon)
        candidate = trigger.get_next_fire_time(None, now - window)
        if candidate is not None and candidate <= now:
            first = candidate
            break
        if window >= horizon:
            return None
        window *= 2
    latest = first
    while True:
        following = trigger.get_next_fire_time(latest, latest + timedelta(microseconds=1))
        if following is None or following > now or following <= latest:
            return latest
        latest = following


def business_date(fire_time: datetime, schedule: Schedule) -> date:
    """The business day a fire serves: its date in the schedule's zone, minus the offset (02:00 → yesterday)."""
    return fire_time.astimezone(schedule.zone).date() - timedelta(days=schedule.as_of_offset_days)


class NightlyScheduler:
    """Holds the lock, runs the BlockingScheduler, and starts one nightly child per fire."""

    def __init__(self, config: Config, *, config_file: Path | None = None) -> None:
        self.config = config
        self.config_file = config_file
        self.trigger = build_trigger(config.schedule)
        self.scheduler = BlockingScheduler(timezone=config.schedule.zone, job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(config.schedule.misfire_grace.total_seconds()),
        })
        self.child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()
        self.stopping = threading.Event()
        self.lost_lock = False
        self.runs = 0

    # -- the job ----------------------------------------------------------------------------------

    def command(self, as_of: date) -> list[str]:
        """The nightly child's command line (same interpreter, same configuration)."""
        cmd = [sys.executable, "-m", "engine.cli", "nightly", "--as-of", as_of.isoformat(), "--trigger", "schedule"]
        if self.config_file is not None:
            cmd += ["--config", str(self.config_file)]
        return cmd

    def job(self) -> None:
        """Run the nightly for the business day of the fire being served (the latest one up to now)."""
        now = datetime.now(self.config.schedule.zone)
        fire = last_fire_time(self.trigger, now, self.config.schedule.misfire_grace) or now
        as_of = business_date(fire, self.config.schedule)
        late = (now - fire).total_seconds()
        log.info("触发夜间批处理：业务日期 %s（计划 %s，延迟 %.0f 秒）", as_of, fire.isoformat(timespec="seconds"),
                 late,
                 extra={"as_of": str(as_of)})
        with self._child_lock:
            if self.stopping.is_set():
                return
            self.child = subprocess.Popen(self.command(as_of), env=os.environ.copy())
        code = self.child.wait()
        with self._child_lock:
            self.child = None
        self.runs += 1
        if code == 0:
            log.info("夜间批处理结束：业务日期 %s", as_of, extra={"as_of": str(as_of), "exit_code": code})
        elif code == EXIT_LOCKED:
            log.warning("业务日期 %s 的夜间批处理未运行：另一个夜间批处理正在进行", as_of,
                        extra={"as_of": str(as_of), "exit_code": code})
        else:
            log.error("夜间批处理失败：业务日期 %s，退出码 %s（下次启动或下次触发时将重新运行该日）", as_of, code,
                      extra={"as_of": str(as_of), "exit_code": code})

    def missed_fire(self, now: datetime) -> datetime | None:
        """A fire within the grace that passed while no scheduler ran, if its day has not succeeded."""
        fire = last_fire_time(self.trigger, now, self.config.schedule.misfire_grace)
        if fire is None or fire >= now:
            return None
        engine = open_state(self.config.state_url)
        try:
            done = succeeded_run(engine, business_date(fire, self.config.schedule))
        finally:
            engine.dispose()
        return None if done is not None else fire

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.error("错过夜间批处理触发时间 %s，已超过宽限 %s 小时，本次不补跑",
                      event.scheduled_run_time, self.config.schedule.misfire_grace_hours)
        elif event.code == EVENT_JOB_ERROR:
            log.error("调度任务出错：%s", getattr(event, "exception", ""), exc_info=getattr(event, "exception", None))
        elif event.code == EVENT_JOB_EXECUTED:
            job = self.scheduler.get_job(JOB_ID)
            if job is not None and job.next_run_time is not None:
                log.info("下次触发：%s", job.next_run_time.isoformat(timespec="seconds"))

    # -- lifecycle --------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop scheduling; a running nightly child is asked to stop (it records itself as interrupted)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("调度器停止：%s", reason)
        with self._child_lock:
            if self.child is not None and self.child.poll() is None:
                self.child.terminate()
        with contextlib.suppress(Exception):  # not running yet / already stopped
            self.scheduler.shutdown(wait=False)

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop(f"收到信号 {signal.Signals(signum).name}")

    def _lock_lost(self) -> None:
        self.lost_lock = True
        self.stop("调度器锁已被其他调度器接管")

    def run(self) -> int:
        """Serve until stopped; the exit code (0, or EXIT_LOCKED when the lock was lost)."""
        cfg = self.config
        engine = open_state(cfg.state_url)
        try:
            lease = acquire(engine, SCHEDULER_LOCK, detail="夜间批处理调度器",
                            heartbeat=cfg.locks.heartbeat_seconds, stale_after=cfg.locks.stale_after_seconds,
                            on_lost=self._lock_lost)
            try:
                return self._serve()
            finally:
                lease.release()
        finally:
            engine.dispose()

    def _serve(self) -> int:
        cfg = self.config.schedule
        now = datetime.now(cfg.zone)
        extra: dict[str, Any] = {}
        missed = self.missed_fire(now)
        if missed is not None:
            extra["next_run_time"] = missed
            log.warning("发现启动前错过的触发时间 %s（宽限 %s 小时内），立即补跑", missed.isoformat(timespec="seconds"),
                        cfg.misfire_grace_hours)
        self.scheduler.add_job(self.job, self.trigger, id=JOB_ID, name="夜间批处理", **extra)
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
        previous = {s: signal.signal(s, self._signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            first = missed or self.trigger.get_next_fire_time(None, now)
            log.info("调度器已启动：%s %s:%s:%s（%s），宽限 %s 小时；首次触发 %s", cfg.day_of_week, cfg.hour,
                     cfg.minute, cfg.second, cfg.timezone, cfg.misfire_grace_hours,
                     first.isoformat(timespec="seconds") if first else "无")
            if not self.stopping.is_set():
                self.scheduler.start()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return EXIT_LOCKED if self.lost_lock else 0
