"""The policy package (政策礼包): one letter per taxpayer, built from that taxpayer's findings rows.

A letter holds what the taxpayer may still claim (`unclaimed` findings, largest estimated saving
first) and self-check reminders (低风险预提醒) for `improper` findings of risk tier `low`. Medium- and
high-risk improper claims go to risk officers and `undetermined` findings to data checks: neither
ever reaches a taxpayer, and `build_letter` enforces that itself rather than trusting its caller.

Every value a template prints is formatted here (notifier/letters/formatting.py), so templates stay
simple enough for bureau staff to edit and fast enough to render thousands a second.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import polars as pl

from engine.catalogue import Catalogue, Rule
from engine.errors import InputError, ZhixiangError
from engine.findings import is_taxpayer_facing
from notifier.letters.formatting import (
    evidence_line,
    first_clause,
    format_amount,
    format_date,
    late_claim_note,
    letter_line,
    mask_taxpayer_id,
    period_label,
    round_cents,
    split_clauses,
    to_decimal,
)
from profiles.authorities import TAX_AUTHORITIES
from profiles.schema import CHANNELS, ENUM_LABELS

Channel = Literal["etax", "sms", "email", "post"]
CHANNEL_LABELS: dict[str, str] = ENUM_LABELS["preferred_channel"]
DEFAULT_CHANNEL: Channel = "etax"  # every taxpayer has an e-tax account; it is the fallback channel

_ORDINALS = "一二三四五六七八九十"


class LetterError(ZhixiangError):
    """One letter could not be made (a template variable is missing, its PDF does not read back...)."""


class LetterTemplateError(LetterError):
    """A letter template does not compile or refers to a value that does not exist."""


# ------------------------------------------------------------------------------------------ authorities


@dataclass(frozen=True)
class Authority:
    """The 主管税务机关 that signs a letter."""

    code: str
    name: str


class TaxAuthorities:
    """Names of the 主管税务机关 by code, with a fallback built from the taxpayer's district.

    The names are Hangzhou's bureaus (profiles/authorities.py), overridden or extended by a bureau's
    own CSV (`code,name`). A code that neither knows is named from the district: a city district
    gives `国家税务总局杭州市<区>税务局`, a county or county-level city `国家税务总局<县/市>税务局`.
    """

    def __init__(self, names: Mapping[str, str] | None = None, *, city: str = "杭州市") -> None:
        self.names = {**TAX_AUTHORITIES, **(names or {})}
        self.city = city

    @classmethod
    def from_csv(cls, path: str | Path, *, city: str = "杭州市") -> TaxAuthorities:
        """Read `code,name` (UTF-8 with or without BOM, or GB18030)."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise InputError(f"无法读取主管税务机关名称表 {p}：{exc.strerror}") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("gb18030")
        reader = csv.DictReader(text.splitlines())
        fields = {f.strip() for f in reader.fieldnames or ()}
        code_col = next((c for c in ("code", "tax_authority", "代码") if c in fields), None)
        name_col = next((c for c in ("name", "tax_authority_name", "名称") if c in fields), None)
        if code_col is None or name_col is None:
            raise InputError(f"主管税务机关名称表 {p} 缺少列 code 和 name（现有列：{', '.join(sorted(fields))}）")
        names = {row[code_col].strip(): row[name_col].strip() for row in reader if row.get(code_col)}
        return cls(names, city=city)

    def lookup(self, code: str | None, district: str | None) -> Authority:
        code = (code or "").strip()
        if code in self.names:
            return Authority(code, self.names[code])
        district = (district or "").strip()
        if district.startswith(self.city):
            district = district[len(self.city):]
        if district.endswith("区"):
            return Authority(code, f"国家税务总局{self.city}{district}税务局")
        if district:
            return Authority(code, f"国家税务总局{district}税务局")
        return Authority(code, f"国家税务总局{self.city}税务局")


# ----------------------------------------------------------------------------------------- the letter


@dataclass(frozen=True)
class OfficeSettings:
    """What the bureau says in every letter: where to log in, whom to call, the SMS signature."""

    etax_name: str = "浙江省电子税务局"
    etax_url: str = "https://etax.zhejiang.chinatax.gov.cn"
    hotline: str = "12366"
    sms_signature: str = "杭州税务"
    sms_limit: int = 70  # one SMS segment of UCS-2 text


