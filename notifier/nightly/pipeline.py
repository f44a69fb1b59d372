"""The nightly run: one business day's whole pipeline, idempotent and crash-safe.

    snapshot  read and validate the inputs (a database is snapshotted to Parquet); content hashes
    evaluate  the periods due as of the day (config [periods]), each with the whole catalogue
    diff      against the previous successful run: new / changed / persisting / resolved
    cases     feed the case ledger (new cases, refreshed evidence, 已消除 for resolved problems)
    letters   policy packages for new or changed taxpayer-facing findings, through the suppression ledger,
              to the outbox and the [delivery] back-ends (and again for letters earlier nights could not deliver)
    tasks     task lists per tax authority from the case ledger; 免申即享 lists per tax authority and their
              ledger rows (notifier/autoapply: recorded as listed, idempotent, before publish)
    report    the run report (HTML, Chinese, charts inline)
    publish   the run folder, complete with its marker file, moved into place in one rename
    commit    the letters' suppression rows and the run's success, in one transaction

Only one nightly runs against a state database at a time (the `nightly` lock in notifier/nightly/runs.py). A
day that succeeded is not run again unless forced. Everything is built in OUT/.staging/<run id> and
renamed to OUT/<YYYY-MM-DD> only when complete, with `_COMPLETE.json` in it; readers trust a folder only
with its marker. Why a crash at any point loses and duplicates nothing:
- before publish, nothing outside the state database has changed; the case ledger sync is one
  transaction keyed by taxpayer × rule × period, so doing it again changes nothing twice;
- letters are recorded as sent only in the commit transaction, after their outbox is in place; a
  crash between publish and commit redoes the day, renders the same packages (a package id is a
  function of the taxpayer, the day and the news) and replaces the folder with an identical one.
Outside deliveries (SMTP, webhook) cannot wait for the commit: each is logged in its own transaction
(notifier/letters/deliveries.py), and the redone day skips what its log says went out.
The next start finds the attempt still `running` with its process gone (or its heartbeat stale), marks
it abandoned, removes its staging folder and does the day from the beginning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from sqlalchemy.engine import Engine

from engine.catalogue import Catalogue, load_catalogue
from engine.errors import InputError, ZhixiangError
from engine.findings import (
    FINDINGS_CSV_FILE,
    FINDINGS_FILE,
    FINDINGS_KEY,
    KINDS,
    TAXPAYER_AUDIENCES,
    audience_expr,
    empty_findings,
    write_findings,
)
from engine.findings.figures import money_plain
from engine.outdir import (
    OWNER_MARKER,
    OutputFolderError,
    claim_output_dir,
    mark_owned,
    refuse_link,
    remove_owned,
)
from engine.run import RunResult, evaluate_period, write_outputs
from notifier.autoapply import ledger as _autoapply_ledger  # noqa: F401  (its table on METADATA before open_state)
from notifier.db import open_state
from notifier.letters.deliveries import undelivered_taxpayers
from notifier.letters.suppression import AUTO_APPLIED
from notifier.nightly.config import Config, due_periods
from notifier.nightly.diff import diff_counts, diff_findings, news, write_diff
from notifier.nightly.runs import (
    STAGE_LABELS,
    RunRecord,
    abandon_running,
    acquire,
    beat_run,
    get_run,
    locks,
    nightly_runs,
    previous_success,
    start_run,
    succeeded_run,
    update_run,
    utcnow,
)
from profiles import excel
from profiles.errors import mask_secrets
from profiles.periods import Period
from profiles.validation import QUARANTINE_SCHEMA

log = logging.getLogger("zhixiang.nightly")

STAGES: tuple[str, ...] = ("snapshot", "evaluate", "diff", "cases", "letters", "tasks", "report", "publish", "commit")
MARKER = "_COMPLETE.json"
STAGING = ".staging"
TRASH = ".trash"
NIGHTLY_LOCK = "nightly"
#: Test hook: `<stage>:kill` (SIGKILL itself), `<stage>:exit`, `<stage>:raise` or `<stage>:sleep=<seconds>`,
#: applied as the stage starts. Exercises crash recovery for real; unset in production.
FAULT_ENV = "ZHIXIANG_NIGHTLY_FAULT"


class NightlyError(ZhixiangError):
    """The nightly run cannot go on (output folder unusable, lock lost, ...)."""


class LockLostError(NightlyError):
    """Another process took the nightly lock over (our heartbeat stopped): this run must not commit."""


@dataclass(frozen=True)
class NightlyOutcome:
    """What `run_nightly` did: ran the day, or found it already done."""

    status: Literal["succeeded", "skipped"]
    run: RunRecord
    output_dir: Path
    abandoned: tuple[str, ...] = ()  # crashed attempts this start cleaned up


@dataclass
class _State:
    """What the stages pass on to each other."""

    catalogue: Catalogue | None = None
    profiles: Any = None
    periods: list[Period] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    findings: pl.DataFrame = field(default_factory=empty_findings)
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    diff: pl.DataFrame | None = None
    baseline: RunRecord | None = None
    sync: Any = None
    letters: Any = None
    tasks: list[Any] = field(default_factory=list)
    autoapply: Any = None  # notifier.autoapply.nightly.AutoApplyNight
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def run_folder(out: Path, as_of: date) -> Path:
    """Where a business day's outputs are published."""
    return out / as_of.isoformat()


