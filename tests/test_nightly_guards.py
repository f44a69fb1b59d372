"""Nightly guards (issue 13): truncated input must not close cases; the output folder holds only what
zhixiang wrote, and nothing else is ever deleted."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from notifier.cases.tables import cases
from notifier.db import open_state
from notifier.nightly.pipeline import run_nightly
from tests.builders.nightly import AS_OF, make_config, write_config, write_data_folder

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


# --- the output folder ---------------------------------------------------------------------------------


def _nightly(config_path: Path, day: str, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["nightly", "--config", str(config_path), "--as-of", day, *extra])


def test_nightly_refuses_a_foreign_output_folder(tmp_path: Path, state_url: str) -> None:
    folder = write_data_folder(tmp_path / "data")
    config_path = write_config(tmp_path, state_url, data=folder)
    out = tmp_path / "runs"
    out.mkdir()
    (out / "important.txt").write_text("keep me", encoding="utf-8")
    got = _nightly(config_path, AS_OF)
    assert got.exit_code == 64, got.output
    assert "important.txt" in got.output and "--adopt-out" in got.output
    assert not (out / AS_OF).exists()
    got = _nightly(config_path, AS_OF, "--adopt-out")
    assert got.exit_code == 0, got.output
    assert (out / "important.txt").read_text(encoding="utf-8") == "keep me"
    assert _nightly(config_path, NEXT_DAY.isoformat()).exit_code == 0  # adopted once, then ours


def test_nightly_deletes_only_what_it_created(tmp_path: Path, state_url: str) -> None:
    folder = write_data_folder(tmp_path / "data")
    config_path = write_config(tmp_path, state_url, data=folder)
    out = tmp_path / "runs"
    assert _nightly(config_path, AS_OF).exit_code == 0
    # someone else's files in zhixiang's folders: a day folder, the staging area, the trash
    (out / AS_OF / "important.txt").write_text("keep", encoding="utf-8")
    (out / ".staging" / "notes").mkdir(parents=True)
    (out / ".staging" / "notes" / "a.txt").write_text("keep", encoding="utf-8")
    got = _nightly(config_path, AS_OF, "--force")
    assert got.exit_code == 0, got.output
    assert (out / ".staging" / "notes" / "a.txt").is_file()
    kept = list(out.rglob("important.txt"))
    assert kept and kept[0].read_text(encoding="utf-8") == "keep"


def test_nightly_never_follows_a_symlinked_staging_folder(tmp_path: Path, state_url: str) -> None:
    folder = write_data_folder(tmp_path / "data")
    config_path = write_config(tmp_path, state_url, data=folder)
    out = tmp_path / "runs"
    assert _nightly(config_path, AS_OF).exit_code == 0
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "data.txt").write_text("keep", encoding="utf-8")
    staging = out / ".staging"
    if staging.exists():
        staging.rmdir()
    os.symlink(victim, staging)
    got = _nightly(config_path, NEXT_DAY.isoformat())
    assert (victim / "sub" / "data.txt").is_file()
    assert got.exit_code == 64 and "符号链接" in got.output


def test_run_refuses_to_mix_its_files_with_foreign_ones(tmp_path: Path) -> None:
    from tests.builders.nightly import write_data_folder as data_folder

    data = data_folder(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.docx").write_text("x", encoding="utf-8")
    args = ["run", "--data", str(data), "--period", "2025", "--out", str(out), "--quiet"]
    got = CliRunner().invoke(main, args)
    assert got.exit_code == 64 and "report.docx" in got.output, got.output
    assert not (out / "findings.csv").exists()
    assert CliRunner().invoke(main, [*args, "--adopt-out"]).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0  # its own files again: fine
    empty = tmp_path / "fresh"
    assert CliRunner().invoke(main, ["run", "--data", str(data), "--period", "2025", "--out", str(empty),
                                     "--quiet"]).exit_code == 0
