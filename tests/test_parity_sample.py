"""On the committed sample data, `zhixiang run` (batch) and `zhixiang check --all` (durable-rules, one
taxpayer at a time) write byte-identical findings files, for a year, a quarter and a month."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from tests.parity_support import ROOT

SAMPLE = ROOT / "sample_data" / "hangzhou"

pytestmark = pytest.mark.skipif(not (SAMPLE / "taxpayers.csv").exists(), reason="sample_data/hangzhou not generated")


@pytest.mark.parametrize("period", ["2025", "2026Q3", "2026-09"])
def test_run_and_check_all_write_identical_files(tmp_path: Path, period: str) -> None:
    runner = CliRunner()
    batch, durable = tmp_path / "batch", tmp_path / "durable"
    result = runner.invoke(main, ["run", "--data", str(SAMPLE), "--period", period, "--out", str(batch), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["check", "--data", str(SAMPLE), "--period", period, "--all", "--engine", "durable",
                                  "--out", str(durable), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "完成（durable）" in result.output
    for name in ("findings.parquet", "findings.csv", "quarantine.csv"):
        assert (durable / name).read_bytes() == (batch / name).read_bytes(), name
    a, b = (json.loads((d / "summary.json").read_text(encoding="utf-8")) for d in (batch, durable))
    for key in ("taxpayers_evaluated", "findings", "by_rule", "by_district", "ruleset_version", "inputs"):
        assert a[key] == b[key], key
    assert a["findings"]["unclaimed"] > 0 and a["findings"]["improper"] > 0
