"""The run-to-run diff: new, changed (kind, tier, amount, evidence), persisting, resolved — and its scope."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from notifier.nightly.diff import DIFF_COLUMNS, diff_counts, diff_findings, news, write_diff
from tests.builders.cases import evidence_item, finding, findings_frame

A = "91330106MA2B3C4D5E"
B = "91330108MA2B3C4D6F"
C = "91330110MA2B3C4D7G"


def _status(diff: pl.DataFrame) -> dict[tuple[str, str, str], str]:
    return {(t, p, r): s for t, p, r, s in diff.select("taxpayer_id", "period", "rule_id", "status").iter_rows()}


def test_no_baseline_everything_is_new() -> None:
    current = findings_frame([finding(A, kind="unclaimed", amount="100.00"), finding(B)])
    diff = diff_findings(current, None)
    assert diff.columns == list(DIFF_COLUMNS)
    assert diff_counts(diff) == {"new": 2, "changed": 0, "persisting": 0, "resolved": 0}
    assert diff["status_label"].unique().to_list() == ["新增"]


def test_each_status_and_what_changed() -> None:
    base = findings_frame([
        finding(A, kind="unclaimed", tier=None, amount="1000.00"),  # amount will change
        finding(B, kind="undetermined", tier=None, amount=None),  # becomes unclaimed: kind changed
        finding(C, rule_id="hnte_15pct", employees=301),  # evidence will change
        finding(C, rule_id="rd_super_deduction"),  # stays
        finding(A, rule_id="hnte_15pct"),  # goes away: resolved
    ])
    current = findings_frame([
        finding(A, kind="unclaimed", tier=None, amount="1200.00"),
        finding(B, kind="unclaimed", tier=None, amount="500.00"),
        finding(C, rule_id="hnte_15pct", employees=320),
        finding(C, rule_id="rd_super_deduction"),
        finding(B, rule_id="rd_super_deduction", period="2025"),  # appears: new
    ])
    diff = diff_findings(current, base)
    status = _status(diff)
    assert status == {
        (A, "2025", "small_low_profit_cit"): "changed",
        (B, "2025", "small_low_profit_cit"): "changed",
        (C, "2025", "hnte_15pct"): "changed",
        (C, "2025", "rd_super_deduction"): "persisting",
        (A, "2025", "hnte_15pct"): "resolved",
        (B, "2025", "rd_super_deduction"): "new",
    }
    changes = dict(zip(zip(diff["taxpayer_id"], diff["rule_id"], strict=True), diff["changes"], strict=True))
    assert changes[(A, "small_low_profit_cit")] == "金额 1000.00 → 1200.00 元"
    assert changes[(B, "small_low_profit_cit")].startswith("类型 待核实 → 应享未享")
    assert changes[(C, "hnte_15pct")] == "条件取值有变化"
    assert changes[(C, "rd_super_deduction")] == ""
    resolved = diff.filter(pl.col("status") == "resolved").row(0, named=True)
    # a resolved finding keeps its context from the baseline
    assert resolved["rule_name"] and resolved["taxpayer_name"] and resolved["kind"] is None
    assert resolved["kind_prev"] == "improper"
    assert str(resolved["amount_delta"]) == "-125000.00"
    # ordered new, changed, persisting, resolved
    assert diff["status"].to_list() == ["new", "changed", "changed", "changed", "persisting", "resolved"]


def test_risk_tier_change_is_a_change() -> None:
    diff = diff_findings(findings_frame([finding(A, tier="high")]), findings_frame([finding(A, tier="medium")]))
    assert diff.row(0, named=True)["changes"] == "风险等级 中风险 → 高风险"


def test_rewording_is_not_news() -> None:
    """Labels and reason sentences are not compared: only verdicts, values and thresholds."""
    ev = [evidence_item("employees", "fail", "301 人", "300 人", label="从业人数", reason="从业人数超标")]
    reworded = [evidence_item("employees", "fail", "301 人", "300 人", label="从业人数（年均）", reason="人数超过上限")]
    diff = diff_findings(findings_frame([finding(A, evidence=reworded)]), findings_frame([finding(A, evidence=ev)]))
    assert diff["status"].to_list() == ["persisting"]


def test_only_the_runs_periods_are_compared() -> None:
    base = findings_frame([finding(A, period="2024"), finding(A, period="2025")])
    current = findings_frame([finding(A, period="2025")])
    diff = diff_findings(current, base, periods=["2025"])
    assert _status(diff) == {(A, "2025", "small_low_profit_cit"): "persisting"}
    # without the scope, the 2024 finding would wrongly read as resolved
    assert "resolved" in diff_findings(current, base)["status"].to_list()


def test_news_are_the_full_rows_of_new_and_changed(tmp_path: Path) -> None:
    base = findings_frame([finding(A, kind="unclaimed", amount="1.00"), finding(B, kind="unclaimed", amount="2.00")])
    current = findings_frame([finding(A, kind="unclaimed", amount="1.00"), finding(B, kind="unclaimed", amount="3.00"),
                              finding(C, kind="unclaimed", amount="4.00")])
    diff = diff_findings(current, base)
    fresh = news(current, diff)
    assert sorted(fresh["taxpayer_id"].to_list()) == [B, C]
    assert fresh.columns == current.columns
    parquet, csv = write_diff(diff, tmp_path)
    assert pl.read_parquet(parquet).equals(diff)
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")


def test_empty_current_and_empty_baseline() -> None:
    assert diff_findings(findings_frame([]), findings_frame([])).height == 0
    diff = diff_findings(findings_frame([]), findings_frame([finding(A)]))
    assert diff_counts(diff) == {"new": 0, "changed": 0, "persisting": 0, "resolved": 1}
