"""Pydantic row models and one taxpayer's profile from JSON: same rules as the batch path."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from profiles.errors import ProfileDataError, ProfileError
from profiles.models import ROW_MODELS, IndicatorRow, TaxpayerRow, coerce_cell, parse_profile_json
from profiles.schema import TABLES
from profiles.validation import parse_column
from sample_data.broken import A

PROFILE = {
    "taxpayer": {
        "taxpayer_id": A,
        "name": "杭州甲科技有限公司",
        "entity_type": "企业",
        "vat_status": "general",
        "tax_authority": "13301060000",
        "opt_out": "否",
        "registered_on": "2020/01/02",
        "hnte_cert_issued_on": None,
        "wechat": "zx-demo",
    },
    "indicators": [
        {
            "period": "2025",
            "sales": "1,000,000.50",
            "taxable_income": 120000,
            "employees_qavg": 12.5,
            "employees": "12",
        },
        {"period": "2025q3", "sales": 300000},
    ],
    "claims": [{"period": "2025", "incentive": "small_low_profit_cit", "amount": 24000.5}],
    "risk_events": [{"event": "tax_evasion_penalty", "occurred_on": "2024-03-15"}],
}


def test_models_are_generated_from_the_schema() -> None:
    assert set(ROW_MODELS) == set(TABLES)
    assert set(TABLES["indicators"].names) <= set(IndicatorRow.model_fields)
    row = TaxpayerRow.model_validate(
        {"taxpayer_id": A.lower(), "name": " 甲 ", "entity_type": "个体工商户", "tax_authority": "13301060000"}
    )
    assert (row.taxpayer_id, row.name, row.entity_type) == (A, "甲", "individual_business")  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as err:
        TaxpayerRow.model_validate({"taxpayer_id": A, "name": "", "entity_type": "x", "tax_authority": "13301060000"})
    fields = {e["loc"][0] for e in err.value.errors()}
    assert fields == {"name", "entity_type"}


def test_profile_json_gives_the_batch_dtypes() -> None:
    p = parse_profile_json(json.dumps(PROFILE, ensure_ascii=False), known_incentives=["small_low_profit_cit"])
    for name in TABLES:
        frame = p.table(name)
        assert {c: frame.schema[c] for c in TABLES[name].names} == TABLES[name].polars_schema
    t = p.taxpayers.row(0, named=True)
    assert (t["entity_type"], t["opt_out"], t["registered_on"], t["wechat"]) == (
        "enterprise",
        False,
        date(2020, 1, 2),
        "zx-demo",
    )
    assert p.indicators.select("taxpayer_id", "period", "sales").rows() == [
        (A, "2025", Decimal("1000000.50")),
        (A, "2025Q3", Decimal("300000.00")),
    ]
    assert p.claims["amount"].item() == Decimal("24000.50")
    assert p.quarantine.height == 0 and "json" in p.input_hashes


def test_profile_json_errors_have_field_paths() -> None:
    bad = json.loads(json.dumps(PROFILE, ensure_ascii=False))
    bad["taxpayer"]["entity_type"] = "公司"
    bad["indicators"][1]["sales"] = "1.005"
    bad["indicators"].append({"period": "2025"})  # duplicate of indicators[0]
    bad["claims"][0]["incentive"] = "small_low_profit"
    bad["risk_events"][0]["taxpayer_id"] = "91330100799655058B"
    bad["extra"] = []
    with pytest.raises(ProfileDataError) as err:
        parse_profile_json(bad, known_incentives=["small_low_profit_cit"])
    paths = dict(err.value.problems)
    assert set(paths) == {
        "extra",
        "taxpayer.entity_type",
        "indicators[1].sales",
        "indicators[2]",
        "claims[0].incentive",
        "risk_events[0].taxpayer_id",
    }
    assert "小数位超过两位" in paths["indicators[1].sales"] and "indicators[0]" in paths["indicators[2]"]
    assert "small_low_profit_cit" in paths["claims[0].incentive"]
    assert err.value.exit_code == 2 and isinstance(err.value, ProfileError)
    with pytest.raises(ProfileDataError, match="不是合法的 JSON"):
        parse_profile_json("{not json")
    with pytest.raises(ProfileDataError, match="taxpayer"):
        parse_profile_json({"indicators": []})


_CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "是",
            "否",
            "Y",
            "n",
            "TRUE",
            "0",
            "1",
            "2",
            "maybe",
            "2025-02-28",
            "2025/2/29",
            "20250101",
            "2025年1月2日",
            "1,234.5",
            "12.345",
            "1e3",
            "-0.01",
            "abc",
            "5元",
            "12.0",
            "NaN",
        ]
    ),
    st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False).map(str),
    st.integers(-1000, 1000).map(str),
)
_COLUMNS = [
    TABLES["taxpayers"].column("opt_out"),
    TABLES["taxpayers"].column("registered_on"),
    TABLES["indicators"].column("sales"),
    TABLES["indicators"].column("employees_qavg"),
    TABLES["indicators"].column("employees"),
    TABLES["taxpayers"].column("vat_status"),
]


@settings(max_examples=150, deadline=None)
@given(st.lists(_CELLS, min_size=1, max_size=12), st.sampled_from(_COLUMNS))
def test_scalar_and_vectorized_parsers_agree(cells: list[str], col) -> None:  # type: ignore[no-untyped-def]
    parsed = parse_column(pl.Series(col.name, cells, dtype=pl.String), col)
    for cell, value, problem in zip(cells, parsed.values.to_list(), parsed.problems.to_list(), strict=True):
        try:
            scalar, scalar_problem = coerce_cell(col, cell), None
        except ValueError as exc:
            scalar, scalar_problem = None, str(exc)
        assert (value, problem) == (scalar, scalar_problem), cell
