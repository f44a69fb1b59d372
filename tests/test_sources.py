"""PostgreSQL as a profile source: `zhixiang load`, reading back exactly, validation, snapshots.

Every test gets a fresh database on the server of ZHIXIANG_TEST_PG_URL (scripts/test starts one);
under CI a missing server fails the tests instead of skipping them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main
from profiles.database import (
    DatabaseUnavailableError,
    display_url,
    is_database_url,
    load_tables,
    snapshot_tables,
)
from profiles.errors import ProfileStructureError
from profiles.ids import make_credit_code
from profiles.readers import load_profiles
from profiles.schema import TABLES
from profiles.sources import load_source
from profiles.validation import ROW
from tests.conftest import fresh_pg_database

pytestmark = pytest.mark.postgres

BIG = Decimal("9999999999999999.99")  # the largest NUMERIC(18,2); a float would lose the cents


def _ids(n: int) -> list[str]:
    return [make_credit_code("330106", f"MA{i:06d}") for i in range(n)]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    with fresh_pg_database("zx_src_") as url:
        yield url


def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    import psycopg

    rows: list[tuple[object, ...]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in statements:
            cur = conn.execute(stmt)
            if cur.description:
                rows = list(cur.fetchall())
    return rows


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A small valid data folder as CSV: three enterprises, a year of figures, claims, a risk event."""
    ids = _ids(3)
    folder = tmp_path / "data"
    folder.mkdir()
    pl.DataFrame({
        "taxpayer_id": ids,
        "name": ["杭州甲科技有限公司", "杭州乙贸易有限公司", "杭州丙制造有限公司"],
        "entity_type": ["enterprise"] * 3,
        "vat_status": ["small_scale", "general", "general"],
        "vat_filing_cycle": ["quarter", "month", "month"],
        "industry_code": ["I6513", "F5191", "C3911"],
        "restricted_industry": ["false", "false", "true"],
        "tax_authority": ["13301060000"] * 3,
        "district": ["西湖区"] * 3,
        "credit_grade": ["A", "B", ""],
        "registered_on": ["2019-03-01", "2020-07-15", "2015-01-09"],
        "hnte_cert_issued_on": ["", "2023-11-01", ""],
        "hnte_cert_valid_until": ["", "2026-10-31", ""],
        "phone": ["13800000001", "13800000002", ""],
        "email": ["a@example.cn", "", ""],
        "preferred_channel": ["etax", "sms", "post"],
        "opt_out": ["false", "false", "true"],
    }).write_csv(folder / "taxpayers.csv")
    pl.DataFrame({
        "taxpayer_id": [ids[0], ids[1], ids[2], ids[0]],
        "period": ["2025", "2025", "2025", "2024"],
        "sales": ["1200000.50", str(BIG), "88000000", "900000"],
        "taxable_income": ["2999999.99", "3000000.01", "", "-12.34"],
        "employees_qavg": ["12.5", "310", "45", "10"],
        "assets_qavg": ["4000000", "49999999.99", "60000000", "3000000"],
        "employees": ["13", "320", "47", "10"],
        "disabled_employees": ["0", "2", "1", "0"],
        "rd_expense": ["150000.00", "0.01", "", "0"],
        "incremental_credit": ["0", "120000", "", "0"],
        "six_taxes_due": ["8000", "52000.10", "", "7000"],
    }).write_csv(folder / "indicators.csv")
    pl.DataFrame({
        "taxpayer_id": [ids[0], ids[1]],
        "period": ["2025", "2025"],
        "incentive": ["small_low_profit_cit", "small_low_profit_cit"],
        "amount": ["599999.99", "600000.00"],
    }).write_csv(folder / "claims.csv")
    pl.DataFrame({"taxpayer_id": [ids[2]], "event": ["tax_evasion_penalty"], "occurred_on": ["2024-05-06"]}) \
        .write_csv(folder / "risk_events.csv")
    return folder


