"""The run ledger and the locks: what each nightly run did, and who may run now.

`nightly_runs` holds one row per attempt at a business day: its inputs (content hashes, rule-set
version, periods), counts, timings per stage, status (running → succeeded / failed / abandoned), the
error and the output folder. A day with a succeeded attempt is done; a `running` attempt whose process
is gone is marked abandoned by the next start, which then does the day again from the beginning.

`locks` holds leases: a named row with its holder and a heartbeat. `scheduler` lets one scheduler
serve a state database; `nightly` lets one nightly run at a time (the case ledger and the suppression
ledger are fed in order). A lease whose holder stopped heartbeating for `stale_after` seconds — or
whose process is known dead, when it ran on this machine — is taken over; the takeover is a
compare-and-swap on the holder, so two contenders never both win. Times are the application's UTC
clock: the machines sharing a state database are expected to keep NTP time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.errors import EXIT_LOCKED, ZhixiangError
from notifier.cases.tables import JSONDoc, UTCDateTime
from notifier.db import METADATA

log = logging.getLogger("zhixiang.runs")

RunStatus = Literal["running", "succeeded", "failed", "abandoned"]
#: The nightly's stages, in order, as the run ledger, the report and the log name them.
STAGE_LABELS: dict[str, str] = {
    "snapshot": "读取与快照", "evaluate": "评估", "diff": "比对", "cases": "案件台账", "letters": "政策礼包",
    "tasks": "任务清单", "report": "运行报告", "publish": "发布", "commit": "提交",
}
STATUS_LABELS: dict[str, str] = {
    "running": "运行中", "succeeded": "成功", "failed": "失败", "abandoned": "中断（已放弃）"}

nightly_runs = Table(
    "nightly_runs",
    METADATA,
    Column("run_id", String(32), primary_key=True),  # "20260415-2": business date and attempt
    Column("business_date", Date, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("stage", String(32)),  # the stage running now, or the one that failed
    Column("trigger", String(16), nullable=False),  # manual / schedule
    Column("forced", Boolean, nullable=False, default=False),
    Column("data_source", Text, nullable=False, default=""),  # folder or database URL (no password)
    Column("ruleset_version", String(64)),
    Column("input_hashes", JSONDoc),  # table → sha256 of the bytes evaluated
    Column("periods", JSONDoc),  # ["2025", "2026Q1", ...]
    Column("counts", JSONDoc),  # findings, diff, cases, letters, quarantine ...
    Column("timings", JSONDoc),  # stage → seconds
    Column("baseline_run_id", String(32)),  # the previous successful run the diff compared with
    Column("output_dir", Text),
    Column("error", Text),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    UniqueConstraint("business_date", "attempt", name="uq_nightly_runs_date_attempt"),
    Index("ix_nightly_runs_date_status", "business_date", "status"),
)

locks = Table(
    "locks",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),  # unique per acquisition: host:pid:random
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("detail", Text, nullable=False, default=""),  # what the holder is doing, for messages
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@cache
def this_host() -> str:
    """This machine and PID namespace: a PID is only meaningful where host, boot and namespace match."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
        parts.append(fh.read().strip()[:8])
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def pid_alive(pid: int) -> bool:
    """Whether a process of this PID exists here (a zombie counts as alive until reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -------------------------------------------------------------------------------------------------- locks


class LockHeldError(ZhixiangError):
    """Another live holder has the lock."""

    exit_code = EXIT_LOCKED


@dataclass(frozen=True)
class LockInfo:
    name: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    detail: str

    def describe(self) -> str:
        since = self.acquired_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        beat = self.heartbeat_at.astimezone().strftime("%H:%M:%S")
        host = self.host.split("/", 1)[0]
        return f"{self.detail or self.name}（主机 {host}，进程 {self.pid}，{since} 起，最近心跳 {beat}）"


def lock_info(engine: Engine, name: str) -> LockInfo | None:
    with engine.connect() as conn:
        row = conn.execute(select(locks).where(locks.c.name == name)).first()
    return LockInfo(**row._mapping) if row else None


class Lease:
    """A held lock: heartbeats from a background thread, notices when it is lost, releases on exit."""

    def __init__(self, engine: Engine, name: str, holder: str, *, heartbeat: float, stale_after: float,
                 on_beat: Callable[[Connection, datetime], None] | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.on_beat = on_beat
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ok = utcnow()

    def start(self) -> Lease:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def beat(self) -> bool:
        """Refresh the heartbeat now; False when the lease is no longer ours."""
        now = utcnow()
        with self.engine.begin() as conn:
            ok = conn.execute(update(locks).where(locks.c.name == self.name, locks.c.holder == self.holder)
                              .values(heartbeat_at=now)).rowcount == 1
            if ok and self.on_beat is not None:
                self.on_beat(conn, now)
        if ok:
            self._last_ok = now
        return ok

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                ok = self.beat()
            except Exception as exc:  # a database hiccup: keep trying until the lease would be stale
                silent = (utcnow() - self._last_ok).total_seconds()
                log.warning("锁 %s 心跳失败（已 %.0f 秒未成功）：%s", self.name, silent, exc)
                ok = silent < self.stale_after
            if not ok:
                log.error("锁 %s 已被其他进程接管或丢失", self.name, extra={"lock": self.name})
                self.lost.set()
                if self.on_lost is not None:
                    self.on_lost()
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(locks).where(locks.c.name == self.name, locks.c.holder == self.holder))
        except Exception as exc:  # the lease goes stale by itself; a failed release only delays the next start
            log.warning("释放锁 %s 失败：%s", self.name, exc)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def acquire(engine: Engine, name: str, *, detail: str, heartbeat: float, stale_after: float,
            on_beat: Callable[[Connection, datetime], None] | None = None,
            on_lost: Callable[[], None] | None = None) -> Lease:
    """Take the lock `name` (taking over a dead or stale holder) or raise LockHeldError naming the holder."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    host = this_host()
    for _ in range(5):
        now = utcnow()
        values = {"holder": holder, "host": host, "pid": os.getpid(), "acquired_at": now, "heartbeat_at": now,
                  "detail": detail}
        try:
            with engine.begin() as conn:
                conn.execute(insert(locks).values(name=name, **values))
            log.info("取得锁 %s", name, extra={"lock": name})
            return Lease(engine, name, holder, heartbeat=heartbeat, stale_after=stale_after, on_beat=on_beat,
                         on_lost=on_lost).start()
        except IntegrityError:
            pass
        except OperationalError as exc:
            raise ZhixiangError(f"状态数据库忙或不可用，无法取得锁 {name}：{exc.orig}") from exc
        current = lock_info(engine, name)
        if current is None:
            continue  # released between our insert and our read: try again
        dead = current.host == host and not pid_alive(current.pid)
        silent = (now - current.heartbeat_at).total_seconds()
        if not dead and silent < stale_after:
            raise LockHeldError(f"{current.describe()} 正在运行")
        with engine.begin() as conn:
            taken = conn.execute(update(locks).where(locks.c.name == name, locks.c.holder == current.holder)
                                 .values(**values)).rowcount == 1
        if taken:
            why = "进程已退出" if dead else f"心跳已停止 {silent:.0f} 秒"
            log.warning("接管锁 %s：原持有者 %s %s", name, current.holder, why, extra={"lock": name})
            return Lease(engine, name, holder, heartbeat=heartbeat, stale_after=stale_after, on_beat=on_beat,
                         on_lost=on_lost).start()
    raise LockHeldError(f"锁 {name} 争用激烈，未能取得：请稍后重试")