def display_source(data: str) -> str:
    """The data source for ledgers and reports: a folder as given, a database URL without its password."""
    from profiles.database import display_url, is_database_url

    return display_url(data) if is_database_url(data) else str(data)


def run_nightly(config: Config, as_of: date, *, force: bool = False, trigger: str = "manual",
                adopt_out: bool = False) -> NightlyOutcome:
    """Run one business day (or find it done). Raises LockHeldError when another nightly is running.

    `adopt_out`: use an output folder that already holds other files (they are left alone)."""
    engine = open_state(config.state_url)
    try:
        done = succeeded_run(engine, as_of)
        if done is not None and not force:
            log.info("业务日期 %s 已于运行 %s 成功完成，本次不重复运行（需要重跑请加 --force）", as_of, done.run_id,
                     extra={"as_of": str(as_of), "run_id": done.run_id})
            return NightlyOutcome("skipped", done, Path(done.output_dir or ""))
        locks_cfg = config.locks
        lease = acquire(engine, NIGHTLY_LOCK, detail=f"夜间批处理（业务日期 {as_of}）",
                        heartbeat=locks_cfg.heartbeat_seconds, stale_after=locks_cfg.stale_after_seconds)
        try:
            # checked again under the lock: another process may have finished the day meanwhile
            done = succeeded_run(engine, as_of)
            if done is not None and not force:
                return NightlyOutcome("skipped", done, Path(done.output_dir or ""))
            _claim_out(config, engine, as_of, adopt=adopt_out)
            abandoned = _clean_up_crashed(engine, config.paths.out, as_of)
            run = start_run(engine, as_of, trigger=trigger, forced=force,
                            data_source=display_source(config.paths.data))
            lease.on_beat = beat_run(run.run_id)
            log.info("开始夜间批处理：业务日期 %s，运行 %s", as_of, run.run_id,
                     extra={"as_of": str(as_of), "run_id": run.run_id})
            pipeline = _Pipeline(config, engine, run, lease)
            try:
                folder = pipeline.execute()
            except BaseException as exc:
                pipeline.fail(exc)
                raise
            return NightlyOutcome("succeeded", get_run(engine, run.run_id), folder,
                                  tuple(r.run_id for r in abandoned))
        finally:
            lease.release()
    finally:
        engine.dispose()


def _claim_out(config: Config, engine: Engine, as_of: date, *, adopt: bool) -> None:
    """The output root is zhixiang's (or adopted); its staging, trash and the day's folder are no links, and
    a day folder already there was published by zhixiang."""
    out = config.paths.out
    ours = {OWNER_MARKER, STAGING, TRASH}
    if config.log_dir is not None and config.log_dir.parent.resolve() == out.resolve():
        ours.add(config.log_dir.name)
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and Path(database).resolve().parent == out.resolve():
        name = Path(database).name
        ours |= {name, f"{name}-wal", f"{name}-shm", f"{name}-journal"}
    if out.is_dir():
        ours |= {p.name for p in out.iterdir() if is_complete(p) and not p.is_symlink()}
    claim_output_dir(out, ours=ours, adopt=adopt, flag="--adopt-out")
    refuse_link(out / STAGING, "临时输出目录")
    refuse_link(out / TRASH, "待删除目录")
    final = run_folder(out, as_of)
    refuse_link(final, "业务日期输出目录")
    if final.exists() and not is_complete(final):
        raise OutputFolderError(
            f"{final} 已存在，但不是直享发布的运行目录（没有 {MARKER}）：直享不会替换或删除它。请移走该目录后重试")


