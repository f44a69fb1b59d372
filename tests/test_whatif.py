"""`zhixiang whatif` (issue 16): the catalogue as is and with overrides, end to end on the sample data."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.catalogue import load_catalogue
from engine.cli import main
from engine.whatif import apply_overrides, parse_override
from profiles.excel import plain_frame
from profiles.periods import parse_period

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data" / "hangzhou"
RULES = ROOT / "rules"
CAP = "small_low_profit_cit.income_cap"


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _whatif(tmp_path: Path, *args: str, out: str = "out") -> tuple[int, str, Path]:
    target = tmp_path / out
    result = CliRunner().invoke(main, ["whatif", "--data", str(DATA), "--period", "2025", *args, "--out", str(target)])
    return result.exit_code, result.output, target


@pytest.fixture(scope="module")
def raised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The income cap raised from 3 to 5 million yuan, with the rule directory and data digests around it."""
    tmp = tmp_path_factory.mktemp("whatif")
    rules_before, data_before = _tree_digest(RULES), _tree_digest(DATA)
    code, output, out = _whatif(tmp, "--set", f"{CAP}=5000000")
    assert code == 0, output
    assert _tree_digest(RULES) == rules_before and _tree_digest(DATA) == data_before
    return out, rules_before, output


def test_raised_cap_lists_exactly_the_enterprises_between_the_caps(raised: tuple[Path, str, str]) -> None:
    out, _, _ = raised
    changes = pl.read_parquet(out / "changes.parquet")
    slp = changes.filter(pl.col("rule_id") == "small_low_profit_cit")
    assert slp.height > 0
    assert set(slp["change"]) == {"newly_eligible"}  # raising a cap takes nobody out
    ind = pl.read_csv(DATA / "indicators.csv", infer_schema_length=0).filter(pl.col("period") == "2025")
    income = dict(zip(ind["taxpayer_id"], ind["taxable_income"], strict=True))
    for tid in slp["taxpayer_id"]:
        assert Decimal("3000000") < Decimal(income[tid]) <= Decimal("5000000")
    assert (slp["relief_delta"] > 0).all()
    # Only this rule and the rules that read it may move.
    catalogue = load_catalogue(RULES)
    readers = {"small_low_profit_cit"} | {
        r.id for r in catalogue.rules.values() if "small_low_profit_cit" in r.depends_on}
    assert set(changes["rule_id"]) <= readers


def test_summary_adds_up(raised: tuple[Path, str, str]) -> None:
    out, _, output = raised
    doc = json.loads((out / "whatif.json").read_text(encoding="utf-8"))
    totals = doc["totals"]
    changes = pl.read_parquet(out / "changes.parquet")
    assert totals["newly_eligible"] == changes.filter(pl.col("change") == "newly_eligible").height
    delta = Decimal(totals["relief_delta"])
    assert delta == Decimal(totals["relief_after"]) - Decimal(totals["relief_before"]) > 0
    for key in ("by_district", "by_industry_section", "by_size_band"):
        assert sum(Decimal(r["relief_delta"]) for r in doc[key]) == delta, key
    assert sum(Decimal(r["relief_delta"]) for r in doc["by_rule"]) == delta
    assert totals["unclaimed_after"] >= totals["unclaimed_before"]
    assert doc["ruleset_version_after"] != doc["ruleset_version_before"]
    assert "新增可享" in output


def test_outputs_for_excel_and_report(raised: tuple[Path, str, str]) -> None:
    out, _, _ = raised
    raw = (out / "changes.csv").read_bytes()
    assert raw.startswith("\ufeff".encode())
    csv = plain_frame(pl.read_csv(out / "changes.csv", infer_schema_length=0))
    assert csv.columns[:3] == ["规则编号", "优惠政策", "变化"]
    assert set(csv["变化"]) == {"新增可享"}
    assert csv["纳税人识别号"].to_list() == pl.read_parquet(out / "changes.parquet")["taxpayer_id"].to_list()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "参数调整测算报告" in html and "<svg" in html and "按区县" in html and "按行业门类" in html
    assert "不生成提醒函" in html
    # Nothing but the what-if's own files: no findings, letters or cases.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".zhixiang-owned", "by_rule.csv", "changes.csv", "changes.parquet", "report.html", "whatif.json"])


def test_lowered_cap_takes_relief_away(tmp_path: Path) -> None:
    code, output, out = _whatif(tmp_path, "--set", f"{CAP}=1000000")
    assert code == 0, output
    doc = json.loads((out / "whatif.json").read_text(encoding="utf-8"))
    assert doc["totals"]["no_longer_eligible"] > 0
    assert Decimal(doc["totals"]["relief_delta"]) < 0


