"""Profile columns derived from other rows by a group-by, after validation (vectorised).

`owner_business_income`: a person may run several 个体工商户; the 2,000,000 of 财政部 税务总局公告2023年第12号
第一条 applies to the owner's 经营所得 added up (国家税务总局公告2023年第12号: income from two or more places
is combined). Businesses sharing `taxpayers.owner_id` are added up per period.
"""

from __future__ import annotations

import polars as pl

from profiles.schema import MONEY_DTYPE


def add_owner_business_income(taxpayers: pl.DataFrame, indicators: pl.DataFrame) -> pl.DataFrame:
    """`indicators` with `owner_business_income` filled where empty and the taxpayer's owner is known.

    The owner's total is the sum of max(taxable_income, 0) over their 个体工商户 rows of the same period
    (a loss of one business is not set against another's income here); empty when any of them lacks
    taxable_income.
    """
    if "owner_id" not in taxpayers.columns or "owner_business_income" not in indicators.columns \
            or taxpayers.get_column("owner_id").null_count() == taxpayers.height:
        return indicators
    owners = taxpayers.filter(
        pl.col("owner_id").is_not_null() & (pl.col("entity_type") == "individual_business")
    ).select("taxpayer_id", "owner_id")
    rows = indicators.select("taxpayer_id", "period", "taxable_income").join(owners, on="taxpayer_id", how="inner")
    totals = rows.group_by("owner_id", "period").agg(
        pl.when(pl.col("taxable_income").null_count() == 0)
        .then(pl.col("taxable_income").clip(lower_bound=0).sum())
        .cast(MONEY_DTYPE)
        .alias("__owner_total")
    )
    per_row = rows.join(totals, on=["owner_id", "period"], how="left").select(
        "taxpayer_id", "period", "__owner_total"
    )
    return (
        indicators.join(per_row, on=["taxpayer_id", "period"], how="left", maintain_order="left")
        .with_columns(pl.coalesce("owner_business_income", "__owner_total").cast(MONEY_DTYPE)
                      .alias("owner_business_income"))
        .drop("__owner_total")
    )
