"""Profile columns derived from other rows by a group-by, after validation (vectorised).

`owner_business_income`: a person may run several 个体工商户; the 2,000,000 of 财政部 税务总局公告2023年第12号
第一条 applies to the owner's 经营所得 added up (国家税务总局公告2023年第12号: income from two or more places
is combined). Businesses sharing `taxpayers.owner_id` are added up per period. In memory the whole table is
at hand; a streaming run adds up each bucket's part (`owner_totals`), combines them (`combine_owner_totals`)
and applies the result to every bucket (`apply_owner_totals`), so both give the same column.
"""

from __future__ import annotations

import polars as pl

from profiles.schema import MONEY_DTYPE

_TOTALS_SCHEMA = {"owner_id": pl.String(), "period": pl.String(), "__total": MONEY_DTYPE, "__missing": pl.UInt32()}


def _has_owners(taxpayers: pl.DataFrame, indicators: pl.DataFrame) -> bool:
    return ("owner_id" in taxpayers.columns and "owner_business_income" in indicators.columns
            and taxpayers.get_column("owner_id").null_count() < taxpayers.height)


def owner_totals(taxpayers: pl.DataFrame, indicators: pl.DataFrame) -> pl.DataFrame:
    """Per owner and period: the sum of max(taxable_income, 0) over their 个体工商户 rows here, and how many
    of those rows lack taxable_income (a loss of one business is not set against another's income)."""
    if "owner_id" not in taxpayers.columns:
        return pl.DataFrame(schema=_TOTALS_SCHEMA)
    owners = taxpayers.filter(
        pl.col("owner_id").is_not_null() & (pl.col("entity_type") == "individual_business")
    ).select("taxpayer_id", "owner_id")
    rows = indicators.select("taxpayer_id", "period", "taxable_income").join(owners, on="taxpayer_id", how="inner")
    return rows.group_by("owner_id", "period").agg(
        pl.col("taxable_income").clip(lower_bound=0).sum().cast(MONEY_DTYPE).alias("__total"),
        pl.col("taxable_income").null_count().cast(pl.UInt32).alias("__missing"),
    )


def combine_owner_totals(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Totals of several parts of the data (buckets) as one."""
    if not parts:
        return pl.DataFrame(schema=_TOTALS_SCHEMA)
    return pl.concat(parts).group_by("owner_id", "period").agg(
        pl.col("__total").sum().cast(MONEY_DTYPE), pl.col("__missing").sum().cast(pl.UInt32)
    )


def apply_owner_totals(taxpayers: pl.DataFrame, indicators: pl.DataFrame, totals: pl.DataFrame) -> pl.DataFrame:
    """`indicators` with `owner_business_income` filled where empty from the owner's totals (empty when any of
    the owner's businesses lacks taxable_income); a given value is kept."""
    if "owner_id" not in taxpayers.columns or "owner_business_income" not in indicators.columns or totals.is_empty():
        return indicators
    owners = taxpayers.filter(
        pl.col("owner_id").is_not_null() & (pl.col("entity_type") == "individual_business")
    ).select("taxpayer_id", "owner_id")
    per_row = (
        indicators.select("taxpayer_id", "period")
        .join(owners, on="taxpayer_id", how="inner")
        .join(totals, on=["owner_id", "period"], how="inner")
        .select("taxpayer_id", "period",
                pl.when(pl.col("__missing") == 0).then(pl.col("__total")).alias("__owner_total"))
    )
    return (
        indicators.join(per_row, on=["taxpayer_id", "period"], how="left", maintain_order="left")
        .with_columns(pl.coalesce("owner_business_income", "__owner_total").cast(MONEY_DTYPE)
                      .alias("owner_business_income"))
        .drop("__owner_total")
    )


def add_owner_business_income(taxpayers: pl.DataFrame, indicators: pl.DataFrame) -> pl.DataFrame:
    """`indicators` with `owner_business_income` derived from the whole of both tables (in memory)."""
    if not _has_owners(taxpayers, indicators):
        return indicators
    return apply_owner_totals(taxpayers, indicators, owner_totals(taxpayers, indicators))
