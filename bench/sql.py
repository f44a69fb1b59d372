"""SQL backend benchmark: the whole catalogue in DuckDB (and optionally PostgreSQL) against the Polars engine.

    .venv/bin/python bench/sql.py                          # 1M taxpayer-years of 2025, DuckDB vs Polars
    .venv/bin/python bench/sql.py --rows 100000 --pg-url postgresql://…/db   # PostgreSQL too
    .venv/bin/python bench/sql.py --rows 100000 --spark    # Spark local[2] too (pip install -e '.[spark]')

With --pg-url the data are also loaded into that database's tables (`zhixiang load`, timed apart) and the
catalogue evaluated on them in place (`postgres-tables`: `run --engine postgres --data postgresql://…`):
nothing is read into Python but the findings.

Data: `bench/data.py --kind year` (N taxpayers, one indicators row each for 2025, their claims and risk
events), cached under --data-root. Each engine runs in a fresh subprocess: read and validate the Parquet
folder (the same for all), evaluate the catalogue for 2025 with findings and evidence, and report the wall
time of each stage, CPU time and peak RSS. The findings of every engine are checked to be identical
(taxpayer, rule, kind, amount, tier; and the whole frame).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PERIOD = "2025"
KEYS = ["taxpayer_id", "rule_id", "kind", "estimated_amount", "risk_tier"]


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(engine: str, data: Path, out: Path, pg_url: str | None) -> None:
    """One engine's run (in its own process); prints a JSON line with its figures."""
    from engine.catalogue import load_catalogue
    from engine.run import evaluate_period
    from engine.sql_run import evaluate_period_sql
    from profiles.periods import parse_period
    from profiles.readers import load_profiles

    catalogue = load_catalogue()
    t0 = time.perf_counter()
    profiles = load_profiles(data, known_incentives=catalogue.known_incentives) if engine != "postgres-tables" else None
    t1 = time.perf_counter()
    period = parse_period(PERIOD)
    if engine == "polars":
        result = evaluate_period(catalogue, profiles, period)
    elif engine == "postgres-tables":
        from engine.sql_run import engine_tables

        t0 = t1  # the tables are in the database already: nothing to read
        result = evaluate_period_sql(catalogue, None, period, "postgres",
                                     tables=engine_tables(pg_url or "", "postgres"))
    else:
        result = evaluate_period_sql(catalogue, profiles, period, engine, pg_url)
    t2 = time.perf_counter()
    result.findings.write_parquet(out / f"findings-{engine}.parquet")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "engine": engine, "read_validate_s": round(t1 - t0, 2), "evaluate_s": round(t2 - t1, 2),
        "stages": result.timings, "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(_peak_rss_mib()), "findings": result.findings.height,
        "taxpayers": result.taxpayers_evaluated,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/zx-bench-sql"))
    parser.add_argument("--pg-url", default=None, help="also run on this PostgreSQL database")
    parser.add_argument("--spark", action="store_true", help="also run on Spark local mode (needs PySpark)")
    parser.add_argument("--only", default=None, help="comma-separated engines to run (polars is always run)")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.pg_url)
        return
    import polars as pl
    from polars.testing import assert_frame_equal

    data = args.data_root / f"year-{args.rows}"
    if not (data / "taxpayers.parquet").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "data.py"), "--rows", str(args.rows), "--kind", "year",
                        "--out", str(data)], check=True)
    out = args.data_root / f"out-{args.rows}"
    out.mkdir(parents=True, exist_ok=True)
    engines = (["polars", "duckdb"] + (["postgres", "postgres-tables"] if args.pg_url else [])
               + (["spark"] if args.spark else []))
    if args.only:
        engines = ["polars", *(e for e in engines[1:] if e in args.only.split(","))]
    if "postgres-tables" in engines:
        from engine.catalogue import load_catalogue
        from profiles.database import load_tables
        from profiles.readers import load_profiles

        profiles = load_profiles(data, known_incentives=load_catalogue().known_incentives)
        start = time.perf_counter()
        load_tables(args.pg_url, {n: getattr(profiles, n).select(
            [c for c in getattr(profiles, n).columns if not c.startswith("__")])
            for n in ("taxpayers", "indicators", "claims", "risk_events")})
        print(json.dumps({"zhixiang load into PostgreSQL s": round(time.perf_counter() - start, 1)}), flush=True)
        del profiles
    rows = []
    for engine in engines:
        cmd = [sys.executable, __file__, "--child", engine, str(data), str(out)]
        if args.pg_url:
            cmd += ["--pg-url", args.pg_url]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:  # keep the engine's own message (a JVM error, a server's refusal)
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"bench: {engine} failed (exit {proc.returncode}) after "
                             f"{time.perf_counter() - start:.0f} s")
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        figures["wall_s"] = round(time.perf_counter() - start, 2)
        figures["load"] = round(load, 1)
        rows.append(figures)
        print(json.dumps(figures, ensure_ascii=False), flush=True)
    base = pl.read_parquet(out / "findings-polars.parquet")
    for engine in engines[1:]:
        other = pl.read_parquet(out / f"findings-{engine}.parquet")
        assert_frame_equal(other.select(KEYS).sort(KEYS), base.select(KEYS).sort(KEYS))
        assert_frame_equal(other, base)
    print(f"findings identical across {', '.join(engines)} ({base.height:,} findings)")
    cpu = platform.processor() or platform.machine()
    print(f"\n{args.rows:,} taxpayer-years of {PERIOD}; {os.cpu_count()} cores ({cpu}); "
          f"Python {platform.python_version()}, Polars {pl.__version__}")
    print("| engine | read + validate s | evaluate s | of which in the engine s | evidence s | CPU s | "
          "peak RSS MiB | findings |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        st = r["stages"]
        inside = st.get("evaluate", "") if r["engine"] != "polars" else r["evaluate_s"]
        evidence = st.get("evidence", "—")
        print(f"| {r['engine']} | {r['read_validate_s']} | {r['evaluate_s']} | {inside} | {evidence} | "
              f"{r['cpu_s']} | {r['peak_rss_mib']:,} | {r['findings']:,} |")


if __name__ == "__main__":
    main()
