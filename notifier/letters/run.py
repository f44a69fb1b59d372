"""A notifier run: findings → one package per taxpayer → outbox → delivery → suppression ledger.

`notify` reads a findings folder (FINDINGS_SCHEMA), groups the rows by taxpayer and, for each:
skips opted-out taxpayers and those with nothing a taxpayer may be told; leaves out findings told
within the cool-down (the suppression ledger); builds and renders the letter for the taxpayer's
channel; writes the outbox; delivers through the chosen back-ends; and records what was delivered.
A letter or delivery that fails is reported and the run goes on; nothing undelivered is recorded.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from engine.catalogue import DEFAULT_RULES_DIR, Catalogue, load_catalogue
from engine.findings import is_taxpayer_facing, read_findings, taxpayer_facing
from notifier.autoapply.ledger import Entry, applied_for
from notifier.autoapply.lists import without_automatic
from notifier.db import open_state, state_exists
from notifier.letters.build import (
    CHANNEL_LABELS,
    Letter,
    LetterError,
    OfficeSettings,
    Skip,
    TaxAuthorities,
    build_letter,
    with_evidence_lines,
)
from notifier.letters.deliveries import DeliveryLog
from notifier.letters.delivery import Backend, DeliveryResult, Package, RetryPolicy, deliver
from notifier.letters.formatting import format_amount, format_date, round_cents
from notifier.letters.outbox import STATUS_LABELS, ManifestRow, Outbox
from notifier.letters.pdf import PdfError, PdfJob, PdfPool
from notifier.letters.print_files import PrintFile, write_print_files
from notifier.letters.render import LetterRenderer
from notifier.letters.suppression import (
    AUTO_APPLIED,
    SentRecord,
    SuppressionLedger,
    SuppressionPolicy,
    records_for,
    told_ever,
)

CHUNK = 64  # taxpayers rendered together (PDFs of a chunk go to the worker processes at once)
#: PDFs handed to the workers and not yet back before the run waits for them (the letters behind them wait
#: in order, in memory): enough to keep two workers busy while the letters after them are built.
PDF_BACKLOG = 256
LEDGER_FLUSH = 5000  # ledger rows (delivered findings) recorded per transaction
#: After this many packages in a row fail through a back-end for a reason that may pass (server down,
#: timeouts), the rest of the run stops trying it; the delivery log lets a later run send them.
OUTAGE_AFTER = 5
#: Channels whose package includes a PDF. By default only post: a PDF costs ~10 ms of Typst layout and
#: its check, against ~0.2 ms for the print-ready HTML the e-tax bureau shows.
DEFAULT_PDF_CHANNELS: tuple[str, ...] = ("post",)
#: Findings columns that letters and the run never read (the rule's own texts come from the catalogue).
UNREAD_COLUMNS = ("rule_name", "kind_label", "basis", "rule_version", "ruleset_version", "entity_type")
SKIP_LABELS = {"opt_out": "拒收政策推送", "nothing_to_tell": "无可告知事项", "suppressed": "冷却期内已告知"}


@dataclass(frozen=True)
class NotifyOptions:
    """How a run goes: the typed configuration the CLI (or the nightly) builds at its edge.

    `findings` and `rules_dir` are read only when `notify` is not handed a findings frame and a catalogue.
    """

    findings: Path | None
    out: Path
    state_url: str
    as_of: date
    dry_run: bool = False
    rules_dir: Path = DEFAULT_RULES_DIR
    templates: Path | None = None
    authorities: Path | None = None
    channel_override: str | None = None  # every taxpayer
    taxpayer_channels: Mapping[str, str] = field(default_factory=dict)  # taxpayer_id → channel
    backends: Sequence[Backend] = ()  # besides the file outbox
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    suppression: SuppressionPolicy = field(default_factory=SuppressionPolicy)
    office: OfficeSettings = field(default_factory=OfficeSettings)
    jobs: int = 1  # processes rendering PDFs
    pdf_channels: tuple[str, ...] = DEFAULT_PDF_CHANNELS  # channels whose package includes a PDF
    # False: delivered packages' ledger rows are left in NotifyReport.unrecorded for the caller to record
    # (the nightly run records them in the transaction that marks the run succeeded).
    record: bool = True


@dataclass
class NotifyReport:
    """What a run did, for the summary table, notify-summary.json and the exit code."""

    as_of: date
    dry_run: bool
    taxpayers: int = 0
    packages: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    opted_out: int = 0
    nothing_to_tell: int = 0
    suppressed_taxpayers: int = 0
    suppressed_findings: int = 0
    incentives: int = 0
    reminders: int = 0
    total_saving: Decimal = Decimal("0.00")
    delivered: Counter[str] = field(default_factory=Counter)
    letter_failures: list[tuple[str, str]] = field(default_factory=list)
    delivery_failures: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: list[ManifestRow] = field(default_factory=list)
    unrecorded: list[SentRecord] = field(default_factory=list)  # see NotifyOptions.record
    print_files: list[PrintFile] = field(default_factory=list)  # post letters, one file per tax authority

    @property
    def failed(self) -> int:
        return len(self.letter_failures) + len({t for t, _, _ in self.delivery_failures})

    def summary(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "taxpayers": self.taxpayers,
            "packages": self.packages,
            "by_channel": dict(sorted(self.by_channel.items())),
            "opted_out": self.opted_out,
            "nothing_to_tell": self.nothing_to_tell,
            "suppressed_taxpayers": self.suppressed_taxpayers,
            "suppressed_findings": self.suppressed_findings,
            "incentives": self.incentives,
            "reminders": self.reminders,
            "total_estimated_saving": str(self.total_saving),
            "delivered": dict(sorted(self.delivered.items())),
            "letter_failures": [{"taxpayer_id": t, "error": e} for t, e in self.letter_failures],
            "delivery_failures": [{"taxpayer_id": t, "backend": b, "error": e} for t, b, e in self.delivery_failures],
            "print_files": [f.summary() for f in self.print_files],
            "warnings": self.warnings,
        }


# ----------------------------------------------------------------------------------------- reading


def taxpayer_groups(frame: pl.DataFrame, batch: int = 20_000) -> Iterator[list[dict[str, Any]]]:
    """The rows of each taxpayer together, taxpayer by taxpayer, without holding every row as dicts."""
    ordered = frame.sort(["taxpayer_id", "period", "rule_id"])
    current: list[dict[str, Any]] = []
    for part in ordered.iter_slices(batch):
        for row in part.iter_rows(named=True):
            if current and row["taxpayer_id"] != current[0]["taxpayer_id"]:
                yield current
                current = []
            current.append(row)
    if current:
        yield current


def letter_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows letters are made from: every taxpayer-facing finding, and one row of each taxpayer who has
    none (so that the taxpayer is still counted, as opted out or with nothing to tell).

    Findings a taxpayer is never told (undetermined, medium/high-risk improper) are left out before any row
    becomes Python values; `build_letter` would drop them anyway.
    """
    frame = frame.sort(["taxpayer_id", "period", "rule_id"])
    frame = frame.with_columns(taxpayer_facing(frame).alias("_facing"))
    first = pl.int_range(pl.len()).over("taxpayer_id") == 0
    keep = pl.col("_facing") | (first & ~pl.col("_facing").any().over("taxpayer_id"))
    return frame.filter(keep).drop("_facing")


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (str(row["taxpayer_id"]), str(row["rule_id"]), str(row["period"]), str(row["kind"]))


