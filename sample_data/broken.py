"""The `sample_data/broken/` folder: a data set full of broken rows, and what must be quarantined.

    python -m sample_data.broken --out sample_data/broken

taxpayers.csv is GBK-encoded, indicators.csv UTF-8 with BOM, claims.csv plain UTF-8 and
risk_events.parquet typed Parquet. expected_quarantine.csv lists every (file, row, column) that
must be quarantined with a word its reason must contain; every other row must load.
"""

from __future__ import annotations

import argparse
import csv
import io
from datetime import date
from pathlib import Path

import polars as pl

from profiles.ids import gb32100_check_char, make_credit_code

A = make_credit_code("330106", "MA2Y9001")  # valid enterprise
B = make_credit_code("330110", "MA2Y9002", category="2")  # valid individual business
C = make_credit_code("330108", "MA2Y9003")  # valid enterprise
D = make_credit_code("330105", "MA2Y9004")  # valid code, its taxpayers row has a bad enum
E = make_credit_code("330102", "MA2Y9005")  # valid code, never in taxpayers
BAD_CHECK = A[:17] + ("0" if A[17] != "0" else "1")  # GB 32100 check character wrong
_ORG = A[:16] + ("1" if A[16] != "1" else "2")
BAD_ORG = _ORG + gb32100_check_char(_ORG)  # GB 11714 check wrong, GB 32100 recomputed

TAXPAYER_HEADER = [
    "taxpayer_id",
    "name",
    "entity_type",
    "vat_status",
    "vat_filing_cycle",
    "industry_code",
    "restricted_industry",
    "tax_authority",
    "district",
    "credit_grade",
    "registered_on",
    "hnte_cert_issued_on",
    "hnte_cert_valid_until",
    "phone",
    "email",
    "preferred_channel",
    "opt_out",
]


def _tp(tid: str, name: str, **over: str) -> list[str]:
    row = {
        "taxpayer_id": tid,
        "name": name,
        "entity_type": "enterprise",
        "vat_status": "general",
        "vat_filing_cycle": "month",
        "industry_code": "I6513",
        "restricted_industry": "否",
        "tax_authority": "13301060000",
        "district": "西湖区",
        "credit_grade": "B",
        "registered_on": "2018-05-10",
        "hnte_cert_issued_on": "",
        "hnte_cert_valid_until": "",
        "phone": "13800000000",
        "email": "",
        "preferred_channel": "etax",
        "opt_out": "否",
    }
    row.update(over)
    return [row[c] for c in TAXPAYER_HEADER]


