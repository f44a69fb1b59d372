"""A real `zhixiang serve` on 127.0.0.1 for the workbench tests: started, waited for, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_server(folder: Path, *args: str, ready: str = "/login",
                   timeout: float = 120) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`zhixiang serve ARGS --port <free>`, logging to FOLDER/serve.log; yields (url, process) once
    `ready` answers 200 (the log is the error when it never does)."""
    port = free_port()
    with open(folder / "serve.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", *args, "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + ready, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError((folder / "serve.log").read_text())
            time.sleep(0.25)
        try:
            yield url, process
        finally:
            process.terminate()
            process.wait(30)
