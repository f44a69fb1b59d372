"""Deterministic generator of realistic Hangzhou taxpayer profiles, from a few thousand to millions.

    python -m sample_data.generator --taxpayers 3000 --out sample_data/hangzhou --seed 2026
    python -m sample_data.generator --taxpayers 820000 --out /tmp/big --format parquet   # ≈10M rows

Everything is drawn with numpy's seeded generator and assembled column by column (no loop over
taxpayers), so ten million indicator rows take seconds. What it makes:

* taxpayers: valid 统一社会信用代码 (region = the district's 行政区划码), real district names and
  bureaus, GB/T 4754-2017 industry codes, Chinese company names (杭州××科技有限公司) and individual
  business names (西湖区××便利店); about 20% individual businesses; small-scale and general VAT
  taxpayers; monthly and quarterly filers; credit grades; HNTE certificates for some tech firms;
* indicators: the tax year 2025 (income, headcount, assets, R&D, 六税两费, 残保金, equipment …),
  then VAT periods by filing cycle — quarters 2025Q1–2026Q3 for quarterly filers, months
  2025-01–2026-09 for monthly filers — with sales, incremental credit, input VAT, software sales;
  lognormal sizes (most taxpayers small), a few missing figures;
* claims: most eligible taxpayers claim, some do not (应享未享), a few claim when not eligible
  (违规享受), a few amounts are missing; risk events for a few taxpayers;
* planted cases (`sample_data.planted`): hand-written taxpayers at exact thresholds, with their
  expected outcomes in planted.csv.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from profiles.authorities import HANGZHOU_DISTRICTS
from profiles.ids import CHAR_VALUE, CHARSET, GB11714_WEIGHTS, GB32100_WEIGHTS
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS

#: The incentive catalogue of issue 2 (rule ids; claims use them as incentive codes).
CATALOGUE_IDS: tuple[str, ...] = (
    "small_low_profit_cit",
    "small_scale_vat_exemption",
    "small_scale_vat_1pct",
    "six_taxes_two_fees_half",
    "individual_business_iit_half",
    "rd_super_deduction",
    "hnte_15pct",
    "vat_credit_refund",
    "disability_fund_relief",
    "service_vat_credit_plus",
    "key_groups_startup_employment",
    "software_vat_refund",
    "advanced_mfg_vat_credit_5pct",
    "equipment_one_off_deduction",
    "veterans_startup_employment",
    "disabled_employment_vat_refund",
    "disabled_wage_extra_deduction",
    # technology and other incentives (issue 11 §4)
    "technology_transfer_cit",
    "technology_transfer_vat_exempt",
    "ic_machine_tool_rd_120",
    "incubator_tax_exempt",
    "agri_self_produced_vat_exempt",
    "nev_purchase_tax",
)

TAX_YEAR = "2025"
QUARTERS: tuple[str, ...] = ("2025Q1", "2025Q2", "2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3")
MONTHS: tuple[str, ...] = tuple(f"2025-{m:02d}" for m in range(1, 13)) + tuple(
    f"2026-{m:02d}" for m in range(1, 10)
)

#: R&D super deduction negative list (财税〔2015〕119号), judged on the industry code's prefix.
RD_NEGATIVE_PREFIXES: tuple[str, ...] = ("C16", "F", "H", "K", "L", "R90")

# Thresholds (incentives.md) used to decide who is eligible when drawing claims.
SLP_INCOME_CAP = 3_000_000
SLP_EMPLOYEES_CAP = 300
SLP_ASSETS_CAP = 50_000_000
VAT_EXEMPT_QUARTER = 300_000
VAT_EXEMPT_MONTH = 100_000
EQUIPMENT_UNIT_CAP = 5_000_000
TECH_TRANSFER_EXEMPT_CAP = 5_000_000
DISABILITY_EXEMPT_EMPLOYEES = 30
DISABILITY_TIER_RATIO = 0.01  # 财政部公告2023年第8号 一: ≥ 1% pays 50%, below pays 90%
KEY_GROUP_OWNER_QUOTA, KEY_GROUP_HIRE_QUOTA = 20_000, 6_000  # 2023年第15号 (national amounts)
VETERAN_OWNER_QUOTA, VETERAN_HIRE_QUOTA = 20_000, 6_000  # 2023年第14号 (national amounts)
MIN_WAGE_MONTHLY = 2_490  # sample figure for the districts' monthly minimum wage


@dataclass(frozen=True)
class Industry:
    """A GB/T 4754-2017 class with the words used to name firms in it."""

    code: str
    label: str
    company_word: str  # 杭州××{company_word}有限公司
    shop_word: str  # ××区××{shop_word} (individual businesses); "" = no individual businesses
    enterprise_weight: float
    individual_weight: float
    size: float = 1.0  # sales multiplier


INDUSTRIES: tuple[Industry, ...] = (
    Industry("C3484", "机械零部件加工", "机械", "机械加工部", 6, 0.5, 1.6),
    Industry("C3670", "汽车零部件及配件制造", "汽车配件", "", 3, 0, 2.5),
    Industry("C3982", "电子电路制造", "电子", "", 3, 0, 1.8),
    Industry("C3911", "计算机整机制造", "电子科技", "", 1, 0, 2.5),
    Industry("C1810", "机织服装制造", "服饰", "制衣厂", 4, 2, 1.2),
    Industry("C2710", "化学药品原料药制造", "药业", "", 1, 0, 3.0),
    Industry("F5179", "其他机械设备及电子产品批发", "贸易", "", 8, 0, 1.5),
    Industry("F5193", "互联网批发", "电子商务", "网店", 5, 3, 1.0),
    Industry("F5211", "百货零售", "商贸", "百货店", 3, 3, 1.0),
    Industry("F5213", "便利店零售", "便利连锁", "便利店", 1, 12, 0.6),
    Industry("F5223", "果品、蔬菜零售", "农产品", "鲜果店", 0.5, 6, 0.5),
    Industry("F5232", "服装零售", "服装", "服装店", 1, 6, 0.6),
    Industry("I6513", "应用软件开发", "网络科技", "", 9, 0, 1.0),
    Industry("I6511", "基础软件开发", "软件", "", 2, 0, 1.2),
    Industry("I6520", "集成电路设计", "微电子", "", 1, 0, 2.0),
    Industry("I6531", "信息系统集成服务", "信息技术", "", 4, 0, 1.0),
    Industry("M7320", "工程和技术研究和试验发展", "技术研究", "", 3, 0, 0.8),
    Industry("M7340", "医学研究和试验发展", "生物医药", "", 1, 0, 1.0),
    Industry("H6210", "正餐服务", "餐饮管理", "饭店", 3, 10, 0.6),
    Industry("H6220", "快餐服务", "餐饮", "小吃店", 1, 9, 0.4),
    Industry("K7010", "房地产开发经营", "房地产开发", "", 1.5, 0, 6.0),
    Industry("K7020", "物业管理", "物业管理", "", 2, 0, 0.8),
    Industry("L7212", "投资与资产管理", "投资管理", "", 3, 0, 0.7),
    Industry("L7251", "互联网广告服务", "文化传媒", "", 3, 0, 0.9),
    Industry("E4710", "住宅房屋建筑", "建设", "", 3, 0, 3.0),
    Industry("G5821", "货物运输代理", "物流", "货运部", 3, 2, 1.0),
    Industry("O8040", "理发及美容服务", "美容", "美发店", 0.5, 6, 0.5),
    Industry("R9013", "网吧活动", "网络文化", "网吧", 0.3, 1, 0.5),
)

_TRADE_NAMES_1 = list("华恒瑞鑫诚泰聚博通宏盛佳兴德安远辰启明创卓锦汇峰祥益达润嘉新亿光弘星云海睿")
_TRADE_NAMES_2 = list("信达源丰宇航科利昌隆华盛通泰合业成鼎宸然飞越晟川和远曜石峻悦帆")
_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程")
_EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "aliyun.com", "sina.com")


# ----------------------------------------------------------------------------------------------
# Credit codes, vectorized


def _char_matrix(strings: list[str]) -> np.ndarray:
    """Fixed-length ASCII strings -> (n, len) uint8 matrix."""
    return np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).reshape(len(strings), -1)


_CHARSET_BYTES = np.frombuffer(CHARSET.encode("ascii"), dtype=np.uint8)
_V31 = np.full(256, 255, dtype=np.int64)
_V36 = np.full(256, 255, dtype=np.int64)
for _c, _v in CHAR_VALUE.items():
    _V31[ord(_c)] = _v
    _V36[ord(_c)] = int(_c, 36)


def credit_codes(region_codes: np.ndarray, individual: np.ndarray, bodies: np.ndarray) -> pl.Series:
    """Valid credit codes from (n, 6) uint8 region digits, (n,) individual-business flags (category 2,
    else 1) and (n, 8) uint8 organisation-code bodies; both check characters computed."""
    n = len(region_codes)
    m = np.empty((n, 18), dtype=np.uint8)
    m[:, 0] = ord("9")
    m[:, 1] = np.where(individual, ord("2"), ord("1"))
    m[:, 2:8] = region_codes
    m[:, 8:16] = bodies
    c11 = 11 - (_V36[bodies] @ np.array(GB11714_WEIGHTS)) % 11
    m[:, 16] = np.where(c11 == 10, ord("X"), np.where(c11 == 11, ord("0"), ord("0") + c11 % 10))
    total = _V31[m[:, :17]] @ np.array(GB32100_WEIGHTS)
    m[:, 17] = _CHARSET_BYTES[(31 - total % 31) % 31]
    return pl.Series("taxpayer_id", m.view("S18").ravel(), dtype=pl.Binary).cast(pl.String)


def org_bodies(rng: np.random.Generator, n: int, new_style_share: float = 0.65) -> np.ndarray:
    """Distinct 8-character organisation-code bodies: 'MA2' + 5 charset chars, or 8 digits.

    The first of the five is never 'Y', which is kept for planted taxpayers (`MA2Y....`).
    """
    new = rng.random(n) < new_style_share
    n_new, n_old = int(new.sum()), int((~new).sum())
    out = np.empty((n, 8), dtype=np.uint8)
    numbers = rng.choice(30 * 31**4, size=n_new, replace=False)
    digits = np.empty((n_new, 5), dtype=np.int64)
    for i in range(4, -1, -1):
        digits[:, i] = numbers % 31
        numbers //= 31
    out[new, :3] = np.frombuffer(b"MA2", dtype=np.uint8)
    out[new, 3:] = _CHARSET_BYTES[digits]
    olds = rng.choice(10**8, size=n_old, replace=False)
    for i in range(7, -1, -1):  # eight decimal digits
        out[~new, i] = ord("0") + olds % 10
        olds //= 10
    return out


# ----------------------------------------------------------------------------------------------
# Taxpayers


def _pick(rng: np.random.Generator, options: list[str], n: int) -> pl.Series:
    """n random choices from a list of strings, as a polars column."""
    return pl.Series(options, dtype=pl.String).gather(rng.integers(0, len(options), n))


def _take(options: list[str], idx: np.ndarray) -> pl.Series:
    return pl.Series(options, dtype=pl.String).gather(idx)


def _choose(mask: np.ndarray, yes: pl.Series | str, no: pl.Series | str) -> pl.Series:
    """Element-wise yes/no between two string columns (or constants)."""
    return pl.select(pl.when(pl.lit(mask)).then(pl.lit(yes)).otherwise(pl.lit(no))).to_series()


def _round2(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def _money(values: np.ndarray, mask: np.ndarray | None = None) -> pl.Series:
    """Float yuan -> exact Decimal(38,2) column (null where mask is False)."""
    s = pl.Series(_round2(values)).round(2).cast(pl.Decimal(38, 2))
    if mask is None:
        return s
    return pl.select(pl.when(pl.lit(mask)).then(pl.lit(s)).otherwise(None)).to_series()


def _dates(rng: np.random.Generator, start: date, end: date, n: int) -> np.ndarray:
    lo, hi = np.datetime64(start), np.datetime64(end)
    return lo + rng.integers(0, int((hi - lo).astype(int)) + 1, n).astype("timedelta64[D]")


def make_taxpayers(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """n taxpayers, plus hidden size drivers (__sales, __industry) used for their indicators."""
    individual = rng.random(n) < 0.2
    ent_w = np.array([i.enterprise_weight for i in INDUSTRIES])
    ind_w = np.array([i.individual_weight for i in INDUSTRIES])
    industry = np.where(
        individual,
        rng.choice(len(INDUSTRIES), n, p=ind_w / ind_w.sum()),
        rng.choice(len(INDUSTRIES), n, p=ent_w / ent_w.sum()),
    )
    codes = _take([i.code for i in INDUSTRIES], industry)
    size = np.array([i.size for i in INDUSTRIES])[industry]
    district_w = np.array([14, 12, 11, 10, 14, 16, 5, 4, 6, 5, 1.5, 0.8, 1.2])
    district = rng.choice(len(HANGZHOU_DISTRICTS), n, p=district_w / district_w.sum())
    region_bytes = _char_matrix([d.region_code for d in HANGZHOU_DISTRICTS])[district]
    district_names = _take([d.name for d in HANGZHOU_DISTRICTS], district)
    ids = credit_codes(region_bytes, individual, org_bodies(rng, n))

    # annual sales drive everything else: lognormal, most taxpayers small
    sales = np.where(
        individual,
        rng.lognormal(np.log(260_000), 0.85, n),
        rng.lognormal(np.log(1_600_000), 1.55, n) * size,
    )
    sales = np.minimum(sales, 8e9)
    general = ~individual & ((sales > 5_000_000) | (rng.random(n) < 0.22))
    general |= individual & (rng.random(n) < 0.02)
    monthly = np.where(general, rng.random(n) < 0.97, rng.random(n) < 0.08)

    section = np.array([i.code[0] for i in INDUSTRIES])[industry]
    is_tech = np.isin(section, ["C", "I", "M"])
    hnte = ~individual & is_tech & (sales > 2_000_000) & (rng.random(n) < 0.35)
    issue_year = rng.integers(2019, 2026, n)
    issued = np.array([np.datetime64(f"{y}-11-01") for y in range(2019, 2026)])[issue_year - 2019]
    issued = (issued + rng.integers(0, 55, n).astype("timedelta64[D]")).astype("datetime64[D]")
    issued_s = pl.Series(issued)
    valid_until_s = issued_s.dt.offset_by("3y").dt.offset_by("-1d")  # three-year certificate

    grade = np.where(
        individual,
        rng.choice(6, n, p=[0, 0.05, 0.25, 0, 0, 0.7]),
        rng.choice(6, n, p=[0.22, 0.43, 0.22, 0.07, 0.01, 0.05]),
    )
    registered = _dates(rng, date(2003, 1, 1), date(2025, 6, 30), n)
    restricted = rng.random(n) < 0.008

    trade = _pick(rng, _TRADE_NAMES_1, n) + _pick(rng, _TRADE_NAMES_2, n)
    company_words = _take([i.company_word for i in INDUSTRIES], industry)
    shop_words = _take([i.shop_word or "商行" for i in INDUSTRIES], industry)
    shop_trade = _choose(rng.random(n) < 0.4, _pick(rng, _SURNAMES, n) + "记", trade)
    names = _choose(
        individual,
        district_names + shop_trade + shop_words,
        _choose(rng.random(n) < 0.85, "杭州", "浙江") + trade + company_words + "有限公司",
    )
    phones = _pick(rng, ["13", "15", "18", "17", "19"], n) + pl.Series(rng.integers(0, 10**9, n)).cast(
        pl.String
    ).str.zfill(9)
    channel = rng.choice(4, n, p=[0.6, 0.25, 0.1, 0.05])
    has_email = (channel == 2) | (rng.random(n) < 0.4)
    emails = (
        pl.Series(rng.integers(10**7, 10**10, n)).cast(pl.String) + "@" + _pick(rng, list(_EMAIL_DOMAINS), n)
    )
    software = (
        ~individual
        & np.isin(industry, [i for i, x in enumerate(INDUSTRIES) if x.code in ("I6513", "I6511", "I6520")])
        & (rng.random(n) < 0.55)
    )
    key_group_owner = individual & (rng.random(n) < 0.06)
    veteran_owner = individual & ~key_group_owner & (rng.random(n) < 0.03)
    # 福利企业: a few enterprises employing disabled people at 25% or more (财税〔2016〕52号)
    welfare = ~individual & general & (rng.random(n) < 0.004)

    return pl.DataFrame(
        {
            "taxpayer_id": ids,
            "name": names,
            "entity_type": _choose(individual, "individual_business", "enterprise"),
            "vat_status": _choose(general, "general", "small_scale"),
            "vat_filing_cycle": _choose(monthly, "month", "quarter"),
            "industry_code": codes,
            "restricted_industry": restricted,
            "tax_authority": _take([d.tax_authority for d in HANGZHOU_DISTRICTS], district),
            "district": district_names,
            "credit_grade": pl.Series(["A", "B", "M", "C", "D", None], dtype=pl.String).gather(grade),
            "registered_on": registered.astype("datetime64[D]"),
            "hnte_cert_issued_on": pl.select(pl.when(pl.lit(hnte)).then(pl.lit(issued_s))).to_series(),
            "hnte_cert_valid_until": pl.select(pl.when(pl.lit(hnte)).then(pl.lit(valid_until_s))).to_series(),
            "phone": phones,
            "email": pl.select(pl.when(pl.lit(has_email)).then(pl.lit(emails))).to_series(),
            "preferred_channel": pl.Series(["etax", "sms", "email", "post"], dtype=pl.String).gather(channel),
            "opt_out": rng.random(n) < 0.03,
            "software_copyright": pl.select(pl.when(~pl.lit(individual)).then(pl.lit(software))).to_series(),
            "key_group_owner": key_group_owner,
            # enjoyment of a start-up deduction begins in the month of registration
            "key_group_relief_since": pl.select(
                pl.when(pl.lit(key_group_owner)).then(pl.lit(registered.astype("datetime64[D]")).dt.month_start())
            ).to_series(),
            "veteran_owner": pl.select(pl.when(pl.lit(individual)).then(pl.lit(veteran_owner))).to_series(),
            "blind_massage_org": pl.select(pl.when(pl.lit(welfare)).then(pl.lit(False))).to_series(),
            "__welfare": welfare,
            "__sales": sales,
            "__industry": industry,
        }
    )


# ----------------------------------------------------------------------------------------------
# Indicators


def _hnte_covers_2025(frame: pl.DataFrame) -> np.ndarray:
    """Per row: an HNTE certificate issued by and valid through 2025-12-31 (missing dates: no)."""
    covers = pl.col("hnte_cert_issued_on").le(date(2025, 12, 31)) & pl.col("hnte_cert_valid_until").ge(
        date(2025, 12, 31))
    return frame.select(covers).to_series().fill_null(False).to_numpy()


def _year_rows(rng: np.random.Generator, tp: pl.DataFrame) -> pl.DataFrame:
    n = tp.height
    individual = (tp["entity_type"] == "individual_business").to_numpy()
    sales = tp["__sales"].to_numpy()
    section = np.array([i.code[0] for i in INDUSTRIES])[tp["__industry"].to_numpy()]
    per_head = rng.lognormal(np.log(420_000), 0.6, n)
    qavg_raw = np.where(individual, 1 + rng.poisson(1.6, n), np.maximum(1, sales / per_head))
    employees_qavg = np.round(qavg_raw * 8) / 8  # mean of quarterly averages: multiples of 1/8
    employees = np.maximum(1, np.round(employees_qavg * rng.uniform(0.9, 1.1, n))).astype(np.int64)
    welfare = tp["__welfare"].to_numpy()
    employees = np.where(welfare, np.maximum(employees, 40), employees)
    disabled = np.where(employees > 20, rng.binomial(employees, 0.009), 0)
    disabled = np.where(welfare, np.ceil(employees * rng.uniform(0.25, 0.45, n)), disabled).astype(np.int64)
    assets = sales * rng.lognormal(np.log(0.75), 0.6, n) * np.where(section == "K", 4.0, 1.0)
    margin = np.where(individual, rng.uniform(-0.02, 0.3, n), rng.normal(0.06, 0.08, n))
    taxable_income = sales * margin
    tech = np.isin(section, ["C", "I", "M"])
    has_rd = ~individual & ((tech & (rng.random(n) < 0.6)) | (~tech & (rng.random(n) < 0.05)))
    rd = np.where(has_rd, sales * rng.uniform(0.02, 0.1, n), 0.0)
    six_taxes = sales * rng.uniform(0.002, 0.006, n)
    disability_due = np.where(
        individual, np.nan, np.maximum(0, employees * 0.015 - disabled) * rng.uniform(95_000, 125_000, n)
    )
    buys = ~individual & (rng.random(n) < np.where(section == "C", 0.35, 0.08))
    equipment_cost = np.where(buys, rng.lognormal(np.log(300_000), 1.2, n), np.nan)
    equipment_max = equipment_cost * rng.uniform(0.15, 1.0, n)
    hires = np.where(~individual & (rng.random(n) < 0.03), rng.integers(1, 6, n), 0)
    hire_months = hires + rng.binomial(hires * 11, 0.7)  # each hire works 1–12 months of the year
    vet_hires = np.where(~individual & (rng.random(n) < 0.015), rng.integers(1, 4, n), 0)
    vet_months = vet_hires + rng.binomial(vet_hires * 11, 0.7)
    key_owner = tp["key_group_owner"].to_numpy()
    vet_owner = tp["veteran_owner"].fill_null(False).to_numpy()
    startup_due = np.where(
        key_owner | vet_owner | (hires > 0) | (vet_hires > 0), np.maximum(sales * 0.02, 1_000), np.nan
    )
    disabled_wages = np.where(~individual & (disabled > 0), disabled * rng.uniform(45_000, 90_000, n), np.nan)
    hnte_valid = _hnte_covers_2025(tp)
    listed = (
        (section == "C") & hnte_valid & (tp["vat_status"] == "general").to_numpy() & (rng.random(n) < 0.4)
    )
    # a few missing figures
    miss_emp = rng.random(n) < 0.015
    miss_assets = rng.random(n) < 0.01
    miss_income = rng.random(n) < 0.01
    return pl.DataFrame(
        {
            "taxpayer_id": tp["taxpayer_id"],
            "period": pl.Series([TAX_YEAR] * 0, dtype=pl.String).extend_constant(TAX_YEAR, n),
            "sales": _money(sales),
            "taxable_income": _money(taxable_income, ~miss_income),
            "employees_qavg": pl.Series(np.where(miss_emp, np.nan, employees_qavg)).fill_nan(None),
            "assets_qavg": _money(assets, ~miss_assets),
            "employees": employees,
            "disabled_employees": disabled.astype(np.int64),
            "rd_expense": _money(rd, ~individual),
            "incremental_credit": _money(np.zeros(n), np.zeros(n, dtype=bool)),
            "six_taxes_due": _money(six_taxes),
            "disability_fund_due": _money(np.nan_to_num(disability_due), ~np.isnan(disability_due)),
            "software_sales": _money(np.zeros(n), np.zeros(n, dtype=bool)),
            "software_output_vat": _money(np.zeros(n), np.zeros(n, dtype=bool)),
            "software_input_vat": _money(np.zeros(n), np.zeros(n, dtype=bool)),
            "creditable_input_vat": _money(np.zeros(n), np.zeros(n, dtype=bool)),
            "advanced_mfg_listed": pl.select(pl.when(~pl.lit(individual)).then(pl.lit(listed))).to_series(),
            "equipment_cost": _money(np.nan_to_num(equipment_cost), buys),
            "equipment_max_unit_cost": _money(np.nan_to_num(equipment_max), buys),
            "key_group_hires": pl.select(pl.when(~pl.lit(individual)).then(pl.lit(hires))).to_series(),
            "startup_taxes_due": _money(np.nan_to_num(startup_due), ~np.isnan(startup_due)),
            "key_group_hire_months": pl.select(pl.when(~pl.lit(individual)).then(pl.lit(hire_months))).to_series(),
            "veteran_hires": pl.select(pl.when(~pl.lit(individual)).then(pl.lit(vet_hires))).to_series(),
            "veteran_hire_months": pl.select(pl.when(~pl.lit(individual)).then(pl.lit(vet_months))).to_series(),
            "disabled_wages": _money(np.nan_to_num(disabled_wages), ~np.isnan(disabled_wages)),
        }
    )


def _owners_and_recertification(rng: np.random.Generator, tp: pl.DataFrame) -> pl.DataFrame:
    """owner_id (a hash, as the bureau would give it) for individual businesses, about 4% of them run by the
    owner of the business before; hnte_recert_failed for certificates that lapse within 2025."""
    n = tp.height
    individual = (tp["entity_type"] == "individual_business").to_numpy()
    own = np.arange(n)
    same_as_before = individual & (rng.random(n) < 0.04)
    last_individual = np.maximum.accumulate(np.where(individual & ~same_as_before, own, -1))
    prev = np.concatenate([[-1], last_individual[:-1]])
    owner_row = np.where(same_as_before & (prev >= 0), prev, own)
    owner_key = pl.Series(tp["taxpayer_id"].gather(owner_row)).hash(seed=20231).cast(pl.String)
    owner_id = pl.select(pl.when(pl.lit(individual)).then(pl.lit("h") + pl.lit(owner_key))).to_series()
    until = tp["hnte_cert_valid_until"]
    lapses = ((until >= date(2025, 1, 1)) & (until < date(2025, 12, 31))).fill_null(False).to_numpy()
    u = rng.random(n)
    failed = pl.Series(np.where(u < 0.4, True, False)).to_frame("f").select(
        pl.when(pl.lit(lapses) & pl.lit(u < 0.6)).then(pl.col("f"))).to_series()
    return tp.with_columns(owner_id.alias("owner_id"), failed.alias("hnte_recert_failed"))


def _items_and_other_reliefs(rng: np.random.Generator, tp: pl.DataFrame, year: pl.DataFrame) -> pl.DataFrame:
    """equipment_cost_eligible (items of unit value <= 5,000,000; sometimes not reported) and, for a few
    individual businesses, other_iit_relief."""
    n = year.height
    cost = year["equipment_cost"].cast(pl.Float64).to_numpy()
    top = year["equipment_max_unit_cost"].cast(pl.Float64).to_numpy()
    bought = ~np.isnan(cost)
    eligible = np.where(top <= EQUIPMENT_UNIT_CAP, cost, np.maximum(cost - top, 0))
    reported = bought & (rng.random(n) < 0.85)
    individual = (tp["entity_type"] == "individual_business").to_numpy()
    income = year["taxable_income"].cast(pl.Float64).fill_null(0).to_numpy()
    other = individual & (income > 0) & (rng.random(n) < 0.05)
    # 小型微利 by the last 汇算清缴 (2022年第3号 一): mostly what this year's figures say, a few changed status.
    emp = year["employees_qavg"].fill_null(np.nan).to_numpy()
    assets = year["assets_qavg"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    slp_now = (income <= SLP_INCOME_CAP) & (emp <= SLP_EMPLOYEES_CAP) & (assets <= SLP_ASSETS_CAP) \
        & ~tp["restricted_industry"].fill_null(True).to_numpy()
    h1 = slp_now ^ (rng.random(n) < 0.12)
    h2 = slp_now ^ (rng.random(n) < 0.08)
    known = ~individual & (rng.random(n) < 0.96)
    return year.with_columns(
        _money(np.nan_to_num(eligible), reported).alias("equipment_cost_eligible"),
        _money(np.round(np.minimum(income * 0.01, 2_000), 2), other).alias("other_iit_relief"),
        pl.select(pl.when(pl.lit(known)).then(pl.lit(h1))).to_series().alias("slp_settled_h1"),
        pl.select(pl.when(pl.lit(known)).then(pl.lit(h2))).to_series().alias("slp_settled_h2"),
    )


def _vat_rows(rng: np.random.Generator, tp: pl.DataFrame, year: pl.DataFrame) -> pl.DataFrame:
    """Quarter rows for quarterly filers, month rows for monthly filers (sales split with noise)."""
    monthly = (tp["vat_filing_cycle"] == "month").to_numpy()
    general = (tp["vat_status"] == "general").to_numpy()
    software = tp["software_copyright"].fill_null(False).to_numpy()
    listed = year["advanced_mfg_listed"]
    welfare = tp["__welfare"].to_numpy()
    staff, disabled = year["employees"].to_numpy(), year["disabled_employees"].to_numpy()
    sales = tp["__sales"].to_numpy()
    growth = rng.uniform(0.85, 1.2, tp.height)
    parts = []
    for periods, mask, per_year in ((QUARTERS, ~monthly, 4), (MONTHS, monthly, 12)):
        idx = np.flatnonzero(mask)
        k, m = len(periods), len(idx)
        if m == 0:
            continue
        weights = rng.gamma(12.0, 1.0, (m, k))
        weights /= weights[:, :per_year].sum(axis=1, keepdims=True)  # 2025 periods sum to the year
        base = sales[idx, None] * weights
        base[:, per_year:] *= growth[idx, None]
        period_sales = base.ravel()
        rows = m * k
        gen = np.repeat(general[idx], k)
        soft = np.repeat(software[idx], k) & gen
        incremental = np.where(gen & (rng.random(rows) < 0.12), rng.lognormal(np.log(60_000), 1.0, rows), 0.0)
        input_vat = period_sales * 0.13 * rng.uniform(0.35, 0.9, rows)
        soft_sales = np.where(soft, period_sales * rng.uniform(0.3, 0.9, rows), 0.0)
        missing_sales = rng.random(rows) < 0.003
        wf = np.repeat(welfare[idx], k)
        vat_paid = np.maximum(period_sales * 0.13 - input_vat, 0.0)
        months = 3 if per_year == 4 else 1
        parts.append(
            pl.DataFrame(
                {
                    "taxpayer_id": tp["taxpayer_id"].gather(np.repeat(idx, k)),
                    "period": pl.Series(periods, dtype=pl.String).gather(np.tile(np.arange(k), m)),
                    "sales": _money(period_sales, ~missing_sales),
                    "incremental_credit": _money(incremental, gen),
                    "software_sales": _money(soft_sales, soft),
                    "software_output_vat": _money(soft_sales * 0.13, soft),
                    "software_input_vat": _money(soft_sales * 0.13 * rng.uniform(0.05, 0.3, rows), soft),
                    "creditable_input_vat": _money(input_vat, gen),
                    "advanced_mfg_listed": listed.gather(np.repeat(idx, k)),
                    "employees": pl.select(pl.when(pl.lit(wf)).then(pl.lit(np.repeat(staff[idx], k)))).to_series(),
                    "disabled_employees": pl.select(
                        pl.when(pl.lit(wf)).then(pl.lit(np.repeat(disabled[idx], k)))
                    ).to_series(),
                    "vat_paid": _money(vat_paid, wf & gen),
                    "min_wage_monthly": _money(np.full(rows, float(MIN_WAGE_MONTHLY)), wf),
                    "disabled_vat_income_share": pl.Series(np.where(wf, rng.uniform(0.6, 1.0, rows), np.nan))
                    .fill_nan(None),
                    "__months": np.full(rows, months),
                    "__tp": np.repeat(idx, k),
                }
            )
        )
    frame = (
        pl.concat(parts) if parts else pl.DataFrame(schema={"taxpayer_id": pl.String, "period": pl.String})
    )
    return frame


#: 留抵退税 industries (GB/T 4754 prefixes): full monthly refund of incremental credit from 2022-07
#: (财政部 税务总局公告2022年第14号、第21号) and monthly refund of period-end credit from the 2025-08 所属期
#: (2025年第7号 as reported); real estate development.
CREDIT_FULL_2022 = ("C", "M", "D", "I65", "N77", "G", "F", "A", "H", "O", "P", "Q", "R")
CREDIT_FULL_2025 = ("C", "M", "I65", "N77")
REAL_ESTATE_DEV = ("K701",)


def _credit_columns(rng: np.random.Generator, tp: pl.DataFrame, vat: pl.DataFrame) -> pl.DataFrame:
    """留抵退税 history columns and small-scale real-estate sales, from their own random stream.

    Period-end credit = incremental credit + part of a per-taxpayer 2019 base; consecutive positive
    months are run lengths over each taxpayer's periods (a quarter counts three months) plus a carry
    from before 2025; the new credit over the previous 31 December uses the last 2025 period.
    """
    if vat.height == 0:
        return vat
    n = tp.height
    t = vat["__tp"].to_numpy()
    rows = vat.height
    general = (tp["vat_status"] == "general").to_numpy()
    small = (tp["vat_status"] == "small_scale").to_numpy()
    codes = tp["industry_code"]
    base = np.where(general & (rng.random(n) < 0.15), rng.lognormal(np.log(40_000), 1.0, n), 0.0)
    carry = np.where(rng.random(n) < 0.5, rng.integers(0, 18, n), 0)
    ratio = np.round(rng.uniform(0.55, 1.0, n), 4)
    ratio_known = general & (rng.random(n) >= 0.04)
    micro = tp["__sales"].to_numpy() < 20_000_000
    micro_known = general & (rng.random(n) >= 0.05)
    lessor = small & (rng.random(n) < np.where(_starts_with(codes, ("K", "L")), 0.25, 0.04))
    share = rng.uniform(0.2, 1.0, n)
    re_known = small & (rng.random(n) >= 0.03)

    incr = vat["incremental_credit"].cast(pl.Float64).fill_null(0.0).to_numpy()
    gen_rows = general[t]
    used = np.where(rng.random(rows) < 0.4, 0.0, rng.uniform(0.0, 1.0, rows))  # base partly used up
    period_end = np.where(gen_rows, incr + base[t] * np.where(incr > 0, 1.0, used), np.nan)
    sales = vat["sales"].cast(pl.Float64).fill_null(0.0).to_numpy()
    frame = vat.with_columns(
        pl.Series("__pe", period_end),
        pl.Series("__incr", incr),
        pl.Series("__carry", carry[t]),
        pl.Series("__step", np.where(vat["period"].str.contains("Q").to_numpy(), 3, 1)),
    )
    runs = []
    for value, name in (("__incr", "incremental_credit_positive_months"),
                        ("__pe", "period_end_credit_positive_months")):
        pos = pl.col(value).fill_nan(0.0) > 0
        stretch = (~pos).cum_sum().over("__tp")
        months = (pos.cast(pl.Int64) * pl.col("__step")).cum_sum().over(["__tp", stretch])
        runs.append(pl.when(pos).then(months + pl.when(stretch == 0).then(pl.col("__carry")).otherwise(0))
                    .otherwise(0).alias(name))
    prior_2025 = base * rng.uniform(0.3, 1.2, n)
    last_2025 = pl.col("__pe").filter(pl.col("period").str.starts_with("2025")).last().over("__tp")
    prior = pl.when(pl.col("period").str.starts_with("2025")).then(pl.Series(prior_2025[t])).otherwise(last_2025)
    frame = frame.with_columns(
        *runs,
        (pl.col("__pe") - prior).alias("__new"),
    )
    return frame.with_columns(
        _money(np.nan_to_num(period_end), gen_rows).alias("period_end_credit"),
        _money(np.nan_to_num(frame["__new"].fill_null(0.0).to_numpy()), gen_rows).alias("new_credit_vs_prior_year_end"),
        pl.when(pl.lit(gen_rows)).then(pl.col("incremental_credit_positive_months")),
        pl.when(pl.lit(gen_rows)).then(pl.col("period_end_credit_positive_months")),
        pl.Series("input_composition_ratio", np.where(ratio_known[t], ratio[t], np.nan)).fill_nan(None),
        pl.select(pl.when(pl.lit(micro_known[t])).then(pl.lit(micro[t]))).to_series().alias("small_micro_enterprise"),
        _money(np.where(lessor[t], sales * share[t], 0.0), re_known[t]).alias("real_estate_sales"),
    ).drop("__pe", "__incr", "__carry", "__step", "__new")


#: Tables longer than this are left in generation order (sorting millions of rows costs more than
#: generating them); smaller ones are sorted by taxpayer so that a person can read them.
SORT_MAX_ROWS = 2_000_000


def _sorted(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return frame.sort(by) if frame.height <= SORT_MAX_ROWS else frame


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Exact contract columns and dtypes, absent columns null."""
    return frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c) for c, t in schema.items()]
    )