# ---------------------------------------------------------------------------------------------- run ledger


@dataclass(frozen=True)
class RunRecord:
    """One row of the run ledger."""

    run_id: str
    business_date: date
    attempt: int
    status: str
    stage: str | None
    trigger: str
    forced: bool
    data_source: str
    ruleset_version: str | None
    input_hashes: dict[str, str] | None
    periods: list[str] | None
    counts: dict[str, Any] | None
    timings: dict[str, float] | None
    baseline_run_id: str | None
    output_dir: str | None
    error: str | None
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def seconds(self) -> float | None:
        end = self.finished_at or (self.heartbeat_at if self.status == "running" else None)
        return None if end is None else (end - self.started_at).total_seconds()


_RUN_COLUMNS = [nightly_runs.c[f.name] for f in fields(RunRecord)]


def _record(row: Any) -> RunRecord:
    return RunRecord(**row._mapping)


def start_run(engine: Engine, business_date: date, *, trigger: str, forced: bool, data_source: str) -> RunRecord:
    """A new `running` attempt at the day (the caller holds the nightly lock)."""
    now = utcnow()
    with engine.begin() as conn:
        last = conn.execute(select(func.max(nightly_runs.c.attempt))
                            .where(nightly_runs.c.business_date == business_date)).scalar()
        attempt = int(last or 0) + 1
        run_id = f"{business_date:%Y%m%d}-{attempt}"
        conn.execute(insert(nightly_runs).values(
            run_id=run_id, business_date=business_date, attempt=attempt, status="running", stage="start",
            trigger=trigger, forced=forced, data_source=data_source, host=this_host(), pid=os.getpid(),
            started_at=now, heartbeat_at=now, timings={}, counts={}))
    return get_run(engine, run_id)