@dataclass(frozen=True)
class IncentivePeriod:
    """One period of an incentive: the finding's estimate, why the taxpayer qualifies, the deadline."""

    period: str
    period_label: str
    reasons: tuple[str, ...]
    saving: Decimal
    saving_text: str
    deadline_note: str = ""  # the route still open once the period's filing deadline has passed


@dataclass(frozen=True)
class Incentive:
    """One incentive the taxpayer may still claim (all its periods), with everything the letter says."""

    ordinal: str
    rule_id: str
    name: str
    tax: str
    periods: tuple[IncentivePeriod, ...]
    period_label: str  # every period, "2025 年度、2026 年第 1 季度"
    basis: tuple[str, ...]
    saving: Decimal  # the sum of the periods' estimates
    saving_text: str
    benefit_label: str
    claim_where: str
    claim_form: str
    claim_deadline: str
    claim_steps: tuple[str, ...]
    records: tuple[str, ...]


@dataclass(frozen=True)
class Reminder:
    """A low-risk improper claim, told to the taxpayer as a self-check reminder (低风险预提醒)."""

    ordinal: str
    rule_id: str
    name: str
    tax: str
    period: str
    period_label: str
    basis: tuple[str, ...]
    issues: tuple[str, ...]  # what looks wrong, in the taxpayer's figures
    claimed: Decimal | None
    claimed_text: str
    correction: str
    records: tuple[str, ...]


@dataclass(frozen=True)
class AutoApplied:
    """A relief the bureau applied itself (免申即享) and the collection system confirmed: 已为您自动享受."""

    rule_id: str
    name: str
    period_label: str
    amount_text: str
    note: str  # the rule's apply.label: how the bureau applies it
    period: str = ""
    amount: Decimal | None = None


@dataclass(frozen=True)
class Letter:
    """One taxpayer's policy package for one run."""

    package_id: str
    reference: str
    taxpayer_id: str
    masked_id: str
    name: str
    authority: Authority
    channel: Channel
    channel_label: str
    channel_note: str
    email: str
    phone: str
    as_of: date
    date_text: str
    incentives: tuple[Incentive, ...]
    reminders: tuple[Reminder, ...]
    total_saving: Decimal
    total_saving_text: str
    total_saving_short: str  # "12.74万元": no space, for the SMS
    periods_text: str  # the periods of the incentives (not of the reminders), for the opening sentence
    findings: tuple[tuple[str, str, str, Decimal | None], ...] = field(default=(), repr=False)
    """(kind, rule_id, period, amount) of every finding told — what the suppression ledger records."""
    auto_applied: tuple[AutoApplied, ...] = ()
    """Reliefs applied for the taxpayer by the bureau itself (notifier/autoapply), said in a section of their own."""

    @property
    def recipient(self) -> str:
        return {"email": self.email, "sms": self.phone}.get(self.channel, "")

    def key_texts(self) -> list[str]:
        """Texts every rendering of the letter must contain (checked in the PDF)."""
        texts = [self.name, self.authority.name]
        for item in self.incentives:
            texts += [item.name, item.saving_text]
            if len(item.periods) > 1:
                texts += [p.saving_text for p in item.periods]
        for rem in self.reminders:
            texts.append(rem.name)
        if self.incentives:
            texts.append(self.total_saving_text)
        return texts


@dataclass(frozen=True)
class Skip:
    """A taxpayer who gets no letter in this run, and why (counted in the summary)."""

    taxpayer_id: str
    name: str
    reason: Literal["opt_out", "nothing_to_tell", "suppressed"]


def resolve_channel(preferred: str | None, *, email: str | None, phone: str | None,
                    override: str | None = None) -> tuple[Channel, str]:
    """The channel a package goes by, and a note when it is not the one the taxpayer asked for."""
    wanted = override or preferred
    note = f"按指定改为{CHANNEL_LABELS[override]}" if override and override != preferred else ""
    if wanted not in CHANNELS:
        return DEFAULT_CHANNEL, "未设置首选通知渠道，经电子税务局送达"
    if wanted == "email" and not (email or "").strip():
        return DEFAULT_CHANNEL, "缺少电子邮箱，改由电子税务局送达"
    if wanted == "sms" and not (phone or "").strip():
        return DEFAULT_CHANNEL, "缺少联系电话，改由电子税务局送达"
    return wanted, note  # type: ignore[return-value]


