"""Single-taxpayer latency of `check` (whole catalogue, durable-rules) and `--all` throughput beside the batch.

    python -m bench.durable_latency --data sample_data/hangzhou --period 2025 --period 2026Q3 --period 2026-09
    python -m bench.durable_latency --taxpayers 30000 --period 2025      # generated data, bigger sample

Latency: every taxpayer the period judges is checked once more after a warm-up pass (rulesets compiled,
caches warm); each check is a full RealtimeChecker.check — profile → durable-rules → findings with
evidence; wall time and the thread's CPU time are both reported (a busy machine inflates the first).
Throughput: `evaluate_period_durable` (what `zhixiang check --all` runs) and the batch's
`evaluate_period` (what `zhixiang run` runs) on the same loaded tables, loading excluded; first call
(compiling) and second call reported separately. Prints a JSON report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(data: Path, periods: list[str]) -> dict[str, Any]:
    from engine.catalogue import load_catalogue
    from engine.realtime import RealtimeChecker, evaluate_period_durable, iter_profiles
    from engine.run import evaluate_period
    from profiles.periods import parse_period
    from profiles.readers import load_profiles

    catalogue = load_catalogue()
    profiles = load_profiles(data, known_incentives=catalogue.known_incentives)
    report: dict[str, Any] = {"data": str(data), "catalogue_version": catalogue.version,
                              "rules": len(catalogue.rules), "periods": {}}
    for text in periods:
        period = parse_period(text)
        checker = RealtimeChecker(catalogue)
        people = list(iter_profiles(profiles, period))
        compile_start = time.perf_counter()
        checker.check(people[0], period)
        first = time.perf_counter() - compile_start
        for profile in people:  # warm-up pass
            checker.check(profile, period)
        latencies, cpu = [], []
        for profile in people:
            start, start_cpu = time.perf_counter(), time.thread_time()
            checker.check(profile, period)
            latencies.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
        ms = [x * 1000 for x in latencies]
        cpu_ms = [x * 1000 for x in cpu]
        timings = {}
        for name, run in (("durable_all", lambda p=period: evaluate_period_durable(catalogue, profiles, p)),
                          ("batch", lambda p=period: evaluate_period(catalogue, profiles, p))):
            for attempt in ("first", "second"):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = run()
                timings[f"{name}_{attempt}_s"] = round(time.perf_counter() - start, 3)
                timings[f"{name}_{attempt}_cpu_s"] = round(time.process_time() - start_cpu, 3)
        n = result.taxpayers_evaluated
        report["periods"][text] = {
            "taxpayers": n,
            "active_rules": len(catalogue.active(period)),
            "first_check_with_compile_ms": round(first * 1000, 1),
            "latency_ms": {"median": round(statistics.median(ms), 3), "p90": round(_quantile(ms, 0.90), 3),
                           "p99": round(_quantile(ms, 0.99), 3), "max": round(max(ms), 3),
                           "mean": round(statistics.fmean(ms), 3)},
            "latency_cpu_ms": {"median": round(statistics.median(cpu_ms), 3), "p99": round(_quantile(cpu_ms, 0.99), 3)},
            **timings,
            "durable_all_taxpayers_per_s": round(n / timings["durable_all_second_s"]),
            "batch_taxpayers_per_s": round(n / timings["batch_second_s"]),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data folder (default: generate --taxpayers)")
    parser.add_argument("--taxpayers", type=int, default=30000, help="taxpayers to generate when --data is absent")
    parser.add_argument("--period", action="append", dest="periods", help="period(s) to measure")
    args = parser.parse_args(argv)
    periods = args.periods or ["2025", "2026Q3", "2026-09"]
    if args.data is not None:
        report = measure(args.data, periods)
    else:
        from sample_data.generator import generate, write_tables

        with tempfile.TemporaryDirectory() as tmp:
            write_tables(generate(args.taxpayers, seed=7), Path(tmp), "parquet")
            report = measure(Path(tmp), periods)
            report["data"] = f"generated {args.taxpayers} taxpayers (seed 7)"
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