def _clean_up_crashed(engine: Engine, out: Path, as_of: date) -> list[RunRecord]:
    """Mark dead `running` attempts abandoned and remove the staging folders they left (we hold the lock).

    Only folders zhixiang created are removed (they hold OWNER_MARKER); links are never followed."""
    abandoned = abandon_running(engine)
    for run in abandoned:
        what = "现在重新运行该日" if run.business_date == as_of else "该日未完成，其间的变化由本次运行的比对一并反映"
        log.warning("运行 %s（业务日期 %s）在阶段 %s 中断，已标记为放弃；%s", run.run_id, run.business_date,
                    run.stage, what, extra={"run_id": run.run_id})
    staging = out / STAGING
    if staging.is_dir() and not staging.is_symlink():
        for leftover in staging.iterdir():
            if not remove_owned(leftover):
                log.warning("临时输出目录中的 %s 不是直享创建的，未删除", leftover)
    trash = out / TRASH
    if trash.is_dir() and not trash.is_symlink():
        for aside in trash.iterdir():
            discard_published(aside, out)
    return abandoned


def _fault(stage: str) -> None:
    """The test hook (FAULT_ENV): misbehave as `stage` starts."""
    spec = os.environ.get(FAULT_ENV, "")
    where, _, action = spec.partition(":")
    if where != stage:
        return
    log.warning("故障注入：阶段 %s 执行 %s", stage, action)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(70)
    elif action == "raise":
        raise NightlyError(f"故障注入：阶段 {stage} 失败")
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))