def _ordinal(i: int) -> str:
    if i < 10:
        return _ORDINALS[i]
    tens, ones = divmod(i + 1, 10)
    return ("" if tens == 1 else _ORDINALS[tens - 1]) + "十" + (_ORDINALS[ones - 1] if ones else "")


_BASIS_CACHE: dict[tuple[str, str], tuple[str, ...]] = {}


def basis_lines(rule: Rule) -> tuple[str, ...]:
    """The legal basis as the letter cites it (computed once per rule file version).

    An article whose number is marked unverified in the rule file is left out: a letter to a
    taxpayer cites only what the bureau can stand behind, and the document alone is still right.
    """
    key = (rule.id, rule.version)
    cached = _BASIS_CACHE.get(key)
    if cached is not None:
        return cached
    cited = [(str(b["document"]), "" if b.get("verification") == "unverified" else str(b.get("article") or ""))
             for b in rule.basis]
    with_article = {doc for doc, article in cited if article}
    lines: list[str] = []
    for doc, article in cited:
        if not article and doc in with_article:
            continue  # the document is already cited with an article
        line = f"{doc}{article}"
        if line not in lines:
            lines.append(line)
    _BASIS_CACHE[key] = tuple(lines)
    return _BASIS_CACHE[key]


def _rule(catalogue: Catalogue, rule_id: str, taxpayer_id: str) -> Rule:
    try:
        return catalogue.rules[rule_id]
    except KeyError:
        raise LetterError(
            f"纳税人 {taxpayer_id} 的发现引用了规则 {rule_id!r}，但规则目录 {catalogue.directory} 中没有它"
            "（发现文件与规则目录版本不一致？请用同一规则目录重新运行 zhixiang run）"
        ) from None


