"""Columns derived by a group-by when a data folder is read: the owner's 经营所得 across businesses."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl

from profiles.derived import add_owner_business_income
from profiles.readers import load_profiles
from profiles.schema import INDICATORS, TAXPAYERS


def _tables(owner: list[str | None], income: list[str | None], given: list[str | None] | None = None
            ) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = len(owner)
    ids = [f"T{i}" for i in range(n)]
    tp = pl.DataFrame({"taxpayer_id": ids, "entity_type": ["individual_business"] * n, "owner_id": owner},
                      schema={"taxpayer_id": pl.String, "entity_type": pl.String, "owner_id": pl.String})
    ind = pl.DataFrame(
        {"taxpayer_id": ids, "period": ["2025"] * n,
         "taxable_income": [Decimal(x) if x is not None else None for x in income],
         "owner_business_income": [Decimal(x) if x is not None else None for x in (given or [None] * n)]},
        schema={"taxpayer_id": pl.String, "period": pl.String,
                "taxable_income": INDICATORS.column("taxable_income").dtype,
                "owner_business_income": INDICATORS.column("owner_business_income").dtype},
    )
    return tp, ind


def _totals(frame: pl.DataFrame) -> list[Decimal | None]:
    return frame.get_column("owner_business_income").to_list()


def test_businesses_of_one_owner_are_added_up_per_period() -> None:
    tp, ind = _tables(["a", "a", "b", None], ["800000", "1500000", "90000", "50000"])
    out = add_owner_business_income(tp, ind)
    assert _totals(out) == [Decimal("2300000"), Decimal("2300000"), Decimal("90000"), None]
    assert out.get_column("taxpayer_id").to_list() == ind.get_column("taxpayer_id").to_list()


def test_a_loss_is_not_set_against_another_business_and_a_missing_income_leaves_the_total_unknown() -> None:
    tp, ind = _tables(["a", "a", "b", "b"], ["800000", "-100000", "90000", None])
    assert _totals(add_owner_business_income(tp, ind)) == [Decimal("800000"), Decimal("800000"), None, None]


def test_a_given_total_is_kept() -> None:
    tp, ind = _tables(["a", "a"], ["800000", "1500000"], given=["3000000", None])
    assert _totals(add_owner_business_income(tp, ind)) == [Decimal("3000000"), Decimal("2300000")]


def test_reading_a_folder_derives_it(tmp_path: Path) -> None:
    from profiles.ids import make_credit_code

    ids = [make_credit_code("330106", f"MA2X{i:04d}", category="2") for i in range(2)]
    tp = pl.DataFrame({"taxpayer_id": ids, "name": ["甲", "乙"], "entity_type": ["individual_business"] * 2,
                       "tax_authority": ["13301060000"] * 2, "owner_id": ["h1", "h1"]})
    for c in TAXPAYERS.names:
        if c not in tp.columns and TAXPAYERS.column(c).required:
            tp = tp.with_columns(pl.lit(None, pl.String).alias(c))
    ind = pl.DataFrame({"taxpayer_id": ids, "period": ["2025"] * 2, "taxable_income": ["800000", "1500000"]})
    for c in INDICATORS.names:
        if c not in ind.columns and INDICATORS.column(c).required:
            ind = ind.with_columns(pl.lit(None, pl.String).alias(c))
    tp.write_csv(tmp_path / "taxpayers.csv")
    ind.write_csv(tmp_path / "indicators.csv")
    profiles = load_profiles(tmp_path)
    assert profiles.quarantine.height == 0, profiles.quarantine
    assert _totals(profiles.indicators) == [Decimal("2300000")] * 2
