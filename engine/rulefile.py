"""The shape of a rule file, as pydantic models: validation of the YAML and its JSON schema.

Tax staff edit `rules/<id>.yaml`; this module says what each key must hold. `zhixiang rules schema`
writes `rules/rule.schema.json` from these models so editors can complete and check the files.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Verification = Literal["verified", "partial", "unverified"]
Granularity = Literal["year", "quarter", "month"]
Severity = Literal["high", "medium", "low"]
ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BasisRef(_Strict):
    """One legal reference: the document and, where known, the article."""

    document: str = Field(description="文件名称及文号，如 财政部 税务总局公告2023年第12号")
    article: str = Field("", description="条款，如 第三条")
    note: str = Field("", description="该条款的要点")
    verification: Verification | None = Field(None, description="该依据是否核实（缺省同规则）")


class Window(_Strict):
    """The effective window; `to` empty means no end date."""

    from_: dt.date = Field(alias="from", description="起始日期（含）")
    to: dt.date | None = Field(None, description="截止日期（含），空表示长期有效")


class JudgedWindow(_Strict):
    """The periods this catalogue judges for a rule (both ends optional).

    A period outside it is not judged at all: no finding, and the run lists the rule as not judged. Inside it
    but outside `effective`, the policy was not (or no longer) in force and a claim is 违规享受.
    """

    from_: dt.date | None = Field(None, alias="from",
                                  description="起始日期（含），缺省同 effective.from：更早的所属期本目录不判定")
    to: dt.date | None = Field(None, description="截止日期（含），缺省为长期：之后的所属期照常判定")


class ParameterValueSpec(_Strict):
    """A parameter's value from a date on, with the law that set it."""

    from_: dt.date = Field(alias="from", description="自该日起适用")
    value: Any = Field(description="数值、文本、日期、真假值、列表或累进税率表")
    basis: str = Field(description="设定该值的文件和条款")
    verification: Verification | None = None
    note: str = ""


class ParameterSpec(_Strict):
    label: str = Field(description="参数中文名称，如 年应纳税所得额上限")
    unit: str = Field("", description="单位，如 元、人、%")
    values: list[ParameterValueSpec] = Field(min_length=1, description="按生效日期排列的取值")


class ConditionSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN, description="条件编号（英文小写+下划线）")
    label: str = Field(description="条件的中文表述，如 年度应纳税所得额不超过300万元")
    when: str = Field(description="条件表达式，如 taxable_income <= income_cap")
    unit: str = Field("", description="比较值的单位（缺省取字段的单位）")


class ScopeSpec(_Strict):
    label: str = Field(description="适用对象的中文表述")
    when: str = Field(description="适用对象表达式，如 entity_type == \"enterprise\"")


class BenefitSpec(_Strict):
    label: str = Field(description="测算口径的中文表述，如 减免企业所得税额")
    formula: str = Field(description="测算公式，如 taxable_income * 0.20")
    note: str = ""


class RiskSpec(_Strict):
    severity: Severity = Field(description="违规享受的风险等级基准")
    patterns: list[str] = Field(default_factory=list, description="常见违规情形")


class ClaimGuide(_Strict):
    where: str = Field(description="在哪里办理，如 电子税务局 → 我要办税 → 税费申报及缴纳")
    form: str = Field("", description="申报表及栏次")
    deadline: str = Field("", description="办理期限")
    steps: list[str] = Field(default_factory=list, description="办理步骤")


class ClaimCodeSpec(_Strict):
    """A code the claims data carry for this incentive (an official 减免性质代码), and whether it is verified."""

    code: str = Field(min_length=1, description="减免性质代码，如 0001011608")
    verified: bool = Field(False, description="是否已对照官方减免性质代码表核实")
    source: str = Field("", description="代码的出处（文件、代码表或核实方式）")


class ClaimCodeMapping(ClaimCodeSpec):
    """One line of rules/_claim_codes.yaml: a code the bureau maps to a rule without editing the rule."""

    rule: str = Field(pattern=ID_PATTERN, description="该代码对应的政策编号")
    name: str = Field("", description="减免项目名称（代码表中的名称）")


class ClaimCodesFile(_Strict):
    """rules/_claim_codes.yaml: 减免性质代码 → rule, maintained by the bureau."""

    codes: list[ClaimCodeMapping] = Field(default_factory=list)


