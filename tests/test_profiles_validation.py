"""Row-level validation: every quarantine reason, on the broken folder and on focused cases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from profiles.periods import parse_period, period_kind_expr
from profiles.readers import load_profiles
from profiles.schema import TABLES
from profiles.validation import QUARANTINE_SCHEMA, ROW, RawTable, parse_column, validate_tables
from sample_data.broken import A, B, C
from sample_data.generator import CATALOGUE_IDS

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "sample_data" / "broken"


@pytest.fixture(scope="module")
def broken():  # type: ignore[no-untyped-def]
    return load_profiles(BROKEN, known_incentives=CATALOGUE_IDS)


def test_broken_folder_quarantines_exactly_what_is_expected(broken) -> None:  # type: ignore[no-untyped-def]
    expected = pl.read_csv(BROKEN / "expected_quarantine.csv")
    got = broken.quarantine
    assert got.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert sorted(got.select("file", "row", "column").rows()) == sorted(
        expected.select("file", "row", "column").rows()
    )
    joined = expected.join(got, on=["file", "row", "column"])
    wrong = joined.filter(~pl.col("reason").str.contains(pl.col("reason_contains"), literal=True))
    assert wrong.height == 0, wrong.select("file", "row", "column", "reason_contains", "reason").rows()


def test_broken_folder_keeps_the_good_rows(broken) -> None:  # type: ignore[no-untyped-def]
    assert sorted(broken.taxpayers["taxpayer_id"].to_list()) == sorted([A, B, C])
    b = broken.taxpayers.filter(pl.col("taxpayer_id") == B).row(0, named=True)
    assert (b["entity_type"], b["vat_status"], b["opt_out"]) == ("individual_business", "small_scale", True)
    assert broken.taxpayers.filter(pl.col("taxpayer_id") == C)["registered_on"].item() == date(2019, 7, 1)
    ind = {(r["taxpayer_id"], r["period"]): r for r in broken.indicators.iter_rows(named=True)}
    assert set(ind) == {(A, "2025"), (B, "2025Q1"), (C, "2025"), (C, "2025-06")}
    assert ind[(B, "2025Q1")]["sales"] == Decimal("1234.50")
    assert ind[(C, "2025-06")]["incremental_credit"] == Decimal("1000.00")
    assert broken.claims.select("taxpayer_id", "incentive").rows() == [
        (A, "small_low_profit_cit"),
        (C, "rd_super_deduction"),
    ]
    assert broken.claims.filter(pl.col("taxpayer_id") == C)["amount"].item() is None
    assert broken.risk_events.height == 1


def test_values_in_quarantine_are_the_raw_cells(broken) -> None:  # type: ignore[no-untyped-def]
    q = broken.quarantine
    assert q.filter((pl.col("file") == "indicators.csv") & (pl.col("row") == 4))["value"].item() == "12.345"
    dup = q.filter(pl.col("column") == "taxpayer_id+period")
    assert dup["value"].item() == f"{A}+2025" and "第 2 行" in dup["reason"].item()


def _raw(name: str, rows: list[dict[str, str | None]]) -> RawTable:
    table = TABLES[name]
    frame = pl.DataFrame(
        [{c: r.get(c) for c in table.names} for r in rows], schema={c: pl.String for c in table.names}
    )
    return RawTable(
        name, frame.with_columns(pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias(ROW)), f"{name}.csv"
    )


def _taxpayer(tid: str = A, **over: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "taxpayer_id": tid,
        "name": "杭州甲",
        "entity_type": "enterprise",
        "tax_authority": "13301060000",
    }
    row.update(over)
    return row


def test_unknown_incentive_check_is_skipped_without_a_catalogue() -> None:
    raw = {
        "taxpayers": _raw("taxpayers", [_taxpayer()]),
        "indicators": _raw("indicators", [{"taxpayer_id": A, "period": "2025"}]),
        "claims": _raw("claims", [{"taxpayer_id": A, "period": "2025", "incentive": "whatever"}]),
    }
    tables, q = validate_tables(raw)
    assert q.height == 0 and tables["claims"].height == 1
    tables, q = validate_tables(raw, known_incentives=["small_low_profit_cit"])
    assert q["column"].to_list() == ["incentive"] and tables["claims"].height == 0


def test_ids_in_claims_are_matched_trimmed_and_upper_cased_and_each_bad_one_gets_its_own_reason() -> None:
    from sample_data.broken import BAD_CHECK, C, E

    raw = {
        "taxpayers": _raw("taxpayers", [_taxpayer(), _taxpayer(C, entity_type="company")]),
        "claims": _raw("claims", [
            {"taxpayer_id": A, "period": "2025", "incentive": "small_low_profit_cit"},  # row 2: fine
            {"taxpayer_id": f"  {A.lower()}\u3000", "period": "2024", "incentive": "small_low_profit_cit"},  # 3
            {"taxpayer_id": BAD_CHECK, "period": "2025", "incentive": "hnte_15pct"},  # 4: malformed
            {"taxpayer_id": E, "period": "2025", "incentive": "hnte_15pct"},  # 5: never registered
            {"taxpayer_id": C, "period": "2025", "incentive": "hnte_15pct"},  # 6: its taxpayers row is bad
            {"taxpayer_id": " ", "period": "2025", "incentive": "hnte_15pct"},  # 7: empty
        ]),
    }
    tables, q = validate_tables(raw)
    assert tables["claims"].select(ROW, "taxpayer_id").rows() == [(2, A), (3, A)]
    lines = {row: reason for file, row, column, _, reason in q.rows()
             if file == "claims.csv" and column == "taxpayer_id"}
    assert sorted(lines) == [4, 5, 6, 7]
    assert "第18位" in lines[4] and "不存在" in lines[5] and "已被隔离" in lines[6] and "为空" in lines[7]


def test_duplicates_keep_the_first_and_name_it() -> None:
    rows = [{"taxpayer_id": A, "period": p} for p in ("2025", "2025Q1", "2025", "2025q1", "2025")]
    tables, q = validate_tables(
        {"taxpayers": _raw("taxpayers", [_taxpayer()]), "indicators": _raw("indicators", rows)}
    )
    assert tables["indicators"][ROW].to_list() == [2, 3]
    assert q.select("row", "reason").rows() == [
        (4, "主键重复：与第 2 行的 taxpayer_id+period 相同，同一主键只保留第一次出现的记录"),
        (5, "主键重复：与第 3 行的 taxpayer_id+period 相同，同一主键只保留第一次出现的记录"),
        (6, "主键重复：与第 2 行的 taxpayer_id+period 相同，同一主键只保留第一次出现的记录"),
    ]


@pytest.mark.parametrize(
    ("kind_column", "raw", "expected", "problem"),
    [
        (
            "sales",
            ["1", "1.5", "-2.25", " 3,000.10 ", "4e2", "5元", None, "  "],
            [
                Decimal("1.00"),
                Decimal("1.50"),
                Decimal("-2.25"),
                Decimal("3000.10"),
                Decimal("400.00"),
                Decimal("5.00"),
                None,
                None,
            ],
            None,
        ),
        ("sales", ["1.005"], [None], "小数位超过两位"),
        ("sales", ["1.2.3"], [None], "不是有效金额"),
        ("employees_qavg", ["12.125", "1,200", "inf"], [12.125, 1200.0, None], "不是有效数字"),
        ("employees", ["12", "12.0", "12.5"], [12, 12, None], "不是整数"),
    ],
)
def test_number_parsing(
    kind_column: str, raw: list[str | None], expected: list[object], problem: str | None
) -> None:
    col = TABLES["indicators"].column(kind_column)
    parsed = parse_column(pl.Series(kind_column, raw, dtype=pl.String), col)
    assert parsed.values.to_list() == expected
    reasons = [r for r in parsed.problems.to_list() if r]
    assert (problem is None and not reasons) or (problem is not None and all(problem in r for r in reasons))


def test_dates_bools_enums_and_periods() -> None:
    tp = TABLES["taxpayers"]
    dates = parse_column(
        pl.Series(
            ["2025-03-31", "2025/3/31", "20250331", "2025年3月31日", "2025-03-31 00:00:00", "2025-02-29"]
        ),
        tp.column("registered_on"),
    )
    assert dates.values.to_list() == [date(2025, 3, 31)] * 5 + [None]
    assert dates.problems.null_count() == 5
    bools = parse_column(
        pl.Series(["true", "FALSE", "1", "0", "是", "否", "Y", "n", "maybe"]), tp.column("opt_out")
    )
    assert bools.values.to_list() == [True, False, True, False, True, False, True, False, None]
    enums = parse_column(pl.Series(["general", "SMALL_SCALE", "一般纳税人", "big"]), tp.column("vat_status"))
    assert enums.values.to_list() == ["general", "small_scale", "general", None]
    assert enums.problems.to_list()[3].startswith("增值税纳税人身份（vat_status）取值无效")
    periods = parse_column(
        pl.Series(["2025", "2026Q3", "2026-09", "2026q3", "2026-9", "2026Q5"]),
        TABLES["indicators"].column("period"),
    )
    assert periods.values.to_list()[:4] == ["2025", "2026Q3", "2026-09", "2026Q3"]
    assert periods.problems.null_count() == 4


def test_period_helpers() -> None:
    p = parse_period("2026Q3")
    assert (p.kind, p.start, p.end) == ("quarter", date(2026, 7, 1), date(2026, 9, 30))
    frame = pl.DataFrame({"p": ["2025", "2026Q1", "2024-02", "2025-13", None]})
    got = frame.select(period_kind_expr(pl.col("p")).alias("p"))
    assert got["p"].to_list() == ["year", "quarter", "month", None, None]
    assert (parse_period("2024-02").start, parse_period("2024-02").end) == (date(2024, 2, 1), date(2024, 2, 29))


def test_validation_scales_with_distinct_values() -> None:
    """200k indicator rows of a few taxpayers: ids and periods are checked per distinct value."""
    n = 200_000
    periods = [f"2025-{m:02d}" for m in range(1, 13)] + [f"2026-{m:02d}" for m in range(1, 10)]
    tids = [A, B, C]
    rows = pl.DataFrame(
        {
            "taxpayer_id": pl.Series(tids).gather([i % 3 for i in range(n)]),
            "period": pl.Series(periods).gather([(i // 3) % len(periods) for i in range(n)]),
            "sales": pl.Series([str(i) for i in range(n)]),
        }
    )
    frame = rows.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in TABLES["indicators"].names if c not in rows.columns]
    ).with_columns(pl.int_range(2, n + 2, dtype=pl.Int64).alias(ROW))
    taxpayers = _raw("taxpayers", [_taxpayer(t) for t in tids])
    tables, q = validate_tables(
        {"taxpayers": taxpayers, "indicators": RawTable("indicators", frame, "indicators.csv")}
    )
    unique_keys = 3 * len(periods)
    assert tables["indicators"].height == unique_keys
    assert q.height == n - unique_keys and set(q["column"].unique()) == {"taxpayer_id+period"}
