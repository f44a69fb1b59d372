"""`POST /api/v1/check` under a steady load: latency percentiles, errors, CPU per request, resident memory.

    python -m bench.serve                        # starts `zhixiang serve --workers 2` on a free 127.0.0.1 port,
                                                 # 200 req/s for 120 s
    python -m bench.serve --rate 200 --seconds 30 --workers 1
    python -m bench.serve --url http://127.0.0.1:8080 --token zx_… --pid 12345    # a server already running

Open loop: requests are sent on a fixed schedule (rate per second) whatever the answers, and each latency
is measured from the moment the request was due, so a stalled server shows up as latency instead of
slowing the load down (no coordinated omission). Bodies are real profiles (taxpayer, indicators, claims,
risk events) of the sample data, one period, taken in turn. Loopback only: the URL must be 127.0.0.1 or
localhost. Bounded: at most --seconds of load (capped at 600) plus a 10-second drain.

The client is a small HTTP/1.1 keep-alive pool on asyncio streams (a general client such as httpx costs
about a millisecond of CPU per request, which on a 2-core machine competes with the server it measures).

Measured besides latency: the server's CPU per answered request (user + system time of the server
process and its workers over the load, from /proc — steady even when other work shares the machine, unlike
latency), the client's own CPU, the server's resident memory (VmRSS of the process tree, sampled every
5 s: first, last, max), and the machine: load average before and after, and how busy all cores were
(/proc/stat) during the load. Prints a JSON report; exit code 1 when a request failed or p99 exceeded
--p99-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


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
        out.append(profile_document(profile))
        if len(out) >= limit:
            break
    return out


def profile_document(profile: Any) -> bytes:
    """A TaxpayerProfile as the JSON body of `check --stdin` and `POST /api/v1/check`."""
    doc = {"taxpayer": profile.taxpayer, "indicators": list(profile.indicators.values()),
           "claims": profile.claims, "risk_events": profile.risk_events}
    return json.dumps(doc, ensure_ascii=False, default=str).encode()


# ------------------------------------------------------------------------------- the server's process tree


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat fields after the command name (index 0 is the state, 1 the parent, 11/12 utime/stime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot (/proc/stat's first line)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# ------------------------------------------------------------------------------------------ the server


def start_server(folder: Path, workers: int) -> tuple[str, str, subprocess.Popen[bytes]]:
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
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--state", state, "--port", str(port),
                                "--workers", str(workers)],
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


# ------------------------------------------------------------------------------------------ the client


class ResponseError(Exception):
    """A malformed HTTP answer."""


class Pool:
    """HTTP/1.1 keep-alive connections to one loopback server, one request at a time on each."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(size):
            self.idle.put_nowait(None)  # opened on first use

    async def post(self, request: bytes, timeout: float) -> tuple[int, bytes]:
        conn = await self.idle.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
            status, body, keep = await asyncio.wait_for(self._exchange(conn, request), timeout)
            if not keep:
                conn[1].close()
                conn = None
            return status, body
        except BaseException:
            if conn is not None:
                conn[1].close()
            conn = None
            raise
        finally:
            self.idle.put_nowait(conn)

    @staticmethod
    async def _exchange(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
                        ) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ResponseError(lines[0])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in headers:
            raise ResponseError("answer without Content-Length")
        body = await reader.readexactly(int(headers["content-length"]))
        return int(parts[1]), body, headers.get("connection", "").lower() != "close"

    async def close(self) -> None:
        while not self.idle.empty():
            conn = self.idle.get_nowait()
            if conn is not None:
                conn[1].close()


