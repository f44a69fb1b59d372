"""Nightly guards (issue 13): truncated input must not close cases; the output folder holds only what
zhixiang wrote, and nothing else is ever deleted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from notifier.case_tables import cases
from notifier.db import open_state
from notifier.nightly import run_nightly
from tests.test_nightly_data import AS_OF, make_config, write_config, write_data_folder

DAY = date.fromisoformat(AS_OF)
NEXT_DAY = date(2026, 4, 16)


def _statuses(state_url: str) -> set[str]:
    engine = open_state(state_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(cases.c.status)).scalars())
    finally:
        engine.dispose()


def _truncate(folder: Path, table: str, keep: float) -> None:
    path = folder / f"{table}.csv"
    frame = pl.read_csv(path, infer_schema=False)
    frame.head(int(frame.height * keep)).write_csv(path)


@pytest.mark.parametrize("table,keep,words", [
    ("taxpayers", 0.0, "taxpayers 表为空"),
    ("taxpayers", 0.5, "taxpayers"),
    ("indicators", 0.6, "indicators"),
])
def test_a_shrunken_input_stops_before_the_case_ledger(tmp_path: Path, state_url: str, table: str, keep: float,
                                                       words: str) -> None:
    folder = write_data_folder(tmp_path / "data")
    config_path = write_config(tmp_path, state_url, data=folder)
    first = CliRunner().invoke(main, ["nightly", "--config", str(config_path), "--as-of", AS_OF])
    assert first.exit_code == 0, first.output
    before = _statuses(state_url)
    assert "open" in before or before - {"cleared"}
    _truncate(folder, table, keep)
    got = CliRunner().invoke(main, ["nightly", "--config", str(config_path), "--as-of", NEXT_DAY.isoformat()])
    assert got.exit_code == 2, got.output
    assert words in got.output and "--accept-shrink" in got.output
    assert _statuses(state_url) == before  # no case was closed
    assert not (tmp_path / "runs" / NEXT_DAY.isoformat()).exists()
    # proceeding on purpose: the flag (or [guards] accept_shrink)
    again = CliRunner().invoke(main, ["nightly", "--config", str(config_path), "--as-of", NEXT_DAY.isoformat(),
                                      "--accept-shrink"])
    if keep == 0.0:
        assert again.exit_code == 2 and "为空" in again.output  # an empty required table is never accepted
    else:
        assert again.exit_code == 0, again.output


def test_the_shrink_share_is_configurable(tmp_path: Path, state_url: str) -> None:
    folder = write_data_folder(tmp_path / "data")
    config = make_config(tmp_path, state_url, data=folder, extra="[guards]\nmax_shrink = 0.6\n")
    run_nightly(config, DAY)
    _truncate(folder, "taxpayers", 0.5)
    assert run_nightly(config, NEXT_DAY).status == "succeeded"


def test_accept_shrink_config_key(tmp_path: Path, state_url: str) -> None:
    folder = write_data_folder(tmp_path / "data")
    config = make_config(tmp_path, state_url, data=folder, extra="[guards]\naccept_shrink = true\n")
    run_nightly(config, DAY)
    _truncate(folder, "taxpayers", 0.5)
    assert run_nightly(config, NEXT_DAY).status == "succeeded"
