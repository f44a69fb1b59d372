"""What the workbench knows besides the request: the state database, the catalogue, the current profiles.

One `Workbench` per server. The catalogue and the real-time checker are built once; the profiles (for a
taxpayer's "check now" and `GET /api/v1/taxpayers/{id}/findings`) are read from the data folder of the
latest successful nightly run (or `--data`) on first use and kept until that run changes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from engine.catalogue import DEFAULT_RULES_DIR, Catalogue, load_catalogue
from engine.realtime import RealtimeChecker, TaxpayerProfile, profile_from_json, profile_from_tables
from notifier.db import open_state
from notifier.nightly.runs import RunRecord, list_runs
from profiles.periods import Period, parse_period


@dataclass
class Workbench:
    engine: Engine
    rules_dir: Path = DEFAULT_RULES_DIR
    data: str | None = None  # None: the data source of the latest successful run
    catalogue: Catalogue = field(init=False)
    checker: RealtimeChecker = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _profiles: Any = field(init=False, default=None)
    _profiles_source: str | None = field(init=False, default=None)
    profiles_error: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        from workbench.accounts import ensure_tables

        ensure_tables(self.engine)
        self.catalogue = load_catalogue(self.rules_dir)
        self.checker = RealtimeChecker(self.catalogue, engine="durable")

    @classmethod
    def open(cls, state: str, *, rules_dir: Path = DEFAULT_RULES_DIR, data: str | None = None) -> Workbench:
        return cls(open_state(state), rules_dir=rules_dir, data=data)

    # -- the real-time path (the same as `zhixiang check`)

    def check(self, profile: TaxpayerProfile, period: Period) -> list[dict[str, Any]]:
        """`zhixiang check --json`'s rows; durable-rules sessions are not shared between threads."""
        with self._lock:
            return self.checker.check(profile, period)

    def warm_up(self, periods: list[Period] | None = None) -> None:
        """Compile the catalogue for the periods most asked about (this year and last; others on first use),
        so the first requests of a freshly started server do not pay for it."""
        from datetime import date

        year = date.today().year
        for period in periods or [parse_period(str(year)), parse_period(str(year - 1))]:
            self.checker.prepare(period)

    def profile_from_json(self, document: str | bytes) -> TaxpayerProfile:
        return profile_from_json(document, known_incentives=self.catalogue.known_incentives)

    # -- the current profiles

    def latest_run(self) -> RunRecord | None:
        runs = list_runs(self.engine, limit=1, status="succeeded")
        return runs[0] if runs else None

    def data_source(self) -> str | None:
        if self.data:
            return self.data
        run = self.latest_run()
        return run.data_source if run and run.data_source else None

    def profiles(self) -> Any:
        source = self.data_source()
        if source is None:
            return None
        with self._lock:
            if self._profiles is None or self._profiles_source != source:
                from engine.commands import load_data

                try:
                    self._profiles = load_data(source, self.catalogue)
                except Exception as exc:  # a moved folder or a database down: pages still work without it
                    self.profiles_error = f"档案数据 {source} 无法读取：{exc}"
                    return None
                self._profiles_source, self.profiles_error = source, None
            return self._profiles

    def profile(self, taxpayer_id: str) -> TaxpayerProfile | None:
        profiles = self.profiles()
        return None if profiles is None else profile_from_tables(profiles, taxpayer_id)

    def taxpayer_periods(self, taxpayer_id: str) -> list[str]:
        profiles = self.profiles()
        if profiles is None:
            return []
        frame = profiles.indicators.filter(pl.col("taxpayer_id") == taxpayer_id)
        return sorted(frame["period"].unique().to_list(), reverse=True)

    # -- findings of past runs

    def findings_of(self, taxpayer_id: str, *, runs: int = 10) -> list[dict[str, Any]]:
        """Every finding of the taxpayer in the last `runs` successful runs, newest run first."""
        out: list[dict[str, Any]] = []
        for run in list_runs(self.engine, limit=runs, status="succeeded"):
            path = Path(run.output_dir or "") / "findings.parquet"
            if not run.output_dir or not path.is_file():
                continue
            frame = pl.scan_parquet(path).filter(pl.col("taxpayer_id") == taxpayer_id).collect()
            for row in frame.select("period", "rule_id", "rule_name", "kind", "estimated_amount", "risk_tier",
                                    "reasons").iter_rows(named=True):
                out.append({"run_id": run.run_id, **row})
        return out

    def letters_of(self, taxpayer_id: str, *, runs: int = 10) -> list[dict[str, Any]]:
        """Letters written for the taxpayer (from each run's outbox manifest), newest run first."""
        from notifier.letters.outbox import read_manifest

        out: list[dict[str, Any]] = []
        for run in list_runs(self.engine, limit=runs, status="succeeded"):
            if not run.output_dir:
                continue
            for manifest in Path(run.output_dir).glob("letters/manifest.csv"):
                for row in read_manifest(manifest):
                    if row.get("taxpayer_id") == taxpayer_id:
                        files = [f for f in (row.get("files") or "").split(";") if f]
                        out.append({"run_id": run.run_id, "files": files, **row})
        return out