def check_request(host: str, port: int, path: str, token: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def load(url: str, token: str, docs: list[bytes], period: str, rate: float, seconds: float,
               pid: int | None, connections: int = 64) -> dict[str, Any]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    path = f"/api/v1/check?period={period}"
    requests = [check_request(host, port, path, token, doc) for doc in docs]
    pool = Pool(host, port, connections)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    memory: list[tuple[float, int]] = []
    tree = process_tree(pid) if pid is not None else []
    for request in requests[:200]:  # warm-up: every body once (each worker compiles what it needs), each 200
        status, answer = await pool.post(request, 30)
        if status != 200:
            raise RuntimeError(f"warm-up request refused: {status} {answer[:300].decode(errors='replace')}")

    async def one(i: int, due: float) -> None:
        try:
            status, _ = await pool.post(requests[i % len(requests)], 10)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ResponseError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        except TimeoutError:
            errors["timeout"] = errors.get("timeout", 0) + 1
            return
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
            return
        latencies.append(time.perf_counter() - due)

    async def sample_memory(start: float) -> None:
        while tree:
            kib = [k for k in (rss_kib(p) for p in tree) if k is not None]
            if kib:
                memory.append((round(time.perf_counter() - start, 1), sum(kib)))
            await asyncio.sleep(5)

    total = int(rate * seconds)
    load_before = os.getloadavg()
    busy_before = machine_busy()
    server_cpu_before = cpu_seconds(tree)
    client_before = resource.getrusage(resource.RUSAGE_SELF)
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
    server_cpu = cpu_seconds(tree) - server_cpu_before
    client_after = resource.getrusage(resource.RUSAGE_SELF)
    busy_after = machine_busy()
    load_after = os.getloadavg()
    sampler.cancel()
    await pool.close()
    ms = [x * 1000 for x in latencies]
    if pending:
        errors["unfinished"] = len(pending)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    report: dict[str, Any] = {
        "url": f"{url}{path}", "rate_per_s": rate, "seconds": seconds, "requests": total, "ok": len(ms),
        "errors": errors, "achieved_rate_per_s": round(len(ms) / elapsed, 1),
        "latency_ms": {"p50": round(statistics.median(ms), 2), "p90": round(_quantile(ms, 0.90), 2),
                       "p99": round(_quantile(ms, 0.99), 2), "max": round(max(ms), 2)} if ms else None,
        "cpu_ms_per_request": {
            "server": round(server_cpu * 1000 / len(ms), 2) if ms and tree else None,
            "client": round(client_cpu * 1000 / max(1, total), 2),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "all_cores_busy_pct": round(100 * (busy_after[0] - busy_before[0]) /
                                        max(1, busy_after[1] - busy_before[1]), 1),
        },
        "server_processes": len(tree),
    }
    if memory:
        report["rss_mib"] = {"start": round(memory[0][1] / 1024, 1), "end": round(memory[-1][1] / 1024, 1),
                             "max": round(max(k for _, k in memory) / 1024, 1),
                             "samples": [(t, round(k / 1024, 1)) for t, k in memory]}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (127.0.0.1 or localhost); default: start one")
    parser.add_argument("--token", help="API token for --url (zhixiang tokens add)")
    parser.add_argument("--pid", type=int, help="the server's process id, for its CPU and resident memory")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the server this script starts")
    parser.add_argument("--data", type=Path, default=ROOT / "sample_data" / "hangzhou")
    parser.add_argument("--period", default="2025")
    parser.add_argument("--profiles", type=int, default=500, help="distinct profiles sent in turn")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=120.0, help="duration of the load (at most 600)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections of the client")
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
            url, token, process = start_server(Path(tmp), args.workers)
            pid = process.pid
        try:
            asyncio.run(wait_ready(url))
            report = asyncio.run(load(url, token, docs, args.period, args.rate, seconds, pid, args.connections))
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    report["profiles"] = len(docs)
    if process is not None:
        report["workers"] = args.workers
    print(json.dumps(report, ensure_ascii=False, indent=2))
    p99 = (report["latency_ms"] or {}).get("p99", float("inf"))
    return 0 if not report["errors"] and p99 <= args.p99_ms else 1


if __name__ == "__main__":
    sys.exit(main())
