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
#: the most the databases' NUMERIC(18, 2) columns hold (profiles/database.py, notifier/case_tables.py).
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
        Column("phone", "string", "联系电话", max_length=32),
        Column("email", "string", "电子邮箱", max_length=254, doc="RFC 5321: at most 254 characters"),
        Column("preferred_channel", "enum", "首选通知渠道", values=CHANNELS),
        Column("opt_out", "bool", "拒收政策推送"),
        # Fields added for the catalogue rules beyond the core contract (optional columns).
        Column("software_copyright", "bool", "持有软件著作权或软件产品登记证书", required=False),
        Column("key_group_owner", "bool", "重点群体自主创业人员（就业创业证注明）", required=False),
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
        Column("employees", "int", "在职职工人数", unit="人", minimum=0, maximum=HEADCOUNT_LIMIT),
        Column("disabled_employees", "int", "安置残疾人数", unit="人", minimum=0, maximum=HEADCOUNT_LIMIT),
        Column("rd_expense", "money", "研发费用", unit="元", minimum=0),
        Column("incremental_credit", "money", "增量留抵税额", unit="元"),
        Column("six_taxes_due", "money", "六税两费应纳税额", unit="元", minimum=0),
        Column("disability_fund_due", "money", "残疾人就业保障金应缴额", unit="元", required=False,
               minimum=0),
        Column("software_sales", "money", "软件产品销售额", unit="元", required=False),
        Column("software_output_vat", "money", "软件产品销项税额", unit="元", required=False),
        Column("software_input_vat", "money", "软件产品进项税额", unit="元", required=False),
        Column("creditable_input_vat", "money", "当期可抵扣进项税额", unit="元", required=False),
        Column("advanced_mfg_listed", "bool", "列入先进制造业企业名单", required=False),
        Column("equipment_cost", "money", "新购进设备器具购置额", unit="元", required=False, minimum=0),
        Column("equipment_max_unit_cost", "money", "新购进设备器具最高单位价值", unit="元", required=False,
               minimum=0),
        Column("key_group_hires", "int", "招用重点群体人数", unit="人", required=False, minimum=0,
               maximum=HEADCOUNT_LIMIT),
        Column("startup_taxes_due", "money", "可扣减税费合计（增值税、城建税及附加、个人所得税或企业所得税）",
               unit="元", required=False, minimum=0),
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
