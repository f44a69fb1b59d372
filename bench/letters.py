"""Letter throughput (issue 12 §3): HTML letters from findings rows to files, PDFs, print files.

Findings are real: synthetic taxpayers go through the engine's batch query with the live catalogue
(rules/), and letters are made from its findings rows as `zhixiang notify` makes them.

* HTML: `notify()` itself — findings rows read, grouped by taxpayer, the suppression ledger asked,
  letters built and rendered, files and manifest written — with every letter going to the e-tax bureau
  (HTML only), in one process: letters per CPU-second of that process (one core) and per wall second.
* PDF: the letters laid out by Typst in `--jobs` worker processes (PdfPool, as `notify` runs them),
  each checked in its worker (embedded fonts, key texts read back): PDFs per wall second. Then EVERY
  PDF is read back again with pypdf's own text extraction (not timed) and must contain the taxpayer's
  name.
* Print file: the PDFs of one tax authority merged behind a cover sheet (write_print_files).

    .venv/bin/python bench/letters.py                          # 20,000 taxpayers, 2,000 PDFs, 2 jobs
    .venv/bin/python bench/letters.py --taxpayers 50000 --pdfs 5000 --jobs 2

* First night (`--night DATA`): the letters stage of the nightly's first night over a data set made by
  bench/data.py (`--kind full`): the findings of the night's due periods (made once with `zhixiang run`,
  kept next to the data), every one new, the taxpayer-facing ones to `notify()` with PDFs for post and
  `--jobs` PDF workers, as `zhixiang nightly` runs it; then the suppression ledger recorded as the
  nightly's commit does. Reports wall and CPU seconds per stage (main process, exclusive of the stages
  inside it; the PDF workers' CPU from their rusage), and reads EVERY post PDF back with pypdf.

    .venv/bin/python bench/data.py --rows 13500000 --kind full --out /work/wt/_data/full-1m-taxpayers
    nice .venv/bin/python bench/letters.py --night /work/wt/_data/full-1m-taxpayers --as-of 2026-10-15
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.batch import build_query
from engine.catalogue import load_catalogue
from notifier.letters.build import Letter, build_letter
from notifier.letters.pdf import PDF_BATCH, PdfJob, PdfPool, check_pdf, pdf_text
from notifier.letters.print_files import write_print_files
from notifier.letters.render import LetterRenderer
from notifier.letters.run import NotifyOptions, notify
from profiles.authorities import HANGZHOU_DISTRICTS
from profiles.ids import make_credit_code
from profiles.periods import parse_period
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS

AS_OF = date(2026, 11, 27)
CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
NAMES = ("云栖", "星河", "钱塘", "西溪", "之江", "湘湖", "良渚", "富春", "天目", "运河", "拱宸", "望江")
TRADES = (("数据服务", "I6513"), ("智能科技", "I6513"), ("精工机械", "C3411"), ("茶业", "C1530"),
          ("文化传媒", "R8610"), ("电子商务", "F5292"), ("新材料", "C2651"), ("医疗器械", "C3581"))


def synthetic_profiles(n: int, seed: int = 2026) -> dict[str, pl.DataFrame]:
    """`n` small and medium Hangzhou enterprises with 2025 figures (no claims: every relief is unclaimed)."""
    rng = random.Random(seed)
    taxpayers, indicators = [], []
    for i in range(n):
        district = HANGZHOU_DISTRICTS[i % len(HANGZHOU_DISTRICTS)]
        body = "".join(rng.choice(CHARSET) for _ in range(8))
        tid = make_credit_code(district.region_code, body)
        trade, industry = rng.choice(TRADES)
        small = rng.random() < 0.3
        taxpayers.append({
            "taxpayer_id": tid, "name": f"杭州{rng.choice(NAMES)}{trade}有限公司{i}", "entity_type": "enterprise",
            "vat_status": "small_scale" if small else "general", "vat_filing_cycle": "quarter" if small else "month",
            "industry_code": industry, "restricted_industry": False, "tax_authority": district.tax_authority,
            "district": district.name, "credit_grade": rng.choice("ABM"), "registered_on": date(2015, 1, 1),
            "phone": "13805710000", "email": "caiwu@example.cn",
            "preferred_channel": rng.choice(("etax", "email", "sms", "post")), "opt_out": rng.random() < 0.05,
        })
        employees = rng.randint(3, 280)
        indicators.append({
            "taxpayer_id": tid, "period": "2025",
            "sales": Decimal(rng.randint(200_000, 40_000_000)),
            "taxable_income": Decimal(rng.randint(50_000, 2_900_000)) + Decimal("0.37"),
            "employees_qavg": float(employees), "assets_qavg": Decimal(rng.randint(1_000_000, 45_000_000)),
            "employees": employees, "disabled_employees": 0,
            "rd_expense": Decimal(rng.randint(0, 2_000_000)) if rng.random() < 0.5 else None,
            "six_taxes_due": Decimal(rng.randint(2_000, 90_000)),
            "disability_fund_due": Decimal(rng.randint(1_000, 40_000)),
            "equipment_cost": Decimal(rng.randint(100_000, 3_000_000)) if rng.random() < 0.3 else None,
            "equipment_max_unit_cost": Decimal(rng.randint(50_000, 900_000)),
        })
    return {
        "taxpayers": pl.DataFrame(taxpayers, schema=TAXPAYERS.polars_schema, orient="row"),
        "indicators": pl.DataFrame(indicators, schema=INDICATORS.polars_schema, orient="row"),
        "claims": pl.DataFrame(schema=CLAIMS.polars_schema),
        "risk_events": pl.DataFrame(schema=RISK_EVENTS_TABLE.polars_schema),
    }


def _load() -> str:
    try:
        return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average n/a"


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes (the PDF workers, once closed)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_html(findings: pl.DataFrame, tmp: Path) -> tuple[int, float, float, float]:
    """`notify()` over `findings`, every letter HTML for the e-tax bureau: (letters, CPU s, wall s, system s)."""
    folder = tmp / "findings"
    folder.mkdir(parents=True, exist_ok=True)
    findings.write_parquet(folder / "findings.parquet")
    out = tmp / "outbox"
    shutil.rmtree(out, ignore_errors=True)
    options = NotifyOptions(findings=folder, out=out, state_url=f"sqlite:///{tmp / 'state.sqlite'}",
                            as_of=AS_OF, channel_override="etax", pdf_channels=(), jobs=1)
    system, cpu, wall = os.times().system, time.process_time(), time.perf_counter()
    report = notify(options)
    assert (out / "index.html").exists(), report.warnings  # the preview page is part of the work
    return (report.packages, time.process_time() - cpu, time.perf_counter() - wall,
            os.times().system - system)


class StageClock:
    """Wall and CPU seconds per stage of `notify()`, each exclusive of the stages timed inside it."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[list[float]] = []  # per open stage: [wall inside, cpu inside]

    def enter(self) -> tuple[float, float]:
        self.stack.append([0.0, 0.0])
        return time.perf_counter(), time.process_time()

    def leave(self, stage: str, start: tuple[float, float]) -> None:
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
        inner = self.stack.pop()
        self.wall[stage] = self.wall.get(stage, 0.0) + wall - inner[0]
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu - inner[1]
        self.calls[stage] = self.calls.get(stage, 0) + 1
        if self.stack:
            self.stack[-1][0] += wall
            self.stack[-1][1] += cpu

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        fn = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = self.enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave(stage, start)

        setattr(owner, name, timed)

    def wrap_iterator(self, owner: Any, name: str, stage: str) -> None:
        """`owner.name` returns an iterator; time each step of it (rows turned into Python values lazily)."""
        fn = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            it = iter(fn(*args, **kwargs))
            while True:
                start = self.enter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self.leave(stage, start)
                yield item

        setattr(owner, name, timed)