# ----------------------------------------------------------------------------------------------
# Claims and risk events


def _iit_relief(income: np.ndarray) -> np.ndarray:
    """Half of the 经营所得 tax on the part of income up to 2,000,000 (5%–35% brackets)."""
    ti = np.clip(income, 0, 2_000_000)
    tax = np.select(
        [ti <= 30_000, ti <= 90_000, ti <= 300_000, ti <= 500_000],
        [ti * 0.05, ti * 0.10 - 1_500, ti * 0.20 - 10_500, ti * 0.30 - 40_500],
        ti * 0.35 - 65_500,
    )
    return tax * 0.5


def _claims_for(
    rng: np.random.Generator,
    ids: pl.Series,
    periods: pl.Series,
    incentive: str,
    eligible: np.ndarray,
    relevant: np.ndarray,
    amount: np.ndarray,
    p_claim: float,
    p_wrong: float,
) -> pl.DataFrame:
    """Claims of one incentive: eligible rows claim with p_claim; relevant ineligible with p_wrong.

    Only candidate rows (eligible or relevant) draw random numbers, so rare incentives cost little.
    """
    cand = np.flatnonzero(eligible | relevant)
    ok = eligible[cand]
    draw = rng.random(len(cand))
    rows = cand[(ok & (draw < p_claim)) | (~ok & (draw < p_wrong))]
    amt = np.nan_to_num(amount[rows])
    amt = np.where(~eligible[rows] & (amt <= 0), np.abs(amt) + 1_000, amt)  # a wrong claim still claims
    missing = rng.random(len(rows)) < 0.03
    return pl.DataFrame(
        {
            "taxpayer_id": ids.gather(rows),
            "period": periods.gather(rows),
            "incentive": pl.Series(values=[], dtype=pl.String).extend_constant(incentive, len(rows)),
            "amount": _money(np.maximum(amt, 0), ~missing),
        }
    )


