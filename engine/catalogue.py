"""The rule catalogue: load `rules/*.yaml` into checked, backend-neutral rules.

Loading validates every file's shape (engine/rulefile.py), parses every expression (engine/expressions.py),
type-checks it against the profile schema (engine/typecheck.py), resolves dependencies between rules
(ordered, cycles rejected) and declared exclusions — and reports every problem at once with
`file:line:col`. A catalogue that loads is safe to compile for any backend.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from engine import ir
from engine.drafting import drafting_note_problems
from engine.errors import RuleError, RuleProblem, did_you_mean
from engine.expressions import ExpressionError, parse_expression
from engine.rulefile import CatalogueSettings, ClaimCodeMapping, ClaimCodesFile, RuleFile
from engine.typecheck import TypeChecker
from profiles.periods import Period

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
SETTINGS_FILE = "_catalogue.yaml"
#: The bureau's 减免性质代码 → rule mapping, editable without touching rule logic.
CLAIM_CODES_FILE = "_claim_codes.yaml"
CASES_SUFFIX = ".cases.yaml"


@dataclass(frozen=True)
class DatedValue:
    start: date
    value: Any
    basis: str


@dataclass(frozen=True)
class Parameter:
    """A threshold or rate that may change on a date; each value keeps the law that set it."""

    name: str
    label: str
    unit: str
    values: tuple[DatedValue, ...]  # sorted by start

    def at(self, day: date) -> Any:
        """The value in force on `day` (None before the first value)."""
        current = None
        for v in self.values:
            if v.start <= day:
                current = v.value
        return current

    def entry_at(self, day: date) -> DatedValue | None:
        current = None
        for v in self.values:
            if v.start <= day:
                current = v
        return current


@dataclass(frozen=True)
class ClaimCode:
    """A code a claim may carry, the rule it stands for, and where that is said."""

    code: str
    rule_id: str
    verified: bool | None  # None: a plain code in a rule file, verification not stated
    source: str
    file: str
    line: int
    name: str = ""


@dataclass(frozen=True)
class Condition:
    """A named eligibility condition with its Chinese label and its expression."""

    id: str
    label: str
    expr: ir.Node
    source: str
    unit: str = ""
    #: Generated from a declared exclusion ("not claimed the other rule"): part of this rule's verdict, but
    #: not of its qualification as another rule reads it through eligible().
    stacking: bool = False
    #: Fixed sentences for the evidence, when the generic "label：满足/不满足" would read badly.
    pass_text: str = ""
    fail_text: str = ""


@dataclass(frozen=True)
class Rule:
    """One incentive, checked and ready to compile."""

    id: str
    name: str
    tax: str
    verification: str
    verification_note: str
    basis: tuple[dict[str, Any], ...]
    effective_from: date
    effective_to: date | None
    granularity: tuple[str, ...]
    scope: Condition
    conditions: tuple[Condition, ...]  # including generated "not stacked with" conditions
    parameters: Mapping[str, Parameter]
    excludes: tuple[str, ...]
    claim_codes: tuple[str, ...]  # the rule id first, then the codes of the rule file and of _claim_codes.yaml
    benefit_label: str
    benefit: ir.Node
    benefit_source: str
    severity: str
    risk_patterns: tuple[str, ...]
    claim_guide: Mapping[str, Any]
    records: tuple[str, ...]
    notes: str
    file: str
    version: str  # sha256 of the rule file's bytes (first 12 hex digits)
    depends_on: tuple[str, ...] = ()
    #: The periods the catalogue judges (rule file `judged`); None: from effective_from / open-ended.
    judged_from: date | None = None
    judged_to: date | None = None
    #: How the relief reaches the taxpayer (rule file `apply`): "claim", or "automatic" (免申即享: the bureau
    #: applies it itself; an eligible taxpayer who has not enjoyed it goes on the auto-apply list, no letter).
    apply_mode: str = "claim"
    apply_label: str = ""
    apply_basis: tuple[dict[str, Any], ...] = ()

    @property
    def automatic(self) -> bool:
        return self.apply_mode == "automatic"

    @property
    def apply_basis_text(self) -> str:
        return "；".join(f"{b['document']}{b.get('article', '')}" for b in self.apply_basis)

    def applies_to_kind(self, kind: str) -> bool:
        return kind in self.granularity

    def covers(self, period: Period) -> bool:
        """Whether the effective window overlaps the period."""
        return self.effective_from <= period.end and (self.effective_to is None or self.effective_to >= period.start)

    def judges(self, period: Period) -> bool:
        """Whether the judged window overlaps the period (outside it the catalogue says nothing)."""
        start = self.judged_from or self.effective_from
        return start <= period.end and (self.judged_to is None or self.judged_to >= period.start)

    @property
    def window_label(self) -> str:
        end = self.effective_to.isoformat() if self.effective_to else "长期"
        return f"{self.effective_from.isoformat()} 至 {end}"

    @property
    def judged_label(self) -> str:
        start = self.judged_from or self.effective_from
        end = self.judged_to.isoformat() if self.judged_to else "长期"
        return f"{start.isoformat()} 至 {end}"

    @property
    def basis_text(self) -> str:
        return "；".join(f"{b['document']}{b.get('article', '')}" for b in self.basis)

    def all_conditions(self) -> tuple[Condition, ...]:
        """Scope first, then the eligibility conditions: the evidence list of a finding."""
        return (self.scope, *self.conditions)


@dataclass(frozen=True)
class Catalogue:
    """Every rule, in dependency order, with the settings that apply to all."""

    rules: Mapping[str, Rule]
    settings: CatalogueSettings
    version: str
    directory: str
    code_to_rule: Mapping[str, str] = field(default_factory=dict)
    #: Every official code (not the rule ids) with its rule, verification and source.
    claim_code_info: Mapping[str, ClaimCode] = field(default_factory=dict)

    def active(self, period: Period) -> list[Rule]:
        """Rules judged for this period: granularity matches the period's kind and the catalogue covers the
        period (effective window checked later)."""
        return [r for r in self.rules.values() if r.applies_to_kind(period.kind) and self.judges(r, period)]

    def not_judged(self, period: Period) -> list[Rule]:
        """Rules of this period's kind that the catalogue does not judge for it (see `judges`)."""
        return [r for r in self.rules.values() if r.applies_to_kind(period.kind) and not self.judges(r, period)]

    def judges(self, rule: Rule, period: Period) -> bool:
        """The period is inside the rule's judged window and inside those of the rules it reads through
        eligible(): a rule cannot be judged on a qualification the catalogue does not judge."""
        return rule.judges(period) and all(self.judges(self.rules[d], period)
                                           for d in rule.depends_on if d in self.rules)

    def not_judged_detail(self, rule: Rule, period: Period) -> str:
        """Why `rule` is not judged for `period`, in Chinese, for the run summary and `explain`."""
        if not rule.judges(period):
            return f"本目录判定的所属期范围为 {rule.judged_label}，所属期 {period.label} 不在其内"
        deps = [d for d in rule.depends_on if d in self.rules and not self.judges(self.rules[d], period)]
        return f"所依据的规则 {'、'.join(deps)} 未判定所属期 {period.label}"

    @property
    def known_incentives(self) -> frozenset[str]:
        """Every code a claim may carry: rule ids and their claim codes."""
        return frozenset(self.code_to_rule)

    @property
    def automatic_rules(self) -> frozenset[str]:
        """Ids of the rules the bureau applies itself (`apply: {mode: automatic}`, 免申即享)."""
        return frozenset(rid for rid, rule in self.rules.items() if rule.automatic)