def update_run(engine: Engine | Connection, run_id: str, **values: Any) -> None:
    """Set columns of a run (the stage and timings as it goes, the outcome at the end)."""
    stmt = update(nightly_runs).where(nightly_runs.c.run_id == run_id).values(**values)
    if isinstance(engine, Connection):
        engine.execute(stmt)
        return
    with engine.begin() as conn:
        conn.execute(stmt)


def beat_run(run_id: str) -> Callable[[Connection, datetime], None]:
    """A lease callback that keeps a run's heartbeat with the lock's."""
    def beat(conn: Connection, now: datetime) -> None:
        conn.execute(update(nightly_runs).where(nightly_runs.c.run_id == run_id, nightly_runs.c.status == "running")
                     .values(heartbeat_at=now))
    return beat


def abandon_running(engine: Engine, *, by_run: str | None = None) -> list[RunRecord]:
    """Mark every `running` attempt abandoned — call only while holding the nightly lock, when none can be live."""
    with engine.begin() as conn:
        rows = [_record(r) for r in conn.execute(select(*_RUN_COLUMNS).where(nightly_runs.c.status == "running"))]
        for run in rows:
            alive = run.host == this_host() and pid_alive(run.pid) and run.pid != os.getpid()
            why = "进程仍存在但已失去运行锁" if alive else "进程已退出（崩溃或被终止）"
            note = f"运行在阶段 {run.stage or '?'} 中断：{why}" + (f"；由 {by_run} 重做" if by_run else "")
            conn.execute(update(nightly_runs).where(nightly_runs.c.run_id == run.run_id)
                         .values(status="abandoned", error=note, finished_at=utcnow()))
    return rows


def get_run(engine: Engine, run_id: str) -> RunRecord:
    with engine.connect() as conn:
        row = conn.execute(select(*_RUN_COLUMNS).where(nightly_runs.c.run_id == run_id)).first()
    if row is None:
        raise ZhixiangError(f"运行台账中没有运行 {run_id}：用 zhixiang runs list 查看已有的运行")
    return _record(row)


def succeeded_run(engine: Engine, business_date: date) -> RunRecord | None:
    """The latest succeeded attempt at the day, if any."""
    with engine.connect() as conn:
        row = conn.execute(select(*_RUN_COLUMNS)
                           .where(nightly_runs.c.business_date == business_date, nightly_runs.c.status == "succeeded")
                           .order_by(nightly_runs.c.attempt.desc()).limit(1)).first()
    return _record(row) if row else None


def previous_success(engine: Engine, before: date) -> RunRecord | None:
    """The diff's baseline: the latest succeeded run of an earlier business day."""
    with engine.connect() as conn:
        row = conn.execute(select(*_RUN_COLUMNS)
                           .where(nightly_runs.c.business_date < before, nightly_runs.c.status == "succeeded")
                           .order_by(nightly_runs.c.business_date.desc(), nightly_runs.c.attempt.desc())
                           .limit(1)).first()
    return _record(row) if row else None


def list_runs(engine: Engine, *, limit: int = 30, status: str | None = None, since: date | None = None,
              until: date | None = None) -> list[RunRecord]:
    """Runs, newest first."""
    query = select(*_RUN_COLUMNS)
    if status:
        query = query.where(nightly_runs.c.status == status)
    if since:
        query = query.where(nightly_runs.c.business_date >= since)
    if until:
        query = query.where(nightly_runs.c.business_date <= until)
    query = query.order_by(nightly_runs.c.business_date.desc(), nightly_runs.c.attempt.desc()).limit(limit)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(query)]


def recent_successes(engine: Engine, *, up_to: date, limit: int) -> list[RunRecord]:
    """The last `limit` succeeded runs on or before `up_to`, one per day, oldest first (for the trend)."""
    runs = list_runs(engine, limit=limit * 3, status="succeeded", until=up_to)
    by_day: dict[date, RunRecord] = {}
    for run in runs:
        by_day.setdefault(run.business_date, run)
    return sorted(by_day.values(), key=lambda r: r.business_date)[-limit:]


def interrupted_since(engine: Engine, after: date | None, before: date) -> list[RunRecord]:
    """Attempts between the baseline and this day that did not succeed (for the report's gap note)."""
    query = select(*_RUN_COLUMNS).where(nightly_runs.c.business_date < before,
                                        nightly_runs.c.status.in_(("failed", "abandoned")))
    if after is not None:
        query = query.where(nightly_runs.c.business_date > after)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(query.order_by(nightly_runs.c.started_at))]