# (row in file, line number = index + 2) ... expected lines: (file, row, column, reason word)
TAXPAYERS = [
    _tp(A, "杭州甲科技有限公司"),  # 2 ok
    _tp(BAD_CHECK, "杭州校验码错误有限公司"),  # 3
    _tp(A[:17], "杭州少一位有限公司"),  # 4
    _tp(A[:5] + "I" + A[6:], "杭州非法字符有限公司"),  # 5
    _tp(BAD_ORG, "杭州组织机构代码错误有限公司"),  # 6
    _tp(D, "杭州类型错误有限公司", entity_type="公司"),  # 7
    _tp(make_credit_code("330106", "MA2Y9006"), "杭州日期错误有限公司", registered_on="2025-02-30"),  # 8
    _tp(make_credit_code("330106", "MA2Y9007"), "杭州布尔错误有限公司", opt_out="maybe"),  # 9
    _tp(make_credit_code("330106", "MA2Y9008"), ""),  # 10 empty name
    _tp(A, "杭州甲科技有限公司（重复）"),  # 11 duplicate of line 2
    _tp(
        B,
        "余杭区乙便利店",
        entity_type="个体工商户",
        vat_status="小规模纳税人",
        vat_filing_cycle="quarter",
        industry_code="F5213",
        credit_grade="",
        opt_out="是",
    ),  # 12 ok (Chinese labels accepted)
    _tp(make_credit_code("330106", "MA2Y9009"), "杭州等级错误有限公司", credit_grade="E"),  # 13
    _tp(C, "杭州丙科技有限公司", registered_on="2019/07/01"),  # 14 ok (other date form)
    _tp(
        make_credit_code("330106", "MA2Y9010"), "杭州两处错误有限公司", entity_type="x", registered_on="昨天"
    ),  # 15
]
INDICATOR_HEADER = [
    "taxpayer_id",
    "period",
    "sales",
    "taxable_income",
    "employees_qavg",
    "assets_qavg",
    "employees",
    "disabled_employees",
    "rd_expense",
    "incremental_credit",
    "six_taxes_due",
]
INDICATORS = [
    [A, "2025", "1000000.00", "100000.00", "12.5", "2000000", "12", "0", "0", "", "3000"],  # 2 ok
    [A, "2025Q1", "abc", "", "", "", "", "", "", "0", ""],  # 3 bad money
    [A, "2025Q2", "12.345", "", "", "", "", "", "", "0", ""],  # 4 three decimals
    [A, "2025Q3", "10", "", "", "", "3.5", "", "", "0", ""],  # 5 employees not an integer
    [A, "2025Q5", "10", "", "", "", "", "", "", "0", ""],  # 6 bad period
    [A, "2025", "1.00", "", "", "", "", "", "", "", ""],  # 7 duplicate of line 2
    [E, "2025", "1.00", "", "", "", "", "", "", "", ""],  # 8 taxpayer not in taxpayers
    [D, "2025", "1.00", "", "", "", "", "", "", "", ""],  # 9 taxpayer row quarantined
    [B, "2025", "300000", "50000", "NaN", "", "2", "0", "", "", "500"],  # 10 NaN headcount
    [B, "2025Q1", " 1,234.50 ", "", "", "", "", "", "", "", ""],  # 11 ok (spaces, thousands separator)
    ["", "2025", "1.00", "", "", "", "", "", "", "", ""],  # 12 empty taxpayer_id
    [C, "2025", "5000000", "400000", "30", "8000000", "30", "0", "200000", "", "15000"],  # 13 ok
    [C, "2025-06", "400000", "", "", "", "", "", "", "1e3", ""],  # 14 ok (scientific notation)
]
CLAIM_HEADER = ["taxpayer_id", "period", "incentive", "amount"]
CLAIMS = [
    [A, "2025", "small_low_profit_cit", "20000.00"],  # 2 ok
    [A, "2025", "small_low_profit", "20000.00"],  # 3 unknown incentive (did you mean)
    [A, "2025", "six_taxes_two_fees_half", "一百"],  # 4 bad amount
    [A, "2025", "small_low_profit_cit", "1.00"],  # 5 duplicate of line 2
    [E, "2025", "small_low_profit_cit", "1.00"],  # 6 unknown taxpayer
    [C, "2025-13", "rd_super_deduction", "1.00"],  # 7 bad period
    [C, "2025", "rd_super_deduction", ""],  # 8 ok (amount missing)
]
EXPECTED = [
    ("taxpayers.csv", 3, "taxpayer_id", "第18位"),
    ("taxpayers.csv", 4, "taxpayer_id", "18位"),
    ("taxpayers.csv", 5, "taxpayer_id", "非法字符"),
    ("taxpayers.csv", 6, "taxpayer_id", "GB 11714"),
    ("taxpayers.csv", 7, "entity_type", "取值无效"),
    ("taxpayers.csv", 8, "registered_on", "日期"),
    ("taxpayers.csv", 9, "opt_out", "是/否"),
    ("taxpayers.csv", 10, "name", "为空"),
    ("taxpayers.csv", 11, "taxpayer_id", "第 2 行"),
    ("taxpayers.csv", 13, "credit_grade", "取值无效"),
    ("taxpayers.csv", 15, "entity_type", "取值无效"),
    ("taxpayers.csv", 15, "registered_on", "日期"),
    ("indicators.csv", 3, "sales", "不是有效金额"),
    ("indicators.csv", 4, "sales", "小数位"),
    ("indicators.csv", 5, "employees", "整数"),
    ("indicators.csv", 6, "period", "所属期"),
    ("indicators.csv", 7, "taxpayer_id+period", "第 2 行"),
    ("indicators.csv", 8, "taxpayer_id", "不存在"),
    ("indicators.csv", 9, "taxpayer_id", "已被隔离"),
    ("indicators.csv", 10, "employees_qavg", "数字"),
    ("indicators.csv", 12, "taxpayer_id", "为空"),
    ("claims.csv", 3, "incentive", "small_low_profit_cit"),
    ("claims.csv", 4, "amount", "不是有效金额"),
    ("claims.csv", 5, "taxpayer_id+period+incentive", "第 2 行"),
    ("claims.csv", 6, "taxpayer_id", "不存在"),
    ("claims.csv", 7, "period", "所属期"),
    ("risk_events.parquet", 2, "event", "取值无效"),
    ("risk_events.parquet", 3, "occurred_on", "为空"),
    ("risk_events.parquet", 4, "taxpayer_id", "第18位"),
]


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_broken(out: Path) -> None:
    """Write the broken data folder and its expected_quarantine.csv."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "taxpayers.csv").write_bytes(_csv_text(TAXPAYER_HEADER, TAXPAYERS).encode("gbk"))
    (out / "indicators.csv").write_bytes(
        b"\xef\xbb\xbf" + _csv_text(INDICATOR_HEADER, INDICATORS).encode("utf-8")
    )
    (out / "claims.csv").write_text(_csv_text(CLAIM_HEADER, CLAIMS), encoding="utf-8")
    pl.DataFrame(
        {
            "taxpayer_id": [A, A, A, BAD_CHECK],
            "event": ["tax_evasion_penalty", "fraud", "false_invoicing", "refund_fraud"],
            "occurred_on": [date(2024, 3, 15), date(2024, 1, 1), None, date(2023, 1, 1)],
        }
    ).write_parquet(out / "risk_events.parquet")
    expected = pl.DataFrame(EXPECTED, schema=["file", "row", "column", "reason_contains"], orient="row")
    expected.write_csv(out / "expected_quarantine.csv")


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m sample_data.broken --out DIR."""
    parser = argparse.ArgumentParser(prog="python -m sample_data.broken", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "broken")
    write_broken(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