#: notify()'s stages for the first night's report: (owner, attribute, stage).
NIGHT_STAGES = (
    ("run", "read_findings", "findings read"),
    ("run", "with_evidence_lines", "findings read"),
    ("run", "load_catalogue", "findings read"),
    ("_Run", "decide", "letter build (incl. suppression check)"),
    ("_Run", "render", "HTML (+ PDF data)"),
    ("PdfPool", "submit", "PDFs: main process handing over / waiting"),
    ("PdfPool", "poll", "PDFs: main process handing over / waiting"),
    ("PdfPool", "drain", "PDFs: main process handing over / waiting"),
    ("Outbox", "write", "files written"),
    ("_Run", "finish", "delivery queue + manifest rows"),
    ("run", "write_print_files", "print files"),
    ("Outbox", "write_manifest", "manifest, skipped list, preview page, summary"),
    ("Outbox", "write_skipped", "manifest, skipped list, preview page, summary"),
    ("Outbox", "write_index", "manifest, skipped list, preview page, summary"),
    ("Outbox", "write_summary", "manifest, skipped list, preview page, summary"),
    ("LetterRenderer", "index", "manifest, skipped list, preview page, summary"),
)


def night_findings(data: Path, as_of: date, work: Path) -> pl.DataFrame:
    """The first night's findings over `data`: every due period run once with `zhixiang run` (kept in
    `work`), concatenated and sorted as the nightly's evaluate stage does."""
    import subprocess

    from notifier.nightly.config import Periods, due_periods

    frames = []
    for period in due_periods(as_of, Periods()):
        out = work / "periods" / period.text
        if not (out / "findings.parquet").is_file():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "engine.cli", "run", "--data", str(data), "--period", period.text,
                            "--out", str(out), "--quiet"], check=True, cwd=Path(__file__).resolve().parent.parent)
            print(f"  findings of {period.text}: {time.perf_counter() - start:.0f} s (made once, kept in {out})")
        frames.append(pl.read_parquet(out / "findings.parquet"))
    return pl.concat(frames, how="vertical_relaxed").sort(["period", "rule_id", "kind", "taxpayer_id"])


