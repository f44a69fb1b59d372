"""Every CSV written for Excel is safe to open there: no cell Excel would run as a formula (CSV injection),
ids and periods kept text (no 9.13E+17, no dates), Chinese headers (profiles/excel.py)."""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from engine.cli import main
from notifier.cases.tasks import COLUMNS, _csv_value
from notifier.letters.outbox import MANIFEST_COLUMNS, ManifestRow, Outbox, read_manifest
from notifier.nightly.diff import write_diff
from profiles import excel
from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "hangzhou"
HOSTILE = ["=HYPERLINK(\"http://x.example/\",\"点我\")", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_AS_TEXT = re.compile(r'^="\+?[0-9A-Za-z][0-9A-Za-z\-]*"$')
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _cells(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), f"{path.name}: no BOM"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _assert_safe(path: Path, text_headers: tuple[str, ...]) -> list[dict[str, str]]:
    header, rows = _cells(path)
    assert rows, f"{path.name}: no rows"
    assert all(not re.fullmatch(r"[a-z_]+", h) for h in header), f"{path.name}: English header {header}"
    for row in rows:
        for name, value in row.items():
            if _FORMULA.match(value):
                assert _AS_TEXT.match(value) or _NUMBER.match(value), f"{path.name} {name}: {value!r}"
        for name in text_headers:
            value = row[name]
            assert value == "" or _AS_TEXT.match(value) or not re.fullmatch(r"[0-9.E+\-]+", value), \
                f"{path.name} {name}: {value!r} would not stay text in Excel"
    return rows


def test_cell_rules() -> None:
    assert excel.neutralise("=1+1") == "'=1+1"
    assert excel.neutralise("\r=1") == "'\r=1"
    assert excel.neutralise("杭州") == "杭州"
    assert excel.keep_text("913301102615805095") == '="913301102615805095"'
    assert excel.keep_text("2026-08") == '="2026-08"'
    assert excel.keep_text('=1+"x"') == "'=1+\"x\""  # not id-shaped: never inside a formula
    assert excel.plain('="2026-08"') == "2026-08"
    assert excel.cell("taxpayer_name", "@x") == "'@x"
    assert excel.cell("estimated_amount", Decimal("-12.50")) == "-12.50"


def test_run_csvs_are_safe_for_excel(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("indicators.csv", "claims.csv", "risk_events.csv"):
        (data / name).write_bytes((SAMPLE / name).read_bytes())
    tp = pl.read_csv(SAMPLE / "taxpayers.csv", infer_schema=False)
    tp = tp.with_columns(pl.Series("name", [HOSTILE[i % len(HOSTILE)] + "公司" for i in range(tp.height)]))
    # a broken cell that lands in the quarantine's value column
    tp = tp.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("=cmd|' /C calc'!A0"))
                         .otherwise(pl.col("registered_on")).alias("registered_on"))
    tp.write_csv(data / "taxpayers.csv")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--data", str(data), "--period", "2025", "--out", str(out), "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = _assert_safe(out / "findings.csv", ("纳税人识别号", "所属期", "主管税务机关"))
    assert {r["所属期"] for r in rows} == {'="2025"'}
    assert any(r["纳税人名称"].startswith("'=HYPERLINK") for r in rows)
    assert {r["结果"] for r in rows} <= {"应享未享", "违规享受", "待核实"}
    assert {r["风险等级"] for r in rows} <= {"", "高风险", "中风险", "低风险"}
    quarantine = _assert_safe(out / "quarantine.csv", ())
    assert any(r["内容"].startswith("'=cmd") for r in quarantine)
    parquet = pl.read_parquet(out / "findings.parquet")  # machine-readable copy untouched
    assert parquet["taxpayer_id"].str.starts_with("=").sum() == 0


def test_diff_and_manifest_csvs_are_safe_for_excel(tmp_path: Path) -> None:
    diff = pl.DataFrame({
        "taxpayer_id": ["913301102615805095"], "period": ["2026-08"], "rule_id": ["hnte_15pct"],
        "rule_name": ["高新技术企业15%税率"], "status": ["new"], "status_label": ["新增"], "changes": [""],
        "kind": ["improper"], "kind_prev": [None], "risk_tier": ["high"], "risk_tier_prev": [None],
        "estimated_amount": [Decimal("-1.00")], "estimated_amount_prev": [None], "amount_delta": [Decimal("-1.00")],
        "taxpayer_name": ["-1公司"], "district": ["@区"], "tax_authority": ["13301020000"],
    }, schema_overrides={"estimated_amount_prev": pl.Decimal(18, 2), "kind_prev": pl.String,
                         "risk_tier_prev": pl.String})
    _, csv_path = write_diff(diff, tmp_path)
    (row,) = _assert_safe(csv_path, ("纳税人识别号", "所属期", "主管税务机关"))
    assert row["纳税人名称"] == "'-1公司" and row["结果"] == "违规享受" and row["风险等级"] == "高风险"

    outbox = Outbox(tmp_path / "outbox")
    outbox.root.mkdir()
    manifest = ManifestRow("913301102615805095", "=1+1", "13301020000", "sms", "13800138000", (), (), (), 0,
                           "0.00", "12345678", "dry_run")
    outbox.write_manifest([manifest])
    (shown,) = _assert_safe(outbox.root / "manifest.csv", ("纳税人识别号", "收件地址", "发件包编号"))
    assert shown["渠道"] == "短信" and shown["收件地址"] == '="13800138000"'
    (back,) = read_manifest(outbox.root / "manifest.csv")
    assert back["taxpayer_id"] == "913301102615805095" and back["channel"] == "sms" and back["status"] == "dry_run"
    assert set(back) == set(MANIFEST_COLUMNS)


def test_task_csv_keeps_ids_text() -> None:
    by_header = {c.header: c for c in COLUMNS}
    assert _csv_value(by_header["纳税人识别号"], "913301102615805095") == '="913301102615805095"'
    assert _csv_value(by_header["所属期"], "2026-08") == '="2026-08"'
    assert _csv_value(by_header["纳税人名称"], "=1+1") == "'=1+1"
    assert _csv_value(by_header["立案日期"], date(2026, 8, 1)) == "2026-08-01"
