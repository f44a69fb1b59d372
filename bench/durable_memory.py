"""Memory of the durable-rules path over a long run: resident memory at 10k, 100k and 1M evaluations.

    python -m bench.durable_memory --data sample_data/hangzhou --period 2025 --checkpoints 10000 100000 1000000

One process checks the period's taxpayers over and over (the same profiles again and again, which is
also what used to trip durable-rules' MessageObservedException), each a full RealtimeChecker.check with
the findings thrown away. At each checkpoint it prints one JSON line: evaluations, seconds, current
resident memory (VmRSS) and the process's peak (ru_maxrss), both in MiB, measured after a warm-up pass
so loading the data is not counted as growth. Flat memory means the later checkpoints' figures stay
at the first's. Not a test: 1M evaluations take about half an hour.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def rss_mib() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("sample_data/hangzhou"))
    parser.add_argument("--period", default="2025")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--session", choices=["shared", "per_taxpayer"], default="shared")
    args = parser.parse_args(argv)

    from engine.catalogue import load_catalogue
    from engine.realtime import RealtimeChecker, iter_profiles
    from profiles.periods import parse_period
    from profiles.readers import load_profiles

    catalogue = load_catalogue()
    period = parse_period(args.period)
    profiles = list(iter_profiles(load_profiles(args.data, known_incentives=catalogue.known_incentives), period))
    checker = RealtimeChecker(catalogue, session=args.session)
    for profile in profiles:  # warm-up: rulesets compiled, caches filled, allocator settled
        checker.check(profile, period)
    baseline = {"evaluations": 0, "rss_mib": round(rss_mib(), 1), "peak_mib": round(peak_mib(), 1),
                "taxpayers": len(profiles), "period": period.text, "session": args.session,
                "python": sys.version.split()[0]}
    print(json.dumps({"baseline": baseline}), flush=True)
    targets = sorted(args.checkpoints)
    done, findings, start = 0, 0, time.perf_counter()
    points = []
    while targets:
        for profile in profiles:
            findings += len(checker.check(profile, period))
            done += 1
            if done == targets[0]:
                elapsed = time.perf_counter() - start
                point = {"evaluations": done, "seconds": round(elapsed, 1), "per_s": round(done / elapsed),
                         "rss_mib": round(rss_mib(), 1), "peak_mib": round(peak_mib(), 1), "findings": findings}
                points.append(point)
                print(json.dumps(point), flush=True)
                targets.pop(0)
                if not targets:
                    break
    growth = round(points[-1]["rss_mib"] - points[0]["rss_mib"], 1)
    print(json.dumps({"summary": {"rss_growth_first_to_last_mib": growth, "baseline_rss_mib": baseline["rss_mib"],
                                  "points": points}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