def _starts_with(codes: pl.Series, prefixes: tuple[str, ...]) -> np.ndarray:
    """Boolean array: the industry code starts with one of the prefixes."""
    return (
        pl.select(pl.any_horizontal([pl.lit(codes).str.starts_with(p) for p in prefixes]))
        .to_series()
        .fill_null(False)
        .to_numpy()
    )


def make_claims(
    rng: np.random.Generator,
    tp: pl.DataFrame,
    year: pl.DataFrame,
    vat: pl.DataFrame,
    events: pl.DataFrame,
    *,
    aux: np.random.Generator | None = None,
) -> pl.DataFrame:
    """Claims with realistic error rates, per incentive (留抵退税 draws from `aux` when given)."""
    y = pl.concat([year, tp.drop("taxpayer_id", "__sales", "__industry")], how="horizontal")  # same order
    ids, per = y["taxpayer_id"], y["period"]

    def col(name: str, fill: float = np.nan) -> np.ndarray:
        s = y[name]
        if s.dtype == pl.Decimal(38, 2):
            s = s.cast(pl.Float64)
        return s.fill_null(fill).to_numpy() if s.dtype != pl.Boolean else s.fill_null(False).to_numpy()

    enterprise = (y["entity_type"] == "enterprise").to_numpy()
    individual = ~enterprise
    small_scale = (y["vat_status"] == "small_scale").to_numpy()
    ti, emp, assets = col("taxable_income"), col("employees_qavg"), col("assets_qavg")
    known = ~np.isnan(ti) & ~np.isnan(emp) & ~np.isnan(assets)
    slp = (
        enterprise
        & known
        & ~col("restricted_industry")
        & (ti <= SLP_INCOME_CAP)
        & (emp <= SLP_EMPLOYEES_CAP)
        & (assets <= SLP_ASSETS_CAP)
        & (ti > 0)
    )
    hnte_ok = _hnte_covers_2025(y)
    has_cert = y["hnte_cert_issued_on"].is_not_null().to_numpy()
    negative = _starts_with(y["industry_code"], RD_NEGATIVE_PREFIXES)
    rd = col("rd_expense", 0)
    employees = col("employees", np.nan)
    six = col("six_taxes_due", 0)
    eq_cost, eq_max = col("equipment_cost", 0), col("equipment_max_unit_cost", 0)
    # Item by item (2023年第37号 第一条): the items up to 5,000,000 count, one dearer machine does not spoil them.
    eq_eligible = np.where(np.isnan(col("equipment_cost_eligible")),
                           np.where(eq_max <= EQUIPMENT_UNIT_CAP, eq_cost, 0), col("equipment_cost_eligible", 0))
    settled = col("slp_settled_h1") | col("slp_settled_h2")  # 六税两费 of a general-taxpayer enterprise
    hire_months = col("key_group_hire_months", 0)
    owner = col("key_group_owner")
    startup = col("startup_taxes_due", 0)
    vet_owner = col("veteran_owner")
    vet_months = col("veteran_hire_months", 0)
    disabled = col("disabled_employees", 0)
    due = col("disability_fund_due", 0)
    # 残保金: exempt up to 30 staff, else 50% off at a ratio of 1% or more, 10% off below; a few firms over 30
    # staff have the whole levy waived (违规享受).
    fund_relief = due * np.where(
        employees <= DISABILITY_EXEMPT_EMPLOYEES, 1.0, np.where(disabled >= employees * DISABILITY_TIER_RATIO, 0.5, 0.1)
    )
    waived = (employees > DISABILITY_EXEMPT_EMPLOYEES) & (rng.random(len(ids)) < 0.03)
    fund_relief = np.where(waived, due, fund_relief)
    # a start-up deduction runs 36 months from the month of registration: in 2025, registered 2022-02 or later
    recent = (y["registered_on"] >= date(2022, 2, 1)).fill_null(False).to_numpy()
    key_group = ((owner & recent) | (hire_months > 0)) & (startup > 0)
    veteran = ((vet_owner & recent) | (vet_months > 0)) & (startup > 0)
    key_group_relief = np.minimum(
        startup, np.where(owner, KEY_GROUP_OWNER_QUOTA, hire_months * KEY_GROUP_HIRE_QUOTA / 12)
    )
    veteran_relief = np.minimum(
        startup, np.where(vet_owner, VETERAN_OWNER_QUOTA, vet_months * VETERAN_HIRE_QUOTA / 12)
    )
    wages = col("disabled_wages", 0)
    wage_saving = np.minimum(wages, np.maximum(np.nan_to_num(ti), 0)) * np.where(slp, 0.05, 0.25)
    parts = [
        _claims_for(rng, ids, per, "small_low_profit_cit", slp, enterprise & (ti > 0), ti * 0.2, 0.88, 0.02),
        _claims_for(
            rng,
            ids,
            per,
            "six_taxes_two_fees_half",
            (small_scale | settled | individual) & (six > 0),
            enterprise,
            six * 0.5,
            0.8,
            0.02,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "individual_business_iit_half",
            individual & (ti > 0),
            enterprise & (ti > 0),
            _iit_relief(ti),
            0.85,
            0.002,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "rd_super_deduction",
            enterprise & (rd > 0) & ~negative,
            enterprise & (rd > 0),
            rd * 0.25,
            0.75,
            0.12,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "hnte_15pct",
            # A certified firm that also qualifies as 小型微利 takes the 5% rate, not the 15% one: the two
            # do not stack, and most firms choose (stacking stays as a rare error through p_wrong below).
            enterprise & hnte_ok & (ti > 0) & ~slp,
            has_cert & (ti > 0),
            ti * 0.10,
            0.9,
            0.3,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "disability_fund_relief",
            enterprise & (due > 0) & ~np.isnan(employees),
            np.zeros(len(ids), dtype=bool),
            fund_relief,
            0.9,  # applied by the bureau's 批扣 in Hangzhou: seldom missed
            0.0,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "equipment_one_off_deduction",
            eq_eligible > 0,
            eq_cost > 0,
            eq_eligible * 2 / 3 * 0.25,
            0.7,
            0.2,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "key_groups_startup_employment",
            key_group,
            owner & ~recent & (startup > 0),  # still deducting after the 36 months
            key_group_relief,
            0.7,
            0.03,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "veterans_startup_employment",
            veteran,
            vet_owner & ~recent & (startup > 0),
            np.where(key_group, 0.0, veteran_relief),
            0.6,
            0.03,
        ),
        _claims_for(
            rng,
            ids,
            per,
            "disabled_wage_extra_deduction",
            enterprise & (disabled > 0) & (wages > 0),
            np.zeros(len(ids), dtype=bool),
            wage_saving,
            0.6,
            0.0,
        ),
    ]
    if vat.height:
        t = vat["__tp"].to_numpy()  # taxpayer index of each VAT row: attributes by gather, no join

        def vcol(name: str, fill: float = 0.0) -> np.ndarray:
            return vat[name].cast(pl.Float64).fill_null(fill).to_numpy()

        vids, vper = vat["taxpayer_id"], vat["period"]
        vsales = vcol("sales", np.nan)
        monthly = (tp["vat_filing_cycle"] == "month").to_numpy()[t]
        small = small_scale[t]
        general = ~small
        cap = np.where(monthly, VAT_EXEMPT_MONTH, VAT_EXEMPT_QUARTER)
        exempt = small & ~np.isnan(vsales) & (vsales <= cap) & (vsales > 0)
        over = small & ~np.isnan(vsales) & (vsales > cap)
        parts.append(
            _claims_for(rng, vids, vper, "small_scale_vat_exemption", exempt, over, vsales * 0.01, 0.9, 0.03)
        )
        parts.append(
            _claims_for(
                rng,
                vids,
                vper,
                "small_scale_vat_1pct",
                over,
                general & (vsales > 0),
                vsales * 0.02,
                0.85,
                0.004,
            )
        )
        bad_events = events.filter(
            pl.col("event").is_in(
                ["refund_fraud", "export_refund_fraud", "false_invoicing", "instant_refund"]
            )
        )["taxpayer_id"].unique()
        clean = ~tp["taxpayer_id"].is_in(bad_events.implode()).to_numpy()[t]
        incr = vcol("incremental_credit")
        grade_ok = tp["credit_grade"].is_in(["A", "B"]).fill_null(False).to_numpy()[t]
        manufacturing = _starts_with(tp["industry_code"], ("C",))[t]
        pe = vcol("period_end_credit") if "period_end_credit" in vat.columns else incr
        new = vcol("new_credit_vs_prior_year_end") if "new_credit_vs_prior_year_end" in vat.columns else incr
        inc_m = vcol("incremental_credit_positive_months") if "incremental_credit_positive_months" in vat.columns else 0
        pe_m = vcol("period_end_credit_positive_months") if "period_end_credit_positive_months" in vat.columns else 0
        ratio = vcol("input_composition_ratio", 1.0) if "input_composition_ratio" in vat.columns else 1.0
        micro = (vat["small_micro_enterprise"].fill_null(False).to_numpy()
                 if "small_micro_enterprise" in vat.columns else np.zeros(len(t), dtype=bool))
        codes = tp["industry_code"]
        full_old = _starts_with(codes, CREDIT_FULL_2022)[t] | micro
        full_new, estate = _starts_with(codes, CREDIT_FULL_2025)[t], _starts_with(codes, REAL_ESTATE_DEV)[t]
        new_regime = pl.select(
            pl.when(pl.lit(vper).str.contains("Q")).then(pl.lit(vper) >= "2025Q4").otherwise(pl.lit(vper) >= "2025-08")
        ).to_series().to_numpy()
        six_incr = (inc_m >= 6) & (incr >= 500_000)
        ok_old = (incr > 0) & (full_old | six_incr)
        ok_new = (full_new & (pe > 0)) | (estate & six_incr) | (~full_new & ~estate & (pe_m >= 6) & (new >= 500_000))
        refund = ratio * np.where(
            new_regime,
            np.where(full_new, pe, np.where(estate, incr * 0.6,
                                            np.minimum(new, 1e8) * 0.6 + np.maximum(new - 1e8, 0) * 0.3)),
            incr * np.where(full_old, 1.0, 0.6),
        )
        parts.append(
            _claims_for(
                aux if aux is not None else rng,
                vids,
                vper,
                "vat_credit_refund",
                general & grade_ok & clean & np.where(new_regime, ok_new, ok_old),
                general & ((incr > 0) | (pe > 0)),
                refund,
                0.5,
                0.05,
            )
        )
        cin = vcol("creditable_input_vat")
        parts.append(
            _claims_for(
                rng,
                vids,
                vper,
                "service_vat_credit_plus",
                np.zeros(len(t), dtype=bool),
                ~manufacturing & general,
                cin * 0.05,
                0.0,
                0.004,
            )
        )
        ss = vcol("software_sales")
        refund = vcol("software_output_vat") - vcol("software_input_vat") - ss * 0.03
        parts.append(
            _claims_for(
                rng,
                vids,
                vper,
                "software_vat_refund",
                general & (ss > 0) & (refund > 0),
                ss > 0,
                refund,
                0.8,
                0.0,
            )
        )
        vdisabled = vcol("disabled_employees")
        vpaid = vcol("vat_paid")
        bad_grade = tp["credit_grade"].is_in(["C", "D"]).fill_null(False).to_numpy()[t]
        welfare = vdisabled > 0
        parts.append(
            _claims_for(
                rng,
                vids,
                vper,
                "disabled_employment_vat_refund",
                welfare & ~bad_grade & (vpaid > 0),
                welfare & bad_grade,
                np.minimum(vpaid, vdisabled * MIN_WAGE_MONTHLY * 4 * vat["__months"].to_numpy()),
                0.8,
                0.5,
            )
        )
        listed = vat["advanced_mfg_listed"].fill_null(False).to_numpy()
        parts.append(
            _claims_for(
                rng,
                vids,
                vper,
                "advanced_mfg_vat_credit_5pct",
                general & listed & hnte_ok[t] & (cin > 0),
                general & manufacturing & (cin > 0),
                cin * 0.05,
                0.75,
                0.01,
            )
        )
    claims = _conform(pl.concat(parts), CLAIMS.polars_schema)
    return _sorted(claims, ["taxpayer_id", "period", "incentive"])


