"""One evaluation run: profiles and catalogue in, findings, summary and quarantine out.

`evaluate_period` is the pure core (frames in, frames out); `write_outputs` puts the result in a
folder atomically — every file is written beside its final name and renamed into place, so a crash
never leaves a half-written findings file that looks complete.

`evaluate_streaming` is the same run for data larger than memory: the data folder is split by taxpayer
in one streaming pass (profiles.streaming), each bucket is validated and evaluated by `evaluate_period`,
its findings are appended to findings.parquet and findings.csv in the work folder (`FindingsWriter`),
and `write_outputs` moves them into place. Memory is bounded by one bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl

from engine.batch import build_query
from engine.catalogue import Catalogue
from engine.errors import ZhixiangError
from engine.findings import FINDINGS_SCHEMA, FINDINGS_ZSTD_LEVEL, KIND_LABELS, KINDS, write_findings, write_findings_csv
from engine.findings.figures import money_plain
from engine.findings.outcomes import NOT_JUDGED_REASON
from profiles import excel
from profiles.periods import Period, period_kind_expr
from profiles.validation import QUARANTINE_SCHEMA, Profiles

#: Polars 2 streams by default; for a table that fits in memory the in-memory engine runs this wide,
#: expression-heavy plan about 4x faster (measured on the catalogue, 100k rows). Streaming runs are
#: chosen explicitly for data larger than memory.
BATCH_ENGINE: Literal["in-memory"] = "in-memory"

#: Rules of the period's kind the catalogue does not judge for it, and the claims of them left unjudged.
NOT_JUDGED_SCHEMA = {"rule_id": pl.String, "rule_name": pl.String, "judged": pl.String, "reason": pl.String,
                     "detail": pl.String, "claims": pl.Int64}


class OutputError(ZhixiangError):
    """The output folder cannot be written."""


@dataclass
class RunResult:
    """Everything one period's evaluation produced."""

    period: Period
    ruleset_version: str
    findings: pl.DataFrame
    summary: pl.DataFrame  # rule_id, rule_name, outcome, count, amount
    quarantine: pl.DataFrame
    taxpayers_evaluated: int
    timings: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # table -> sha256 of its file
    #: Streaming runs: findings.parquet and findings.csv already written (in the work folder), and
    #: `findings` holds only the columns the summaries read (SUMMARY_COLUMNS).
    findings_files: dict[str, Path] = field(default_factory=dict)
    #: Rules not judged for the period (NOT_JUDGED_SCHEMA): no finding of them exists, their claims are counted.
    not_judged: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NOT_JUDGED_SCHEMA))

    def counts(self) -> dict[str, int]:
        """Findings per kind."""
        got = dict(self.findings.group_by("kind").len().iter_rows()) if self.findings.height else {}
        return {k: int(got.get(k, 0)) for k in KINDS}


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - start, 3)


def claims_outside_granularity(catalogue: Catalogue, claims: pl.DataFrame, file: str) -> pl.DataFrame:
    """Claims whose period kind the claimed rule never judges (e.g. a yearly relief claimed for 2026Q3)."""
    if claims.height == 0:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    code_kinds = {code: ",".join(catalogue.rules[rid].granularity) for code, rid in catalogue.code_to_rule.items()}
    frame = claims.with_columns(
        period_kind_expr(pl.col("period")).alias("__kind"),
        pl.col("incentive").replace_strict(code_kinds, default=None).alias("__allowed"),
    )
    bad = frame.filter(pl.col("__allowed").is_not_null() & ~pl.col("__allowed").str.contains(pl.col("__kind")))
    row = pl.col("__row").cast(pl.Int64) if "__row" in claims.columns else pl.lit(None, pl.Int64)
    labels = {"year": "年度", "quarter": "季度", "month": "月度"}
    allowed_text = pl.col("__allowed")
    for k, v in labels.items():
        allowed_text = allowed_text.str.replace_all(k, v)
    return bad.select(
        pl.lit(file).alias("file"),
        row.alias("row"),
        pl.lit("period").alias("column"),
        pl.col("period").alias("value"),
        pl.concat_str([pl.lit("优惠事项 "), pl.col("incentive"), pl.lit(" 按"), allowed_text.str.replace_all(",", "/"),
                       pl.lit("判定，申报所属期 "), pl.col("period"),
                       pl.lit(" 不是该类期间；请改为对应的年度/季度/月份所属期")])
        .alias("reason"),
    ).cast(QUARANTINE_SCHEMA)


