"""`zhixiang check` through the CLI runner: text, JSON, standard input, --all, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import EXIT_USAGE
from tests.test_durable_engine import _write_folder
from tests.test_durable_realtime import TAXPAYER, small_firm


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("check") / "data"
    _write_folder(folder)
    return folder


def zx(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_findings_with_evidence_and_reasons(data: Path) -> None:
    code, out, _ = zx("check", "--data", str(data), "--period", "2025", "--taxpayer", TAXPAYER)
    assert code == 0
    assert "杭州样例科技有限公司" in out and "应享未享" in out and "待核实" in out
    assert "从业人数 120 人，未超过 300 人上限" in out
    assert "本年度有研发费用：缺少研发费用，无法判断" in out


def test_json_output_is_the_same_on_both_engines(data: Path) -> None:
    outputs = []
    for engine in ("durable", "polars"):
        code, out, _ = zx("check", "--data", str(data), "--period", "2025", "--taxpayer", TAXPAYER, "--json",
                          "--engine", engine)
        assert code == 0
        outputs.append(json.loads(out))
    assert outputs[0] == outputs[1]
    assert {r["rule_id"] for r in outputs[0]} >= {"small_low_profit_cit", "six_taxes_two_fees_half"}
    assert all(r["kind"] in ("unclaimed", "improper", "undetermined") for r in outputs[0])


def test_a_profile_on_standard_input(data: Path) -> None:
    code, out, _ = zx("check", "--stdin", "--period", "2025", "--json", stdin=json.dumps(small_firm()))
    assert code == 0
    from_folder = zx("check", "--data", str(data), "--period", "2025", "--taxpayer", TAXPAYER, "--json")[1]
    assert json.loads(out) == json.loads(from_folder)
    code, out, _ = zx("check", "--data", "-", "--period", "2025", stdin=json.dumps(small_firm()))
    assert code == 0 and "小型微利企业" in out


def test_check_all_writes_the_batch_files(data: Path, tmp_path: Path) -> None:
    assert zx("run", "--data", str(data), "--period", "2025", "--out", str(tmp_path / "b"), "--quiet")[0] == 0
    code, out, _ = zx("check", "--data", str(data), "--period", "2025", "--all", "--out", str(tmp_path / "d"))
    assert code == 0 and "户/秒" in out
    for name in ("findings.parquet", "findings.csv", "quarantine.csv"):
        assert (tmp_path / "d" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_taxpayer_without_figures_for_the_period(data: Path) -> None:
    code, out, _ = zx("check", "--data", str(data), "--period", "2024", "--taxpayer", TAXPAYER)
    assert code == 0 and "没有指标数据或申报记录" in out


def test_a_malformed_period_is_a_usage_error(data: Path) -> None:
    code, _, err = zx("check", "--data", str(data), "--period", "2025Q5", "--taxpayer", TAXPAYER)
    assert code == EXIT_USAGE and "格式不正确" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--period", "2025", "--taxpayer", TAXPAYER], None, "--data"),
    (["--data", "DATA", "--period", "2025"], None, "--taxpayer"),
    (["--data", "DATA", "--period", "2025", "--taxpayer", "91330106MA2Y00028P"], None, "不在"),
    (["--data", "DATA", "--period", "2025", "--all"], None, "--out"),
    (["--stdin", "--period", "2025"], "{not json", "不是合法的 JSON"),
    (["--stdin", "--period", "2025"], '{"taxpayer": {"taxpayer_id": "' + TAXPAYER + '"}, "indicator": []}',
     "您是不是要写 indicators"),
    (["--stdin", "--period", "2025", "--taxpayer", "91330106MA2Y00028P"], json.dumps(small_firm()), "不是 --taxpayer"),
])
def test_input_errors_are_messages_with_exit_code_2(data: Path, args: list[str], stdin: str | None,
                                                     message: str) -> None:
    code, _, err = zx("check", *[str(data) if a == "DATA" else a for a in args], stdin=stdin)
    assert code == 2
    assert message in err and "Traceback" not in err