# --------------------------------------------------------------------------------------------- loading


#: Catalogues already loaded in this process, by folder and the exact bytes of its files: a nightly run
#: reads the catalogue for the engine and again for the letters, and parsing and checking ~25 rule files
#: takes a second. Catalogue and Rule are frozen; nothing changes a loaded one.
_LOADED: dict[tuple[str, str], Catalogue] = {}
_LOADED_MAX = 8


def _catalogue_key(root: Path) -> tuple[str, str] | None:
    """(folder, digest of every file load_catalogue reads), or None when the folder cannot be read."""
    digest = hashlib.sha256()
    try:
        for path in sorted(p for p in root.glob("*.yaml") if not p.name.endswith(CASES_SUFFIX)):
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    except OSError:
        return None
    return str(root.resolve()), digest.hexdigest()


def load_catalogue(directory: str | Path = DEFAULT_RULES_DIR) -> Catalogue:
    """Load and check every rule file in `directory`; raise RuleError listing every problem.

    The same folder with the same file contents gives the catalogue already loaded in this process.
    """
    root = Path(directory)
    key = _catalogue_key(root) if root.is_dir() else None
    if key is not None and (loaded := _LOADED.get(key)) is not None:
        return loaded
    catalogue = _load_catalogue(root)
    if key is not None:
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = catalogue
    return catalogue


