"""Hostile and broken input cells (issue 13): control characters, oversized text, out-of-range figures,
malformed tax-authority codes, nested Parquet columns and CSV fields beyond the csv module's limit.
Each is quarantined (or refused, for a whole file) with the file, row, column and a reason."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from profiles.errors import ProfileDataError, ProfileStructureError
from profiles.models import parse_profile_json
from profiles.readers import load_profiles
from profiles.schema import INDICATORS, TAXPAYERS
from sample_data.generator import CATALOGUE_IDS

ROOT = Path(__file__).resolve().parent.parent
HANGZHOU = ROOT / "sample_data" / "hangzhou"


def _folder(tmp_path: Path, n: int = 6) -> tuple[Path, pl.DataFrame, pl.DataFrame]:
    tp = pl.read_csv(HANGZHOU / "taxpayers.csv", infer_schema=False).head(n)
    ind = pl.read_csv(HANGZHOU / "indicators.csv", infer_schema=False).filter(
        pl.col("taxpayer_id").is_in(tp["taxpayer_id"].implode()))
    out = tmp_path / "data"
    out.mkdir()
    return out, tp, ind


def _write(out: Path, tp: pl.DataFrame, ind: pl.DataFrame) -> None:
    tp.write_csv(out / "taxpayers.csv")
    ind.write_csv(out / "indicators.csv")


def _set(frame: pl.DataFrame, row: int, column: str, value: str) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=pl.String))


@pytest.mark.parametrize("column,value", [
    ("email", "a@example.com\r\nBcc: victim@example.com"),
    ("name", "杭州\n某某公司"),
    ("name", "杭州某某\x00公司"),
    ("phone", "1380000\x070000"),
])
def test_control_characters_in_text_cells_are_quarantined(tmp_path: Path, column: str, value: str) -> None:
    out, tp, ind = _folder(tmp_path)
    _write(out, _set(tp, 1, column, value), ind)
    got = load_profiles(out, known_incentives=CATALOGUE_IDS)
    q = got.quarantine.filter(pl.col("column") == column)
    assert q.select("file", "row").rows() == [("taxpayers.csv", 3)]
    assert "控制字符" in q["reason"].item()
    assert tp["taxpayer_id"][1] not in got.taxpayers["taxpayer_id"].to_list()
    assert got.taxpayers.height == tp.height - 1
    # the value in the quarantine shows the characters escaped, never raw
    assert not any(ch in q["value"].item() for ch in "\r\n\x00\x07")


def test_every_text_column_has_a_documented_cap(tmp_path: Path) -> None:
    for table in (TAXPAYERS, INDICATORS):
        for col in table.columns:
            if col.kind == "string":
                assert col.length_cap > 0, col.name
    readme = (ROOT / "profiles" / "README.md").read_text(encoding="utf-8")
    assert f"最长 {TAXPAYERS.column('name').length_cap} 个字符" in readme
    out, tp, ind = _folder(tmp_path)
    _write(out, _set(tp, 2, "name", "公" * 150_000), ind)
    got = load_profiles(out, known_incentives=CATALOGUE_IDS)
    q = got.quarantine.filter(pl.col("column") == "name")
    assert q["row"].to_list() == [4] and "过长" in q["reason"].item()
    assert len(q["value"].item()) < 1000  # the quarantine shows a prefix, not 150k characters


def test_csv_with_a_long_field_and_a_quoted_newline_is_read(tmp_path: Path) -> None:
    out, tp, ind = _folder(tmp_path)
    tp = _set(tp, 0, "district", "西湖区\n（两行）")
    tp = _set(tp, 3, "name", "甲" * 200_000)
    _write(out, tp, ind)
    got = load_profiles(out, known_incentives=CATALOGUE_IDS)  # was: _csv.Error: field larger than field limit
    q = got.quarantine.filter(pl.col("file") == "taxpayers.csv")
    # the first record spans lines 2-3, so the fourth starts on line 6
    assert sorted(q.select("row", "column").rows()) == [(2, "district"), (6, "name")]


@pytest.mark.parametrize("column,value,word", [
    ("rd_expense", "-5000.00", "不能小于 0"),
    ("assets_qavg", "-1", "不能小于 0"),
    ("employees_qavg", "-3", "不能小于 0"),
    ("employees", "-2", "不能小于 0"),
    ("sales", "1" + "0" * 30, "不能大于"),
    ("taxable_income", "-" + "9" * 20, "不能小于"),
])
def test_figures_outside_their_range_are_quarantined(tmp_path: Path, column: str, value: str, word: str) -> None:
    out, tp, ind = _folder(tmp_path)
    _write(out, tp, _set(ind, 0, column, value))
    got = load_profiles(out, known_incentives=CATALOGUE_IDS)
    q = got.quarantine.filter(pl.col("column") == column)
    assert q.select("file", "row").rows() == [("indicators.csv", 2)]
    assert word in q["reason"].item()
    assert got.indicators.height == ind.height - 1


def test_negative_sales_and_taxable_income_stay_legal(tmp_path: Path) -> None:
    out, tp, ind = _folder(tmp_path)
    _write(out, tp, _set(_set(ind, 0, "sales", "-1200.50"), 1, "taxable_income", "-80000"))
    got = load_profiles(out, known_incentives=CATALOGUE_IDS)
    assert got.quarantine.height == 0


def test_ranges_and_caps_apply_to_a_single_profile_too() -> None:
    tp = pl.read_csv(HANGZHOU / "taxpayers.csv", infer_schema=False).row(0, named=True)
    ind = pl.read_csv(HANGZHOU / "indicators.csv", infer_schema=False).filter(
        pl.col("taxpayer_id") == tp["taxpayer_id"]).row(0, named=True)
    with pytest.raises(ProfileDataError) as err:
        parse_profile_json({"taxpayer": {**tp, "email": "a@b.cn\r\nBcc: x@y.cn"},
                            "indicators": [{**ind, "rd_expense": "-1"}]})
    text = str(err.value)
    assert "taxpayer.email" in text and "indicators[0].rd_expense" in text


@pytest.mark.parametrize("value", ["13301020000.", "1330102000", "1330102000O", "13301020000 x"])
def test_malformed_tax_authority_is_quarantined(tmp_path: Path, value: str) -> None:
    out, tp, ind = _folder(tmp_path)
    _write(out, _set(tp, 0, "tax_authority", value), ind)
    got = load_profiles(out, known_incentives=CATALOGUE_IDS)
    q = got.quarantine.filter(pl.col("column") == "tax_authority")
    assert q["row"].to_list() == [2] and "11 位数字" in q["reason"].item()


def test_two_authorities_never_share_a_task_file() -> None:
    from notifier.cases.tasks import authority_file_stems

    stems = authority_file_stems(["13301020000.", "13301020000", "a/b", "a_b", ""])
    assert len(set(stems.values())) == 5
    assert stems["13301020000"] == "13301020000"


@pytest.mark.parametrize("dtype,value", [
    (pl.List(pl.String), [["1"]]),
    (pl.Struct({"a": pl.Int64}), [{"a": 1}]),
])
def test_parquet_column_of_a_nested_type_is_refused(tmp_path: Path, dtype: pl.DataType, value: list) -> None:
    out, tp, ind = _folder(tmp_path, n=1)
    tp.write_csv(out / "taxpayers.csv")
    frame = ind.head(1).with_columns(pl.Series("sales", value, dtype=dtype))
    frame.write_parquet(out / "indicators.parquet")
    with pytest.raises(ProfileStructureError) as err:
        load_profiles(out, known_incentives=CATALOGUE_IDS)
    text = str(err.value)
    assert "indicators.parquet" in text and "sales" in text and "金额" in text
