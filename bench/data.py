"""Benchmark data sets from the project's generator, made in chunks so any size fits in memory.

    .venv/bin/python bench/data.py --rows 10000000 --kind year --out /tmp/zx10m
    .venv/bin/python bench/data.py --rows 100000000 --kind full --out /tmp/zx100m

* `year`: ROWS taxpayers, each with one indicators row for the tax year 2025, their claims for 2025 and
  their risk events — every indicators row is judged by a `--period 2025` run, so rows = taxpayers judged.
* `full`: what `python -m sample_data.generator` makes (the year, then quarters or months of VAT
  figures: about 13.5 indicators rows per taxpayer), for about ROWS indicators rows in total.

Each chunk is generated in a child process with its own seed (memory is returned after every chunk),
taxpayers whose id an earlier chunk already drew are dropped, and the chunks are streamed into one
Parquet file per table with Polars sinks.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiles.schema import TABLES

TABLE_NAMES = tuple(TABLES)
#: Indicators rows per taxpayer in the generator's full data (year + 7 quarters or 21 months).
FULL_ROWS_PER_TAXPAYER = 13.5


def _chunk(kind: str, n: int, seed: int, out: Path) -> None:
    """Generate one chunk's four tables into `out` (runs in a child process)."""
    import numpy as np

    from sample_data import generator as g

    if kind == "full":
        tables = g.generate(n, seed=seed, planted=False)
    else:
        # generator.generate without the VAT periods (the same streams, in the same order).
        rng = np.random.default_rng(seed)
        tp = g.make_taxpayers(rng, n)
        year = g._year_rows(rng, tp)
        later = np.random.default_rng([seed, 1])
        tp = g._owners_and_recertification(later, tp)
        year = g._items_and_other_reliefs(later, tp, year)
        events = g.make_risk_events(rng, tp)
        no_vat = pl.DataFrame(schema={"taxpayer_id": pl.String, "period": pl.String})
        claims = g.make_claims(rng, tp, year, no_vat, events)
        tech_rng = np.random.default_rng([seed, 11])
        tp, year, _ = g.add_tech_figures(tech_rng, tp, year, no_vat)
        claims = pl.concat([claims, g.make_tech_claims(tech_rng, tp, year, no_vat)])
        tables = {
            "taxpayers": g._conform(tp, TABLES["taxpayers"].polars_schema),
            "indicators": g._conform(year, TABLES["indicators"].polars_schema),
            "claims": claims,
            "risk_events": events,
        }
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLE_NAMES:
        tables[name].write_parquet(out / f"{name}.parquet")


def make_dataset(kind: str, rows: int, out: Path, *, chunk_rows: int = 1_000_000, seed: int = 7) -> dict[str, int]:
    """Write a data set of about `rows` indicators rows to `out`; returns the rows of each table."""
    taxpayers = rows if kind == "year" else math.ceil(rows / FULL_ROWS_PER_TAXPAYER)
    per_chunk = chunk_rows if kind == "year" else max(1, math.ceil(chunk_rows / FULL_ROWS_PER_TAXPAYER))
    work = out / ".chunks"
    shutil.rmtree(work, ignore_errors=True)
    ctx = multiprocessing.get_context("spawn")
    seen = pl.Series("taxpayer_id", [], dtype=pl.String)
    c = 0
    while seen.len() < taxpayers:  # chunks until enough distinct taxpayers (ids drawn twice are dropped)
        n = min(per_chunk, taxpayers - seen.len())
        folder = work / f"{c:04d}"
        proc = ctx.Process(target=_chunk, args=(kind, n, seed * 1000 + c, folder))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"chunk {c} failed (exit code {proc.exitcode})")
        ids = pl.read_parquet(folder / "taxpayers.parquet", columns=["taxpayer_id"]).get_column("taxpayer_id")
        clash = ids.filter(ids.is_in(seen.implode()))
        if clash.len():
            for name in TABLE_NAMES:
                path = folder / f"{name}.parquet"
                pl.read_parquet(path).filter(~pl.col("taxpayer_id").is_in(clash.implode())).write_parquet(path)
        seen = pl.concat([seen, ids.filter(~ids.is_in(clash.implode()))])
        print(f"  chunk {c + 1}: {n:,} taxpayers ({clash.len()} ids already drawn, dropped); "
              f"{seen.len():,}/{taxpayers:,}", file=sys.stderr, flush=True)
        c += 1
    counts = {}
    for name in TABLE_NAMES:
        parts = sorted(work.glob(f"*/{name}.parquet"))
        pl.scan_parquet(parts).sink_parquet(out / f"{name}.parquet", engine="streaming")
        counts[name] = pl.scan_parquet(out / f"{name}.parquet").select(pl.len()).collect().item()
    shutil.rmtree(work)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command line: --rows N --kind year|full --out DIR [--chunk-rows M] [--seed S]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="indicators rows wanted")
    parser.add_argument("--kind", choices=("year", "full"), default="year")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="indicators rows per generated chunk")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = make_dataset(args.kind, args.rows, args.out, chunk_rows=args.chunk_rows, seed=args.seed)
    sizes = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    print(f"{args.out}: {sizes} in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