class ApplySpec(_Strict):
    """How the relief reaches the taxpayer: claimed by the taxpayer (the default) or applied by the bureau itself.

    `automatic` (免申即享): the bureau computes and applies the relief without a declaration from the
    taxpayer (e.g. a levy collected by 批扣). An eligible taxpayer who has not enjoyed it is put on the
    auto-apply list for the collection system instead of being asked to claim it. It holds for every
    taxpayer the rule judges: a relief the bureau applies only for some taxpayers is not marked automatic.
    """

    mode: Literal["claim", "automatic"] = Field(
        "claim", description="claim：纳税人申报享受（缺省）；automatic：税务机关自动计算、自动享受（免申即享）")
    label: str = Field("", description="写给纳税人的说明，如 由税务部门直接批扣，减免按档次自动计算，无需申报")
    basis: list[BasisRef] = Field(default_factory=list,
                                  description="税务机关自动享受的依据（文件及条款）；mode 为 automatic 时必填")

    @model_validator(mode="after")
    def _automatic_has_basis(self) -> ApplySpec:
        if self.mode == "automatic" and not self.basis:
            raise ValueError("apply.mode 为 automatic（免申即享）时必须在 apply.basis 中写明"
                             "税务机关自动享受的依据（文件及条款）")
        if self.mode == "automatic" and not self.label.strip():
            raise ValueError("apply.mode 为 automatic（免申即享）时必须在 apply.label 中写明写给纳税人的说明")
        return self


class CaseSpec(_Strict):
    """One test case beside a rule: a small profile and the expected outcome."""

    name: str
    period: str
    taxpayer: dict[str, Any] = Field(default_factory=dict)
    indicators: dict[str, Any] = Field(default_factory=dict)
    claims: list[dict[str, Any]] = Field(default_factory=list)
    risk_events: list[dict[str, Any]] = Field(default_factory=list)
    expect: Literal["unclaimed", "improper", "undetermined", "compliant", "not_applicable", "not_judged"]
    expect_conditions: dict[str, Literal["pass", "fail", "unknown"]] = Field(default_factory=dict)
    expect_amount: Any = None


class RuleFile(_Strict):
    """One incentive: legal basis, window, scope, conditions, claim codes, benefit and guidance."""

    id: str = Field(pattern=ID_PATTERN, description="政策编号，与文件名相同")
    name: str = Field(description="政策中文名称")
    tax: str = Field(description="税费种，如 企业所得税")
    verification: Verification = Field(description="核实状态：verified / partial / unverified")
    verification_note: str = Field("", description="未核实之处的说明")
    basis: list[BasisRef] = Field(min_length=1)
    effective: Window
    judged: JudgedWindow | None = Field(
        None, description="本目录判定的所属期范围：范围外的所属期不判定（不出结论，运行汇总中列明"
                          "“目录未覆盖该所属期”）；范围内但不在执行期限内的申报为违规享受。"
                          "缺省自 effective.from 起、长期")
    granularity: list[Granularity] = Field(min_length=1, description="判定期间：year / quarter / month")
    scope: ScopeSpec
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    conditions: list[ConditionSpec] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list, description="不得同时享受的政策编号")
    claim_codes: list[str | ClaimCodeSpec] = Field(
        default_factory=list,
        description="申报中代表本政策的代码（减免性质代码）：写代码本身，或 {code, verified, source} "
                    "注明是否核实及出处；也可在 rules/_claim_codes.yaml 中登记")
    benefit: BenefitSpec
    risk: RiskSpec
    claim: ClaimGuide
    records: list[str] = Field(default_factory=list, description="留存备查资料")
    apply: ApplySpec = Field(
        ApplySpec(mode="claim", label=""),
        description="享受方式：claim 纳税人申报享受（缺省），automatic 税务机关自动享受（免申即享，需写明依据）；"
                    "见 docs/rules.md“免申即享”")
    notes: str = ""

    @field_validator("granularity")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("判定期间重复")
        return v


class RiskTierSettings(_Strict):
    """How a rule's severity and the amount at stake give the risk tier of an improper claim."""

    raise_at: Any = Field(500000, description="金额达到该值（元）时风险等级上调一级")
    lower_below: Any = Field(2000, description="金额低于该值（元）时风险等级下调一级")


class CatalogueSettings(_Strict):
    """rules/_catalogue.yaml: settings that apply to every rule."""

    name: str = "杭州市税费优惠政策目录"
    risk_tiers: RiskTierSettings = Field(default_factory=lambda: RiskTierSettings.model_validate({}))


def rule_json_schema() -> dict[str, Any]:
    """JSON schema of a rule file, for editors (yaml-language-server) and CI."""
    schema = RuleFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "直享 Zhixiang 政策规则文件"
    return schema
