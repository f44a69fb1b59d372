"""The findings builder (tests/builders/cases.py) follows engine.findings.FINDINGS_SCHEMA exactly."""

from __future__ import annotations

import polars as pl

from engine.findings import FINDINGS_SCHEMA
from tests.builders.cases import finding, findings_frame


def test_builder_follows_findings_schema() -> None:
    frame = findings_frame([finding(), finding(kind="undetermined", amount=None), finding(kind="unclaimed")])
    assert frame.schema == pl.Schema(FINDINGS_SCHEMA)
    assert frame["evidence"].list.len().to_list() == [2, 2, 2]
    assert frame["risk_tier"].to_list() == ["high", None, None]


def test_empty_frame_has_the_schema() -> None:
    assert findings_frame([]).schema == pl.Schema(FINDINGS_SCHEMA)
