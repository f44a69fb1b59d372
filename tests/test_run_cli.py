"""`zhixiang run` and `zhixiang explain` end to end, through the CLI, on the committed sample data."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import EXIT_INPUT_ERROR, EXIT_RULE_ERROR, EXIT_USAGE
from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "hangzhou"
BROKEN = ROOT / "sample_data" / "broken"
PLANTED = pl.read_csv(SAMPLE / "planted.csv", infer_schema=False)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """Findings of every period that has planted cases."""
    out: dict[str, pl.DataFrame] = {}
    for period in sorted(set(PLANTED["period"].to_list())):
        folder = tmp_path_factory.mktemp(f"run-{period}")
        code, text = _run("run", "--data", str(SAMPLE), "--period", period, "--out", str(folder), "--quiet")
        assert code == 0, text
        out[period] = pl.read_parquet(folder / "findings.parquet")
    return out


def test_every_planted_case_is_found(sample_runs: dict[str, pl.DataFrame]) -> None:
    missed = []
    for row in PLANTED.iter_rows(named=True):
        findings = sample_runs[row["period"]]
        got = findings.filter((pl.col("taxpayer_id") == row["taxpayer_id"]) & (pl.col("rule_id") == row["rule_id"]))
        kinds = got["kind"].to_list()
        expected = row["expected_kind"]
        ok = kinds == [expected] if expected in ("unclaimed", "improper", "undetermined") else kinds == []
        if not ok:
            missed.append(f"{row['taxpayer_id']} {row['period']} {row['rule_id']}: 应为 {expected}，实际 {kinds} — "
                          f"{row['note']}")
    assert not missed, "\n".join(missed)


def test_missing_figures_are_never_improper(sample_runs: dict[str, pl.DataFrame]) -> None:
    for findings in sample_runs.values():
        improper = findings.filter(pl.col("kind") == "improper")
        statuses = improper.select(pl.col("evidence").list.eval(pl.element().struct.field("status")).alias("s"))
        # An improper finding is decided by a condition that failed on known figures.
        assert all("fail" in s for s in statuses["s"].to_list())


def test_outputs_are_complete_and_excel_friendly(tmp_path: Path) -> None:
    code, text = _run("run", "--data", str(SAMPLE), "--period", "2025", "--out", str(tmp_path))
    assert code == 0, text
    assert "评估结果" in text and "按区县" in text and "完成：" in text
    raw = (tmp_path / "findings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8 correctly
    header = raw[3:].split(b"\n", 1)[0].decode()
    for column in ("纳税人识别号", "所属期", "规则编号", "结果", "涉及金额（元）", "风险等级", "判定理由"):
        assert column in header.split(",")  # Chinese headers for analysts (profiles/excel.py)
    findings = pl.read_parquet(tmp_path / "findings.parquet")
    assert findings.height > 0
    assert pl.read_csv(tmp_path / "findings.csv", infer_schema=False).height == findings.height
    assert set(findings["kind"].unique()) <= {"unclaimed", "improper", "undetermined"}
    summary = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert '"ruleset_version"' in summary and '"by_rule"' in summary and '"by_district"' in summary
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_broken_rows_are_quarantined_and_the_run_goes_on(tmp_path: Path) -> None:
    code, text = _run("run", "--data", str(BROKEN), "--period", "2025", "--out", str(tmp_path), "--quiet")
    assert code == 0, text
    quarantine = pl.read_csv(tmp_path / "quarantine.csv", infer_schema=False)
    assert quarantine.height > 0
    assert set(quarantine.columns) >= {"文件", "行号", "列", "内容", "原因"}
    quarantine = quarantine.rename({"文件": "file", "行号": "row", "列": "column"})
    assert "Traceback" not in text
    expected = pl.read_csv(BROKEN / "expected_quarantine.csv", infer_schema=False)
    got = {(Path(f).name, r, c) for f, r, c in quarantine.select("file", "row", "column").iter_rows()}
    want = {(Path(f).name, r, c) for f, r, c in expected.select("file", "row", "column").iter_rows()}
    assert want <= got, sorted(want - got)


def test_missing_table_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "taxpayers.csv").write_text((SAMPLE / "taxpayers.csv").read_text(encoding="utf-8"), encoding="utf-8")
    code, text = _run("run", "--data", str(tmp_path), "--period", "2025", "--out", str(tmp_path / "out"), "--quiet")
    assert code == EXIT_INPUT_ERROR
    assert "indicators" in text and "Traceback" not in text
    assert not (tmp_path / "out" / "findings.parquet").exists()


def test_bad_period_is_a_usage_error() -> None:
    code, text = _run("run", "--data", str(SAMPLE), "--period", "2025Q5", "--out", "/tmp/never", "--quiet")
    assert code == EXIT_USAGE  # the command line is wrong, not the data (README: 64)
    assert "2026Q3" in text


def test_rule_errors_exit_with_the_rule_code(tmp_path: Path) -> None:
    rule = (ROOT / "rules" / "small_low_profit_cit.yaml").read_text(encoding="utf-8")
    (tmp_path / "small_low_profit_cit.yaml").write_text(rule.replace("employees_qavg <=", "employes_qavg <="),
                                                        encoding="utf-8")
    code, text = _run("run", "--data", str(SAMPLE), "--period", "2025", "--out", str(tmp_path / "o"),
                      "--rules", str(tmp_path), "--quiet")
    assert code == EXIT_RULE_ERROR
    assert "employes_qavg" in text and "employees_qavg" in text  # did-you-mean


def test_explain_lists_every_condition_in_chinese() -> None:
    taxpayer = PLANTED.filter(pl.col("rule_id") == "small_low_profit_cit", pl.col("period") == "2025",
                              pl.col("expected_kind") == "improper")["taxpayer_id"][0]
    code, text = _run("explain", "--data", str(SAMPLE), "--period", "2025", "--taxpayer", taxpayer)
    assert code == 0, text
    assert "小型微利企业" in text and "违规享受" in text
    assert "✘" in text and "✔" in text


def test_explain_unknown_taxpayer_is_an_input_error() -> None:
    code, text = _run("explain", "--data", str(SAMPLE), "--period", "2025", "--taxpayer", "91330106MA2Y9999XX")
    assert code == EXIT_INPUT_ERROR
    assert "不在" in text


def test_explain_shows_no_amount_on_rules_that_do_not_apply() -> None:
    # 91330106MA2Y00028P: the batch computes amounts for rules that do not apply to it (e.g. hnte_15pct)
    code, text = _run("explain", "--data", str(SAMPLE), "--period", "2025", "--taxpayer", "91330106MA2Y00028P")
    assert code == 0, text
    headlines = [line for line in text.splitlines() if " — " in line]
    assert any("不适用" in line for line in headlines)
    assert not [line for line in headlines if "不适用" in line and "金额" in line]
    assert any("违规享受" in line and "金额" in line for line in headlines)