def _evidence(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(row.get("evidence") or [])


#: A findings row may carry its evidence already said as letter lines (`evidence_lines`, see
#: with_evidence_lines): the lines of its passed conditions for an unclaimed finding, of its failed
#: ones for an improper one — the same text letter_line gives, prepared for a whole night at once.
EVIDENCE_LINES = "evidence_lines"


def _lines(row: Mapping[str, Any], period: str, status: str) -> tuple[str, ...]:
    prepared = row.get(EVIDENCE_LINES, _MISSING)
    if prepared is not _MISSING:
        return tuple(prepared or ())
    return tuple(letter_line(e, period) for e in _evidence(row) if e.get("status") == status)


_MISSING = object()
_EVIDENCE_FIELDS = ("condition", "status", "label", "reason", "value", "threshold")


def with_evidence_lines(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (FINDINGS_SCHEMA) with `evidence_lines` in place of `evidence`, computed column-wise.

    Converting every evidence struct to a Python dict, row by row, costs more than the letter itself;
    here the items a letter says are picked in Polars, each distinct (period, item) is said once by
    letter_line, and the lines go back to their rows in their order.
    """
    want = pl.when(pl.col("kind") == "improper").then(pl.lit("fail")).otherwise(pl.lit("pass"))
    items = (
        frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.col("period").cast(pl.String),
                     want.alias("_want"), "evidence")
        .explode("evidence")
        .filter(pl.col("evidence").is_not_null())
        .with_columns(*(pl.col("evidence").struct.field(f).alias(f"_e_{f}") for f in _EVIDENCE_FIELDS))
        .filter(pl.col("_e_status") == pl.col("_want"))
        .drop("evidence", "_want")
    )
    keys = ["period", *(f"_e_{f}" for f in _EVIDENCE_FIELDS)]
    distinct = items.select(keys).unique()
    said = [evidence_line(dict(zip(_EVIDENCE_FIELDS, values, strict=True)), period)
            for period, *values in distinct.iter_rows()]
    distinct = distinct.with_columns(pl.Series("_line", said, dtype=pl.String))
    lines = (
        items.join(distinct, on=keys, how="left", nulls_equal=True, maintain_order="left")
        .group_by("_row", maintain_order=True).agg("_line")
    )
    per_row = (
        pl.DataFrame({"_row": pl.int_range(frame.height, dtype=pl.UInt32, eager=True)})
        .join(lines, on="_row", how="left", maintain_order="left")
        .get_column("_line").fill_null([]).alias(EVIDENCE_LINES)
    )
    return frame.drop("evidence").with_columns(per_row)


@dataclass(frozen=True)
class _RuleTexts:
    """What every letter says of a rule, whoever the taxpayer: worked out once per rule file version."""

    basis: tuple[str, ...]
    claim_where: str
    claim_form: str
    claim_deadline: str
    claim_steps: tuple[str, ...]
    records: tuple[str, ...]


_RULE_TEXTS: dict[tuple[str, str], _RuleTexts] = {}


def _rule_texts(rule: Rule) -> _RuleTexts:
    key = (rule.id, rule.version)
    texts = _RULE_TEXTS.get(key)
    if texts is None:
        guide = rule.claim_guide
        texts = _RULE_TEXTS[key] = _RuleTexts(
            basis=basis_lines(rule),
            claim_where=str(guide.get("where") or ""),
            claim_form=str(guide.get("form") or ""),
            claim_deadline=str(guide.get("deadline") or ""),
            claim_steps=tuple(str(s) for s in guide.get("steps") or ()),
            records=tuple(rule.records),
        )
    return texts


def _incentive(i: int, rows: Sequence[Mapping[str, Any]], rule: Rule, as_of: date, etax_name: str) -> Incentive:
    """One incentive from its findings rows (one a period), periods in order."""
    texts = _rule_texts(rule)
    periods = []
    for row in (sorted(rows, key=lambda r: str(r["period"])) if len(rows) > 1 else rows):
        period = str(row["period"])
        saving = round_cents(row["estimated_amount"])
        periods.append(IncentivePeriod(
            period=period,
            period_label=period_label(period),
            reasons=_lines(row, period, "pass"),
            saving=saving,
            saving_text=format_amount(saving),
            deadline_note=late_claim_note(rule.tax, period, as_of, etax_name, texts.claim_deadline),
        ))
    saving = sum((p.saving for p in periods), Decimal("0.00"))
    return Incentive(
        ordinal=_ordinal(i),
        rule_id=rule.id,
        name=rule.name,
        tax=rule.tax,
        periods=tuple(periods),
        period_label="、".join(p.period_label for p in periods),
        basis=texts.basis,
        saving=saving,
        saving_text=format_amount(saving) if len(periods) > 1 else periods[0].saving_text,
        benefit_label=rule.benefit_label,
        claim_where=texts.claim_where,
        claim_form=texts.claim_form,
        claim_deadline=texts.claim_deadline,
        claim_steps=texts.claim_steps,
        records=texts.records,
    )


def _reminder(i: int, row: Mapping[str, Any], rule: Rule, etax_name: str) -> Reminder:
    period = str(row["period"])
    issues = _lines(row, period, "fail")
    if not issues and row.get("reasons"):
        issues = tuple(split_clauses(str(row["reasons"])))
    claimed = row.get("claimed_amount")
    claimed_dec = round_cents(claimed) if claimed is not None else None
    form = str(rule.claim_guide.get("form") or "")
    where = f"{etax_name}「我要办税 → 税费申报及缴纳 → 申报错误更正」"
    correction = (
        f"请对照政策规定自查。如确不符合享受条件，请通过{where}更正"
        + (first_clause(form) if form else "相关申报表")
        + "，并按规定补缴税费；如符合条件，请将下列资料留存备查，无需回复。"
    )
    return Reminder(
        ordinal=_ordinal(i),
        rule_id=rule.id,
        name=rule.name,
        tax=rule.tax,
        period=period,
        period_label=period_label(period),
        basis=basis_lines(rule),
        issues=issues,
        claimed=claimed_dec,
        claimed_text=format_amount(claimed_dec) if claimed_dec is not None else "",
        correction=correction,
        records=tuple(rule.records),
    )


def package_id(taxpayer_id: str, as_of: date, findings: Iterable[tuple[str, str, str, Decimal | None]]) -> str:
    """A stable id for a package: the same news on the same day gives the same id (an idempotency key)."""
    h = hashlib.sha256(f"{taxpayer_id}|{as_of.isoformat()}".encode())
    for kind, rule_id, period, amount in sorted(findings, key=lambda f: (f[0], f[1], f[2])):
        h.update(f"|{kind}:{rule_id}:{period}:{amount}".encode())
    return h.hexdigest()[:16]


def build_letter(
    rows: Sequence[Mapping[str, Any]],
    catalogue: Catalogue,
    *,
    as_of: date,
    authorities: TaxAuthorities | None = None,
    office: OfficeSettings | None = None,
    channel_override: str | None = None,
    auto_applied: Sequence[Any] = (),
) -> Letter | Skip:
    """The letter for one taxpayer from their findings rows (FINDINGS_SCHEMA dicts), or why there is none.

    Rows that must not reach a taxpayer (undetermined, medium/high improper) are dropped here.
    """
    if not rows:
        raise ValueError("build_letter needs at least one findings row")
    first = rows[0]
    taxpayer_id = str(first["taxpayer_id"])
    name = str(first.get("taxpayer_name") or "").strip()
    if any(str(r["taxpayer_id"]) != taxpayer_id for r in rows):
        raise ValueError("build_letter takes the rows of one taxpayer")
    if first.get("opt_out"):
        return Skip(taxpayer_id, name, "opt_out")
    automatic = catalogue.automatic_rules  # 免申即享: the bureau applies these itself, never asks to claim them
    facing = [r for r in rows if is_taxpayer_facing(r) and not (r["kind"] == "unclaimed" and r["rule_id"] in automatic)]
    if not facing:
        return Skip(taxpayer_id, name, "nothing_to_tell")
    if not name:
        raise LetterError(f"纳税人 {taxpayer_id} 缺少纳税人名称（taxpayer_name），无法称呼，信函未生成")
    office = office or OfficeSettings()
    authorities = authorities or TaxAuthorities()

    by_rule: dict[str, list[Mapping[str, Any]]] = {}
    for r in facing:
        if r["kind"] == "unclaimed":
            by_rule.setdefault(str(r["rule_id"]), []).append(r)
    # one incentive per rule, its periods under it; the largest estimated saving first
    groups = sorted(by_rule.items(),
                    key=lambda kv: (-sum(to_decimal(r["estimated_amount"]) for r in kv[1]), kv[0]))
    improper = sorted((r for r in facing if r["kind"] == "improper"),
                      key=lambda r: (str(r["period"]), str(r["rule_id"])))
    incentives = tuple(_incentive(i, rs, _rule(catalogue, rule_id, taxpayer_id), as_of, office.etax_name)
                       for i, (rule_id, rs) in enumerate(groups))
    reminders = tuple(_reminder(i, r, _rule(catalogue, str(r["rule_id"]), taxpayer_id), office.etax_name)
                      for i, r in enumerate(improper))
    unclaimed = [r for _, rs in groups for r in sorted(rs, key=lambda r: str(r["period"]))]
    told = tuple(
        (str(r["kind"]), str(r["rule_id"]), str(r["period"]),
         round_cents(r["estimated_amount"]) if r.get("estimated_amount") is not None else None)
        for r in (*unclaimed, *improper)
    )
    total = sum((i.saving for i in incentives), Decimal("0.00"))
    channel, note = resolve_channel(first.get("preferred_channel"), email=first.get("email"),
                                    phone=first.get("phone"), override=channel_override)
    periods = sorted({str(r["period"]) for r in unclaimed})  # the reminders say their own periods
    pid = package_id(taxpayer_id, as_of, told)
    total_text = format_amount(total)
    return Letter(
        package_id=pid,
        reference=f"ZX{as_of:%Y%m%d}-{pid[:8].upper()}",
        taxpayer_id=taxpayer_id,
        masked_id=mask_taxpayer_id(taxpayer_id),
        name=name,
        authority=authorities.lookup(first.get("tax_authority"), first.get("district")),
        channel=channel,
        channel_label=CHANNEL_LABELS[channel],
        channel_note=note,
        email=str(first.get("email") or ""),
        phone=str(first.get("phone") or ""),
        as_of=as_of,
        date_text=format_date(as_of),
        incentives=incentives,
        reminders=reminders,
        total_saving=total,
        total_saving_text=total_text,
        total_saving_short=total_text.replace(" ", ""),
        periods_text="、".join(period_label(p) for p in periods),
        findings=told,
        auto_applied=tuple(_auto_applied(e, catalogue) for e in auto_applied),
    )


def _auto_applied(entry: Any, catalogue: Catalogue) -> AutoApplied:
    """An applied entry of the auto-apply ledger (notifier.autoapply.ledger.Entry) as the letter says it."""
    rule = catalogue.rules.get(entry.rule_id)
    amount = entry.applied_amount if entry.applied_amount is not None else entry.amount
    return AutoApplied(entry.rule_id, rule.name if rule else entry.rule_name, period_label(entry.period),
                       format_amount(amount), rule.apply_label if rule else "", entry.period, amount)