def not_judged_rules(catalogue: Catalogue, period: Period, claims: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The rules the catalogue does not judge for `period` (outside their `judged` window), each with the
    reason and the number of the period's claims of it — counted, never flagged. Both backends report this."""
    rules = catalogue.not_judged(period)
    if not rules:
        return pl.DataFrame(schema=NOT_JUDGED_SCHEMA)
    codes = {code: rid for code, rid in catalogue.code_to_rule.items() if rid in {r.id for r in rules}}
    lazy = claims.lazy() if isinstance(claims, pl.DataFrame) else claims
    counted = dict(
        lazy.filter((pl.col("period") == period.text) & pl.col("incentive").is_in(list(codes)))
        .group_by(pl.col("incentive").replace_strict(codes, return_dtype=pl.String).alias("rule_id"))
        .agg(pl.len().cast(pl.Int64)).collect().iter_rows()
    )
    return pl.DataFrame(
        [{"rule_id": r.id, "rule_name": r.name, "judged": r.judged_label, "reason": NOT_JUDGED_REASON,
          "detail": catalogue.not_judged_detail(r, period), "claims": int(counted.get(r.id, 0))}
         for r in sorted(rules, key=lambda r: r.id)],
        schema=NOT_JUDGED_SCHEMA,
    )


def evaluate_period(catalogue: Catalogue, profiles: Profiles, period: Period) -> RunResult:
    """Evaluate the whole catalogue for one period over validated profile tables."""
    timings: dict[str, float] = {}
    claims_file = str(getattr(profiles, "sources", {}).get("claims", "claims"))
    extra = claims_outside_granularity(catalogue, profiles.claims, claims_file)
    with timed(timings, "evaluate"):
        plan = build_query(catalogue, period, taxpayers=profiles.taxpayers, indicators=profiles.indicators,
                           claims=profiles.claims, risk_events=profiles.risk_events)
        findings, summary, n = pl.collect_all([
            plan.findings,  # sorted by rule_id, kind, taxpayer_id as built
            plan.summary,
            plan.wide.select(pl.len().alias("n")),
        ], engine=BATCH_ENGINE)
    return run_result(catalogue, period, profiles, findings=findings, summary=summary, taxpayers=int(n.item()),
                      extra_quarantine=extra, timings=timings)


class ClaimsAndQuarantine(Protocol):
    """What `run_result` reads of the profiles: the claims and the rows set aside (Profiles, or the
    SQL engine's stand-in for tables that stay inside the engine)."""

    @property
    def claims(self) -> pl.DataFrame: ...

    @property
    def quarantine(self) -> pl.DataFrame: ...


def run_result(catalogue: Catalogue, period: Period, profiles: ClaimsAndQuarantine, *, findings: pl.DataFrame,
               summary: pl.DataFrame, taxpayers: int, extra_quarantine: pl.DataFrame,
               timings: dict[str, float]) -> RunResult:
    """A period's result from what an engine computed (Polars or SQL): rule names on the summary, the
    quarantine with the claims the period could not judge, the rules not judged."""
    names = {r.id: r.name for r in catalogue.rules.values()}
    summary = summary.with_columns(pl.col("rule_id").replace_strict(names, default=None).alias("rule_name"))
    quarantine = pl.concat([profiles.quarantine.cast(QUARANTINE_SCHEMA), extra_quarantine]) \
        if profiles.quarantine.height else extra_quarantine
    return RunResult(
        period=period,
        ruleset_version=catalogue.version,
        findings=findings,
        summary=summary.select("rule_id", "rule_name", "outcome", "count", "amount").sort(["rule_id", "outcome"]),
        quarantine=quarantine,
        taxpayers_evaluated=taxpayers,
        timings=timings,
        inputs=dict(getattr(profiles, "input_hashes", {})),
        not_judged=not_judged_rules(catalogue, period, profiles.claims),
    )


#: Findings columns that summary.json and the console summary read.
SUMMARY_COLUMNS = ("rule_id", "kind", "district", "estimated_amount", "risk_tier")


class FindingsWriter:
    """findings.parquet and findings.csv written a bucket at a time, on a background thread.

    Writing (Parquet encoding, CSV formatting) runs while the next bucket is read and validated — mostly
    one core's work — so it costs little wall time; at most one bucket's findings wait in the queue.
    No second pass reads the findings again.
    """

    def __init__(self, folder: Path) -> None:
        import queue
        import threading

        folder.mkdir(parents=True, exist_ok=True)
        self.files = {"findings.parquet": folder / "findings.parquet", "findings.csv": folder / "findings.csv"}
        self._queue: queue.Queue[pl.DataFrame | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._appended = False
        self._thread = threading.Thread(target=self._work, name="findings-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        import pyarrow.parquet as pq

        parquet = None
        try:
            with self.files["findings.csv"].open("wb") as csv:
                first = True
                while (findings := self._queue.get()) is not None:
                    table = findings.to_arrow()
                    if parquet is None:
                        parquet = pq.ParquetWriter(self.files["findings.parquet"], table.schema, compression="zstd",
                                                   compression_level=FINDINGS_ZSTD_LEVEL)
                    parquet.write_table(table)
                    write_findings_csv(findings, csv, include_header=first)
                    first = False
        except BaseException as exc:  # reported to the caller; keep draining so append() never blocks forever
            self._error = exc
            while self._queue.get() is not None:
                pass
        finally:
            if parquet is not None:
                parquet.close()

    def _raise(self) -> None:
        if self._error is not None:
            raise OutputError(f"写入评估结果失败：{self._error}") from self._error

    def append(self, findings: pl.DataFrame) -> None:
        """Queue one bucket's findings (waits while the previous one is still being written)."""
        self._raise()
        self._queue.put(findings)
        self._appended = True

    def close(self) -> dict[str, Path]:
        """Wait for the writes to finish; a run without findings still gets the header and the schema."""
        if not self._appended:
            self._queue.put(pl.DataFrame(schema=FINDINGS_SCHEMA))
        self._queue.put(None)
        self._thread.join()
        self._raise()
        return self.files

    def abort(self) -> None:
        """Stop the writer after a failed run (the files are left incomplete, for the caller to remove)."""
        self._queue.put(None)
        self._thread.join()


def evaluate_streaming(catalogue: Catalogue, source: str | Path, period: Period, workdir: Path, *,
                       buckets: int | None = None,
                       on_bucket: Callable[[int, int], None] | None = None) -> RunResult:
    """`evaluate_period` over a data folder larger than memory, one bucket of taxpayers at a time.

    `workdir` receives the bucketed inputs and the findings files (`write_outputs` moves them into the
    output folder; `cleanup_streaming` removes the rest). `buckets` defaults to about 125,000 taxpayers each.
    The quarantine covers the rows this run reads: every taxpayer and risk event, the indicators and
    claims of the period, and rows whose period is malformed. Findings are sorted within a bucket.
    """
    from profiles.sources import file_sha256
    from profiles.streaming import bucket_source, load_bucket, owner_income_totals, plan_buckets

    timings: dict[str, float] = {}
    with timed(timings, "partition"):
        k_total = buckets or plan_buckets(Path(source), period.text)
        split = bucket_source(source, period=period.text, buckets=k_total, workdir=workdir / "buckets")
    with timed(timings, "owner_totals"):
        owners = owner_income_totals(split)  # 个体工商户 run by one owner may sit in different buckets
    writer = FindingsWriter(workdir / "findings")
    light, summaries, checked, extra, unjudged = [], [], [], [], []
    taxpayers = 0
    with timed(timings, "validate_evaluate_write"):
        try:
            for k in range(k_total):
                profiles = load_bucket(split, k, known_incentives=catalogue.known_incentives, owner_totals=owners)
                part = evaluate_period(catalogue, profiles, period)
                writer.append(part.findings)
                light.append(part.findings.select(SUMMARY_COLUMNS))
                summaries.append(part.summary)
                unjudged.append(part.not_judged)
                checked.append(profiles.quarantine.cast(QUARANTINE_SCHEMA))  # type: ignore[arg-type]
                extra.append(part.quarantine.slice(profiles.quarantine.height))
                taxpayers += part.taxpayers_evaluated
                del profiles, part
                if on_bucket is not None:
                    on_bucket(k + 1, k_total)
        except BaseException:
            writer.abort()
            raise
        files = writer.close()
    # In the order evaluate_period gives for the whole table: validation lines by table and row, then
    # the claims whose period kind no rule judges.
    order = {path.name: i for i, path in enumerate(split.files.values())}
    quarantine = pl.concat([
        pl.concat(checked).sort(pl.col("file").replace_strict(order, default=len(order)), "row", maintain_order=True),
        pl.concat(extra).sort("row", maintain_order=True),
    ])
    amount = pl.col("amount")
    summary = (pl.concat(summaries).group_by("rule_id", "rule_name", "outcome")
               .agg(pl.col("count").sum(), pl.when(amount.count() > 0).then(amount.sum()).alias("amount"))
               .sort(["rule_id", "outcome"]))
    # Every bucket lists the same rules (they depend on the catalogue and period only); their claims add up.
    keys = [c for c in NOT_JUDGED_SCHEMA if c != "claims"]
    not_judged = (pl.concat([pl.DataFrame(schema=NOT_JUDGED_SCHEMA), *unjudged])
                  .group_by(keys, maintain_order=True).agg(pl.col("claims").sum()).select(list(NOT_JUDGED_SCHEMA)))
    with timed(timings, "input_hashes"):
        inputs = {name: file_sha256(path) for name, path in split.files.items()}
    timings["buckets"] = k_total
    return RunResult(period=period, ruleset_version=catalogue.version, findings=pl.concat(light),
                     summary=summary, quarantine=quarantine, taxpayers_evaluated=taxpayers, timings=timings,
                     inputs=inputs, findings_files=files, not_judged=not_judged)


def cleanup_streaming(workdir: Path) -> None:
    """Remove a streaming run's working folder (a link in its place is removed, never followed)."""
    if workdir.is_symlink():
        workdir.unlink()
        return
    shutil.rmtree(workdir, ignore_errors=True)


def _replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def write_outputs(result: RunResult, out: Path, *, data_source: str = "") -> dict[str, Path]:
    """Write findings.parquet, findings.csv, quarantine.csv and summary.json into `out` atomically."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"无法创建输出目录 {out}：{exc.strerror}。请检查路径和权限。") from exc
    paths = {
        "findings.parquet": out / "findings.parquet",
        "findings.csv": out / "findings.csv",
        "quarantine.csv": out / "quarantine.csv",
        "summary.json": out / "summary.json",
    }
    tmp = {name: path.with_name(f".{path.name}.tmp") for name, path in paths.items()}
    try:
        if result.findings_files:  # written by the streaming run; moved into place below
            for name, path in result.findings_files.items():
                _replace(path, tmp[name])
        else:
            write_findings(result.findings, tmp["findings.parquet"], tmp["findings.csv"])
        excel.write_frame(result.quarantine, tmp["quarantine.csv"])
        tmp["summary.json"].write_text(
            json.dumps(summary_document(result, data_source=data_source), ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
        for name, path in paths.items():
            _replace(tmp[name], path)
    except OSError as exc:
        raise OutputError(f"写入输出目录 {out} 失败：{exc}") from exc
    return paths


def summary_document(result: RunResult, *, data_source: str = "") -> dict[str, Any]:
    """summary.json: the run's identity, counts and amounts by rule, kind and district."""
    f = result.findings
    by_district: list[dict[str, Any]] = []
    if f.height:
        agg = (f.group_by(["district", "kind"]).agg(pl.len().alias("count"),
                                                  pl.col("estimated_amount").sum().alias("amount"))
               .sort(["district", "kind"], nulls_last=True))
        by_district = [{"district": d or "（未知）", "kind": k, "kind_label": KIND_LABELS[k], "count": c,
                        "amount": money_plain(a)} for d, k, c, a in agg.iter_rows()]
    return {
        "period": result.period.text,
        "period_label": result.period.label,
        "ruleset_version": result.ruleset_version,
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "data": data_source,
        "inputs": result.inputs,
        "taxpayers_evaluated": result.taxpayers_evaluated,
        "findings": result.counts(),
        "quarantined_rows": result.quarantine.height,
        "quarantine_by_reason": _quarantine_reasons(result.quarantine),
        "by_rule": [
            {"rule_id": r, "rule_name": n, "outcome": o, "outcome_label": KIND_LABELS[o], "count": c,
             "amount": money_plain(a)}
            for r, n, o, c, a in result.summary.iter_rows()
        ],
        "by_district": by_district,
        # Rules the catalogue does not judge for this period: no finding, their claims counted, not flagged.
        "not_judged": result.not_judged.to_dicts(),
        "timings_seconds": result.timings,
    }


def _quarantine_reasons(q: pl.DataFrame) -> list[dict[str, Any]]:
    if q.height == 0:
        return []
    agg = q.group_by(["file", "column"]).len().sort("len", descending=True)
    return [{"file": Path(str(f)).name, "column": c, "rows": n} for f, c, n in agg.iter_rows()]
