"""Task lists: one workbook and one CSV per tax authority, read back with openpyxl and compared with golden files.

After an intended change to the task-list layout, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_cases_tasks.py
    git diff tests/golden/tasks
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from engine.findings import FINDINGS_SCHEMA
from notifier.cases.ledger import assign, case_number, resolve, sync_findings
from notifier.cases.status import CORRECTED
from notifier.cases.tasks import (
    HEADERS,
    MONEY_FORMAT,
    SUMMARY_HEADERS,
    evidence_text,
    export_task_lists,
    readable_figures,
)
from notifier.db import open_state
from tests.builders.cases import evidence_item, finding, findings_frame
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "tasks"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
AS_OF = date(2026, 1, 25)
AT = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
XIHU, GONGSHU = "13301060000", "13301050000"


def tp(i: int) -> str:
    return f"9133010{i:011d}"


def sample_findings() -> list[dict[str, Any]]:
    """Findings for two authorities: every tier, a verification item, a reminder and an unclaimed finding."""
    return [
        finding(tp(1), tier="high", amount="612345.67", claimed="612345.67", employees=412,
                name="杭州西子智能装备有限公司"),
        finding(tp(2), tier="medium", amount="48000.00", claimed="48000.00", name="杭州钱塘软件有限公司"),
        finding(tp(3), tier="medium", amount="52000.50", claimed="52000.50", name="=HYPERLINK(\"x\")恶意名称"),
        finding(tp(4), rule_id="hnte_15pct", tier="high", amount="230000.00", claimed="230000.00",
                name="杭州高新材料股份有限公司",
                evidence=[evidence_item("certificate", "fail", "2024-12-31", "覆盖 2025 年度", label="高新技术企业证书",
                                        reason="证书有效期至 2024-12-31，未覆盖 2025 年度")]),
        finding(tp(5), kind="undetermined", amount=None, claimed="30000.00", name="杭州拱宸桥贸易有限公司",
                authority=GONGSHU, district="拱墅区"),
        finding(tp(6), tier="high", amount="75000.00", name="杭州运河文旅有限公司", authority=GONGSHU,
                district="拱墅区"),
        finding(tp(7), tier="low", amount="1500.00", name="低风险提醒企业"),  # a reminder, not a case
        finding(tp(8), kind="unclaimed", amount="9000.00", claimed=None, name="应享未享企业"),  # a letter
        finding(tp(9), tier="medium", amount="20000.00", name="已更正企业"),  # decided below: not on the list
    ]


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    e = open_state(state_url)
    sync_findings(e, findings_frame(sample_findings()), run_id="run-20260110", as_of=date(2026, 1, 10),
                  periods=["2025"], at=AT)
    assign(e, [case_number(tp(2), "small_low_profit_cit", "2025")], "张三", actor="李科长", at=AT)
    done = case_number(tp(9), "small_low_profit_cit", "2025")
    assign(e, [done], "张三", actor="李科长", at=AT)
    resolve(e, [done], CORRECTED, actor="张三", at=AT)
    yield e
    e.dispose()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def dump_workbook(path: Path) -> str:
    """What an officer sees in a workbook — sheets, layout, formats and every row (one JSON line each)."""
    wb = load_workbook(path)
    lines = [f"workbook: {wb.properties.title} / {wb.properties.creator}"]
    for ws in wb.worksheets:
        first = ws[2] if ws.max_row >= 2 else []
        lines += [
            "",
            f"sheet {ws.title}: freeze {ws.freeze_panes}, filter {ws.auto_filter.ref}, "
            f"bold header {all(c.font.b for c in ws[1])}",
            "widths: " + " ".join(f"{k}={d.width:g}" for k, d in sorted(ws.column_dimensions.items())),
            "formats: " + json.dumps({ws.cell(1, c.column).value: c.number_format for c in first
                                      if c.number_format != "General"}, ensure_ascii=False),
        ]
        for i, row in enumerate(ws.iter_rows(values_only=True), start=1):
            lines.append(f"{i}: " + json.dumps([_plain(v) for v in row], ensure_ascii=False))
    return "\n".join(lines) + "\n"


def compare(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    assert path.exists(), f"no golden file {path}: run UPDATE_GOLDEN=1 pytest tests/test_cases_tasks.py"
    expected = path.read_bytes().decode("utf-8")
    assert actual == expected, f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"


def test_task_lists_match_the_golden_files(engine: Engine, tmp_path: Path) -> None:
    lists = export_task_lists(engine, tmp_path, as_of=AS_OF)
    assert [(t.authority, dict(t.counts)) for t in lists] == [
        (GONGSHU, {"高风险": 1, "中风险": 0, "数据核实": 1}),
        (XIHU, {"高风险": 2, "中风险": 2, "数据核实": 0}),
    ]
    for t in lists:
        assert t.workbook.name == f"{t.authority}.xlsx" and t.csv.name == f"{t.authority}.csv"
        compare(f"{t.authority}.xlsx.txt", dump_workbook(t.workbook))
        raw = t.csv.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # BOM, so Excel reads UTF-8
        compare(f"{t.authority}.csv", raw.decode("utf-8"))


def test_workbooks_hold_what_the_findings_hold(engine: Engine, tmp_path: Path) -> None:
    lists = {t.authority: t for t in export_task_lists(engine, tmp_path, as_of=AS_OF)}
    rows: dict[str, dict[str, Any]] = {}
    for t in lists.values():
        wb = load_workbook(t.workbook)
        assert wb.sheetnames == ["高风险", "中风险", "数据核实", "汇总"]
        for ws in wb.worksheets[:3]:
            values = list(ws.iter_rows(values_only=True))
            assert values[0] == HEADERS
            for row in values[1:]:
                record = dict(zip(HEADERS, row, strict=True))
                assert record["风险等级"] == ws.title and record["主管税务机关"] == t.authority
                rows[record["纳税人识别号"]] = record
    expected = [f for f in sample_findings() if f["kind"] == "undetermined"
                or (f["kind"] == "improper" and f["risk_tier"] in ("high", "medium") and f["taxpayer_id"] != tp(9))]
    assert set(rows) == {f["taxpayer_id"] for f in expected}
    for f in expected:
        row = rows[f["taxpayer_id"]]
        assert row["纳税人名称"] == f["taxpayer_name"]
        assert (row["所属期"], row["规则编号"], row["优惠政策"]) == (f["period"], f["rule_id"], f["rule_name"])
        amount = f["estimated_amount"]
        assert (None if row["涉及金额（元）"] is None else Decimal(str(row["涉及金额（元）"]))) == amount
        assert Decimal(str(row["申报享受金额（元）"])) == f["claimed_amount"]
        assert row["判定理由"] == f["reasons"] and row["政策依据"] == f["basis"]
        for item in f["evidence"]:
            assert item["label"] in row["证据"] and (item["value"] or "缺失") in row["证据"]
        assert row["案件编号"] == case_number(f["taxpayer_id"], f["rule_id"], f["period"])
        assert isinstance(row["办理期限"], datetime) and isinstance(row["立案日期"], datetime)
    assert set(FINDINGS_SCHEMA) >= {"taxpayer_id", "reasons", "evidence"}


def test_cells_are_typed_for_excel(engine: Engine, tmp_path: Path) -> None:
    [xihu] = export_task_lists(engine, tmp_path, as_of=AS_OF, authorities=[XIHU])
    ws = load_workbook(xihu.workbook)["高风险"]
    col = {h: i for i, h in enumerate(HEADERS)}
    row = next(ws.iter_rows(min_row=2, max_row=2))
    assert row[col["涉及金额（元）"]].data_type == "n" and row[col["涉及金额（元）"]].number_format == MONEY_FORMAT
    assert row[col["办理期限"]].is_date and row[col["办理期限"]].number_format == "yyyy-mm-dd"
    assert row[col["剩余天数"]].value == -5  # high tier opened 01-10, due 01-20, as of 01-25
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:U{ws.max_row}"
    rules = [r for cf in ws.conditional_formatting for r in cf.rules]
    assert rules and rules[0].operator == "lessThan"
    # A name that looks like a formula stays text.
    medium = load_workbook(xihu.workbook)["中风险"]
    names = [r[col["纳税人名称"]] for r in medium.iter_rows(min_row=2)]
    formula_like = [c for c in names if str(c.value).startswith("=")]
    assert formula_like and all(c.data_type == "s" for c in formula_like)


def test_csv_defuses_formula_like_text(engine: Engine, tmp_path: Path) -> None:
    [xihu] = export_task_lists(engine, tmp_path, as_of=AS_OF, authorities=[XIHU])
    with xihu.csv.open(encoding="utf-8-sig", newline="") as fh:
        records = list(csv.DictReader(fh))
    names = [r["纳税人名称"] for r in records]
    assert "'=HYPERLINK(\"x\")恶意名称" in names
    assert {r["涉及金额（元）"] for r in records} >= {"612345.67", "52000.50"}


def test_an_authority_asked_for_by_name_gets_its_lists_even_when_empty(engine: Engine, tmp_path: Path) -> None:
    lists = export_task_lists(engine, tmp_path, as_of=AS_OF, authorities=["13301099000"])
    [empty] = lists
    assert dict(empty.counts) == {"高风险": 0, "中风险": 0, "数据核实": 0}
    wb = load_workbook(empty.workbook)
    assert wb.sheetnames == ["高风险", "中风险", "数据核实", "汇总"]
    assert [list(r) for r in wb["高风险"].iter_rows(values_only=True)] == [list(HEADERS)]
    assert empty.csv.read_text(encoding="utf-8-sig").splitlines() == [",".join(HEADERS)]


def test_export_of_decided_cases_on_request(engine: Engine, tmp_path: Path) -> None:
    [xihu] = export_task_lists(engine, tmp_path, as_of=AS_OF, authorities=[XIHU], statuses=[CORRECTED])
    assert dict(xihu.counts) == {"高风险": 0, "中风险": 1, "数据核实": 0}
    ws = load_workbook(xihu.workbook)["中风险"]
    record = dict(zip(HEADERS, next(ws.iter_rows(min_row=2, values_only=True)), strict=True))
    assert (record["状态"], record["核实结论"], record["剩余天数"]) == ("已更正", "已更正", None)


def test_evidence_text_spells_out_each_condition() -> None:
    text = evidence_text([evidence_item("employees", "fail", "301 人", "300 人", label="从业人数"),
                          evidence_item("assets", "unknown", "", "5000 万元", label="资产总额"),
                          evidence_item("scope", "pass", "企业", "", label="适用范围"),
                          evidence_item("kind", "pass", "企业", "企业", label="纳税人类型"),
                          evidence_item("income", "fail", "3441951.70 元", "3000000.00 元", label="应纳税所得额")])
    assert text.splitlines() == ["【不满足】从业人数：301 人（标准 300 人）",
                                 "【无法判断】资产总额：缺失（标准 5000 万元）", "【满足】适用范围：企业",
                                 "【满足】纳税人类型：企业",  # not 企业（标准 企业）
                                 "【不满足】应纳税所得额：3,441,951.70 元（标准 3,000,000.00 元）"]


def test_readable_figures_leave_years_ids_and_periods_alone() -> None:
    assert readable_figures("应纳税所得额 3441951.70 元，超过 3000000.00 元上限") == \
        "应纳税所得额 3,441,951.70 元，超过 3,000,000.00 元上限"
    assert readable_figures("2025年度 91330106MA2Y00028P 所属期 2026-08 从业人数 301 人 12.5%") == \
        "2025年度 91330106MA2Y00028P 所属期 2026-08 从业人数 301 人 12.5%"


def test_the_summary_sheet_counts_and_adds_up_per_tier_and_rule(engine: Engine, tmp_path: Path) -> None:
    for t in export_task_lists(engine, tmp_path, as_of=AS_OF):
        wb = load_workbook(t.workbook)
        rows = list(wb["汇总"].iter_rows(values_only=True))
        assert rows[0] == SUMMARY_HEADERS
        totals = {r[0]: r for r in rows[1:] if r[1] == "合计"}
        assert set(totals) == {"高风险", "中风险", "数据核实"}
        for sheet, total in totals.items():
            cases = list(wb[sheet].iter_rows(min_row=2, values_only=True))
            assert total[3] == len(cases) == sum(r[3] for r in rows[1:] if r[0] == sheet and r[1] != "合计")
            money = [Decimal(str(c[HEADERS.index("涉及金额（元）")] or 0)) for c in cases]
            if sheet != "数据核实":
                assert Decimal(str(total[5])) == sum(money, Decimal(0))
            else:
                assert total[5] is None