def _load_catalogue(root: Path) -> Catalogue:
    if not root.is_dir():
        raise RuleError([RuleProblem(str(root), 1, 1, "规则目录不存在", expected="包含 <政策编号>.yaml 的目录")])
    problems: list[RuleProblem] = []
    yaml = YAML(typ="rt")
    files = sorted(p for p in root.glob("*.yaml") if not p.name.startswith("_") and not p.name.endswith(CASES_SUFFIX))
    settings = _load_settings(root, yaml, problems)
    raw: dict[str, tuple[Path, RuleFile, Any, bytes]] = {}
    unusable: set[str] = set()  # ids of rule files whose shape is wrong: other rules may still name them
    for path in files:
        data = path.read_bytes()
        doc = _read_yaml(path, data, yaml, problems)
        if doc is None:
            continue
        try:
            spec = RuleFile.model_validate(_plain(doc))
        except ValidationError as exc:
            problems.extend(_validation_problems(path, doc, exc))
            # Misspelt keys alone do not stop the check: the rest of the file is still checked, so one
            # run lists every problem.
            retry = _without_unknown_keys(doc, exc)
            if retry is None:
                if doc.get("id") == path.stem:
                    unusable.add(path.stem)
                continue
            spec = retry
        if spec.id != path.stem:
            problems.append(_at(path, doc, ("id",), f"规则编号 {spec.id!r} 与文件名 {path.stem!r} 不一致",
                                expected=f"id: {path.stem}"))
            continue
        problems.extend(drafting_note_problems(path, data.decode("utf-8"), spec, partial(_position, doc)))
        raw[spec.id] = (path, spec, doc, data)
    rule_ids = set(raw) | unusable
    rules: dict[str, Rule] = {}
    for rid, (path, spec, doc, data) in raw.items():
        rule = _build_rule(path, spec, doc, data, rule_ids, raw, problems)
        if rule is not None:
            rules[rid] = rule
    ordered = _order(rules, raw, problems)
    mapped = _load_claim_code_file(root, yaml, rule_ids, problems)
    code_to_rule, code_info = _claim_codes(rules, raw, mapped, problems)
    # A rule's claim codes include those the bureau mapped to it in _claim_codes.yaml.
    rules = {rid: replace(rule, claim_codes=(*rule.claim_codes, *(
        c for c, info in code_info.items() if info.rule_id == rid and c not in rule.claim_codes)))
        for rid, rule in rules.items()}
    if problems:
        raise RuleError(problems)
    if not ordered:
        raise RuleError([RuleProblem(str(root), 1, 1, "规则目录中没有规则文件", expected="<政策编号>.yaml")])
    digest = hashlib.sha256()
    for rid in sorted(raw):
        digest.update(raw[rid][3])
    for name in (SETTINGS_FILE, CLAIM_CODES_FILE):
        digest.update((root / name).read_bytes() if (root / name).exists() else b"")
    return Catalogue(
        rules={rid: rules[rid] for rid in ordered},
        settings=settings,
        version=digest.hexdigest()[:12],
        directory=str(root),
        code_to_rule=code_to_rule,
        claim_code_info=code_info,
    )


def _load_settings(root: Path, yaml: YAML, problems: list[RuleProblem]) -> CatalogueSettings:
    path = root / SETTINGS_FILE
    if not path.exists():
        return CatalogueSettings()
    doc = _read_yaml(path, path.read_bytes(), yaml, problems)
    if doc is None:
        return CatalogueSettings()
    try:
        return CatalogueSettings.model_validate(_plain(doc))
    except ValidationError as exc:
        problems.extend(_validation_problems(path, doc, exc))
        return CatalogueSettings()


