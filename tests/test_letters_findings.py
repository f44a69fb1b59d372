"""The letter tests' findings builder (tests/builders/letters.py) follows FINDINGS_SCHEMA and the snapshot
catalogue exactly."""

from __future__ import annotations

import polars as pl

from engine.findings import EVIDENCE_DTYPE, FINDINGS_SCHEMA
from tests.builders.letters import (
    _DECIDING,
    ID_FIVE,
    ID_ONE,
    ID_OPT_OUT,
    ID_REMINDER,
    ID_SMS,
    ID_UNDETERMINED,
    all_rows,
    catalogue,
    frame,
)

# ------------------------------------------------------------------------------------------- tests

def test_builder_rows_follow_the_findings_schema_exactly() -> None:
    df = frame(all_rows())
    assert df.schema == pl.Schema(FINDINGS_SCHEMA)
    assert df.get_column("evidence").dtype == pl.List(EVIDENCE_DTYPE)
    assert set(df.get_column("kind").unique()) == {"unclaimed", "improper", "undetermined"}
    # round trip through parquet, as `zhixiang notify` reads it
    assert df.get_column("estimated_amount").dtype == FINDINGS_SCHEMA["estimated_amount"]


def test_builder_uses_rules_of_the_snapshot_catalogue() -> None:
    rules = catalogue().rules
    for row in all_rows():
        assert row["rule_name"] == rules[row["rule_id"]].name
        deciding = [e for e in row["evidence"] if e["status"] == _DECIDING[row["kind"]]]
        assert deciding, f"{row['rule_id']} {row['kind']} has no deciding condition"


def test_test_ids_are_valid_credit_codes() -> None:
    from profiles.ids import is_valid_credit_code

    for tid in (ID_ONE, ID_FIVE, ID_REMINDER, ID_OPT_OUT, ID_UNDETERMINED, ID_SMS):
        assert is_valid_credit_code(tid), tid