def make_risk_events(rng: np.random.Generator, tp: pl.DataFrame) -> pl.DataFrame:
    """A few risk events: evasion penalties, false invoicing, refund fraud, and instant refunds."""
    n = tp.height
    ids = tp["taxpayer_id"]
    general = (tp["vat_status"] == "general").to_numpy()
    software = tp["software_copyright"].fill_null(False).to_numpy()
    kinds = [
        ("tax_evasion_penalty", rng.random(n) < 0.02, date(2019, 1, 1), date(2026, 9, 30)),
        ("tax_evasion_penalty", rng.random(n) < 0.003, date(2021, 1, 1), date(2026, 9, 30)),
        ("false_invoicing", rng.random(n) < 0.003, date(2019, 1, 1), date(2026, 9, 30)),
        ("refund_fraud", general & (rng.random(n) < 0.003), date(2019, 6, 1), date(2026, 6, 30)),
        ("export_refund_fraud", general & (rng.random(n) < 0.001), date(2019, 1, 1), date(2026, 6, 30)),
        ("instant_refund", general & software & (rng.random(n) < 0.7), date(2016, 1, 1), date(2025, 12, 31)),
        ("instant_refund", general & (rng.random(n) < 0.01), date(2017, 1, 1), date(2025, 12, 31)),
    ]
    parts = []
    for event, mask, start, end in kinds:
        k = int(mask.sum())
        parts.append(
            pl.DataFrame(
                {
                    "taxpayer_id": ids.filter(mask),
                    "event": pl.Series([event] * 0, dtype=pl.String).extend_constant(event, k),
                    "occurred_on": _dates(rng, start, end, k).astype("datetime64[D]"),
                }
            )
        )
    frame = _conform(pl.concat(parts), RISK_EVENTS_TABLE.polars_schema)
    return _sorted(frame, ["taxpayer_id", "occurred_on"])


