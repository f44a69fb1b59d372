"""Reading data folders: encodings, Parquet, row numbers, and structural errors with their fixes."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from profiles.errors import ProfileError, ProfileStructureError
from profiles.readers import load_profiles
from profiles.schema import CLAIMS, INDICATORS, MONEY_DTYPE, TAXPAYERS
from profiles.validation import ROW
from sample_data.generator import CATALOGUE_IDS

ROOT = Path(__file__).resolve().parent.parent
HANGZHOU = ROOT / "sample_data" / "hangzhou"
BROKEN = ROOT / "sample_data" / "broken"


@pytest.fixture(scope="module")
def hangzhou():  # type: ignore[no-untyped-def]
    return load_profiles(HANGZHOU, known_incentives=CATALOGUE_IDS)


def _small_folder(tmp_path: Path, n_taxpayers: int = 40) -> Path:
    """A copy of the first taxpayers of the sample set (and their rows), as CSV."""
    tp = pl.read_csv(HANGZHOU / "taxpayers.csv", infer_schema=False).head(n_taxpayers)
    ids = tp["taxpayer_id"].implode()
    out = tmp_path / "data"
    out.mkdir()
    tp.write_csv(out / "taxpayers.csv")
    for name in ("indicators", "claims", "risk_events"):
        frame = pl.read_csv(HANGZHOU / f"{name}.csv", infer_schema=False)
        frame.filter(pl.col("taxpayer_id").is_in(ids)).write_csv(out / f"{name}.csv")
    return out


def test_sample_set_loads_clean_with_exact_dtypes(hangzhou) -> None:  # type: ignore[no-untyped-def]
    assert hangzhou.quarantine.height == 0
    assert hangzhou.taxpayers.height > 3000 and hangzhou.indicators.height > 30000
    for table, frame in (
        (TAXPAYERS, hangzhou.taxpayers),
        (INDICATORS, hangzhou.indicators),
        (CLAIMS, hangzhou.claims),
    ):
        assert {c: frame.schema[c] for c in table.names} == table.polars_schema
        assert frame.schema[ROW] == pl.Int64
    assert hangzhou.indicators.schema["sales"] == MONEY_DTYPE
    assert set(hangzhou.sources) == {"taxpayers", "indicators", "claims", "risk_events"}
    assert all(len(h) == 64 for h in hangzhou.input_hashes.values())
    # CSV line numbers: header is line 1
    first = pl.read_csv(HANGZHOU / "taxpayers.csv", infer_schema=False, n_rows=1)["taxpayer_id"][0]
    assert hangzhou.taxpayers.filter(pl.col("taxpayer_id") == first)[ROW].item() == 2


def test_gbk_bom_and_parquet_files_are_read(tmp_path: Path) -> None:
    data = _small_folder(tmp_path)
    expected = load_profiles(data)
    tp = (data / "taxpayers.csv").read_text(encoding="utf-8")
    (data / "taxpayers.csv").write_bytes(tp.encode("gb18030"))
    ind = (data / "indicators.csv").read_text(encoding="utf-8")
    (data / "indicators.csv").write_bytes(b"\xef\xbb\xbf" + ind.encode("utf-8"))
    claims = pl.read_csv(data / "claims.csv", infer_schema=False)
    claims.with_columns(pl.col("amount").cast(pl.Decimal(38, 2))).write_parquet(data / "claims.parquet")
    (data / "claims.csv").unlink()
    got = load_profiles(data)
    assert got.quarantine.height == 0
    assert got.taxpayers.drop(ROW).equals(expected.taxpayers.drop(ROW))
    assert got.indicators.equals(expected.indicators)
    assert got.claims.drop(ROW).equals(expected.claims.drop(ROW))
    assert got.claims[ROW].to_list()[:3] == [1, 2, 3]  # parquet rows are 1-based positions
    assert got.sources["claims"].suffix == ".parquet"
    assert got.input_hashes["taxpayers"] != expected.input_hashes["taxpayers"]


def test_utf16_tab_separated_and_float_parquet_money(tmp_path: Path) -> None:
    data = _small_folder(tmp_path, 5)
    expected = load_profiles(data)
    tp = pl.read_csv(data / "taxpayers.csv", infer_schema=False)
    (data / "taxpayers.csv").write_bytes(tp.write_csv(separator="\t").encode("utf-16"))
    ind = pl.read_csv(data / "indicators.csv", infer_schema=False)
    money = [c.name for c in INDICATORS.columns if c.kind == "money"]
    ind.with_columns(pl.col(money).cast(pl.Float64), pl.col("employees").cast(pl.Int64)).write_parquet(
        data / "indicators.parquet"
    )
    (data / "indicators.csv").unlink()
    got = load_profiles(data)
    assert got.quarantine.height == 0
    assert got.taxpayers.drop(ROW).equals(expected.taxpayers.drop(ROW))
    assert got.indicators.drop(ROW).equals(expected.indicators.drop(ROW))


def test_extra_and_missing_optional_columns_and_tables(tmp_path: Path) -> None:
    data = _small_folder(tmp_path, 5)
    tp = pl.read_csv(data / "taxpayers.csv", infer_schema=False)
    tp.drop("software_copyright", "key_group_owner").with_columns(pl.lit("x").alias("备注")).write_csv(
        data / "taxpayers.csv"
    )
    (data / "claims.csv").unlink()
    (data / "risk_events.csv").unlink()
    got = load_profiles(data)
    assert got.taxpayers["software_copyright"].null_count() == got.taxpayers.height
    assert got.taxpayers.schema["key_group_owner"] == pl.Boolean
    assert got.taxpayers["备注"].unique().to_list() == ["x"]
    assert got.claims.height == 0 and got.claims.schema["amount"] == MONEY_DTYPE
    assert got.risk_events.height == 0 and "claims" not in got.sources


def test_multiline_quoted_values_and_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    data = _small_folder(tmp_path, 3)
    lines = (data / "taxpayers.csv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    cols = header.split(",")
    i = cols.index("name")
    first = rows[0].split(",")
    first[i] = '"杭州\n换行有限公司"'
    second = rows[1].split(",")
    second[cols.index("entity_type")] = "bogus"
    (data / "taxpayers.csv").write_text(
        "\n".join([header, ",".join(first), "", ",".join(second), rows[2]]) + "\n", encoding="utf-8"
    )
    got = load_profiles(data)
    # line 2-3: first row (two physical lines; a name may not hold a line break), 4: blank, 5: the bogus row,
    # 6: third row
    lines = got.quarantine.filter(pl.col("file") == "taxpayers.csv").select("row", "column").rows()
    assert lines == [(2, "name"), (5, "entity_type")]
    assert sorted(got.taxpayers[ROW].to_list()) == [6]


def test_missing_required_table(tmp_path: Path) -> None:
    data = _small_folder(tmp_path, 2)
    (data / "indicators.csv").rename(data / "indicator.csv")
    with pytest.raises(ProfileStructureError) as err:
        load_profiles(data)
    msg = str(err.value)
    assert (
        "缺少 indicators 表" in msg
        and "indicator.csv" in msg
        and "indicators.csv 或 indicators.parquet" in msg
    )
    assert err.value.exit_code == 2 and isinstance(err.value, ProfileError)


def test_missing_required_column_names_the_closest_header(tmp_path: Path) -> None:
    data = _small_folder(tmp_path, 2)
    ind = pl.read_csv(data / "indicators.csv", infer_schema=False)
    ind.rename({"employees_qavg": "employee_qavg"}).drop("six_taxes_due").write_csv(data / "indicators.csv")
    with pytest.raises(ProfileStructureError) as err:
        load_profiles(data)
    msg = str(err.value)
    assert str(data / "indicators.csv") in msg
    assert "'employees_qavg'（从业人数）" in msg and "'employee_qavg'" in msg and "改名" in msg
    assert "'six_taxes_due'" in msg and "请在表头补上这些列" in msg


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "空文件"),
        (b"\xff\xfe\x00", "UTF-16"),
        (b"taxpayer_id,name\n" + bytes([0x81, 0x20, 0xFF, 0xFE, 0x80]), "编码无法识别"),
        (b"taxpayer_id,taxpayer_id\n1,2\n", "重复的列名"),
        (b"taxpayer_id,name\n1,2,3\n", "字段数多于表头"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    data = _small_folder(tmp_path, 2)
    (data / "taxpayers.csv").write_bytes(content)
    with pytest.raises(ProfileStructureError) as err:
        load_profiles(data)
    assert fragment in str(err.value) and "taxpayers.csv" in str(err.value)


def test_damaged_parquet_two_files_and_bad_folder(tmp_path: Path) -> None:
    data = _small_folder(tmp_path, 2)
    (data / "claims.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ProfileStructureError, match="多个文件"):
        load_profiles(data)
    (data / "claims.csv").unlink()
    with pytest.raises(ProfileStructureError, match="不是可读的 Parquet 文件"):
        load_profiles(data)
    with pytest.raises(ProfileStructureError, match="不存在"):
        load_profiles(tmp_path / "nowhere")
    with pytest.raises(ProfileStructureError, match="不是目录"):
        load_profiles(data / "taxpayers.csv")


def test_cli_reports_structural_errors_without_traceback(tmp_path: Path) -> None:
    cli = pytest.importorskip("engine.cli")
    from click.testing import CliRunner

    data = tmp_path / "empty"
    data.mkdir()
    shutil.copy(BROKEN / "claims.csv", data / "claims.csv")
    result = CliRunner().invoke(
        cli.main, ["run", "--data", str(data), "--period", "2025", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "taxpayers" in result.output
    assert not (tmp_path / "out" / "findings.parquet").exists()