class _Pipeline:
    def __init__(self, config: Config, engine: Engine, run: RunRecord, lease: Any) -> None:
        self.config = config
        self.engine = engine
        self.run = run
        self.lease = lease
        self.as_of = run.business_date
        self.out = config.paths.out
        self.final = run_folder(self.out, self.as_of)
        self.staging = self.out / STAGING / run.run_id
        self.timings: dict[str, float] = {}
        self.s = _State()
        self.stage = "start"
        self._started = time.perf_counter()

    # -- frame ---------------------------------------------------------------------------------

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        if self.lease.lost.is_set():
            raise LockLostError("夜间批处理锁已被其他进程接管（本进程心跳中断过久），本次运行停止，不提交任何结果")
        self.stage = name
        update_run(self.engine, self.run.run_id, stage=name, timings=dict(self.timings))
        log.info("阶段开始：%s", STAGE_LABELS[name], extra={"run_id": self.run.run_id, "stage": name})
        _fault(name)
        self._started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - self._started, 3)
        log.info("阶段完成：%s（%.2f 秒）", STAGE_LABELS[name], self.timings[name],
                 extra={"run_id": self.run.run_id, "stage": name, "seconds": self.timings[name]})

    def fail(self, exc: BaseException) -> None:
        """Record the failure (the staging folder stays for inspection until the next start)."""
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            message = "运行被中断（收到终止信号）"
        else:
            message = mask_secrets(str(exc) or type(exc).__name__)
        log.error("阶段 %s 失败：%s", STAGE_LABELS.get(self.stage, self.stage), message,
                  extra={"run_id": self.run.run_id, "stage": self.stage},
                  exc_info=not isinstance(exc, ZhixiangError | KeyboardInterrupt | SystemExit))
        try:
            update_run(self.engine, self.run.run_id, status="failed", error=f"[{self.stage}] {message}",
                       timings=dict(self.timings), finished_at=utcnow())
        except Exception as db_exc:  # the ledger is unreachable: the next start will see a dead `running` row
            log.error("无法在运行台账中记录失败：%s", db_exc)

    def execute(self) -> Path:
        try:
            self.staging.mkdir(parents=True, exist_ok=False)
            mark_owned(self.staging)
        except OSError as exc:
            raise NightlyError(f"无法创建临时输出目录 {self.staging}：{exc.strerror or exc}。请检查 paths.out 的权限") \
                from exc
        for name in STAGES:
            with self._stage(name):
                getattr(self, f"_{name}")()
        return self.final

    # -- stages --------------------------------------------------------------------------------

    def _snapshot(self) -> None:
        from profiles.database import is_database_url
        from profiles.sources import load_source

        paths = self.config.paths
        catalogue = load_catalogue(paths.rules)
        snapshot_dir = self.staging / "inputs" if is_database_url(paths.data) else None
        profiles = load_source(paths.data, known_incentives=catalogue.known_incentives, snapshot_dir=snapshot_dir)
        self.s.catalogue, self.s.profiles = catalogue, profiles
        shrank = check_shrink(profiles.tables, _baseline_rows(previous_success(self.engine, self.as_of)),
                              max_shrink=self.config.guards.max_shrink, accept=self.config.guards.accept_shrink)
        self.s.warnings += [f"输入数据减少（已确认照常运行）：{line}" for line in shrank]
        self.s.periods = due_periods(self.as_of, self.config.periods)
        inputs = {name: digest for name, digest in sorted(profiles.input_hashes.items())}
        (self.staging / "inputs.json").write_text(json.dumps({
            "source": display_source(paths.data),
            "files": {name: str(src) for name, src in sorted(profiles.sources.items())},
            "sha256": inputs,
            "rows": {name: frame.height for name, frame in profiles.tables.items()},
            "ruleset_version": catalogue.version,
        }, ensure_ascii=False, indent=2), encoding="utf-8")
        update_run(self.engine, self.run.run_id, ruleset_version=catalogue.version, input_hashes=inputs,
                   periods=[p.text for p in self.s.periods])

    def _evaluate(self) -> None:
        assert self.s.catalogue is not None
        source = display_source(self.config.paths.data)
        frames, quarantines = [], [self.s.profiles.quarantine.cast(QUARANTINE_SCHEMA)]
        for period in self.s.periods:
            result = evaluate_period(self.s.catalogue, self.s.profiles, period)
            write_outputs(result, self.staging / "periods" / period.text, data_source=source)
            self.s.results.append(result)
            frames.append(result.findings)
            quarantines.append(result.quarantine.cast(QUARANTINE_SCHEMA))
            log.info("%s：应享未享 %d，违规享受 %d，待核实 %d", period.label, *result.counts().values(),
                     extra={"run_id": self.run.run_id, "period": period.text})
        findings = pl.concat(frames, how="vertical_relaxed") if frames else empty_findings()
        self.s.findings = findings.sort(["period", "rule_id", "kind", "taxpayer_id"])
        # claims outside a rule's granularity are flagged by every period's evaluation: list them once
        self.s.quarantine = pl.concat(quarantines).unique(maintain_order=True)
        write_findings(self.s.findings, self.staging / FINDINGS_FILE, self.staging / FINDINGS_CSV_FILE)
        excel.write_frame(self.s.quarantine, self.staging / "quarantine.csv")

    def _diff(self) -> None:
        baseline = previous_success(self.engine, self.as_of)
        previous = None
        if baseline is not None:
            path = Path(baseline.output_dir or "") / "findings.parquet"
            if path.is_file():
                previous = pl.read_parquet(path)
            else:
                self.s.warnings.append(f"基线运行 {baseline.run_id} 的结果 {path} 已不存在：本次所有发现按“新增”比对，"
                                       "信函仍受发送台账的冷却期约束")
                log.warning(self.s.warnings[-1], extra={"run_id": self.run.run_id})
                baseline = None
        self.s.baseline = baseline
        self.s.diff = diff_findings(self.s.findings, previous, periods=[p.text for p in self.s.periods])
        write_diff(self.s.diff, self.staging)
        update_run(self.engine, self.run.run_id, baseline_run_id=baseline.run_id if baseline else None)
        log.info("比对（基线 %s）：%s", baseline.run_id if baseline else "无", diff_counts(self.s.diff),
                 extra={"run_id": self.run.run_id})

    def _cases(self) -> None:
        from notifier.cases.ledger import sync_findings

        self.s.sync = sync_findings(self.engine, self.s.findings, run_id=self.run.run_id, as_of=self.as_of,
                                    periods=[p.text for p in self.s.periods],
                                    service_levels=self.config.service_levels())

    def _letters(self) -> None:
        from notifier.letters.run import NotifyOptions, notify

        if not self.config.letters.enabled:
            return
        assert self.s.diff is not None
        fresh = news(self.s.findings, self.s.diff)
        cfg = self.config
        # Letters earlier nights could not deliver (server down, refused) go again with today's findings.
        retry = undelivered_taxpayers(self.engine, self.as_of, cfg.delivery.retry_days) if cfg.delivery.backends \
            else set()
        if retry:
            again = self.s.findings.filter(pl.col("taxpayer_id").is_in(list(retry)))
            fresh = pl.concat([fresh, again.join(fresh, on=list(FINDINGS_KEY), how="anti")])
            log.info("重发此前未送达的信函：%d 户", again.get_column("taxpayer_id").n_unique(),
                     extra={"run_id": self.run.run_id})
        fresh = fresh.filter(audience_expr().is_in(TAXPAYER_AUDIENCES))
        # A record of what tonight's letters were built from (not read back: notify takes the frame).
        write_findings(fresh, self.staging / "letters-findings.parquet")
        reported = [0]

        def progress(done: int, total: int) -> None:  # a line per tenth: PDFs can take minutes
            if total and done * 10 // total > reported[0]:
                reported[0] = done * 10 // total
                log.info("政策礼包：已处理 %d / %d 户", done, total, extra={"run_id": self.run.run_id})

        assert self.s.catalogue is not None
        self.s.letters = notify(NotifyOptions(
            findings=None, out=self.staging / "letters", state_url=cfg.state_url, as_of=self.as_of,
            rules_dir=cfg.paths.rules, templates=cfg.paths.templates, suppression=cfg.suppression_policy(),
            office=cfg.office(), jobs=cfg.letters.jobs or os.cpu_count() or 1,
            pdf_channels=tuple(cfg.letters.pdf_channels), backends=tuple(cfg.delivery.build()),
            retry=cfg.delivery.retry_policy(), record=False),
            findings=fresh, catalogue=self.s.catalogue, state=self.engine, progress=progress)
        for warning in self.s.letters.warnings:
            self.s.warnings.append(f"信函：{warning}")
        if self.s.letters.failed:
            self.s.warnings.append(
                f"{self.s.letters.failed} 户的信函生成或发送失败，未记入发送台账，详见 letters/manifest.csv")
            log.error(self.s.warnings[-1], extra={"run_id": self.run.run_id})

    def _tasks(self) -> None:
        from notifier.cases.tasks import export_task_lists

        self.s.tasks = export_task_lists(self.engine, self.staging / "tasks", as_of=self.as_of)
        # 免申即享: automatic reliefs not enjoyed go on lists for the collection system (never in a letter)
        from notifier.autoapply.nightly import list_automatic

        assert self.s.catalogue is not None
        self.s.autoapply = list_automatic(self.engine, self.s.catalogue, self.s.findings, self.staging / "autoapply",
                                          as_of=self.as_of, run_id=self.run.run_id)

    def _report(self) -> None:
        from notifier.nightly.report import build_report, write_report

        self.s.counts = self._counts()
        run = get_run(self.engine, self.run.run_id)
        report = build_report(self.engine, self.config, run=run, findings=self.s.findings, diff=self.s.diff,
                              quarantine=self.s.quarantine, counts=self.s.counts, timings=self.timings,
                              baseline=self.s.baseline, warnings=self.s.warnings,
                              periods=[p.text for p in self.s.periods])
        write_report(report, self.staging / "report.html")

    def _publish(self) -> None:
        run_doc = {
            "run_id": self.run.run_id,
            "business_date": self.as_of.isoformat(),
            "data_source": display_source(self.config.paths.data),
            "periods": [p.text for p in self.s.periods],
            "ruleset_version": self.s.catalogue.version if self.s.catalogue else None,
            "baseline_run_id": self.s.baseline.run_id if self.s.baseline else None,
            "counts": self.s.counts,
            "timings_seconds": self.timings,
            "warnings": self.s.warnings,
        }
        (self.staging / "run.json").write_text(json.dumps(run_doc, ensure_ascii=False, indent=2, default=str),
                                               encoding="utf-8")
        files = sorted(str(p.relative_to(self.staging)) for p in self.staging.rglob("*") if p.is_file())
        marker = {"run_id": self.run.run_id, "business_date": self.as_of.isoformat(),
                  "completed_at": datetime.now().astimezone().isoformat(timespec="seconds"), "files": files}
        _write_durably(self.staging / MARKER, json.dumps(marker, ensure_ascii=False, indent=2))
        publish(self.staging, self.final)

    def _commit(self) -> None:
        from notifier.letters.suppression import SuppressionLedger

        unrecorded = list(self.s.letters.unrecorded) if self.s.letters is not None else []
        with self.engine.begin() as conn:
            still_ours = conn.execute(
                locks.update().where(locks.c.name == NIGHTLY_LOCK, locks.c.holder == self.lease.holder)
                .values(heartbeat_at=utcnow())).rowcount == 1
            if not still_ours:
                raise LockLostError("提交前发现夜间批处理锁已被其他进程接管：本次运行不提交（发送台账未记录）")
            if unrecorded:
                ledger = SuppressionLedger(self.engine, self.as_of, self.config.suppression_policy())
                ledger.record(unrecorded, conn=conn)
            self.timings["commit"] = round(time.perf_counter() - self._started, 3)  # all but this statement
            conn.execute(nightly_runs.update().where(nightly_runs.c.run_id == self.run.run_id).values(
                status="succeeded", stage="commit", counts=self.s.counts, timings=dict(self.timings),
                output_dir=str(self.final.resolve()), finished_at=utcnow(), error=None))
        log.info("夜间批处理完成：业务日期 %s，运行 %s，输出 %s", self.as_of, self.run.run_id, self.final,
                 extra={"run_id": self.run.run_id, "as_of": str(self.as_of)})

    # -- counts --------------------------------------------------------------------------------

    def _counts(self) -> dict[str, Any]:
        f = self.s.findings
        by_kind = {k: int((f["kind"] == k).sum()) for k in KINDS}
        amounts = {k: money_plain(f.filter(pl.col("kind") == k)["estimated_amount"].sum() or 0) for k in KINDS}
        letters = self.s.letters
        counts: dict[str, Any] = {
            "taxpayers": int(self.s.profiles.taxpayers.height),
            "input_rows": {name: int(frame.height) for name, frame in self.s.profiles.tables.items()},
            "findings": by_kind,
            "amounts": amounts,
            "by_period": {r.period.text: r.counts() for r in self.s.results},
            "diff": diff_counts(self.s.diff) if self.s.diff is not None else {},
            "quarantine": int(self.s.quarantine.height),
            "cases": {k: v for k, v in self.s.sync.as_dict().items() if k != "run_id"} if self.s.sync else {},
            "tasks": {"authorities": len(self.s.tasks),
                      "rows": sum(sum(t.counts.values()) for t in self.s.tasks)},
            "warnings": len(self.s.warnings),
        }
        if self.s.autoapply is not None:
            counts["autoapply"] = self.s.autoapply.counts()
        if letters is not None:
            counts["letters"] = {
                "packages": letters.packages, "by_channel": dict(letters.by_channel),
                "suppressed_findings": letters.suppressed_findings,
                "suppressed_taxpayers": letters.suppressed_taxpayers, "opted_out": letters.opted_out,
                "failed": letters.failed, "total_saving": str(letters.total_saving),
                "findings_told": sum(1 for r in letters.unrecorded if r.kind != AUTO_APPLIED),
            }
        return counts


