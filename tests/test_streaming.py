"""Streaming runs (data larger than memory): the same findings, summary and quarantine as in memory.

A streaming run splits the data by taxpayer into buckets, validates and evaluates one bucket at a time
and sinks the findings; nothing here may differ from the in-memory run except the order of findings
and which rows are read (the period's, plus rows with a malformed period).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.catalogue import load_catalogue
from engine.cli import main
from engine.run import evaluate_period, evaluate_streaming
from profiles import streaming
from profiles.periods import parse_period
from profiles.readers import load_profiles
from profiles.streaming import bucket_of, bucket_source, clean_key, load_bucket
from profiles.validation import _clean_text
from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "hangzhou"
BROKEN = ROOT / "sample_data" / "broken"
KEY = ["taxpayer_id", "period", "rule_id"]


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["run", "--quiet", *args])
    assert result.exit_code == 0, result.output


def _summary(out: Path) -> dict[str, object]:
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {k: doc[k] for k in ("taxpayers_evaluated", "findings", "by_rule", "by_district", "inputs",
                                "quarantined_rows", "not_judged")}


@pytest.fixture(scope="module")
def sample_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed sample as Parquet (streaming reads Parquet lazily; CSV is read whole)."""
    folder = tmp_path_factory.mktemp("sample_parquet")
    for path in SAMPLE.glob("*.csv"):
        if path.stem != "planted":
            pl.read_csv(path, infer_schema=False).write_parquet(folder / f"{path.stem}.parquet")
    return folder


@pytest.mark.parametrize("period", ["2025", "2026Q3", "2025-11"])
def test_streaming_run_gives_the_in_memory_results(sample_parquet: Path, tmp_path: Path, period: str) -> None:
    _run(["--data", str(sample_parquet), "--period", period, "--out", str(tmp_path / "mem"), "--in-memory"])
    _run(["--data", str(sample_parquet), "--period", period, "--out", str(tmp_path / "str"), "--streaming",
          "--buckets", "5"])
    mem = pl.read_parquet(tmp_path / "mem" / "findings.parquet").sort(KEY)
    streamed = pl.read_parquet(tmp_path / "str" / "findings.parquet").sort(KEY)
    assert mem.height > 0
    assert streamed.equals(mem)
    assert _summary(tmp_path / "str") == _summary(tmp_path / "mem")
    csv = (tmp_path / "str" / "findings.csv").read_bytes()
    assert csv.startswith(b"\xef\xbb\xbf")  # Excel opens it
    assert pl.read_csv(tmp_path / "str" / "findings.csv").height == mem.height
    assert not (tmp_path / "str" / ".streaming").exists()  # the work folder is removed