def bench_night(data: Path, as_of: date, jobs: int, keep: Path | None) -> int:
    """The letters stage of the first night over `data` (see the module's docstring)."""
    from notifier.db import open_state
    from notifier.letters import run as run_module
    from notifier.letters.build import is_taxpayer_facing
    from notifier.letters.outbox import Outbox
    from notifier.letters.run import _Run
    from notifier.letters.suppression import SuppressionLedger

    work = data.parent / f"{data.name}.night-{as_of.isoformat()}"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {_load()} at start")
    start = time.perf_counter()
    findings = night_findings(data, as_of, work)
    print(f"findings of the night: {findings.height:,} rows ({time.perf_counter() - start:.0f} s, not part of "
          f"the letters stage); {_load()}")

    owners = {"run": run_module, "_Run": _Run, "PdfPool": run_module.PdfPool, "Outbox": Outbox,
              "LetterRenderer": run_module.LetterRenderer}
    clock = StageClock()
    for owner, name, stage in NIGHT_STAGES:
        clock.wrap(owners[owner], name, stage)
    clock.wrap_iterator(run_module, "taxpayer_groups", "findings read")

    tmp = Path(tempfile.mkdtemp(prefix="zx-night-", dir=keep))
    try:
        wall0, cpu0, children0 = time.perf_counter(), time.process_time(), _children_cpu()
        # the nightly's letters stage: on the first night every finding is new; taxpayer-facing ones only
        opened = clock.enter()
        facing = [is_taxpayer_facing(r) for r in
                  findings.select("kind", "estimated_amount", "risk_tier").iter_rows(named=True)]
        fresh = findings.filter(pl.Series(facing, dtype=pl.Boolean))
        source = tmp / "letters-findings.parquet"
        fresh.write_parquet(source)
        clock.leave("findings read", opened)
        del findings, facing
        state = f"sqlite:///{tmp / 'state.sqlite'}"
        options = NotifyOptions(findings=source, out=tmp / "letters", state_url=state, as_of=as_of, jobs=jobs,
                                pdf_channels=("post",), record=False)
        report = notify(options)
        # the nightly's commit stage records what was delivered in the suppression ledger
        opened = clock.enter()
        engine = open_state(state)
        try:
            SuppressionLedger(engine, as_of, options.suppression).record(list(report.unrecorded))
        finally:
            engine.dispose()
        clock.leave("suppression ledger recorded", opened)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        workers = _children_cpu() - children0
        print(f"letters stage: {report.taxpayers:,} taxpayers with taxpayer-facing findings ({fresh.height:,} rows) → "
              f"{report.packages:,} packages {dict(report.by_channel)}, {report.failed} failed, "
              f"{len(report.print_files)} print files; {_load()} at the end")
        print(f"  WALL {wall:,.0f} s ({wall / 60:.1f} min); CPU: main process {cpu:,.0f} s, "
              f"PDF workers {workers:,.0f} s")
        print("  | stage | wall s | CPU s (main) | calls |")
        print("  |---|---:|---:|---:|")
        for stage in dict.fromkeys(s for _, _, s in (*NIGHT_STAGES, ("", "", "suppression ledger recorded"))):
            if stage in clock.wall:
                print(f"  | {stage} | {clock.wall[stage]:,.1f} | {clock.cpu[stage]:,.1f} | {clock.calls[stage]:,} |")
        rest_wall = wall - sum(clock.wall.values())
        rest_cpu = cpu - sum(clock.cpu.values())
        print(f"  | the rest (grouping loop, progress, pool start and close) | {rest_wall:,.1f} | {rest_cpu:,.1f} | |")
        print(f"  | PDF workers ({jobs} processes, CPU only) | | {workers:,.1f} | |")
        for f in report.print_files:
            size = (options.out / f.file).stat().st_size
            print(f"  print file {f.file}: {f.letters:,} letters, {f.pages:,} pages, {size / 1e6:,.0f} MB")
        # every PDF read back, untimed: the taxpayer's name must be in it. check_pdf reads each page's text
        # through the fonts' ToUnicode maps (qpdf, ~3 ms) and asks pypdf when that misses; pypdf's own
        # extraction for all ~30,000 would take ~1 h here, so it reads every 50th.
        start_check = time.perf_counter()
        checked = thorough = 0
        for row in report.rows:
            for rel in row.files:
                if rel.endswith(".pdf"):
                    pdf = (options.out / rel).read_bytes()
                    check_pdf(pdf, [row.taxpayer_name], label=row.taxpayer_id)
                    if checked % 50 == 0:
                        text = "".join(pdf_text(pdf).split())
                        assert "".join(row.taxpayer_name.split()) in text, f"{row.taxpayer_id}: name not read back"
                        thorough += 1
                    checked += 1
        print(f"read-back of every PDF ({checked:,}; {thorough:,} of them by pypdf's extraction too): the "
              f"taxpayer's name in each ({time.perf_counter() - start_check:,.0f} s, not part of the stage)")
        return 1 if report.failed else 0
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taxpayers", type=int, default=20000)
    parser.add_argument("--pdfs", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-html", action="store_true", help="PDFs and print file only")
    parser.add_argument("--batch", type=int, default=None, help="letters a PDF worker lays out at once")
    parser.add_argument("--night", type=Path, default=None, help="a bench/data.py --kind full folder: the first night")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 10, 15), help="the first night's date")
    parser.add_argument("--keep", type=Path, default=None, help="--night: write the outbox below this folder, kept")
    args = parser.parse_args(argv)
    if args.night is not None:
        return bench_night(args.night, args.as_of, args.jobs, args.keep)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {_load()} at start")
    catalogue = load_catalogue()
    tables = synthetic_profiles(args.taxpayers)
    findings = build_query(catalogue, parse_period("2025"), taxpayers=tables["taxpayers"],
                           indicators=tables["indicators"], claims=tables["claims"],
                           risk_events=tables["risk_events"]).findings.collect()
    with tempfile.TemporaryDirectory(prefix="zx-bench-letters-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_html:
            bench_html(findings.head(2000), tmp / "warm")  # imports, template compilation: not part of the rate
            load = _load()
            n, cpu, wall, system = bench_html(findings, tmp / "html")
            print(f"{len(findings):,} findings rows → {n:,} HTML letters written by notify(): "
                  f"{n / cpu:,.0f} letters per CPU-second (one core; {system / cpu:.0%} of it in the kernel, "
                  f"mostly creating the letters' files), {n / wall:,.0f} per wall second ({load} before, "
                  f"{_load()} after)")

        groups: dict[str, list[dict[str, Any]]] = {}
        for row in findings.iter_rows(named=True):
            groups.setdefault(row["taxpayer_id"], []).append(row)
        renderer = LetterRenderer()
        letters = [x for rows in groups.values()
                   if isinstance(x := build_letter(rows, catalogue, as_of=AS_OF), Letter)][: args.pdfs]
        jobs = [PdfJob(x.package_id, renderer.pdf_data(x), tuple(x.key_texts()), label=x.taxpayer_id)
                for x in letters]
        # letters for starting the workers (not timed, not in the timed set: Typst caches what it laid out)
        warm, jobs = jobs[: args.jobs * (args.batch or PDF_BATCH)], jobs[args.jobs * (args.batch or PDF_BATCH):]
        cpu0 = _children_cpu()
        with PdfPool(args.jobs, batch=args.batch) as pool:  # startup only: workers started, fonts loaded
            pool.render(warm)
        startup = _children_cpu() - cpu0
        cpu0 = _children_cpu()
        with PdfPool(args.jobs, batch=args.batch) as pool:
            pool.render(warm)
            load = _load()
            wall = time.perf_counter()
            done = pool.render(jobs)
            elapsed = time.perf_counter() - wall
        cpu = _children_cpu() - cpu0 - startup
        failed = [k for k, v in done.items() if not isinstance(v, bytes)]
        pdfs = {k: v for k, v in done.items() if isinstance(v, bytes)}
        print(f"PDF (Typst, embedded Noto CJK, read-back check in the worker), {args.jobs} processes, "
              f"{args.batch or PDF_BATCH} letters a layout: "
              f"{len(pdfs) / elapsed:,.1f} PDFs/s wall-clock ({len(pdfs):,} PDFs in {elapsed:.1f} s, {load}); "
              f"{len(pdfs) / cpu:,.1f} PDFs per CPU-second of the workers, i.e. {2 * len(pdfs) / cpu:,.0f}/s on "
              f"two idle cores; {len(failed)} failed; "
              f"{sum(map(len, pdfs.values())) / max(1, len(pdfs)) / 1000:,.0f} kB a PDF")
        # every PDF read back by pypdf itself, untimed: the taxpayer's name must be there
        start = time.perf_counter()
        by_key = {x.package_id: x for x in letters}
        for key, pdf in pdfs.items():
            text = "".join(pdf_text(pdf).split())
            assert "".join(by_key[key].name.split()) in text, f"{by_key[key].taxpayer_id}: name not read back"
        print(f"pypdf read-back of every PDF ({len(pdfs):,}): the taxpayer's name in each "
              f"({(time.perf_counter() - start) / max(1, len(pdfs)) * 1000:.0f} ms a PDF, not timed above)")
        if failed:
            print(f"FAILED PDFs: {failed[:5]}")
            return 1
        # one print file: every PDF as if one tax authority's post of the night
        outbox = tmp / "print"
        (outbox / "post").mkdir(parents=True)
        items = []
        for key, pdf in pdfs.items():
            rel = f"post/{by_key[key].taxpayer_id}.pdf"
            (outbox / rel).write_bytes(pdf)
            items.append((by_key[key], rel))
        with PdfPool(1) as pool:
            pool.render(jobs[:1])
            wall = time.perf_counter()
            files = write_print_files(outbox, {"国家税务总局杭州市西湖区税务局": items}, as_of=AS_OF, pool=pool,
                                      warnings=[])
            elapsed = time.perf_counter() - wall
        print(f"print file: {files[0].letters:,} letters, {files[0].pages:,} pages with cover, in {elapsed:.1f} s "
              f"({files[0].letters / elapsed:,.0f} letters/s)")
    print(f"{_load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