def _read_yaml(path: Path, data: bytes, yaml: YAML, problems: list[RuleProblem]) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(RuleProblem(str(path), 1, 1, f"文件不是 UTF-8 编码（{exc.reason}）", expected="以 UTF-8 保存"))
        return None
    aliases = yaml_alias_problems(path, text, yaml)
    if aliases:
        problems.extend(aliases)
        return None
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        problems.append(yaml_problem(path, exc))
        return None
    except ValueError as exc:  # ruamel builds dates as it reads: 2023-02-30 raises without a position
        problems.append(yaml_value_problem(path, text, exc))
        return None
    if not isinstance(doc, dict):
        problems.append(RuleProblem(str(path), 1, 1, "规则文件应为键值映射", example="id: small_low_profit_cit"))
        return None
    return doc


def yaml_alias_problems(path: Path, text: str, yaml: YAML) -> list[RuleProblem]:
    """A YAML anchor (&name) or alias (*name) anywhere in the file, found from the parser's events before
    anything is built: aliases can expand a few hundred bytes into gigabytes (a "billion laughs"), and a rule
    file has no need for them. Syntax errors are left to the loader, which reports them with their position."""
    try:
        for event in yaml.parse(text):
            anchor = getattr(event, "anchor", None)
            if anchor is None and type(event).__name__ != "AliasEvent":
                continue
            mark = event.start_mark
            sign = "*" if type(event).__name__ == "AliasEvent" else "&"
            return [RuleProblem(str(path), mark.line + 1, mark.column + 1,
                                f"YAML 锚点或别名（{sign}{anchor}）不允许使用：它们能把很小的文件展开成巨大的数据",
                                expected="把重复的内容直接写出来")]
    except (MarkedYAMLError, ValueError):
        return []
    return []


