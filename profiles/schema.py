"""The profile data contract: the four tables Zhixiang reads, defined once.

Everything else — readers, validation, the rule type-checker, the Polars compiler, the durable-rules
backend, pydantic row models and the generated documentation — is derived from these definitions.
Add a field here (with its Chinese label) and rules may use it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

FieldKind = Literal["id", "string", "enum", "bool", "date", "money", "number", "int", "period"]

#: Money is exact: Decimal with two places in the tables, six places inside formulas.
MONEY_DTYPE = pl.Decimal(38, 2)
MONEY_WORK_DTYPE = pl.Decimal(38, 6)

#: Longest text a `string` column accepts unless the column says otherwise (characters).
TEXT_MAX_LENGTH = 200
#: Money beyond +-1e16 元 (a hundred times the national GDP) is a broken cell, never a figure: it is also
#: the most the databases' NUMERIC(18, 2) columns hold (profiles/database.py, notifier/cases/tables.py).
MONEY_LIMIT = 1e16
#: No employer has ten million staff; beyond it is a broken cell.
HEADCOUNT_LIMIT = 10_000_000

POLARS_DTYPES: dict[FieldKind, pl.DataType] = {
    "id": pl.String(),
    "string": pl.String(),
    "enum": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "money": MONEY_DTYPE,
    "number": pl.Float64(),
    "int": pl.Int64(),
    "period": pl.String(),
}


#: How each kind of column is described to people (the contract document, type errors in a file).
KIND_TEXT = {
    "id": "统一社会信用代码（18 位文本）",
    "string": "文本",
    "enum": "枚举",
    "bool": "是/否",
    "date": "日期",
    "money": "金额（元，精确到分）",
    "number": "数字",
    "int": "整数",
    "period": "所属期",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    kind: FieldKind
    label: str
    unit: str = ""
    required: bool = True  # the column must be present in the file
    nullable: bool = True  # an empty cell is allowed (and means "missing" unless empty_means says otherwise)
    values: tuple[str, ...] = ()  # allowed values of an enum
    empty_means: str = ""  # when an empty cell is not "missing" but has a meaning
    doc: str = ""
    #: Bounds (issue 13). Text: at most `max_length` characters (0 = TEXT_MAX_LENGTH for `string`), and when
    #: `pattern` is set the whole value must match it (`pattern_doc` says how, in Chinese). Figures: the
    #: allowed range, inclusive; None = no bound on that side (money gets +-MONEY_LIMIT when unset).
    max_length: int = 0
    pattern: str = ""
    pattern_doc: str = ""
    minimum: float | None = None
    maximum: float | None = None

    @property
    def dtype(self) -> pl.DataType:
        return POLARS_DTYPES[self.kind]

    @property
    def length_cap(self) -> int:
        """Most characters a `string` cell may hold (0 for other kinds: their format bounds them)."""
        return self.max_length or (TEXT_MAX_LENGTH if self.kind == "string" else 0)

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """The allowed range of a figure (money, number, int), inclusive; (None, None) for other kinds."""
        if self.kind == "money":
            low = -MONEY_LIMIT if self.minimum is None else self.minimum
            high = MONEY_LIMIT if self.maximum is None else self.maximum
            return low, high
        if self.kind in ("number", "int"):
            return self.minimum, self.maximum
        return None, None


@dataclass(frozen=True)
class Table:
    """One contract table: its columns and its key."""

    name: str
    label: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str = ""
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def has(self, name: str) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}


ENTITY_TYPES = ("enterprise", "individual_business")
VAT_STATUSES = ("general", "small_scale")
FILING_CYCLES = ("month", "quarter")
CREDIT_GRADES = ("A", "B", "M", "C", "D")
CHANNELS = ("etax", "sms", "email", "post")
RISK_EVENTS = (
    "refund_fraud",
    "export_refund_fraud",
    "false_invoicing",
    "tax_evasion_penalty",
    "instant_refund",
)

ENUM_LABELS: dict[str, dict[str, str]] = {
    "entity_type": {"enterprise": "企业", "individual_business": "个体工商户"},
    "vat_status": {"general": "一般纳税人", "small_scale": "小规模纳税人"},
    "vat_filing_cycle": {"month": "按月申报", "quarter": "按季申报"},
    "preferred_channel": {"etax": "电子税务局", "sms": "短信", "email": "电子邮件", "post": "邮寄"},
    "event": {
        "refund_fraud": "骗取留抵退税",
        "export_refund_fraud": "骗取出口退税",
        "false_invoicing": "虚开增值税专用发票",
        "tax_evasion_penalty": "因偷税受处罚",
        "instant_refund": "享受即征即退/先征后返",
    },
}

TAXPAYERS = Table(
    name="taxpayers",
    label="纳税人基础信息",
    key=("taxpayer_id",),
    columns=(
        Column("taxpayer_id", "id", "纳税人识别号", nullable=False,
               doc="统一社会信用代码, 18 characters, GB 32100-2015 check digit and GB 11714 organisation-code check"),
        Column("name", "string", "纳税人名称", nullable=False, max_length=200),
        Column("entity_type", "enum", "纳税人类型", values=ENTITY_TYPES, nullable=False),
        Column("vat_status", "enum", "增值税纳税人身份", values=VAT_STATUSES),
        Column("vat_filing_cycle", "enum", "增值税申报期", values=FILING_CYCLES),
        Column("industry_code", "string", "行业代码", doc="GB/T 4754-2017, e.g. C3911", max_length=8),
        Column("restricted_industry", "bool", "国家限制和禁止行业"),
        Column("tax_authority", "string", "主管税务机关", nullable=False, pattern=r"[0-9]{11}",
               pattern_doc="11 位数字的税务机关代码，如 13301060000",
               doc="税务机关代码, 11 digits: 1 + 6-digit region code + 4 digits"),
        Column("district", "string", "区县", max_length=50),
        Column("credit_grade", "enum", "纳税信用等级", values=CREDIT_GRADES),
        Column("registered_on", "date", "登记日期"),
        Column("hnte_cert_issued_on", "date", "高新技术企业证书发证日期",
               empty_means="未持有高新技术企业证书"),
        Column("hnte_cert_valid_until", "date", "高新技术企业证书有效期至",
               empty_means="未持有高新技术企业证书"),
        Column("hnte_recert_failed", "bool", "高新技术企业资格期满当年年底前未重新取得资格", required=False,
               doc="For the year the certificate on file expires in: true = not re-certified by 31 December "
                   "(15% not lawful for that year, 国家税务总局公告2017年第24号), false = re-certified; empty = not "
                   "known, and a claim for that year is 待核实"),
        Column("phone", "string", "联系电话", max_length=32),
        Column("email", "string", "电子邮箱", max_length=254, doc="RFC 5321: at most 254 characters"),
        Column("preferred_channel", "enum", "首选通知渠道", values=CHANNELS),
        Column("opt_out", "bool", "拒收政策推送"),
        # Fields added for the catalogue rules beyond the core contract (optional columns).
        Column("software_copyright", "bool", "持有软件著作权或软件产品登记证书", required=False),
        Column("key_group_owner", "bool", "重点群体自主创业人员（就业创业证注明）", required=False),
        Column("owner_id", "string", "经营者标识（经营者身份证件号码的哈希值）", required=False,
               doc="Same value for every 个体工商户 run by one person; never the ID number itself. Used to add up "
                   "the owner's 经营所得 across businesses (indicators.owner_business_income)"),
        Column("key_group_relief_since", "date", "首次享受重点群体创业就业税费扣减的日期", required=False,
               doc="start of the first period with a deduction under 2023年第15号; decides whether enjoyment "
                   "began by 2027-12-31 (第五条: it may then continue to the end of its three years)"),
        Column("veteran_owner", "bool", "经营者为自主就业退役士兵", required=False,
               doc="individual business run by a 自主就业退役士兵 (2023年第14号 第一条)"),
        Column("blind_massage_org", "bool", "盲人按摩机构", required=False,
               doc="财税〔2016〕52号: a 盲人按摩机构 needs 5 disabled employees instead of 10"),
        Column("agri_producer", "bool", "农业生产者（从事种植业、养殖业、林业、牧业、水产业生产）", required=False,
               doc="The taxpayer itself grows, breeds or catches what it sells (增值税暂行条例实施细则第三十五条; "
                   "增值税法第二十四条). A trader of bought-in produce is not."),
    ),
)

INDICATORS = Table(
    name="indicators",
    label="纳税人期间指标",
    key=("taxpayer_id", "period"),
    doc="One row per taxpayer per period: 2025 (tax year), 2026Q3 (quarter) or 2026-09 (month).",
    columns=(
        Column("taxpayer_id", "id", "纳税人识别号", nullable=False),
        Column("period", "period", "所属期", nullable=False),
        Column("sales", "money", "销售额", unit="元"),
        Column("taxable_income", "money", "应纳税所得额", unit="元"),
        Column("employees_qavg", "number", "从业人数", unit="人", minimum=0, maximum=HEADCOUNT_LIMIT),
        Column("assets_qavg", "money", "资产总额", unit="元", minimum=0),
        Column("employees", "int", "在职职工人数", unit="人", minimum=0, maximum=HEADCOUNT_LIMIT,
               doc="in a VAT period row, the month's employees (for a quarter, the month of the lowest ratio)"),
        Column("disabled_employees", "int", "安置残疾人数", unit="人", minimum=0, maximum=HEADCOUNT_LIMIT,
               doc="in a VAT period row (month or quarter), the disabled persons employed in the month (for a "
                   "quarter, the lowest month), as 财税〔2016〕52号 counts them; in a year row, the year's figure"),
        Column("rd_expense", "money", "研发费用", unit="元", minimum=0),
        Column("incremental_credit", "money", "增量留抵税额", unit="元"),
        Column("period_end_credit", "money", "期末留抵税额", unit="元", required=False,
               doc="the period-end input-tax credit carried forward (增值税申报表 期末留抵税额)"),
        Column("new_credit_vs_prior_year_end", "money", "新增留抵税额（与上年12月31日相比）", unit="元",
               required=False,
               doc="period-end credit minus the credit on 31 December of the previous year (留抵退税 from the "
                   "September 2025 filing period, industries outside the monthly full refund)"),
        Column("incremental_credit_positive_months", "int", "连续增量留抵税额大于零的月数", unit="个月",
               required=False,
               doc="consecutive months up to and including this period whose incremental credit (over the "
                   "31 March 2019 credit) was above zero; a quarterly filer counts three months a quarter"),
        Column("period_end_credit_positive_months", "int", "连续期末留抵税额大于零的月数", unit="个月",
               required=False,
               doc="consecutive months up to and including this period whose period-end credit was above "
                   "zero; a quarterly filer counts three months a quarter"),
        Column("input_composition_ratio", "number", "进项构成比例", required=False,
               doc="as a fraction (0.8 for 80%): input VAT on special invoices, toll e-invoices, customs "
                   "payment certificates and tax payment certificates deducted since April 2019, over all "
                   "input VAT deducted in the same months (amounts transferred out are not subtracted)"),
        Column("small_micro_enterprise", "bool", "留抵退税小微企业", required=False,
               doc="small or micro enterprise as classified for the 2022 full credit refund "
                   "(财政部 税务总局公告2022年第14号); empty when not known"),
        Column("real_estate_sales", "money", "销售、出租不动产和转让土地使用权销售额", unit="元", required=False,
               doc="the part of sales from selling or leasing real estate and transferring land-use rights, "
                   "which the small-scale 1% rate does not cover from 2026"),
        Column("six_taxes_due", "money", "六税两费应纳税额", unit="元", minimum=0),
        Column("slp_settled_h1", "bool", "1月至6月适用的小型微利企业身份（上年办理的汇算清缴结果）", required=False,
               doc="Year row, 一般纳税人 enterprises (国家税务总局公告2022年第3号 一(一)): the 小型微利 result of the "
                   "企业所得税汇算清缴 filed in the previous calendar year governs 六税两费 of January–June. A new "
                   "enterprise before its first 汇算清缴 (一(二)): true if in each month 申报期上月末从业人数 <= 300, "
                   "资产总额 <= 50,000,000 and not a restricted industry. Empty = not known (待核实)"),
        Column("slp_settled_h2", "bool", "7月至12月适用的小型微利企业身份（本年办理的汇算清缴结果）", required=False,
               doc="As slp_settled_h1, for July–December: the result of the 汇算清缴 filed in this calendar year"),
        Column("disability_fund_due", "money", "残疾人就业保障金应缴额", unit="元", required=False, minimum=0,
               doc="按规定应缴费额 before any relief: (上年在职职工人数 × 省定比例 − 安置残疾人数) × "
                   "上年在职职工年平均工资 (财税〔2015〕72号 第八条), for the year the levy belongs to"),
        Column("software_sales", "money", "软件产品销售额", unit="元", required=False),
        Column("software_output_vat", "money", "软件产品销项税额", unit="元", required=False),
        Column("software_input_vat", "money", "软件产品进项税额", unit="元", required=False),
        Column("creditable_input_vat", "money", "当期可抵扣进项税额", unit="元", required=False),
        Column("advanced_mfg_listed", "bool", "列入先进制造业企业名单", required=False),
        Column("equipment_cost", "money", "新购进设备器具购置额", unit="元", required=False, minimum=0),
        Column("equipment_max_unit_cost", "money", "新购进设备器具最高单位价值", unit="元", required=False,
               minimum=0),
        Column("equipment_cost_eligible", "money", "新购进单位价值不超过500万元的设备器具金额", unit="元",
               required=False,
               doc="Sum of this year's newly bought equipment items each of unit value <= 5,000,000 "
                   "(财政部 税务总局公告2023年第37号 第一条: judged item by item); empty = not reported, then "
                   "equipment_cost counts only "
                   "when equipment_max_unit_cost <= 5,000,000"),
        Column("key_group_hires", "int", "招用重点群体人数", unit="人", required=False, minimum=0,
               maximum=HEADCOUNT_LIMIT),
        Column("other_iit_relief", "money", "经营所得其他政策减免税额", unit="元", required=False,
               doc="个体工商户: 经营所得 IIT relief under other policies this period (empty = none reported)"),
        Column("owner_business_income", "money", "经营者全部个体工商户经营所得合计", unit="元", required=False,
               doc="Sum of max(taxable_income, 0) over every 个体工商户 with this row's taxpayers.owner_id, same "
                   "period. Derived when reading a data folder (profiles.derived.add_owner_business_income, a "
                   "group-by) where the cell is empty and owner_id is known; empty if any of those businesses "
                   "lacks taxable_income. A given value is kept. Streaming runs (data larger than memory) do not "
                   "derive it: supply it. For a real-time check put it in the profile"),
        Column("startup_taxes_due", "money", "可扣减税费合计（增值税、城建税及附加、个人所得税或企业所得税）",
               unit="元", required=False, minimum=0,
               doc="the year's taxes the 重点群体 and 退役士兵 deductions come out of (one pool for both); 城建税 and "
                   "surcharges computed on the VAT before the deduction"),
        Column("key_group_hire_months", "int", "招用重点群体人员本年度在职月数合计", unit="人月", required=False,
               doc="sum over hired persons of the months of the year they worked here within their 36 months "
                   "(from the month the contract and social insurance began); the hiring limit accrues by month"),
        Column("veteran_hires", "int", "招用自主就业退役士兵人数", unit="人", required=False),
        Column("veteran_hire_months", "int", "招用自主就业退役士兵本年度在职月数合计", unit="人月", required=False,
               doc="as key_group_hire_months, for 自主就业退役士兵 hired under 2023年第14号 第二条"),
        Column("disabled_wages", "money", "支付给残疾职工的工资", unit="元", required=False,
               doc="wages paid in the tax year to disabled employees (企业所得税法第三十条(二), 100% extra deduction)"),
        Column("vat_paid", "money", "本期已缴纳增值税额", unit="元", required=False,
               doc="VAT actually paid for the period (the ceiling of a 即征即退 refund)"),
        Column("min_wage_monthly", "money", "所在区县月最低工资标准", unit="元", required=False,
               doc="the monthly minimum wage approved by the province for the taxpayer's district in the period"),
        Column("disabled_vat_income_share", "number", "货物、加工修理修配劳务及现代服务、生活服务收入占增值税收入比例",
               required=False,
               doc="财税〔2016〕52号: 0-1; resale of purchased goods and 文化体育/娱乐服务 are not in the "
                   "numerator"),
        # Technology and other incentives (issue 11 §4).
        Column("tech_transfer_income", "money", "技术转让所得", unit="元", required=False,
               doc="Tax year: income from transferring technology (专利、软件著作权、集成电路布图设计、植物新品种、"
                   "生物医药新品种 — ownership, or licences of 5 years or more) minus its cost and related taxes "
                   "(国税函〔2009〕212号 二), as on A107020; 0 when none."),
        Column("tech_contract_registered", "bool", "技术合同已经科技（商务）主管部门认定登记", required=False,
               doc="Every technology transfer / development contract of the period is registered with the "
                   "provincial science department (cross-border: commerce department)."),
        Column("tech_service_sales", "money", "技术转让、技术开发及相关技术咨询、技术服务销售额", unit="元",
               required=False, doc="VAT period: sales under registered technology transfer or development contracts, "
                                   "with the consulting and services invoiced together with them; 0 when none."),
        Column("ic_machine_tool_listed", "bool", "列入集成电路企业或工业母机企业清单", required=False,
               doc="Tax year: on the list of 集成电路 or 工业母机 enterprises issued for that year "
                   "(财政部 税务总局 国家发展改革委 工业和信息化部公告2023年第44号 二、三)."),
        Column("incubator_certified", "bool", "国家级、省级科技企业孵化器、大学科技园或国家备案众创空间",
               required=False,
               doc="Tax year: certified during the year (财政部 税务总局 科技部 教育部公告2023年第42号); one certified "
                   "in the year enjoys from the month after certification, one whose status is cancelled stops the "
                   "month after."),
        Column("incubator_property_land_tax", "money", "孵化用房产、土地的房产税和城镇土地使用税", unit="元",
               required=False,
               doc="Tax year: the 房产税 and 城镇土地使用税 due, before any relief, on the property and land the "
                   "incubator uses itself or provides to its incubated firms, for the months in which it was "
                   "certified; 0 when none."),
        Column("agri_self_produced_sales", "money", "销售自产农产品销售额", unit="元", required=False,
               doc="VAT period: sales of primary farm products the taxpayer grew or bred itself; 0 when none."),
        Column("nev_listed_vehicles", "int", "购置列入免征车辆购置税目录的新能源汽车辆数", unit="辆", required=False,
               doc="Vehicles bought in the period (date of the 机动车销售统一发票) whose model was listed in 《减免车辆"
                   "购置税的新能源汽车车型目录》 on that date."),
        Column("nev_purchase_tax", "money", "上述新能源汽车减免前应纳车辆购置税合计", unit="元", required=False,
               doc="Sum over those vehicles of 计税价格 × 10% (车辆购置税法第四条), before any relief."),
        Column("nev_max_vehicle_tax", "money", "上述新能源汽车中单辆最高应纳车辆购置税", unit="元", required=False,
               doc="The largest single-vehicle tax among them (decides whether the per-vehicle cap binds)."),
    ),
)

CLAIMS = Table(
    name="claims",
    label="优惠享受申报",
    key=("taxpayer_id", "period", "incentive"),
    doc="One row per incentive a taxpayer claimed; incentive is a rule id or one of its claim codes.",
    columns=(
        Column("taxpayer_id", "id", "纳税人识别号", nullable=False),
        Column("period", "period", "所属期", nullable=False),
        Column("incentive", "string", "优惠事项", nullable=False, max_length=64),
        Column("amount", "money", "减免税额", unit="元"),
    ),
)

RISK_EVENTS_TABLE = Table(
    name="risk_events",
    label="涉税风险事件",
    key=(),
    columns=(
        Column("taxpayer_id", "id", "纳税人识别号", nullable=False),
        Column("event", "enum", "风险事件", values=RISK_EVENTS, nullable=False),
        Column("occurred_on", "date", "发生日期", nullable=False),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (TAXPAYERS, INDICATORS, CLAIMS, RISK_EVENTS_TABLE)}

#: Fields a rule may reference: taxpayers and indicators columns, joined on the taxpayer for one period.
PROFILE_FIELDS: dict[str, Column] = {
    **{c.name: c for c in TAXPAYERS.columns},
    **{c.name: c for c in INDICATORS.columns if c.name not in ("taxpayer_id",)},
}


def enum_label(column: str, value: str) -> str:
    """Chinese label of an enum value (the value itself when it has none)."""
    return ENUM_LABELS.get(column, {}).get(value, value)