#: Tables whose row count is compared with the last successful run's (the shrink guard).
SHRINK_TABLES: tuple[str, ...] = ("taxpayers", "indicators", "claims")
_REQUIRED_TABLES: tuple[str, ...] = ("taxpayers", "indicators")


class InputShrankError(InputError):
    """The night's input is implausibly smaller than the last successful run's: stop before the case ledger."""


def _baseline_rows(run: RunRecord | None) -> dict[str, int]:
    """Valid rows per table of a successful run (its counts, or the inputs.json of its folder)."""
    if run is None:
        return {}
    rows = (run.counts or {}).get("input_rows")
    if not rows and run.output_dir:
        try:
            rows = json.loads((Path(run.output_dir) / "inputs.json").read_text(encoding="utf-8")).get("rows")
        except (OSError, ValueError):
            rows = None
    return {str(k): int(v) for k, v in (rows or {}).items()}


def check_shrink(tables: dict[str, pl.DataFrame], baseline: dict[str, int], *, max_shrink: float,
                 accept: bool) -> list[str]:
    """Stop when a required table has no valid row, or when taxpayers, indicators or claims have fallen by more
    than `max_shrink` against the baseline (unless `accept`): a truncated export must not close every case.
    Returns what shrank when accepted."""
    empty = [name for name in _REQUIRED_TABLES if tables[name].height == 0]
    if empty:
        raise InputShrankError(
            "；".join(f"{name} 表为空（没有一行有效数据；上次成功运行为 {baseline.get(name, '未知')} 行）"
                     for name in empty)
            + "：数据导出可能不完整。本次运行已停止，未更新案件台账，未发送信函。请检查数据源后重跑"
            "（必需的表为空时 --accept-shrink 也不会放行）")
    shrank = []
    for name in SHRINK_TABLES:
        before, now = baseline.get(name, 0), tables[name].height
        if before > 0 and now < before * (1 - max_shrink):
            shrank.append(f"{name} 从 {before:,} 行减少到 {now:,} 行（−{(before - now) / before:.0%}）")
    if shrank and not accept:
        raise InputShrankError(
            "输入数据比上次成功运行明显减少（超过 " + f"{max_shrink:.0%}）：" + "；".join(shrank)
            + "。数据导出可能不完整：本次运行已停止，未更新案件台账，未发送信函。"
            "确认减少属实时请加 --accept-shrink 重跑（或在配置中设 guards.accept_shrink = true）")
    for line in shrank:
        log.warning("输入数据减少（已确认）：%s", line)
    return shrank