def _amount(row: Mapping[str, Any]) -> Decimal | None:
    value = row.get("estimated_amount")
    return round_cents(value) if value is not None else None


# ------------------------------------------------------------------------------------------ the run


@dataclass
class _Pending:
    """A letter rendered except for its PDF (laid out by the PDF workers, a chunk at a time)."""

    letter: Letter
    package: Package
    pdf_job: PdfJob | None = None
    pdf: bytes | PdfError | None = None


class _Run:
    def __init__(self, options: NotifyOptions, catalogue: Catalogue, renderer: LetterRenderer,
                 ledger: SuppressionLedger, outbox: Outbox, report: NotifyReport, log: DeliveryLog) -> None:
        self.o = options
        self.log = log
        self.outage: Counter[str] = Counter()  # back-end → packages in a row that failed for a retryable reason
        self.catalogue = catalogue
        self.renderer = renderer
        self.ledger = ledger
        self.outbox = outbox
        self.report = report
        self.authorities = (TaxAuthorities.from_csv(options.authorities) if options.authorities
                            else TaxAuthorities())
        self.skipped: list[tuple[str, str, str, str]] = []
        self.to_record: list[SentRecord] = []
        self.pool: PdfPool | None = None
        self.jobs = max(1, min(options.jobs, os.cpu_count() or 1))
        self.post_pdfs: dict[str, list[tuple[Letter, str]]] = {}  # authority → (letter, PDF file) to print
        self.auto_applied: dict[str, tuple[Entry, ...]] = {}  # taxpayer → reliefs the bureau applied itself
        self.waiting: deque[_Pending] = deque()  # rendered letters in order, the first ones awaiting a PDF
        self.pdfs: dict[str, bytes | PdfError] = {}  # PDFs back from the workers, by job key

    # -- one taxpayer -------------------------------------------------------------------------

    def decide(self, rows: list[dict[str, Any]]) -> Letter | None:
        """The letter of one taxpayer after opt-out and suppression, or None (counted as skipped)."""
        first = rows[0]
        taxpayer_id = str(first["taxpayer_id"])
        if not first.get("opt_out"):
            facing = [r for r in rows if is_taxpayer_facing(r)]
            fresh = [r for r in facing if self.ledger.should_send(_key(r), _amount(r))]
            self.report.suppressed_findings += len(facing) - len(fresh)
            if facing and not fresh:
                self._skip(Skip(taxpayer_id, str(first.get("taxpayer_name") or ""), "suppressed"))
                return None
            rows = fresh or rows
        override = self.o.taxpayer_channels.get(taxpayer_id, self.o.channel_override)
        try:
            result = build_letter(rows, self.catalogue, as_of=self.o.as_of, authorities=self.authorities,
                                  office=self.o.office, channel_override=override,
                                  auto_applied=self.auto_applied.get(taxpayer_id, ()))
        except LetterError as exc:
            self._letter_failed(first, str(exc))
            return None
        if isinstance(result, Skip):
            self._skip(result)
            return None
        return result

    def _skip(self, skip: Skip) -> None:
        if skip.reason == "opt_out":
            self.report.opted_out += 1
        elif skip.reason == "suppressed":
            self.report.suppressed_taxpayers += 1
        else:
            self.report.nothing_to_tell += 1
        self.skipped.append((skip.taxpayer_id, skip.name, skip.reason, SKIP_LABELS[skip.reason]))

    def _letter_failed(self, row: Mapping[str, Any], error: str, letter: Letter | None = None) -> None:
        taxpayer_id = str(row.get("taxpayer_id") if letter is None else letter.taxpayer_id)
        self.report.letter_failures.append((taxpayer_id, error))
        self.report.rows.append(ManifestRow(
            taxpayer_id=taxpayer_id,
            taxpayer_name=str(row.get("taxpayer_name") or "") if letter is None else letter.name,
            authority=letter.authority.name if letter else "",
            channel=letter.channel if letter else "", recipient=letter.recipient if letter else "", files=(),
            incentives=tuple(i.rule_id for i in letter.incentives) if letter else (),
            incentive_names=tuple(i.name for i in letter.incentives) if letter else (),
            reminders=len(letter.reminders) if letter else 0,
            total_estimated_saving=str(letter.total_saving) if letter else "",
            package_id=letter.package_id if letter else "", status="failed", note=error,
        ))

    def render(self, letter: Letter) -> _Pending:
        """The texts the letter's channel needs; the PDF is started, not awaited."""
        r = self.renderer
        channel = letter.channel
        html = r.html(letter) if channel in ("etax", "email", "post") else None
        text = r.text(letter) if channel == "email" else None
        subject = r.subject(letter) if channel == "email" else None
        sms = r.sms(letter) if channel == "sms" else None
        pending = _Pending(letter, Package(letter, html=html, text=text, sms=sms, subject=subject))
        if channel in self.o.pdf_channels:
            pending.pdf_job = PdfJob(letter.package_id, r.pdf_data(letter), tuple(letter.key_texts()),
                                     label=f"纳税人 {letter.taxpayer_id}")
        return pending

    def finish(self, pending: _Pending) -> None:
        """Attach the PDF, write the outbox, deliver, and queue the ledger rows of what was delivered."""
        letter = pending.letter
        package = pending.package
        if pending.pdf_job is not None:
            pdf = pending.pdf
            if not isinstance(pdf, bytes):  # one letter Typst cannot lay out must not stop the run
                raise pdf if isinstance(pdf, LetterError) else LetterError("PDF 信函未生成")
            package = Package(letter, html=package.html, text=package.text, sms=package.sms,
                              subject=package.subject, pdf=pdf)
        files = self.outbox.write(package)
        package = Package(letter, html=package.html, text=package.text, sms=package.sms,
                          subject=package.subject, pdf=package.pdf, files=files)
        if letter.channel == "post" and package.pdf is not None:
            pdf_file = next(f for f in files if f.endswith(".pdf"))
            self.post_pdfs.setdefault(letter.authority.name, []).append((letter, pdf_file))
        status, notes, delivered_by = self.deliver(package)
        if letter.channel_note:
            notes.insert(0, letter.channel_note)
        rep = self.report
        rep.packages += 1
        rep.by_channel[letter.channel] += 1
        rep.incentives += len(letter.incentives)
        rep.reminders += len(letter.reminders)
        rep.total_saving += letter.total_saving
        rep.rows.append(ManifestRow(
            taxpayer_id=letter.taxpayer_id, taxpayer_name=letter.name, authority=letter.authority.name,
            channel=letter.channel,
            recipient=letter.recipient, files=files,
            incentives=tuple(i.rule_id for i in letter.incentives),
            incentive_names=tuple(i.name for i in letter.incentives),
            reminders=len(letter.reminders), total_estimated_saving=str(letter.total_saving),
            package_id=letter.package_id, status=status, note="；".join(notes),
        ))
        if delivered_by and not self.o.dry_run:
            # the short message has no 已为您自动享受 section: only a full letter tells it
            said = letter.auto_applied if letter.channel != "sms" else ()
            told = (*letter.findings, *((AUTO_APPLIED, a.rule_id, a.period, a.amount) for a in said))
            self.to_record.extend(records_for(told, taxpayer_id=letter.taxpayer_id,
                                              channel=letter.channel, backend=delivered_by,
                                              package_id=letter.package_id))
            if len(self.to_record) >= LEDGER_FLUSH:
                self.flush()

    def deliver(self, package: Package) -> tuple[str, list[str], str]:
        """(status, notes, back-ends that delivered it — empty when it was not delivered)."""
        if self.o.dry_run:
            return "dry_run", [], ""
        channel = package.letter.channel
        backends = [b for b in self.o.backends if channel in b.channels]
        if not backends:
            self.report.delivered["file"] += 1
            return "queued", [], "file"
        notes: list[str] = []
        ok = True
        letter = package.letter
        for backend in backends:
            if self.log.already_sent(letter.package_id, backend.name):  # a redone run: never twice
                self.report.delivered[backend.name] += 1
                notes.append(f"{backend.name} 已于本业务日此前发送，不重复发送")
                continue
            if self.outage[backend.name] >= OUTAGE_AFTER:
                # The server is down: waiting out every package's retries could take the whole night.
                result = DeliveryResult(backend.name, False, 0, f"{backend.name} 已连续 {OUTAGE_AFTER} 份发送失败，"
                                        "本次运行不再尝试（下次运行重发）", retryable=True)
            else:
                result = deliver(backend, package, self.o.retry)
                self.outage[backend.name] = self.outage[backend.name] + 1 if result.retryable else 0
            self.log.log(package_id=letter.package_id, backend=backend.name, taxpayer_id=letter.taxpayer_id,
                         channel=letter.channel, ok=result.ok, attempts=result.attempts, error=result.error)
            if result.ok:
                self.report.delivered[backend.name] += 1
                if result.attempts > 1:
                    notes.append(f"{backend.name} 第 {result.attempts} 次尝试成功")
            else:
                ok = False
                self.report.delivery_failures.append((package.letter.taxpayer_id, backend.name, result.error))
                notes.append(f"{backend.name} 发送失败（尝试 {result.attempts} 次）：{result.error}")
        if not ok:
            return "failed", notes, ""
        return "sent", notes, "+".join(b.name for b in backends)

    def flush(self) -> None:
        if self.to_record:
            if self.o.record:
                self.ledger.record(self.to_record)
            else:
                self.report.unrecorded.extend(self.to_record)
            self.to_record = []

    # -- chunks -------------------------------------------------------------------------------

    def chunk(self, groups: Sequence[list[dict[str, Any]]]) -> None:
        decided = [(rows, letter) for rows in groups if (letter := self.decide(rows)) is not None]
        pending: list[_Pending] = []
        for rows, letter in decided:
            try:
                pending.append(self.render(letter))
            except LetterError as exc:
                self._letter_failed(rows[0], str(exc), letter)
        jobs = [p.pdf_job for p in pending if p.pdf_job is not None]
        if jobs:
            if self.pool is None:  # started on the first chunk with PDFs: a run without any never pays for it
                self.pool = PdfPool(self.jobs, self.o.templates)
            self.pool.submit(jobs)  # laid out by the workers while the next chunks are built
        self.waiting.extend(pending)
        self.finish_ready()

    def finish_ready(self, *, final: bool = False) -> None:
        """Finish the rendered letters in their order as far as their PDFs are back; `final`: all of them."""
        pool = self.pool
        if pool is not None:
            if final:
                self.pdfs.update(pool.drain())
            else:
                self.pdfs.update(pool.poll())
                while pool.pending > PDF_BACKLOG:
                    self.pdfs.update(pool.poll(wait=True))
        while self.waiting:
            item = self.waiting[0]
            if item.pdf_job is not None:
                if item.pdf_job.key not in self.pdfs and not final:
                    return
                item.pdf = self.pdfs.pop(item.pdf_job.key, None)
            self.waiting.popleft()
            try:
                self.finish(item)
            except LetterError as exc:
                self._letter_failed({}, str(exc), item.letter)