def test_override_to_the_current_value_changes_nothing(tmp_path: Path) -> None:
    code, output, out = _whatif(tmp_path, "--set", f"{CAP}=3000000", "--set", "small_low_profit_cit.slp_rate=0.05")
    assert code == 0, output
    doc = json.loads((out / "whatif.json").read_text(encoding="utf-8"))
    assert doc["totals"]["newly_eligible"] == doc["totals"]["no_longer_eligible"] == 0
    assert Decimal(doc["totals"]["relief_delta"]) == 0
    assert pl.read_parquet(out / "changes.parquet").height == 0


@pytest.mark.parametrize(("override", "needle"), [
    ("small_low_profit_cit.incom_cap=5000000", f"您是不是要写: {CAP}=5000000"),
    ("small_low_profit_ct.income_cap=5000000", f"您是不是要写: {CAP}=5000000"),
    (f"{CAP}=500万", "应为: 整数（单位：元），如 3000000"),
    (f"{CAP}=abc", "不是数值"),
    (f"{CAP}=3000000.5", "不是整数"),
    ("small_low_profit_cit.slp_rate=5%", "小数形式的比例"),
    ("small_low_profit_cit", "规则编号.参数名=取值"),
    ("small_scale_vat_exemption.quarter_line=450000", "不判定所属期 2025年度"),
])
def test_bad_override_is_refused_before_anything_is_written(tmp_path: Path, override: str, needle: str) -> None:
    code, output, out = _whatif(tmp_path, "--set", override)
    assert code == 64, output
    assert needle in output
    assert "Traceback" not in output
    assert not out.exists()


def test_replacement_file_matches_the_same_override(tmp_path: Path, raised: tuple[Path, str, str]) -> None:
    text = (RULES / "small_low_profit_cit.yaml").read_text(encoding="utf-8")
    proposal = tmp_path / "proposal.yaml"
    proposal.write_text(text.replace("value: 3000000", "value: 5000000"), encoding="utf-8")
    code, output, out = _whatif(tmp_path, "--replace", f"rules/small_low_profit_cit.yaml={proposal}")
    assert code == 0, output
    got = pl.read_parquet(out / "changes.parquet")
    want = pl.read_parquet(raised[0] / "changes.parquet")
    assert got.drop("rule_name").equals(want.drop("rule_name"))


def test_broken_replacement_is_a_rule_error(tmp_path: Path) -> None:
    text = (RULES / "small_low_profit_cit.yaml").read_text(encoding="utf-8")
    proposal = tmp_path / "proposal.yaml"
    proposal.write_text(text.replace("taxable_income <= income_cap", "taxable_incom <= income_cap"), encoding="utf-8")
    rules_before = _tree_digest(RULES)
    code, output, _ = _whatif(tmp_path, "--replace", f"rules/small_low_profit_cit.yaml={proposal}")
    assert code == 3, output
    assert "taxable_income" in output  # the did-you-mean of the rule checker
    assert _tree_digest(RULES) == rules_before


def test_override_replaces_only_the_value_in_force_for_the_period() -> None:
    catalogue = load_catalogue(RULES)
    period = parse_period("2025")
    override = parse_override(f"{CAP}=5000000", catalogue, period)
    changed = apply_overrides(catalogue, [override], period)
    param = changed.rules["small_low_profit_cit"].parameters["income_cap"]
    assert param.at(date(2025, 1, 1)) == 5000000
    assert param.at(date(2022, 6, 1)) == 3000000  # the 2022 value is another period's law
    assert catalogue.rules["small_low_profit_cit"].parameters["income_cap"].at(date(2025, 1, 1)) == 3000000


def test_list_parameter_override_checks_the_item_type() -> None:
    catalogue = load_catalogue(RULES)
    period = parse_period("2025")
    got = parse_override("rd_super_deduction.negative_industries=[C16, F]", catalogue, period)
    assert got.value == ("C16", "F")
    from engine.errors import UsageProblem

    with pytest.raises(UsageProblem, match="结构不同"):
        parse_override("rd_super_deduction.negative_industries=[1, 2]", catalogue, period)


def test_rate_change_moves_the_relief_not_the_lists(tmp_path: Path) -> None:
    code, output, out = _whatif(tmp_path, "--set", "small_low_profit_cit.slp_rate=0.1")
    assert code == 0, output
    doc = json.loads((out / "whatif.json").read_text(encoding="utf-8"))
    slp = next(r for r in doc["by_rule"] if r["rule_id"] == "small_low_profit_cit")
    assert slp["newly_eligible"] == slp["no_longer_eligible"] == 0
    assert Decimal(slp["relief_delta"]) < 0  # 10% instead of 5%: less relief for the same taxpayers
    assert slp["unclaimed_before"] == slp["unclaimed_after"]