# ----------------------------------------------------------------------------------------------
# Technology and other incentives (issue 11 §4): their own random stream, so adding them leaves every
# figure drawn before unchanged.


def _bool_where(mask: np.ndarray, values: np.ndarray) -> pl.Series:
    """values where mask, null elsewhere."""
    return pl.select(pl.when(pl.lit(mask)).then(pl.lit(values))).to_series()


def add_tech_figures(
    rng: np.random.Generator, tp: pl.DataFrame, year: pl.DataFrame, vat: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The columns of the technology and other incentives, for a sensible share of taxpayers.

    * technology transfer (CIT, year): ~5% of manufacturing, software and research firms, contracts
      registered for most of them; technology services (VAT periods): ~15% of software and research firms;
    * 集成电路 / 工业母机 list: about half of the IC design firms with R&D;
    * incubators: ~4% of research and investment-management firms, with the property and land tax due;
    * farmers: a third of the fruit-and-vegetable shops sell their own produce (agri_producer);
    * new-energy vehicles: ~6% of enterprises and 2% of individual businesses bought 1–4 listed vehicles.
    """
    n = tp.height
    individual = (tp["entity_type"] == "individual_business").to_numpy()
    enterprise = ~individual
    codes = tp["industry_code"]
    section = codes.str.slice(0, 1).to_numpy()
    tech = enterprise & np.isin(section, ["C", "I", "M"])
    rd = year["rd_expense"].cast(pl.Float64).fill_null(0).to_numpy()
    transfers = tech & (rng.random(n) < 0.05)
    transfer_income = np.where(transfers, rng.lognormal(np.log(900_000), 1.1, n), 0.0)
    registered = rng.random(n) < 0.9
    services = enterprise & np.isin(codes.to_numpy(), ["I6513", "I6511", "I6520", "I6531", "M7320", "M7340"]) & (
        rng.random(n) < 0.15)
    services_registered = rng.random(n) < 0.92
    listed = enterprise & (codes == "I6520").to_numpy() & (rd > 0) & (rng.random(n) < 0.5)
    incubator = enterprise & np.isin(codes.to_numpy(), ["M7320", "L7212"]) & (rng.random(n) < 0.04)
    incubator_ok = rng.random(n) < 0.9
    farmer_shop = individual & (codes == "F5223").to_numpy()
    farmer = farmer_shop & (rng.random(n) < 0.35)
    buys = np.where(individual, rng.random(n) < 0.02, rng.random(n) < 0.06)
    vehicles = np.where(buys, np.where(individual, 1, rng.integers(1, 5, n)), 0)
    per_vehicle = rng.uniform(8_000, 45_000, (n, 4)).round(2)
    per_vehicle[np.arange(4)[None, :] >= vehicles[:, None]] = 0.0
    year = year.with_columns(
        tech_transfer_income=_money(transfer_income, enterprise),
        tech_contract_registered=_bool_where(transfers, registered),
        ic_machine_tool_listed=_bool_where(enterprise & (rd > 0), listed),
        incubator_certified=_bool_where(incubator, incubator_ok),
        incubator_property_land_tax=_money(rng.lognormal(np.log(150_000), 0.8, n), incubator),
        nev_listed_vehicles=pl.Series(vehicles.astype(np.int64)),
        nev_purchase_tax=_money(per_vehicle.sum(axis=1), vehicles > 0),
        nev_max_vehicle_tax=_money(per_vehicle.max(axis=1), vehicles > 0),
    )
    tp = tp.with_columns(agri_producer=_bool_where(farmer_shop, farmer))
    if vat.height:
        t = vat["__tp"].to_numpy()
        rows = vat.height
        vsales = vat["sales"].cast(pl.Float64).fill_null(0).to_numpy()
        tech_share = np.where(services[t], rng.uniform(0.05, 0.4, rows), 0.0)
        agri_share = np.where(farmer[t], rng.uniform(0.5, 1.0, rows), 0.0)
        vat = vat.with_columns(
            tech_service_sales=_money(vsales * tech_share, services[t]),
            tech_contract_registered=_bool_where(services[t], services_registered[t]),
            agri_self_produced_sales=_money(vsales * agri_share, farmer_shop[t]),
        )
    return tp, year, vat


def make_tech_claims(
    rng: np.random.Generator, tp: pl.DataFrame, year: pl.DataFrame, vat: pl.DataFrame
) -> pl.DataFrame:
    """Claims of the technology and other incentives, with realistic error rates."""
    ids, per = year["taxpayer_id"], year["period"]

    def col(frame: pl.DataFrame, name: str, fill: float = 0.0) -> np.ndarray:
        s = frame[name]
        if s.dtype == pl.Boolean:
            return s.fill_null(False).to_numpy()
        return s.cast(pl.Float64).fill_null(fill).to_numpy()

    tti = col(year, "tech_transfer_income")
    registered = col(year, "tech_contract_registered")
    reduction = np.minimum(tti, TECH_TRANSFER_EXEMPT_CAP) + np.maximum(tti - TECH_TRANSFER_EXEMPT_CAP, 0) * 0.5
    rd = col(year, "rd_expense")
    listed = col(year, "ic_machine_tool_listed")
    has_listed = year["ic_machine_tool_listed"].is_not_null().to_numpy()
    incubator_tax = col(year, "incubator_property_land_tax")
    certified = col(year, "incubator_certified")
    vehicles = col(year, "nev_listed_vehicles")
    n = year.height
    none = np.zeros(n, dtype=bool)
    parts = [
        _claims_for(rng, ids, per, "technology_transfer_cit", (tti > 0) & registered, tti > 0,
                    reduction * 0.25, 0.8, 0.3),
        _claims_for(rng, ids, per, "ic_machine_tool_rd_120", listed & (rd > 0), has_listed & (rd > 0),
                    rd * 0.2 * 0.25, 0.8, 0.003),
        _claims_for(rng, ids, per, "incubator_tax_exempt", certified & (incubator_tax > 0), incubator_tax > 0,
                    incubator_tax, 0.85, 0.6),
        _claims_for(rng, ids, per, "nev_purchase_tax", vehicles > 0, none,
                    np.minimum(col(year, "nev_purchase_tax"), vehicles * 30_000), 0.95, 0.0),
    ]
    if vat.height:
        t = vat["__tp"].to_numpy()
        vids, vper = vat["taxpayer_id"], vat["period"]
        tech_sales = col(vat, "tech_service_sales")
        vreg = col(vat, "tech_contract_registered")
        agri = col(vat, "agri_self_produced_sales")
        producer = tp["agri_producer"].fill_null(False).to_numpy()[t]
        shop = tp["agri_producer"].is_not_null().to_numpy()[t]
        parts.append(_claims_for(rng, vids, vper, "technology_transfer_vat_exempt", (tech_sales > 0) & vreg,
                                 tech_sales > 0, tech_sales * 0.03, 0.85, 0.3))
        parts.append(_claims_for(rng, vids, vper, "agri_self_produced_vat_exempt", producer & (agri > 0),
                                 shop & ~producer, agri * 0.01, 0.85, 0.04))
    return _conform(pl.concat(parts), CLAIMS.polars_schema)


# ----------------------------------------------------------------------------------------------
# Whole data sets


def generate(n_taxpayers: int, *, seed: int = 2026, planted: bool = True) -> dict[str, pl.DataFrame]:
    """The four tables (and `planted` when asked) for n random taxpayers plus the planted cases."""
    rng = np.random.default_rng(seed)
    tp = make_taxpayers(rng, n_taxpayers)
    year = _year_rows(rng, tp)
    # Columns added later draw from their own stream, so the earlier columns stay as they were.
    later = np.random.default_rng([seed, 1])
    tp = _owners_and_recertification(later, tp)
    year = _items_and_other_reliefs(later, tp, year)
    vat = _vat_rows(rng, tp, year)
    aux = np.random.default_rng([seed, 1120])  # 留抵退税/不动产 columns (issues 11, 20): own stream
    vat = _credit_columns(aux, tp, vat)
    events = make_risk_events(rng, tp)
    claims = make_claims(rng, tp, year, vat, events, aux=aux)
    tech_rng = np.random.default_rng([seed, 11])  # issue 11 §4: a stream of its own, earlier draws unchanged
    tp, year, vat = add_tech_figures(tech_rng, tp, year, vat)
    claims = _sorted(
        pl.concat([claims, make_tech_claims(tech_rng, tp, year, vat)]), ["taxpayer_id", "period", "incentive"]
    )
    tables = {
        "taxpayers": _conform(tp, TAXPAYERS.polars_schema),
        "indicators": _sorted(
            pl.concat([_conform(year, INDICATORS.polars_schema), _conform(vat, INDICATORS.polars_schema)]),
            ["taxpayer_id", "period"],
        ),
        "claims": claims,
        "risk_events": events,
    }
    if planted:
        from sample_data.planted import planted_tables

        extra, expected = planted_tables()
        for name, frame in extra.items():
            tables[name] = pl.concat([tables[name], _conform(frame, tables[name].schema)])
        tables["planted"] = expected
    return tables


def write_tables(tables: dict[str, pl.DataFrame], out: Path, fmt: str = "csv") -> dict[str, Path]:
    """Write each table as OUT/<name>.csv (UTF-8, no BOM) or .parquet; planted.csv is always CSV."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in tables.items():
        if fmt == "parquet" and name != "planted":
            path = out / f"{name}.parquet"
            frame.write_parquet(path, compression="snappy")  # faster than zstd; size matters less here
        else:
            path = out / f"{name}.csv"
            frame.write_csv(path, date_format="%Y-%m-%d")
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m sample_data.generator --taxpayers N --out DIR [--format] [--seed]."""
    parser = argparse.ArgumentParser(
        prog="python -m sample_data.generator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--taxpayers", type=int, required=True, help="number of random taxpayers")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-planted", action="store_true", help="leave out the planted boundary cases")
    args = parser.parse_args(argv)
    if args.taxpayers < 0:
        parser.error("--taxpayers must be >= 0")
    start = time.perf_counter()
    tables = generate(args.taxpayers, seed=args.seed, planted=not args.no_planted)
    made = time.perf_counter() - start
    write_tables(tables, args.out, args.format)
    total = time.perf_counter() - start
    sizes = ", ".join(f"{k} {v.height:,}" for k, v in tables.items())
    print(f"generated {sizes} in {made:.1f}s, written to {args.out} in {total:.1f}s total", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