def test_streaming_quarantine_is_the_in_memory_one_for_the_rows_it_reads(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    period = parse_period("2025")
    whole = evaluate_period(catalogue, load_profiles(BROKEN, known_incentives=catalogue.known_incentives), period)
    streamed = evaluate_streaming(catalogue, BROKEN, period, tmp_path / "work", buckets=3)
    # Rows of other (well-formed) periods are not read by a 2025 run; every other line must be there, in order.
    other: set[tuple[str, int]] = set()
    for name in ("indicators", "claims"):
        frame = pl.read_csv(BROKEN / f"{name}.csv", infer_schema=False).with_row_index("row", offset=2)
        cleaned = pl.col("period").str.strip_chars().str.to_uppercase()
        rows = frame.filter((cleaned != "2025") & cleaned.str.contains(r"^(\d{4}|\d{4}Q[1-4]|\d{4}-(0[1-9]|1[0-2]))$"))
        other |= {(f"{name}.csv", int(r)) for r in rows.get_column("row")}
    expected = whole.quarantine.filter(
        ~pl.struct("file", "row").map_elements(lambda s: (s["file"], s["row"]) in other, return_dtype=pl.Boolean))
    assert expected.height > 10
    assert streamed.quarantine.equals(expected)
    assert streamed.findings.height == whole.findings.height
    assert streamed.summary.equals(whole.summary)


def test_bucket_key_matches_how_validation_cleans_ids() -> None:
    raw = pl.Series("taxpayer_id", ["91330106mA2Y90019f", " 91330106MA2Y90019F\u3000", "\ufeff91330106MA2Y90019F\t",
                                    "", None, "  "])
    cleaned = pl.DataFrame(raw).select(clean_key("taxpayer_id")).to_series()
    assert cleaned.to_list() == _clean_text(raw, upper=True).to_list()
    buckets = pl.DataFrame(raw).select(bucket_of("taxpayer_id", 7)).to_series().to_list()
    assert len(set(buckets[:3])) == 1


def test_every_row_of_a_taxpayer_lands_in_its_bucket(sample_parquet: Path, tmp_path: Path) -> None:
    split = bucket_source(sample_parquet, period="2025", buckets=4, workdir=tmp_path / "b")
    seen: dict[str, int] = {}
    total = 0
    for k in range(4):
        profiles = load_bucket(split, k)
        total += profiles.taxpayers.height
        for table in (profiles.taxpayers, profiles.indicators, profiles.claims, profiles.risk_events):
            for tid in table.get_column("taxpayer_id").unique().to_list():
                assert seen.setdefault(tid, k) == k
        assert set(profiles.indicators.get_column("period").unique()) <= {"2025"}
    assert total == pl.read_parquet(sample_parquet / "taxpayers.parquet").height


def test_structural_problem_stops_a_streaming_run_before_anything_is_written(sample_parquet: Path,
                                                                            tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_parquet, data)
    pl.read_parquet(data / "indicators.parquet").drop("sales").write_parquet(data / "indicators.parquet")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--data", str(data), "--period", "2025", "--out", str(out),
                                       "--streaming"])
    assert result.exit_code == 2
    assert "sales" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_inputs_too_large_for_memory_stream_automatically(sample_parquet: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert streaming.input_bytes(sample_parquet) > 0
    monkeypatch.setattr(streaming, "available_memory", lambda: 1000)
    _run(["--data", str(sample_parquet), "--period", "2025", "--out", str(tmp_path / "auto")])
    timings = json.loads((tmp_path / "auto" / "summary.json").read_text(encoding="utf-8"))["timings_seconds"]
    assert timings["buckets"] >= 1 and "partition" in timings
    monkeypatch.setattr(streaming, "available_memory", lambda: 1 << 50)
    _run(["--data", str(sample_parquet), "--period", "2025", "--out", str(tmp_path / "small")])
    timings = json.loads((tmp_path / "small" / "summary.json").read_text(encoding="utf-8"))["timings_seconds"]
    assert "partition" not in timings


def test_findings_writer_appends_buckets_in_order_and_reports_a_failed_write(tmp_path: Path) -> None:
    from engine.findings import FINDINGS_SCHEMA
    from engine.run import FindingsWriter, OutputError

    catalogue = load_catalogue()
    findings = evaluate_period(catalogue, load_profiles(BROKEN, known_incentives=catalogue.known_incentives),
                               parse_period("2025")).findings
    writer = FindingsWriter(tmp_path / "ok")
    for part in (findings.head(3), findings.slice(3)):
        writer.append(part)
    files = writer.close()
    assert pl.read_parquet(files["findings.parquet"]).equals(findings)
    assert pl.read_csv(files["findings.csv"]).height == findings.height  # one header, BOM-stripped by Polars
    empty = FindingsWriter(tmp_path / "empty").close()
    assert pl.read_parquet(empty["findings.parquet"]).schema == pl.Schema(FINDINGS_SCHEMA)

    broken = FindingsWriter(tmp_path / "bad")
    broken.append(findings)
    broken.append(findings.with_columns(pl.col("estimated_amount").cast(pl.Float64)))  # a schema the file lacks
    with pytest.raises(OutputError, match="写入评估结果失败"):
        for _ in range(3):  # the error surfaces at the next append or at close, never hangs
            broken.append(findings)
        broken.close()