#: Objects allocated between two young-generation collections during a run (Python's default is 700).
#: A night allocates millions of short-lived letter values and keeps a growing manifest; at the default,
#: the cyclic collector walks that manifest again and again, a third of the time of building a letter.
GC_YOUNG = 50_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect garbage less often while letters are made (letter values hold no reference cycles)."""
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], GC_YOUNG), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def notify(options: NotifyOptions, *, findings: pl.DataFrame | None = None, catalogue: Catalogue | None = None,
           state: Engine | None = None, progress: Callable[[int, int], None] | None = None) -> NotifyReport:
    """Run the notifier over `findings` (FINDINGS_SCHEMA rows) with a loaded `catalogue`; without them, the
    findings folder and the rules directory of `options` are read. `state`: an open state database
    (the nightly's) instead of opening `options.state_url`. `progress(done, total)` is called as
    taxpayers are processed."""
    with _fewer_collections():
        return _notify(options, findings, catalogue, state, progress)


def _notify(options: NotifyOptions, findings: pl.DataFrame | None, catalogue: Catalogue | None,
            state: Engine | None, progress: Callable[[int, int], None] | None) -> NotifyReport:
    if findings is None:
        if options.findings is None:
            raise ValueError("notify needs a findings frame or options.findings")
        findings = read_findings(options.findings)
    frame = findings
    catalogue = catalogue if catalogue is not None else load_catalogue(options.rules_dir)
    # 免申即享: the bureau applies these reliefs itself (notifier/autoapply lists them); never ask to claim them
    frame = without_automatic(frame, catalogue)
    renderer = LetterRenderer(options.templates, options.office)
    report = NotifyReport(as_of=options.as_of, dry_run=options.dry_run)
    versions = sorted(v for v in frame.get_column("ruleset_version").unique().to_list() if v)
    if versions and versions != [catalogue.version]:
        report.warnings.append(
            f"发现文件由规则目录版本 {', '.join(versions)} 生成，信函使用当前规则目录 {catalogue.version} 的文字")
    scratch = None
    state_url = options.state_url
    if state is None and options.dry_run and not state_exists(state_url):
        # A dry run reads the cooling-off ledger and records nothing: no state database is created for it.
        scratch = tempfile.TemporaryDirectory(prefix="zhixiang-dry-run-")
        state_url = str(Path(scratch.name) / "state.sqlite")
    engine = state if state is not None else open_state(state_url)
    try:
        ledger = SuppressionLedger(engine, options.as_of, options.suppression)
        outbox = Outbox(options.out)
        outbox.prepare()
        run = _Run(options, catalogue, renderer, ledger, outbox, report, DeliveryLog(engine, options.as_of))
        run.auto_applied = untold(applied_for(engine), told_ever(engine, AUTO_APPLIED))
        total = frame.get_column("taxpayer_id").n_unique()
        report.taxpayers = total
        done = 0
        # the columns a letter never reads are not turned into Python values, row by row
        groups = taxpayer_groups(with_evidence_lines(letter_rows(frame)).drop(UNREAD_COLUMNS, strict=False))
        try:
            while batch := list(islice(groups, CHUNK)):
                run.chunk(batch)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
            run.finish_ready(final=True)
            if run.post_pdfs:
                if run.pool is None:
                    run.pool = PdfPool(1, options.templates)
                report.print_files = write_print_files(outbox.root, run.post_pdfs, as_of=options.as_of,
                                                       pool=run.pool, warnings=report.warnings)
        finally:
            run.flush()  # whatever was delivered is recorded, even when the run is interrupted
            if run.pool is not None:
                run.pool.close()
            for backend in options.backends:
                backend.close()
        outbox.write_manifest(report.rows)
        outbox.write_skipped(run.skipped)
        try:
            listed = _index_listing(report.rows)
            outbox.write_index(renderer.index({**_index_run(report), "listed": len(listed), "rows": len(report.rows)},
                                              _index_rows(listed)))
        except LetterError as exc:  # the preview page alone: the letters are written
            report.warnings.append(f"发件箱预览页 index.html 未生成：{exc}")
        outbox.write_summary(report.summary())
    finally:
        if state is None:
            engine.dispose()
        if scratch is not None:
            scratch.cleanup()
    return report


def _index_run(report: NotifyReport) -> dict[str, Any]:
    return {
        "date_text": format_date(report.as_of),
        "dry_run": report.dry_run,
        "packages": report.packages,
        "by_channel": [(CHANNEL_LABELS[c], n) for c, n in sorted(report.by_channel.items())],
        "opted_out": report.opted_out,
        "suppressed": report.suppressed_taxpayers,
        "failed": report.failed,
    }


class _IndexRow(dict[str, Any]):
    """A preview-page row: a dict whose keys also read as attributes (`row.name`), so that Jinja finds them
    at the first try instead of after a failed attribute lookup (19,000 rows x 12 fields a big night)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


#: Packages the preview page lists at most: a page a browser opens (a first night at 1M taxpayers has
#: ~470,000 packages, which manifest.csv holds, one row each).
INDEX_ROWS = 5_000


def _index_listing(rows: Sequence[ManifestRow], limit: int | None = None) -> list[ManifestRow]:
    """The packages the preview page lists: every failed one, then the others in order, up to `limit`."""
    limit = INDEX_ROWS if limit is None else limit
    if len(rows) <= limit:
        return list(rows)
    failed = [r for r in rows if r.status == "failed"]
    others = [r for r in rows if r.status != "failed"]
    return failed + others[:max(limit - len(failed), 0)]


def _index_rows(rows: Sequence[ManifestRow]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(_IndexRow({
            "taxpayer_id": row.taxpayer_id,
            "name": row.taxpayer_name,
            "authority": row.authority,
            "channel_label": CHANNEL_LABELS.get(row.channel, row.channel),
            "incentives": row.incentive_names,
            "reminders": row.reminders,
            "total": format_amount(row.total_estimated_saving) if row.total_estimated_saving else "",
            "status": row.status,
            "status_label": STATUS_LABELS.get(row.status, row.status),
            "files": list(row.files),
        }))
    return out


def untold(applied: dict[str, tuple[Entry, ...]], told: set[tuple[str, str, str]]) -> dict[str, tuple[Entry, ...]]:
    """The applied 免申即享 entries no delivered package has told yet: 已为您自动享受 is said once."""
    out = {t: tuple(e for e in entries if (t, e.rule_id, e.period) not in told) for t, entries in applied.items()}
    return {t: entries for t, entries in out.items() if entries}
