"""The whole catalogue inside DuckDB and PostgreSQL agrees with the Polars batch engine.

Generated profiles (tests/parity_support.py: figures at every threshold, gaps, claims, event windows)
give the same outcome, amounts, tier and evidence for every taxpayer × rule, compliant and not-applicable
included, and the same findings and summary; `zhixiang run --engine duckdb` writes byte-identical files
on the sample data; the generated SQL for every dialect parses; a construct a dialect cannot express
is refused at load with file:line, naming the backend; PostgreSQL's own tables are evaluated in place.
Spark: tests/test_sql_spark.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.backends.sql import plan_sql
from engine.catalogue import Catalogue, load_catalogue
from engine.cli import main
from engine.errors import EXIT_INPUT_ERROR, EXIT_RULE_ERROR
from engine.findings import OUTCOMES
from engine.run import evaluate_period
from engine.sql_run import evaluate_period_sql
from profiles.periods import parse_period
from tests.parity_support import PERIODS, PROBE_RULES, ROOT, catalogues, every_outcome_batch, profile_tables
from tests.test_parity_property import _SETTINGS as _PARITY_SETTINGS
from tests.test_sql_backend import pg_url  # noqa: F401 (a fixture)

CATALOGUES = catalogues()
_SETTINGS: dict[str, Any] = dict(_PARITY_SETTINGS)
SAMPLE = ROOT / "sample_data" / "hangzhou"


def assert_sql_agrees(catalogue: Catalogue, profiles: object, period: str, engine: str = "duckdb",
                      url: str | None = None) -> None:
    p = parse_period(period)
    every = evaluate_period_sql(catalogue, profiles, p, engine, url, outcomes=OUTCOMES).findings
    assert_frame_equal(every.sort(["taxpayer_id", "rule_id"]), every_outcome_batch(catalogue, profiles, p))  # type: ignore[arg-type]
    batch = evaluate_period(catalogue, profiles, p)
    sql = evaluate_period_sql(catalogue, profiles, p, engine, url)
    assert_frame_equal(sql.findings, batch.findings)
    assert_frame_equal(sql.summary, batch.summary)
    assert sql.taxpayers_evaluated == batch.taxpayers_evaluated


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=["catalogue", "probes"])
@settings(max_examples=15, derandomize=True, **_SETTINGS)
@given(period=st.sampled_from(PERIODS), data=st.data())
def test_duckdb_and_batch_agree(catalogue: Catalogue, period: str, data: st.DataObject) -> None:
    assert_sql_agrees(catalogue, data.draw(profile_tables(catalogue, parse_period(period))), period)


@pytest.mark.postgres
@pytest.mark.parametrize("catalogue", CATALOGUES, ids=["catalogue", "probes"])
@settings(max_examples=8, derandomize=True, **_SETTINGS)
@given(period=st.sampled_from(PERIODS), data=st.data())
def test_postgres_and_batch_agree(pg_url: str, catalogue: Catalogue, period: str,  # noqa: F811
                                  data: st.DataObject) -> None:
    assert_sql_agrees(catalogue, data.draw(profile_tables(catalogue, parse_period(period))), period, "postgres",
                      pg_url)


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.skipif(not (SAMPLE / "taxpayers.csv").exists(), reason="sample_data/hangzhou not generated")
@pytest.mark.parametrize("period", ["2025", "2026Q3", "2026-09"])
def test_run_engine_duckdb_writes_identical_files(tmp_path: Path, period: str) -> None:
    polars, duck = tmp_path / "polars", tmp_path / "duckdb"
    _run(["run", "--data", str(SAMPLE), "--period", period, "--out", str(polars), "--quiet"])
    _run(["run", "--data", str(SAMPLE), "--period", period, "--out", str(duck), "--quiet", "--engine", "duckdb"])
    for name in ("findings.parquet", "findings.csv", "quarantine.csv"):
        assert (duck / name).read_bytes() == (polars / name).read_bytes(), name
    a, b = (json.loads((d / "summary.json").read_text(encoding="utf-8")) for d in (polars, duck))
    for key in ("taxpayers_evaluated", "findings", "by_rule", "by_district", "ruleset_version", "inputs"):
        assert a[key] == b[key], key
    if period == "2025":
        assert a["findings"]["unclaimed"] > 0 and a["findings"]["improper"] > 0


@pytest.mark.postgres
@pytest.mark.skipif(not (SAMPLE / "taxpayers.csv").exists(), reason="sample_data/hangzhou not generated")
def test_run_engine_postgres_writes_identical_files(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    polars, pg = tmp_path / "polars", tmp_path / "pg"
    _run(["run", "--data", str(SAMPLE), "--period", "2025", "--out", str(polars), "--quiet"])
    _run(["run", "--data", str(SAMPLE), "--period", "2025", "--out", str(pg), "--quiet", "--engine", "postgres",
          "--pg-url", pg_url])
    for name in ("findings.parquet", "findings.csv"):
        assert (pg / name).read_bytes() == (polars / name).read_bytes(), name


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark"])
def test_rules_sql_prints_sql_that_parses(dialect: str) -> None:
    out = _run(["rules", "sql", "--dialect", dialect, "--period", "2025"])
    statements = [s for s in sqlglot.parse(out, read=dialect) if s is not None]
    assert len(statements) == 1
    assert "zx_r0_outcome" in out and "FULL" in out.upper()
    # The parsed statement reads the profile tables (risk_events when a rule of the period counts events).
    tables = {t.name for t in statements[0].find_all(sqlglot.exp.Table)}
    assert {"taxpayers", "indicators", "claims"} <= tables <= {"taxpayers", "indicators", "claims", "risk_events"}


def test_spark_sql_keeps_exact_decimals() -> None:
    """Spark gets DECIMAL(38, …) arithmetic, corrected FLOOR quotients (its DIV is a long) and no SIGN (a double)."""
    catalogue = load_catalogue()
    sql = plan_sql(catalogue, parse_period("2025"), "spark").sql("spark")
    assert "DECIMAL(38, 6)" in sql and "FLOOR(" in sql
    assert " DIV " not in sql and "SIGN(" not in sql and "HUGEINT" not in sql


def test_unexpressible_construct_is_refused_at_load(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROBE_RULES, rules)
    target = next(p for p in sorted(rules.glob("*.yaml")) if "startswith(" in p.read_text(encoding="utf-8"))
    text = target.read_text(encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "startswith(" in t)
    target.write_text(text.replace('startswith(industry_code, ["', 'startswith(industry_code, ["C_', 1),
                      encoding="utf-8")
    for args in (["rules", "sql", "--dialect", "spark", "--period", "2025", str(rules)],
                 ["run", "--data", str(SAMPLE), "--period", "2025", "--out", str(tmp_path / "o"), "--quiet",
                  "--engine", "duckdb", "--rules", str(rules)],
                 # refused before any data is read or a Spark session started
                 ["run", "--data", "spark:tax.zx_", "--period", "2025", "--out", str(tmp_path / "s"), "--quiet",
                  "--engine", "spark", "--rules", str(rules)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == EXIT_RULE_ERROR, result.output
        backend = "Spark SQL" if "spark" in args else "DuckDB"
        assert f"{target.name}:{line}:" in result.output and backend in result.output, result.output
    # The Polars engine has no such limit: the same catalogue runs there.
    assert CliRunner().invoke(main, ["rules", "check", str(rules)]).exit_code == 0


@pytest.mark.postgres
@pytest.mark.skipif(not (SAMPLE / "taxpayers.csv").exists(), reason="sample_data/hangzhou not generated")
def test_run_engine_postgres_on_its_own_tables_in_place(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """`--engine postgres --data postgresql://…` evaluates the tables `zhixiang load` wrote, inside the
    server: no snapshot, the same findings; a missing column or an unreadable type is named."""
    import psycopg

    _run(["load", "--data", str(SAMPLE), "--to", pg_url])
    polars, pg = tmp_path / "polars", tmp_path / "pg"
    _run(["run", "--data", str(SAMPLE), "--period", "2025", "--out", str(polars), "--quiet"])
    _run(["run", "--data", pg_url, "--period", "2025", "--out", str(pg), "--quiet", "--engine", "postgres"])
    for name in ("findings.parquet", "findings.csv"):
        assert (pg / name).read_bytes() == (polars / name).read_bytes(), name
    assert not (pg / "snapshot").exists()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE indicators DROP COLUMN sales")
        conn.execute("ALTER TABLE claims ALTER COLUMN amount TYPE text")
    result = CliRunner().invoke(main, ["run", "--data", pg_url, "--period", "2025", "--out", str(tmp_path / "bad"),
                                       "--quiet", "--engine", "postgres"])
    assert result.exit_code == EXIT_INPUT_ERROR, result.output
    assert "indicators" in result.output and "sales" in result.output, result.output
    assert "claims" in result.output and "amount（text）" in result.output, result.output
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE taxpayers")
    result = CliRunner().invoke(main, ["run", "--data", pg_url, "--period", "2025", "--out", str(tmp_path / "none"),
                                       "--quiet", "--engine", "postgres"])
    assert result.exit_code == EXIT_INPUT_ERROR and "没有表 taxpayers" in result.output, result.output