def _contract(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop(ROW)


# --- URL handling ------------------------------------------------------------------------------------


def test_database_urls_are_told_from_folders_and_passwords_never_shown() -> None:
    assert is_database_url("postgresql://u@h/db")
    assert is_database_url("postgres://u@h/db")
    assert is_database_url("postgresql+psycopg://u@h/db")
    assert not is_database_url("sample_data/hangzhou")
    assert not is_database_url(Path("/tmp/x"))
    assert display_url("postgresql://tax:s3cret@db.local:5432/profiles") == "postgresql://tax:***@db.local:5432/profiles"
    assert display_url("postgresql://tax@db.local/profiles") == "postgresql://tax@db.local/profiles"


# --- loading -----------------------------------------------------------------------------------------


def test_load_creates_typed_tables_with_keys(pg_url: str, data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["load", "--data", str(data_dir), "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "indicators" in result.output
    types = dict(((t, c), (d, p, s)) for t, c, d, p, s in _sql(
        pg_url, "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale "
                "FROM information_schema.columns WHERE table_schema = 'public'"))
    assert types[("indicators", "sales")] == ("numeric", 18, 2)
    assert types[("claims", "amount")] == ("numeric", 18, 2)
    assert types[("taxpayers", "registered_on")][0] == "date"
    assert types[("taxpayers", "opt_out")][0] == "boolean"
    assert types[("taxpayers", "taxpayer_id")][0] == "text"
    assert types[("indicators", "employees")][0] == "bigint"
    assert types[("indicators", "employees_qavg")][0] == "double precision"
    keys = dict(_sql(pg_url, "SELECT tc.table_name, string_agg(k.column_name, ',' ORDER BY k.ordinal_position) "
                             "FROM information_schema.table_constraints tc "
                             "JOIN information_schema.key_column_usage k "
                             "USING (constraint_name, table_schema, table_name) "
                             "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'public' "
                             "GROUP BY tc.table_name"))
    assert keys == {"taxpayers": "taxpayer_id", "indicators": "taxpayer_id,period",
                    "claims": "taxpayer_id,period,incentive"}
    indexes = {r[0] for r in _sql(pg_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'risk_events'")}
    assert "risk_events_taxpayer_idx" in indexes
    assert _sql(pg_url, "SELECT sales::text FROM indicators WHERE period = '2025' ORDER BY sales DESC LIMIT 1") \
        == [(str(BIG),)]


def test_database_reads_back_exactly_what_the_folder_holds(pg_url: str, data_dir: Path) -> None:
    from_files = load_profiles(data_dir)
    load_tables(pg_url, {n: _contract(from_files.table(n)) for n in TABLES})
    from_db = load_source(pg_url)
    assert from_db.quarantine.height == 0
    for name in TABLES:
        want = _contract(from_files.table(name)).sort(list(TABLES[name].key) or ["taxpayer_id"])
        got = _contract(from_db.table(name))
        assert got.schema == want.schema, name
        assert got.equals(want), name
    sales = from_db.indicators.get_column("sales")
    assert sales.dtype == pl.Decimal(38, 2)
    assert BIG in sales.to_list()  # exact to the cent, not via float
    assert Decimal("0.01") in from_db.indicators.get_column("rd_expense").to_list()
    assert Decimal("-12.34") in from_db.indicators.get_column("taxable_income").to_list()


def test_snapshot_keeps_money_as_exact_text_in_key_order(pg_url: str, data_dir: Path, tmp_path: Path) -> None:
    CliRunner().invoke(main, ["load", "--data", str(data_dir), "--to", pg_url], catch_exceptions=False)
    snap = snapshot_tables(pg_url, tmp_path / "snap")
    assert snap.rows == {"taxpayers": 3, "indicators": 4, "claims": 2, "risk_events": 1}
    ind = pl.read_parquet(snap.files["indicators"])
    assert ind.schema["sales"] == pl.String  # NUMERIC is read as text, parsed by the shared validation
    assert ind.schema["employees"] == pl.Int64
    assert str(BIG) in ind.get_column("sales").to_list()
    assert ind.select("taxpayer_id", "period").rows() == sorted(ind.select("taxpayer_id", "period").rows())
    assert pl.read_parquet(snap.files["taxpayers"]).schema["registered_on"] == pl.Date
    assert snap.sources["claims"] == f"{display_url(pg_url)}#public.claims"
    assert not list((tmp_path / "snap").glob(".*.tmp"))


def test_append_adds_rows_and_refuses_duplicates_as_a_whole(pg_url: str, data_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["load", "--data", str(data_dir), "--to", pg_url]).exit_code == 0
    again = runner.invoke(main, ["load", "--data", str(data_dir), "--to", pg_url, "--mode", "append"])
    assert again.exit_code == 2
    assert "主键重复" in again.output and "没有写入任何数据" in again.output
    assert "Traceback" not in again.output
    assert _sql(pg_url, "SELECT count(*) FROM indicators") == [(4,)]
    extra = pl.DataFrame({"taxpayer_id": [_ids(1)[0]], "event": ["refund_fraud"],
                          "occurred_on": [date(2023, 1, 2)]})
    assert load_tables(pg_url, {"risk_events": extra}, mode="append") == {"risk_events": 1}
    assert _sql(pg_url, "SELECT count(*) FROM risk_events") == [(2,)]
    replaced = runner.invoke(main, ["load", "--data", str(data_dir), "--to", pg_url, "--mode", "replace"])
    assert replaced.exit_code == 0
    assert _sql(pg_url, "SELECT count(*) FROM risk_events") == [(1,)]


def test_load_leaves_quarantined_rows_out_and_reports_them(pg_url: str, data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "indicators.csv"
    text = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    text.append(text[1].replace("1200000.50", "12x"))  # unparsable money (and a duplicate key after it)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    q = tmp_path / "q.csv"
    result = CliRunner().invoke(main, ["load", "--data", str(data_dir), "--to", pg_url, "--quarantine", str(q)])
    assert result.exit_code == 0, result.output
    assert "未导入" in result.output
    assert _sql(pg_url, "SELECT count(*) FROM indicators") == [(4,)]
    lines = pl.read_csv(q)
    assert lines.height >= 1 and set(lines.get_column("文件")) == {"indicators.csv"}


# --- reading and validation --------------------------------------------------------------------------


def test_bad_rows_in_the_database_are_quarantined_like_bad_rows_in_files(pg_url: str, tmp_path: Path) -> None:
    ids = _ids(3)
    bad_id = ids[2][:-1] + ("0" if ids[2][-1] != "0" else "1")
    # Tables made by hand, the way a bureau's warehouse might hold them: no keys, money with four decimals,
    # dates kept as text.
    _sql(pg_url,
         "CREATE TABLE taxpayers (taxpayer_id varchar(18), name text, entity_type text, vat_status text, "
         "vat_filing_cycle text, industry_code text, restricted_industry boolean, tax_authority text, district text, "
         "credit_grade text, registered_on text, hnte_cert_issued_on date, hnte_cert_valid_until date, phone text, "
         "email text, preferred_channel text, opt_out boolean)",
         f"INSERT INTO taxpayers VALUES ('{ids[0]}', '甲', 'enterprise', 'general', 'month', 'C3911', false, "
         "'13301060000', '西湖区', 'A', '2020-01-01', NULL, NULL, NULL, NULL, 'etax', false), "
         f"('{ids[1]}', '乙', 'company', 'general', 'month', 'C3911', false, '13301060000', '西湖区', 'A', "
         "'2020-02-30', NULL, NULL, NULL, NULL, 'etax', false), "
         f"('{bad_id}', '丙', 'enterprise', 'general', 'month', 'C3911', false, '13301060000', '西湖区', 'A', "
         "'2020-01-01', NULL, NULL, NULL, NULL, 'etax', false)",
         "CREATE TABLE indicators (taxpayer_id text, period text, sales numeric(20,4), taxable_income numeric, "
         "employees_qavg numeric, assets_qavg double precision, employees integer, disabled_employees integer, "
         "rd_expense numeric, incremental_credit numeric, six_taxes_due numeric)",
         f"INSERT INTO indicators VALUES ('{ids[0]}', '2025', 100.1250, 1, 2.5, 3.5, 4, 0, 0, 0, 0), "
         f"('{ids[0]}', '2025', 5, 1, 2, 3, 4, 0, 0, 0, 0), "
         f"('{ids[0]}', '2025Q5', 5, 1, 2, 3, 4, 0, 0, 0, 0)",
         "CREATE TABLE claims (taxpayer_id text, period text, incentive text, amount numeric)",
         "CREATE TABLE risk_events (taxpayer_id text, event text, occurred_on date)")
    profiles = load_source(pg_url, known_incentives={"small_low_profit_cit"})
    q = profiles.quarantine
    file = lambda t: f"{display_url(pg_url)}#public.{t}"  # noqa: E731
    reasons = {(r["file"], r["row"], r["column"]): r["reason"] for r in q.iter_rows(named=True)}
    # taxpayers in key order: ids[0], ids[1], bad_id (sorted as text)
    order = sorted([ids[0], ids[1], bad_id])
    assert "取值无效" in reasons[(file("taxpayers"), order.index(ids[1]) + 1, "entity_type")]
    assert "不是有效日期" in reasons[(file("taxpayers"), order.index(ids[1]) + 1, "registered_on")]
    assert "校验码错误" in reasons[(file("taxpayers"), order.index(bad_id) + 1, "taxpayer_id")]
    ind = {k: v for k, v in reasons.items() if k[0] == file("indicators")}
    assert any("小数位超过两位" in v for (_, _, c), v in ind.items() if c == "sales")
    assert any("格式不正确" in v for (_, _, c), v in ind.items() if c == "period")
    assert any(c == "taxpayer_id+period" and "主键重复" in v for (_, _, c), v in ind.items())
    assert profiles.taxpayers.get_column("taxpayer_id").to_list() == [ids[0]]
    # Rows sharing a key are ordered by their other columns: sales 5 comes first and is kept; the 100.1250
    # row is both too precise and a duplicate.
    assert profiles.indicators.select("period", "sales").rows() == [("2025", Decimal("5.00"))]
    assert "Traceback" not in " ".join(reasons.values())
    # A run names the database tables in quarantine.csv, in memory and streaming alike (not the snapshot files).
    for label, extra in (("mem", ["--in-memory"]), ("stream", ["--streaming", "--buckets", "2"])):
        out = tmp_path / label
        result = CliRunner().invoke(main, ["run", "--data", pg_url, "--period", "2025", "--out", str(out), "--quiet",
                                           *extra])
        assert result.exit_code == 0, result.output
        files = set(pl.read_csv(out / "quarantine.csv", infer_schema=False).get_column("文件"))
        assert files == {file("taxpayers"), file("indicators")}, (label, files)


def test_missing_table_or_column_stops_with_a_message_naming_it(pg_url: str, data_dir: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["load", "--data", str(data_dir), "--to", pg_url], catch_exceptions=False)
    _sql(pg_url, "ALTER TABLE indicators DROP COLUMN six_taxes_due", "DROP TABLE taxpayers")
    with pytest.raises(ProfileStructureError) as exc:
        snapshot_tables(pg_url, data_dir.parent / "snap")
    assert not (data_dir.parent / "snap").exists()
    text = str(exc.value)
    assert "没有表 taxpayers" in text and "zhixiang load" in text
    assert "indicators" in text and "six_taxes_due" in text
    out = runner.invoke(main, ["run", "--data", pg_url, "--period", "2025", "--out", str(data_dir.parent / "o")])
    assert out.exit_code == 2
    assert "没有表 taxpayers" in out.output and "Traceback" not in out.output
    assert not (data_dir.parent / "o").exists()  # nothing written before a structural problem


def test_absent_optional_tables_are_empty_as_in_a_folder(pg_url: str, data_dir: Path) -> None:
    CliRunner().invoke(main, ["load", "--data", str(data_dir), "--to", pg_url], catch_exceptions=False)
    _sql(pg_url, "DROP TABLE claims", "DROP TABLE risk_events")
    profiles = load_source(pg_url)
    assert profiles.claims.height == 0 and profiles.risk_events.height == 0
    assert profiles.indicators.height == 4


def test_unreachable_database_is_a_runtime_error_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://tax:s3cret@127.0.0.1:1/profiles"
    with pytest.raises(DatabaseUnavailableError):
        snapshot_tables(url, tmp_path / "snap")
    out = CliRunner().invoke(main, ["run", "--data", url, "--period", "2025", "--out", str(tmp_path / "o")])
    assert out.exit_code == 4
    assert "无法连接数据库" in out.output and "s3cret" not in out.output and "Traceback" not in out.output
    out = CliRunner().invoke(main, ["load", "--data", str(tmp_path), "--to", "mysql://x"])
    assert out.exit_code != 0 and "postgresql://" in out.output


# --- runs from a database ----------------------------------------------------------------------------


def test_run_from_the_database_matches_the_folder_and_is_reproducible_from_its_snapshot(
        pg_url: str, data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["load", "--data", str(data_dir), "--to", pg_url]).exit_code == 0
    runs = {}
    for label, source in (("files", str(data_dir)), ("db", pg_url), ("snapshot", str(tmp_path / "db" / "snapshot"))):
        out = tmp_path / label
        result = runner.invoke(main, ["run", "--data", source, "--period", "2025", "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        runs[label] = out
    snap = runs["db"] / "snapshot"
    manifest = json.loads((snap / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["tables"]) == set(TABLES)
    assert manifest["tables"]["indicators"]["rows"] == 4
    summary = {k: json.loads((v / "summary.json").read_text(encoding="utf-8")) for k, v in runs.items()}
    assert summary["db"]["data"] == display_url(pg_url)
    assert {k: v["sha256"] for k, v in manifest["tables"].items()} == summary["db"]["inputs"]
    assert summary["snapshot"]["inputs"] == summary["db"]["inputs"]  # the snapshot is byte-identical input
    key = ["taxpayer_id", "period", "rule_id"]
    findings = {k: pl.read_parquet(v / "findings.parquet").sort(key) for k, v in runs.items()}
    assert findings["db"].height > 0
    assert findings["db"].equals(findings["files"])
    assert findings["snapshot"].equals(findings["db"])
    for k in ("taxpayers_evaluated", "findings", "by_rule"):
        assert summary["db"][k] == summary["files"][k] == summary["snapshot"][k]


def test_streaming_run_from_the_database_reads_its_snapshot(pg_url: str, data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["load", "--data", str(data_dir), "--to", pg_url]).exit_code == 0
    for label, extra in (("mem", ["--in-memory"]), ("stream", ["--streaming", "--buckets", "2"])):
        result = runner.invoke(main, ["run", "--data", pg_url, "--period", "2025", "--out", str(tmp_path / label),
                                      "--quiet", *extra])
        assert result.exit_code == 0, result.output
    key = ["taxpayer_id", "period", "rule_id"]
    mem = pl.read_parquet(tmp_path / "mem" / "findings.parquet").sort(key)
    assert pl.read_parquet(tmp_path / "stream" / "findings.parquet").sort(key).equals(mem)
    assert (tmp_path / "stream" / "snapshot" / "manifest.json").exists()
    summaries = [json.loads((tmp_path / d / "summary.json").read_text(encoding="utf-8")) for d in ("mem", "stream")]
    assert summaries[0]["inputs"] == summaries[1]["inputs"]
    assert summaries[0]["by_rule"] == summaries[1]["by_rule"]