def yaml_problem(path: Path, exc: MarkedYAMLError) -> RuleProblem:
    """A YAML syntax error where the parser noticed it, naming where the unfinished construct began."""
    mark = exc.problem_mark or exc.context_mark
    message = f"YAML 格式错误：{exc.problem}"
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        message += f"（{exc.context}，始于第{exc.context_mark.line + 1}行第{exc.context_mark.column + 1}列）"
    return RuleProblem(str(path), (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1, message,
                       suggestion="检查缩进是否对齐、冒号后是否有空格、括号和引号是否成对")


_DATE_TEXT = re.compile(r"(?<![\w-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w-])")


def yaml_value_problem(path: Path, text: str, exc: ValueError) -> RuleProblem:
    """A value YAML could not build (in practice an impossible date such as 2023-02-30), located in the text."""
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split(" #", 1)[0]
        for m in _DATE_TEXT.finditer(content):
            try:
                date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return RuleProblem(str(path), number, m.start() + 1, f"日期 {m.group(0)} 不存在",
                                   expected="YYYY-MM-DD 格式的真实日期，如 2023-02-28")
    return RuleProblem(str(path), 1, 1, f"YAML 取值无法读取（{exc}）")


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts/lists (pydantic wants plain values)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _position(doc: Any, loc: Iterable[Any]) -> tuple[int, int]:
    """1-based (line, col) of the value at `loc` in a ruamel document, as close as the path allows."""
    line, col = 0, 0
    node = doc
    for key in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and key in node:
            if lc is not None:
                try:
                    line, col = lc.value(key) if not isinstance(node[key], dict | list) else lc.key(key)
                except (KeyError, TypeError):
                    line, col = lc.key(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            if lc is not None:
                line, col = lc.item(key)
            node = node[key]
        else:
            break
    return line + 1, col + 1


def _at(path: Path, doc: Any, loc: Iterable[Any], message: str, **kw: str) -> RuleProblem:
    line, col = _position(doc, loc)
    return RuleProblem(str(path), line, col, message, **kw)


_PYDANTIC_MESSAGES = {
    "missing": "缺少必填项 {key}",
    "extra_forbidden": "不认识的键 {key}",
    "literal_error": "取值不正确",
    "string_pattern_mismatch": "格式不正确（只能用英文小写字母、数字和下划线，以字母开头）",
    "date_from_datetime_parsing": "日期格式不正确",
    "date_parsing": "日期格式不正确",
    "date_type": "应为日期",
    "too_short": "不能为空",
    "list_type": "应为列表",
    "dict_type": "应为键值映射",
    "string_type": "应为文本",
}


def _validation_problems(path: Path, doc: Any, exc: ValidationError) -> list[RuleProblem]:
    from engine.rulefile import RuleFile as _RF

    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = str(loc[-1]) if loc else ""
        key = "from" if key == "from_" else key
        template = _PYDANTIC_MESSAGES.get(err["type"])
        message = template.format(key=key) if template else err["msg"]
        where = ".".join(str(p) for p in loc)
        suggestion = ""
        if err["type"] == "extra_forbidden":
            suggestion = did_you_mean(key, [*_RF.model_fields, "from", "to", "label", "when", "values", "value",
                                            "basis", "document", "article", "unit", "formula", "severity", "where",
                                            "form", "deadline", "steps", "id"])
            loc = loc  # point at the key itself
        expected = ""
        if err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
        if err["type"] in ("date_from_datetime_parsing", "date_parsing", "date_type"):
            expected = "YYYY-MM-DD，如 2023-01-01"
        pos_loc = tuple("from" if p == "from_" else p for p in loc)
        out.append(_at(path, doc, pos_loc, f"{where}: {message}", expected=expected, suggestion=suggestion))
    return out


def _value(raw: Any) -> Any:
    """A parameter value from YAML as the engine's exact types (Decimal for non-integers)."""
    if isinstance(raw, bool) or raw is None or isinstance(raw, date | str):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return Decimal(repr(raw))
    if isinstance(raw, list):
        return tuple(_value(v) for v in raw)
    if isinstance(raw, dict):
        return {str(k): _value(v) for k, v in raw.items()}
    return Decimal(str(raw))


def _build_rule(
    path: Path,
    spec: RuleFile,
    doc: Any,
    data: bytes,
    rule_ids: set[str],
    raw: Mapping[str, tuple[Path, RuleFile, Any, bytes]],
    problems: list[RuleProblem],
) -> Rule | None:
    before = len(problems)
    params: dict[str, Parameter] = {}
    for name, p in spec.parameters.items():
        values = tuple(sorted((DatedValue(v.from_, _value(v.value), v.basis) for v in p.values), key=lambda d: d.start))
        params[name] = Parameter(name, p.label, p.unit, values)
        if not name.isidentifier():
            problems.append(_at(path, doc, ("parameters", name), f"参数名 {name!r} 只能用英文字母、数字和下划线"))
    representative = {name: p.values[-1].value for name, p in params.items()}
    checker = TypeChecker(parameters=representative, rule_ids=rule_ids, problems=problems)

    def expr(loc: tuple[Any, ...], text: str, expected: str) -> ir.Node | None:
        line, col = _position(doc, loc)
        col += _quote_offset(doc, loc)
        try:
            node = parse_expression(text, file=str(path), line=line, col=col)
        except ExpressionError as exc:
            problems.extend(exc.problems)
            return None
        return checker.check(node, expected)

    scope = expr(("scope", "when"), spec.scope.when, "bool")
    conditions: list[Condition] = []
    seen_ids: set[str] = set()
    for i, c in enumerate(spec.conditions):
        if c.id in seen_ids or c.id == "scope":
            problems.append(_at(path, doc, ("conditions", i, "id"), f"条件编号 {c.id!r} 重复或保留"))
        seen_ids.add(c.id)
        node = expr(("conditions", i, "when"), c.when, "bool")
        if node is not None:
            conditions.append(Condition(c.id, c.label, node, c.when, c.unit))
    benefit = expr(("benefit", "formula"), spec.benefit.formula, "number")
    for i, other in enumerate(spec.excludes):
        if other not in rule_ids:
            problems.append(_at(path, doc, ("excludes", i), f"没有编号为 {other!r} 的规则",
                                suggestion=did_you_mean(other, rule_ids)))
    # A declared exclusion holds both ways: neither rule may be enjoyed while the other is claimed.
    exclusive = set(spec.excludes) | {rid for rid, (_, s, _, _) in raw.items() if spec.id in s.excludes}
    exclusive.discard(spec.id)
    for other in sorted(exclusive & raw.keys()):
        node = ir.Not(ir.Call("claimed", (ir.Literal_(other),)))
        other_name = raw[other][1].name
        conditions.append(Condition(
            f"not_stacked_{other}", f"未同时享受「{other_name}」（不得叠加）", node, f'not claimed("{other}")',
            stacking=True, pass_text=f"未同时申报享受「{other_name}」",
            fail_text=f"同时申报享受了「{other_name}」，两项优惠不得叠加享受",
        ))
    if spec.effective.to is not None and spec.effective.to < spec.effective.from_:
        problems.append(_at(path, doc, ("effective", "to"), "截止日期早于起始日期"))
    judged_from = spec.judged.from_ if spec.judged else None
    judged_to = spec.judged.to if spec.judged else None
    if judged_to is not None and judged_to < (judged_from or spec.effective.from_):
        problems.append(_at(path, doc, ("judged", "to"),
                            "judged.to 早于判定范围的起始日期" + ("" if judged_from else "（缺省为 effective.from）"),
                            expected="judged.to 不早于 judged.from（缺省为 effective.from）"))
    if len(problems) > before or scope is None or benefit is None:
        return None
    exprs = (scope, *(c.expr for c in conditions), benefit)
    deps = sorted({d for e in exprs for d in ir.rules_referenced(e, "eligible")})
    return Rule(
        id=spec.id,
        name=spec.name,
        tax=spec.tax,
        verification=spec.verification,
        verification_note=spec.verification_note,
        basis=tuple(b.model_dump() for b in spec.basis),
        effective_from=spec.effective.from_,
        effective_to=spec.effective.to,
        granularity=tuple(spec.granularity),
        scope=Condition("scope", spec.scope.label, scope, spec.scope.when),
        conditions=tuple(conditions),
        parameters=params,
        excludes=tuple(sorted(exclusive & raw.keys())),
        claim_codes=(spec.id, *(c if isinstance(c, str) else c.code for c in spec.claim_codes)),
        benefit_label=spec.benefit.label,
        benefit=benefit,
        benefit_source=spec.benefit.formula,
        severity=spec.risk.severity,
        risk_patterns=tuple(spec.risk.patterns),
        claim_guide=spec.claim.model_dump(),
        records=tuple(spec.records),
        notes=spec.notes,
        file=str(path),
        version=hashlib.sha256(data).hexdigest()[:12],
        depends_on=tuple(deps),
        judged_from=judged_from,
        judged_to=judged_to,
        apply_mode=spec.apply.mode,
        apply_label=spec.apply.label,
        apply_basis=tuple(b.model_dump() for b in spec.apply.basis),
    )


def _quote_offset(doc: Any, loc: tuple[Any, ...]) -> int:
    """Columns to skip when the expression is a quoted YAML scalar (the quote itself)."""
    node = doc
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return 0
    quoted = ("DoubleQuotedScalarString", "SingleQuotedScalarString")
    return 1 if type(node).__name__ in quoted else 0


def _eligible_call(rule: Rule, other: str) -> ir.Span:
    """Where `rule` calls eligible("other") (the scope, a condition or the benefit formula)."""
    for node in (*(c.expr for c in rule.all_conditions()), rule.benefit):
        for n in ir.walk(node):
            if isinstance(n, ir.Call) and n.name == "eligible" and n.args and isinstance(n.args[0], ir.Literal_) \
                    and n.args[0].value == other:
                return n.span
    return ir.Span(rule.file, 1, 1)  # pragma: no cover - depends_on comes from these calls


def _without_unknown_keys(doc: Any, exc: ValidationError) -> RuleFile | None:
    """The rule file without its unknown keys, when those are its only shape problems (else None)."""
    errors = exc.errors()
    if not errors or any(e["type"] != "extra_forbidden" for e in errors):
        return None
    plain = _plain(doc)
    for err in errors:
        *parents, key = err["loc"]
        node = plain
        for part in parents:
            node = node[part]
        node.pop(key, None)
    try:
        return RuleFile.model_validate(plain)
    except ValidationError:
        return None


def _order(rules: Mapping[str, Rule], raw: Mapping[str, tuple[Path, RuleFile, Any, bytes]],
           problems: list[RuleProblem]) -> list[str]:
    """Rule ids with every dependency before its dependents; a cycle is reported at each member."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(rid: str, stack: list[str]) -> None:
        if state.get(rid) == 2:
            return
        if state.get(rid) == 1:
            members = stack[stack.index(rid):]
            for i, member in enumerate(members):  # each member, at its eligible() call of the next one
                cycle = [*members[i:], *members[:i], member]
                span = _eligible_call(rules[member], cycle[1])
                problems.append(RuleProblem(span.file, span.line, span.col,
                                            "规则之间存在循环依赖：" + " → ".join(cycle),
                                            suggestion="eligible() 不能直接或间接引用自身"))
            return
        state[rid] = 1
        rule = rules.get(rid)
        for dep in rule.depends_on if rule else ():
            if dep in rules:
                other = rules[dep]
                if set(rule.granularity) - set(other.granularity):  # type: ignore[union-attr]
                    path, _, doc, _ = raw[rid]
                    problems.append(_at(path, doc, ("granularity",),
                                        f"依赖的规则 {dep} 不按 {'/'.join(rule.granularity)} 判定",  # type: ignore[union-attr]
                                        expected="依赖的规则须覆盖本规则的全部判定期间"))
                visit(dep, [*stack, rid])
        state[rid] = 2
        order.append(rid)

    for rid in sorted(rules):
        visit(rid, [])
    return order


def _load_claim_code_file(root: Path, yaml: YAML, rule_ids: set[str], problems: list[RuleProblem]
                          ) -> list[tuple[ClaimCodeMapping, Path, Any, int]]:
    """The entries of rules/_claim_codes.yaml with where each is written (empty when there is no such file)."""
    path = root / CLAIM_CODES_FILE
    if not path.exists():
        return []
    doc = _read_yaml(path, path.read_bytes(), yaml, problems)
    if doc is None:
        return []
    try:
        spec = ClaimCodesFile.model_validate(_plain(doc))
    except ValidationError as exc:
        problems.extend(_validation_problems(path, doc, exc))
        return []
    out = []
    for i, entry in enumerate(spec.codes):
        if entry.rule not in rule_ids:
            problems.append(_at(path, doc, ("codes", i, "rule"), f"没有编号为 {entry.rule!r} 的规则",
                                suggestion=did_you_mean(entry.rule, rule_ids)))
            continue
        out.append((entry, path, doc, i))
    return out


def _claim_codes(rules: Mapping[str, Rule], raw: Mapping[str, tuple[Path, RuleFile, Any, bytes]],
                 mapped: list[tuple[ClaimCodeMapping, Path, Any, int]], problems: list[RuleProblem]
                 ) -> tuple[dict[str, str], dict[str, ClaimCode]]:
    """Every code a claim may carry → its rule: the rule ids, the codes rule files list, then the bureau's
    mapping file. A code that would stand for two rules is refused where it is written the second time."""
    owner: dict[str, str] = {rid: rid for rid in rules}
    info: dict[str, ClaimCode] = {}

    def claim(code: str, rid: str, path: Path, doc: Any, loc: tuple[Any, ...], verified: bool | None, source: str,
              name: str = "") -> None:
        line, _ = _position(doc, loc)
        if code in owner and owner[code] != rid:
            first = info.get(code)
            where = f"（{Path(first.file).name}:{first.line}）" if first else "（规则编号）"
            problems.append(_at(path, doc, loc,
                                f"申报代码 {code!r} 已属于规则 {owner[code]}{where}，不能再对应规则 {rid}",
                                expected="每个申报代码只对应一条规则"))
            return
        owner[code] = rid
        known = info.get(code)
        if known is None or (verified and not known.verified):  # the better-attested entry describes the code
            info[code] = ClaimCode(code, rid, verified, source, str(path), line, name)

    for rid in rules:
        path, spec, doc, _ = raw[rid]
        for i, entry in enumerate(spec.claim_codes):
            if isinstance(entry, str):
                claim(entry, rid, path, doc, ("claim_codes", i), None, "")
            else:
                claim(entry.code, rid, path, doc, ("claim_codes", i, "code"), entry.verified, entry.source)
    for entry, path, doc, i in mapped:
        claim(entry.code, entry.rule, path, doc, ("codes", i, "code"), entry.verified, entry.source, entry.name)
    return owner, info
