"""`POST /api/v1/check` under a steady load: latency percentiles, errors and the server's resident memory.

    python -m bench.serve                        # starts `zhixiang serve` on a free 127.0.0.1 port, 200 req/s, 120 s
    python -m bench.serve --rate 200 --seconds 30
    python -m bench.serve --url http://127.0.0.1:8080 --token zx_… --pid 12345    # a server already running

Open loop: requests are sent on a fixed schedule (rate per second) whatever the answers, and each latency
is measured from the moment the request was due, so a stalled server shows up as latency instead of
slowing the load down (no coordinated omission). Bodies are real profiles (taxpayer, indicators, claims,
risk events) of the sample data, one period, taken in turn. Loopback only: the URL must be 127.0.0.1 or
localhost. Bounded: at most --seconds of load (capped at 600) plus a 10-second drain. Resident memory
(VmRSS of --pid, or of the server this script started) is sampled every 5 s. Prints a JSON report; exit
code 1 when a request failed or p99 exceeded --p99-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bodies(data: Path, period: str, limit: int) -> list[bytes]:
    """Profile JSON documents (as `zhixiang check --stdin` reads them) of taxpayers the period judges."""
    from engine.catalogue import load_catalogue
    from engine.realtime import iter_profiles
    from profiles.periods import parse_period
    from profiles.readers import load_profiles

    catalogue = load_catalogue()
    profiles = load_profiles(data, known_incentives=catalogue.known_incentives)
    out = []
    for profile in iter_profiles(profiles, parse_period(period)):
        doc = {"taxpayer": profile.taxpayer, "indicators": list(profile.indicators.values()),
               "claims": profile.claims, "risk_events": profile.risk_events}
        out.append(json.dumps(doc, ensure_ascii=False, default=str).encode())
        if len(out) >= limit:
            break
    return out


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def start_server(folder: Path) -> tuple[str, str, subprocess.Popen[bytes]]:
    """`zhixiang serve` on a free loopback port over a fresh state database with one analyst token."""
    import socket

    from notifier.db import open_state
    from workbench.accounts import add_token

    state = f"sqlite:///{folder / 'state.sqlite'}"
    engine = open_state(state)
    token = add_token(engine, "bench", "分析员", "")
    engine.dispose()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "serve.log", "wb")  # noqa: SIM115 — lives as long as the server
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--state", state, "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return f"http://127.0.0.1:{port}", token, process


async def wait_ready(url: str, seconds: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url + "/openapi.json", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"server at {url} did not answer within {seconds:.0f} s")


async def load(url: str, token: str, docs: list[bytes], period: str, rate: float, seconds: float,
               pid: int | None) -> dict[str, Any]:
    import httpx

    endpoint = f"{url}/api/v1/check?period={period}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    memory: list[tuple[float, int]] = []
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        for doc in docs[: min(len(docs), 200)]:  # warm-up: every body once, each must answer 200
            response = await client.post(endpoint, content=doc, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"warm-up request refused: {response.status_code} {response.text[:300]}")

        async def one(i: int, due: float) -> None:
            try:
                response = await client.post(endpoint, content=docs[i % len(docs)], headers=headers)
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                    return
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - due)

        async def sample_memory(start: float) -> None:
            while pid is not None:
                kib = rss_kib(pid)
                if kib is not None:
                    memory.append((round(time.perf_counter() - start, 1), kib))
                await asyncio.sleep(5)

        total = int(rate * seconds)
        start = time.perf_counter()
        sampler = asyncio.create_task(sample_memory(start))
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        _done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        elapsed = time.perf_counter() - start
        sampler.cancel()
    ms = [x * 1000 for x in latencies]
    if pending:
        errors["unfinished"] = len(pending)
    report: dict[str, Any] = {
        "url": endpoint, "rate_per_s": rate, "seconds": seconds, "requests": total, "ok": len(ms),
        "errors": errors, "achieved_rate_per_s": round(len(ms) / elapsed, 1),
        "latency_ms": {"p50": round(statistics.median(ms), 2), "p90": round(_quantile(ms, 0.90), 2),
                       "p99": round(_quantile(ms, 0.99), 2), "max": round(max(ms), 2)} if ms else None,
    }
    if memory:
        report["rss_mib"] = {"first": round(memory[0][1] / 1024, 1), "last": round(memory[-1][1] / 1024, 1),
                             "max": round(max(k for _, k in memory) / 1024, 1),
                             "samples": [(t, round(k / 1024, 1)) for t, k in memory]}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (127.0.0.1 or localhost); default: start one")
    parser.add_argument("--token", help="API token for --url (zhixiang tokens add)")
    parser.add_argument("--pid", type=int, help="the server's process id, to sample its resident memory")
    parser.add_argument("--data", type=Path, default=ROOT / "sample_data" / "hangzhou")
    parser.add_argument("--period", default="2025")
    parser.add_argument("--profiles", type=int, default=500, help="distinct profiles sent in turn")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=120.0, help="duration of the load (at most 600)")
    parser.add_argument("--p99-ms", type=float, default=25.0, help="exit 1 when p99 is above this")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, 600.0)
    docs = bodies(args.data, args.period, args.profiles)
    if not docs:
        parser.error(f"no taxpayer of {args.data} is judged for {args.period}")
    process = None
    with tempfile.TemporaryDirectory(prefix="zx-bench-serve-") as tmp:
        if args.url:
            if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
                parser.error("loopback only: --url must be http://127.0.0.1:PORT or http://localhost:PORT")
            if not args.token:
                parser.error("--url needs --token")
            url, token, pid = args.url.rstrip("/"), args.token, args.pid
        else:
            url, token, process = start_server(Path(tmp))
            pid = process.pid
        try:
            asyncio.run(wait_ready(url))
            report = asyncio.run(load(url, token, docs, args.period, args.rate, seconds, pid))
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    report["profiles"] = len(docs)
    report["cpu_count"] = os.cpu_count()
    print(json.dumps(report, ensure_ascii=False, indent=2))
    p99 = (report["latency_ms"] or {}).get("p99", float("inf"))
    return 0 if not report["errors"] and p99 <= args.p99_ms else 1


if __name__ == "__main__":
    sys.exit(main())