def _write_durably(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def publish(staging: Path, final: Path) -> None:
    """Move a complete staging folder to its final name; an older folder there is set aside, then removed.

    Both renames stay within the output root's file system. Between them the day's folder is briefly
    absent, never half-written; a crash there leaves the old folder in .trash and the next start redoes
    the day.
    """
    trash = final.parent / TRASH
    refuse_link(final, "业务日期输出目录")
    if final.exists():
        if not is_complete(final):
            raise OutputFolderError(f"{final} 不是直享发布的运行目录（没有 {MARKER}）：直享不会替换它")
        refuse_link(trash, "待删除目录")
        trash.mkdir(exist_ok=True)
        aside = trash / f"{final.name}.{int(time.time() * 1000)}"
        os.replace(final, aside)
        os.replace(staging, final)
        discard_published(aside, final.parent)
    else:
        os.replace(staging, final)
    _fsync_dir(final.parent)


def discard_published(folder: Path, out: Path) -> None:
    """Delete a replaced run folder: the files its marker lists (what zhixiang wrote). Files someone else put
    there are kept: the folder then moves to OUT/<name>.kept-<ms> with them, and a warning says so."""
    if folder.is_symlink():
        folder.unlink()  # the link only, never what it points to
        return
    try:
        listed = set(json.loads((folder / MARKER).read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError):
        listed = set()
    listed.add(MARKER)
    foreign = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            relative = str((Path(root) / name).relative_to(folder))
            if relative not in listed:
                foreign.append(relative)
    if not foreign:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for relative in listed:
        path = folder / relative
        if path.is_file() and not path.is_symlink():
            path.unlink()
    kept = out / f"{folder.name.split('.')[0]}.kept-{int(time.time() * 1000)}"
    os.replace(folder, kept)
    log.warning("替换运行目录时发现不是直享写出的文件（%s），已保留在 %s", "、".join(sorted(foreign)[:5]), kept)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_complete(folder: Path) -> bool:
    """Whether a run folder was published whole (its marker is present)."""
    return (folder / MARKER).is_file()

