"""Running the command line in-process, for the tests of several commands."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from engine.cli import main
from tests.builders.letters import RULES


def zx(*args: str) -> Result:
    """`zhixiang ARGS…` in-process; an unexpected exception propagates to the test."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def notify_args(findings: Path, out: Path, state: Path, *extra: str) -> list[str]:
    """`zhixiang notify` over a findings folder with the letters' snapshot catalogue, as of 2026-11-27."""
    return ["notify", "--findings", str(findings), "--out", str(out), "--state", str(state), "--as-of", "2026-11-27",
            "--rules", str(RULES), "--jobs", "1", *extra]
