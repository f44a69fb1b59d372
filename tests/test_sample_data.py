"""The generator and the committed sample sets: deterministic, valid, planted cases as promised."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from profiles.authorities import DISTRICTS_BY_REGION, TAX_AUTHORITIES, tax_authority_name
from profiles.contract_doc import README, describe_contract
from profiles.ids import credit_code_problem, is_valid_credit_code
from profiles.schema import TABLES
from sample_data.broken import write_broken
from sample_data.generator import CATALOGUE_IDS, INDUSTRIES, generate, main, write_tables
from sample_data.planted import PLANTED_SCHEMA, planted_tables

ROOT = Path(__file__).resolve().parent.parent
HANGZHOU = ROOT / "sample_data" / "hangzhou"
BROKEN = ROOT / "sample_data" / "broken"
# the committed set: `python -m sample_data.generator --taxpayers 3000 --out sample_data/hangzhou --seed 2026`
COMMITTED_TAXPAYERS, COMMITTED_SEED = 3000, 2026


@pytest.fixture(scope="module")
def small() -> dict[str, pl.DataFrame]:
    return generate(400, seed=7)


def test_generation_is_deterministic(small: dict[str, pl.DataFrame]) -> None:
    again = generate(400, seed=7)
    assert all(small[name].equals(again[name]) for name in small)
    assert not generate(400, seed=8)["taxpayers"].equals(small["taxpayers"])


def test_generated_tables_follow_the_contract(small: dict[str, pl.DataFrame]) -> None:
    for name, table in TABLES.items():
        assert small[name].schema == pl.Schema(table.polars_schema)
    tp = small["taxpayers"]
    assert tp["taxpayer_id"].is_unique().all()
    assert tp.select(credit_code_problem(pl.col("taxpayer_id")).null_count()).item() == tp.height
    regions = tp["taxpayer_id"].str.slice(2, 6)
    assert set(regions.unique()) <= set(DISTRICTS_BY_REGION)
    assert (
        tp["district"] == regions.replace_strict({k: d.name for k, d in DISTRICTS_BY_REGION.items()})
    ).all()
    assert set(tp["tax_authority"]) <= set(TAX_AUTHORITIES)
    assert set(tp["industry_code"]) <= {i.code for i in INDUSTRIES} | {"F5211", "C3484"}
    individual = tp.filter(pl.col("entity_type") == "individual_business")
    assert 0.12 < individual.height / tp.height < 0.3
    assert (individual["taxpayer_id"].str.slice(1, 1) == "2").all()
    assert individual["name"].str.contains("区|县|市").all()
    assert tp.filter(pl.col("entity_type") == "enterprise")["name"].str.ends_with("有限公司").all()
    assert set(small["claims"]["incentive"]) <= set(CATALOGUE_IDS)
    ind = small["indicators"]
    assert ind.select(pl.struct("taxpayer_id", "period").is_unique().all()).item()
    assert ind["taxpayer_id"].is_in(tp["taxpayer_id"].implode()).all()
    # VAT periods follow the filing cycle: quarters for quarterly filers, months for monthly filers
    cycles = ind.join(tp.select("taxpayer_id", "vat_filing_cycle"), on="taxpayer_id")
    vat = cycles.filter(pl.col("period") != "2025")
    kinds = vat.select(
        pl.when(pl.col("period").str.contains("Q"))
        .then(pl.lit("quarter"))
        .otherwise(pl.lit("month"))
        .alias("k"),
        "vat_filing_cycle",
    )
    assert (kinds["k"] == kinds["vat_filing_cycle"]).all()


def test_sizes_are_plausible(small: dict[str, pl.DataFrame]) -> None:
    year = small["indicators"].filter(pl.col("period") == "2025")
    sales = year["sales"].cast(pl.Float64)
    assert 300_000 < sales.median() < 5_000_000  # type: ignore[operator]
    assert sales.quantile(0.99) > 10 * sales.median()  # type: ignore[operator]  # heavy tail
    assert 0 < year["employees_qavg"].null_count() < year.height * 0.05  # a few missing figures


def test_planted_cases_are_valid_and_distinct() -> None:
    tables, expected = planted_tables()
    assert expected.schema == pl.Schema(PLANTED_SCHEMA)
    ids = tables["taxpayers"]["taxpayer_id"]
    assert ids.is_unique().all() and all(is_valid_credit_code(i) for i in ids)
    assert set(expected["taxpayer_id"]) <= set(ids)
    assert set(expected["rule_id"]) <= set(CATALOGUE_IDS)
    assert set(expected["expected_kind"]) == {
        "unclaimed",
        "improper",
        "undetermined",
        "compliant",
        "not_applicable",
        "not_judged",  # a period the catalogue does not cover: no finding at all
    }
    assert expected["note"].str.len_chars().min() > 5  # type: ignore[operator]
    # every planted VAT / year row exists in indicators for the period it is expected in
    keys = set(tables["indicators"].select("taxpayer_id", "period").iter_rows())
    assert set(expected.select("taxpayer_id", "period").iter_rows()) <= keys


def test_committed_sets_are_reproducible(tmp_path: Path) -> None:
    tables = generate(COMMITTED_TAXPAYERS, seed=COMMITTED_SEED)
    write_tables(tables, tmp_path / "hz")
    for name in (*TABLES, "planted"):
        assert (tmp_path / "hz" / f"{name}.csv").read_bytes() == (HANGZHOU / f"{name}.csv").read_bytes(), name
    write_broken(tmp_path / "broken")
    for path in BROKEN.iterdir():
        if path.suffix == ".csv":
            assert (tmp_path / "broken" / path.name).read_bytes() == path.read_bytes(), path.name


def test_cli_writes_parquet(tmp_path: Path) -> None:
    assert (
        main(["--taxpayers", "50", "--out", str(tmp_path / "pq"), "--format", "parquet", "--seed", "3"]) == 0
    )
    got = pl.read_parquet(tmp_path / "pq" / "indicators.parquet")
    assert got.schema == pl.Schema(TABLES["indicators"].polars_schema)
    assert (tmp_path / "pq" / "planted.csv").exists()


def test_tax_authority_names() -> None:
    assert tax_authority_name("13301060000") == "国家税务总局杭州市西湖区税务局"
    assert tax_authority_name("13301220000") == "国家税务总局桐庐县税务局"
    assert tax_authority_name("99") == "99" and tax_authority_name(None) == ""


def test_contract_doc_is_current() -> None:
    assert README.read_text(encoding="utf-8") == describe_contract(), (
        "profiles/README.md is stale: run python -m profiles.contract_doc --write"
    )


def test_technology_incentives_are_planted_and_drawn() -> None:
    """Issue 11 §4: each new rule has a planted 应享未享 and 违规享受 case, and the generator draws its figures."""
    new_rules = (
        "technology_transfer_cit",
        "technology_transfer_vat_exempt",
        "ic_machine_tool_rd_120",
        "incubator_tax_exempt",
        "agri_self_produced_vat_exempt",
        "nev_purchase_tax",
    )
    assert set(new_rules) <= set(CATALOGUE_IDS)
    _, expected = planted_tables()
    for rule in new_rules:
        kinds = set(expected.filter(pl.col("rule_id") == rule)["expected_kind"])
        assert {"unclaimed", "improper"} <= kinds, rule
    tables = generate(3000, seed=2026, planted=False)
    assert set(new_rules) <= set(tables["claims"]["incentive"])
    ind = tables["indicators"]
    for column in ("tech_transfer_income", "tech_service_sales", "agri_self_produced_sales", "nev_purchase_tax",
                   "incubator_property_land_tax"):
        assert ind[column].cast(pl.Float64).gt(0).sum() > 0, column
