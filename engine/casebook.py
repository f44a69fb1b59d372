"""Rule test cases: `rules/<id>.cases.yaml` beside each rule — loaded with their positions, run in batches.

A case is a small profile (taxpayer fields, the period's indicators, claims, risk events) and the outcome
the rule must reach for it, optionally with the status of named conditions and the amount. `load_cases`
reads and checks every case file (every problem at once, with `file:line:col`); `run_cases` turns the
cases of one period into small profile tables and evaluates them with the batch engine — one query per
period, not per case — so the whole catalogue's cases run in seconds. The test suite runs each case as
its own pytest test (tests/test_rule_cases.py) and `zhixiang rules test` prints them per rule.

Unspecified taxpayer fields take the defaults in `TAXPAYER_DEFAULTS` (an enterprise general taxpayer in
good standing); write `field: null` to make a field missing. Indicators have no defaults: a figure the
case does not give is missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from engine import ir
from engine.backends.polars import condition_col
from engine.batch import build_query, outcome_col
from engine.catalogue import (
    CASES_SUFFIX,
    DEFAULT_RULES_DIR,
    Catalogue,
    yaml_alias_problems,
    yaml_problem,
    yaml_value_problem,
)
from engine.errors import RuleError, RuleProblem, did_you_mean
from engine.findings import KIND_LABELS, OUTCOMES, STATUS_LABELS
from engine.findings.figures import round_cents
from engine.findings.outcomes import NOT_JUDGED, NOT_JUDGED_LABEL
from engine.rulefile import CaseSpec
from profiles.ids import make_credit_code
from profiles.periods import KIND_LABELS as PERIOD_KIND_LABELS
from profiles.periods import PeriodError, parse_period
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS, Column, Table

#: Taxpayer fields a case does not give: an enterprise general taxpayer, credit grade B, no certificates.
#: `vat_filing_cycle` defaults to the case period's kind (quarter → quarterly filer, otherwise monthly).
TAXPAYER_DEFAULTS: dict[str, Any] = {
    "name": "测试纳税人",
    "entity_type": "enterprise",
    "vat_status": "general",
    "industry_code": "C3911",
    "restricted_industry": False,
    "tax_authority": "13301060000",
    "district": "西湖区",
    "credit_grade": "B",
    "registered_on": date(2015, 1, 1),
    "preferred_channel": "etax",
    "opt_out": False,
}
_CLAIM_KEYS = ("incentive", "amount", "period")
_EVENT_KEYS = ("event", "occurred_on")


@dataclass(frozen=True)
class Case:
    """One case of a rule, with where it is written and its profile values converted to contract types."""

    rule_id: str
    spec: CaseSpec
    file: str
    line: int
    index: int  # position in its file (0-based)
    taxpayer: Mapping[str, Any] = field(default_factory=dict)
    indicators: Mapping[str, Any] = field(default_factory=dict)
    claims: tuple[Mapping[str, Any], ...] = ()
    risk_events: tuple[Mapping[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def test_id(self) -> str:
        """`<rule_id>::<case name>`, the pytest id."""
        return f"{self.rule_id}::{self.spec.name}"

    @property
    def key(self) -> tuple[str, int]:
        return (self.file, self.index)


@dataclass(frozen=True)
class CaseResult:
    """What the engine decided for one case, and how it differs from what the case expects."""

    case: Case
    outcome: str | None
    conditions: Mapping[str, str]  # condition id -> pass / fail / unknown
    amount: Decimal | None
    evidence: tuple[tuple[str, str, str], ...]  # (condition id, status, Chinese reason)
    mismatches: tuple[str, ...]  # empty when the case passes

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def message(self) -> str:
        """The failure text: `file:line`, the case, expected against got, and the evidence."""
        c = self.case
        lines = [f"{c.location}: 案例「{c.name}」（{c.rule_id}，所属期 {c.spec.period}）未通过"]
        lines += [f"  {m}" for m in self.mismatches]
        if self.evidence:
            lines.append("  判定依据：")
            lines += [f"    [{STATUS_LABELS.get(s, s)}] {cid}：{reason}" for cid, s, reason in self.evidence]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- loading


def load_cases(rules_dir: str | Path = DEFAULT_RULES_DIR) -> list[Case]:
    """Every case of every `<rule_id>.cases.yaml` in `rules_dir`; raise RuleError listing every problem."""
    root = Path(rules_dir)
    yaml = YAML(typ="rt")
    problems: list[RuleProblem] = []
    cases: list[Case] = []
    for path in sorted(root.glob(f"*{CASES_SUFFIX}")):
        cases.extend(_load_file(path, yaml, problems))
    if problems:
        raise RuleError(problems)
    return cases


def _load_file(path: Path, yaml: YAML, problems: list[RuleProblem]) -> list[Case]:
    rule_id = path.name.removesuffix(CASES_SUFFIX)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(RuleProblem(file, 1, 1, "文件不是 UTF-8 编码", expected="以 UTF-8 保存"))
        return []
    aliases = yaml_alias_problems(path, text, yaml)
    if aliases:
        problems.extend(aliases)
        return []
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        problems.append(yaml_problem(path, exc))
        return []
    except ValueError as exc:
        problems.append(yaml_value_problem(path, text, exc))
        return []
    if doc is None:
        return []
    if not isinstance(doc, list):
        problems.append(RuleProblem(file, 1, 1, "案例文件应为列表，每项一个案例", example="- name: 从业人数300人"))
        return []
    out: list[Case] = []
    names: set[str] = set()
    for i, item in enumerate(doc):
        line, col = _item_position(doc, i)
        if not isinstance(item, dict):
            problems.append(RuleProblem(file, line, col, "案例应为键值映射", example="- name: 从业人数300人"))
            continue
        plain = _plain(item)
        if isinstance(plain.get("claims"), list):  # `claims: [hnte_15pct]` is short for {incentive: hnte_15pct}
            plain["claims"] = [{"incentive": c} if isinstance(c, str) else c for c in plain["claims"]]
        try:
            spec = CaseSpec.model_validate(plain)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                ln, cl = _key_position(item, loc[0]) if loc and loc[0] in item else (line, col)
                key = str(loc[-1]) if loc else ""
                suggestion = did_you_mean(key, CaseSpec.model_fields) if err["type"] == "extra_forbidden" else ""
                problems.append(RuleProblem(file, ln, cl, f"案例 {'.'.join(map(str, loc))}：{err['msg']}",
                                            suggestion=suggestion))
            continue
        before = len(problems)
        if spec.name in names:
            problems.append(RuleProblem(file, line, col, f"案例名称「{spec.name}」重复", expected="每个案例名称唯一"))
        names.add(spec.name)
        try:
            parse_period(spec.period)
        except PeriodError as exc:
            problems.append(RuleProblem(file, *_value_position(item, "period"), str(exc)))
        taxpayer = _row(file, item, "taxpayer", spec.taxpayer, TAXPAYERS, problems)
        indicators = _row(file, item, "indicators", spec.indicators, INDICATORS, problems, skip=("period",))
        claims = _rows(file, item, "claims", spec.claims, CLAIMS, _CLAIM_KEYS, problems, shorthand="incentive")
        events = _rows(file, item, "risk_events", spec.risk_events, RISK_EVENTS_TABLE, _EVENT_KEYS, problems)
        if len(problems) == before:
            out.append(Case(rule_id, spec, file, line, i, taxpayer, indicators, tuple(claims), tuple(events)))
    return out


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _item_position(seq: Any, index: int) -> tuple[int, int]:
    try:
        line, col = seq.lc.item(index)
    except (AttributeError, KeyError, TypeError):
        return 1, 1
    return line + 1, col + 1


def _key_position(mapping: Any, key: Any) -> tuple[int, int]:
    try:
        line, col = mapping.lc.key(key)
    except (AttributeError, KeyError, TypeError):
        return 1, 1
    return line + 1, col + 1


def _value_position(mapping: Any, key: Any) -> tuple[int, int]:
    try:
        line, col = mapping.lc.value(key)
    except (AttributeError, KeyError, TypeError):
        return _key_position(mapping, key)
    return line + 1, col + 1


def _row(file: str, item: Any, section: str, values: Mapping[str, Any], table: Table,
         problems: list[RuleProblem], skip: Sequence[str] = ()) -> dict[str, Any]:
    """One section's fields converted to the contract's types; unknown fields and bad values are problems."""
    node = item.get(section, {})
    out: dict[str, Any] = {}
    allowed = [n for n in table.names if n not in skip]
    for key, raw in values.items():
        where = _key_position(node, key) if isinstance(node, dict) else _key_position(item, section)
        if key not in allowed:
            problems.append(RuleProblem(file, *where, f"{section} 中没有字段 {key}",
                                        expected=f"{table.label}（{table.name}）的字段",
                                        suggestion=did_you_mean(key, allowed)))
            continue
        try:
            out[key] = convert(table.column(key), raw)
        except ValueError as exc:
            at = _value_position(node, key) if isinstance(node, dict) else where
            problems.append(RuleProblem(file, *at, f"{section}.{key}：{exc}"))
    return out


def _rows(file: str, item: Any, section: str, values: Sequence[Any], table: Table, keys: Sequence[str],
          problems: list[RuleProblem], shorthand: str = "") -> list[dict[str, Any]]:
    node = item.get(section, [])
    out = []
    for i, raw in enumerate(values):
        where = _item_position(node, i) if isinstance(node, list) else _key_position(item, section)
        if shorthand and isinstance(raw, str):
            raw = {shorthand: raw}
        if not isinstance(raw, dict):
            problems.append(RuleProblem(file, *where, f"{section} 的每一项应为键值映射",
                                        example=f"{{{', '.join(f'{k}: …' for k in keys)}}}"))
            continue
        row: dict[str, Any] = {}
        entry = node[i] if isinstance(node, list) and isinstance(node[i], dict) else None
        for key, value in raw.items():
            if key not in keys:
                at = _key_position(entry, key) if entry is not None else where
                problems.append(RuleProblem(file, *at, f"{section} 中没有字段 {key}", expected="、".join(keys),
                                            suggestion=did_you_mean(str(key), keys)))
                continue
            try:
                row[key] = convert(table.column(key), value)
            except ValueError as exc:
                at = _value_position(entry, key) if entry is not None else where
                problems.append(RuleProblem(file, *at, f"{section}.{key}：{exc}"))
        out.append(row)
    return out


def convert(column: Column, raw: Any) -> Any:
    """A YAML value as the contract type of `column` (Decimal money, date, …); ValueError says why not."""
    if raw is None:
        return None
    kind = column.kind
    if kind == "money":
        if isinstance(raw, bool):
            raise ValueError(f"应为金额，这里是 {raw!r}")
        try:
            # repr() of a float is its shortest exact decimal text: 3000000.01 stays 3000000.01.
            return Decimal(repr(raw) if isinstance(raw, float) else str(raw))
        except InvalidOperation:
            raise ValueError(f"应为金额，这里是 {raw!r}") from None
    if kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
            raise ValueError(f"应为数值，这里是 {raw!r}")
        return float(raw)
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"应为整数，这里是 {raw!r}")
        return int(raw)
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"应为 true 或 false，这里是 {raw!r}")
        return raw
    if kind == "date":
        if isinstance(raw, date):
            return raw
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(f"应为日期 YYYY-MM-DD，这里是 {raw!r}") from None
    text = str(raw)
    if kind == "enum" and text not in column.values:
        hint = did_you_mean(text, column.values)
        suffix = f"（您是不是要写 {hint}）" if hint else ""
        raise ValueError(f"没有取值 {text!r}，应为 {'、'.join(column.values)}{suffix}")
    return text


# --------------------------------------------------------------------------------------------- running


def run_cases(catalogue: Catalogue, cases: Iterable[Case]) -> list[CaseResult]:
    """Evaluate every case with the batch engine (one query per period and batch) and compare, in order."""
    cases = list(cases)
    by_period: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_period[case.spec.period].append(case)
    results: dict[tuple[str, int], CaseResult] = {}
    serial = 0
    for period_text, group in by_period.items():
        # A taxpayer id a case gives itself may repeat across cases: such cases go into separate batches.
        batches: list[list[tuple[str, Case]]] = []
        for case in group:
            tid = case.taxpayer.get("taxpayer_id")
            if tid is None:
                serial += 1
                tid = make_credit_code(org_body=f"{serial:08d}")
            batch = next((b for b in batches if all(t != tid for t, _ in b)), None)
            if batch is None:
                batch = []
                batches.append(batch)
            batch.append((tid, case))
        for batch in batches:
            for result in _run_batch(catalogue, period_text, batch):
                results[result.case.key] = result
    return [results[case.key] for case in cases]


def _frames(period: str, batch: Sequence[tuple[str, Case]]) -> dict[str, pl.DataFrame]:
    kind = parse_period(period).kind
    taxpayers, indicators, claims, events = [], [], [], []
    for tid, case in batch:
        tp = {**TAXPAYER_DEFAULTS, "vat_filing_cycle": "quarter" if kind == "quarter" else "month", **case.taxpayer}
        tp["taxpayer_id"] = tid
        taxpayers.append(tp)
        indicators.append({**case.indicators, "taxpayer_id": tid, "period": period})
        claims += [{"period": period, **c, "taxpayer_id": tid} for c in case.claims]
        events += [{**e, "taxpayer_id": tid} for e in case.risk_events]
    return {
        "taxpayers": pl.DataFrame(taxpayers, schema=TAXPAYERS.polars_schema),
        "indicators": pl.DataFrame(indicators, schema=INDICATORS.polars_schema),
        "claims": pl.DataFrame(claims, schema=CLAIMS.polars_schema),
        "risk_events": pl.DataFrame(events, schema=RISK_EVENTS_TABLE.polars_schema),
    }


def needed_rules(catalogue: Catalogue, rule_ids: Iterable[str]) -> list[str]:
    """The rules whose columns the given rules read: dependencies, exclusions and claimed() targets, transitively."""
    todo = [r for r in rule_ids if r in catalogue.rules]
    keep: set[str] = set()
    while todo:
        rid = todo.pop()
        if rid in keep:
            continue
        keep.add(rid)
        rule = catalogue.rules[rid]
        nodes = [c.expr for c in rule.all_conditions()] + [rule.benefit]
        claimed = {r for n in nodes for r in ir.rules_referenced(n, "claimed")}
        todo.extend(r for r in (*rule.depends_on, *rule.excludes, *claimed) if r in catalogue.rules)
    return [rid for rid in catalogue.rules if rid in keep]


def subcatalogue(catalogue: Catalogue, rule_ids: Iterable[str]) -> Catalogue:
    """The catalogue cut down to `rule_ids` and what they read; their outcomes are the same as in the whole."""
    keep = set(needed_rules(catalogue, rule_ids))
    return replace(
        catalogue,
        rules={rid: rule for rid, rule in catalogue.rules.items() if rid in keep},
        code_to_rule={code: rid for code, rid in catalogue.code_to_rule.items() if rid in keep},
    )


def _run_batch(catalogue: Catalogue, period_text: str, batch: Sequence[tuple[str, Case]]) -> list[CaseResult]:
    period = parse_period(period_text)
    # Only the rules the batch's cases test (and what they read): a smaller plan collects much faster.
    small = subcatalogue(catalogue, {case.rule_id for _, case in batch})
    plan = build_query(small, period, outcomes=OUTCOMES, **_frames(period_text, batch))
    judged = {r.id for r in plan.rules}
    wanted = sorted({case.rule_id for _, case in batch} & judged)
    in_window = [r for r in wanted if r in plan.in_window]
    expired = [r for r in wanted if r not in plan.in_window]
    # Condition verdicts come from the wide table; the Chinese evidence is only rendered for failed cases
    # (it is most of the plan's cost). Out-of-window rules have one fixed evidence item, cheap to take.
    status_cols = [condition_col(r, c.id) for r in in_window for c in small.rules[r].all_conditions()]
    found = plan.findings.filter(pl.col("rule_id").is_in(wanted))
    wide, amounts, fixed = pl.collect_all([
        plan.wide.select("taxpayer_id", *[outcome_col(r) for r in wanted], *status_cols),
        found.select("taxpayer_id", "rule_id", "estimated_amount"),
        found.filter(pl.col("rule_id").is_in(expired)).select("taxpayer_id", "rule_id", "evidence"),
    ])
    rows = {row["taxpayer_id"]: row for row in wide.iter_rows(named=True)}
    amount_of = {(r["taxpayer_id"], r["rule_id"]): r["estimated_amount"] for r in amounts.iter_rows(named=True)}
    expired_evidence = {(r["taxpayer_id"], r["rule_id"]): _evidence(r["evidence"]) for r in fixed.iter_rows(named=True)}
    out = []
    for tid, case in batch:
        if case.rule_id not in catalogue.rules:
            out.append(CaseResult(case, None, {}, None, (), (
                f"没有编号为 {case.rule_id} 的规则（案例文件名应为 <政策编号>{CASES_SUFFIX}）",)))
            continue
        if case.rule_id not in judged and not small.rules[case.rule_id].applies_to_kind(period.kind):
            rule = catalogue.rules[case.rule_id]
            kinds = "、".join(PERIOD_KIND_LABELS[k] for k in rule.granularity)
            out.append(CaseResult(case, None, {}, None, (), (
                f"规则按{kinds}判定，所属期 {period_text} 为{PERIOD_KIND_LABELS[period.kind]}，不会判定本规则",)))
            continue
        if case.rule_id not in judged:  # outside the rule's judged window: the catalogue says nothing
            out.append(_compare(case, NOT_JUDGED, {}, (), None))
            continue
        row = rows[tid]
        if case.rule_id in plan.in_window:
            statuses = {c.id: _status(row[condition_col(case.rule_id, c.id)])
                        for c in small.rules[case.rule_id].all_conditions()}
            evidence: tuple[tuple[str, str, str], ...] = ()
        else:
            evidence = expired_evidence.get((tid, case.rule_id), ())
            statuses = {cid: status for cid, status, _ in evidence}
        out.append(_compare(case, row[outcome_col(case.rule_id)], statuses, evidence,
                            amount_of.get((tid, case.rule_id))))
    failed = {(r.case.rule_id, tid) for r, (tid, _) in zip(out, batch, strict=True) if not r.passed and not r.evidence
              and r.outcome is not None}
    if failed:
        explained = found.filter(pl.col("taxpayer_id").is_in([t for _, t in failed])).select(
            "taxpayer_id", "rule_id", "evidence").collect()
        full = {(r["taxpayer_id"], r["rule_id"]): _evidence(r["evidence"]) for r in explained.iter_rows(named=True)}
        out = [replace(r, evidence=full.get((tid, r.case.rule_id), ())) if (r.case.rule_id, tid) in failed else r
               for r, (tid, _) in zip(out, batch, strict=True)]
    return out


def _status(value: bool | None) -> str:
    return "unknown" if value is None else "pass" if value else "fail"


def _evidence(items: Sequence[Mapping[str, Any]] | None) -> tuple[tuple[str, str, str], ...]:
    return tuple((e["condition"], e["status"], e["reason"]) for e in items or ())


def _compare(case: Case, outcome: str, statuses: Mapping[str, str], evidence: tuple[tuple[str, str, str], ...],
             amount: Decimal | None) -> CaseResult:
    spec = case.spec
    mismatches: list[str] = []
    if outcome != spec.expect:
        mismatches.append(f"结论：期望 {_kind(spec.expect)}，实际 {_kind(outcome)}")
    for cid, want in spec.expect_conditions.items():
        got = statuses.get(cid)
        if got is None:
            known = "、".join(statuses) or "无（规则不在执行期内）"
            mismatches.append(f"条件 {cid}：规则没有此条件（已判定的条件：{known}）")
        elif got != want:
            mismatches.append(f"条件 {cid}：期望 {STATUS_LABELS[want]}（{want}），实际 {STATUS_LABELS[got]}（{got}）")
    if spec.expect_amount is not None:
        try:
            want_amount = round_cents(spec.expect_amount)
        except (ValueError, TypeError):
            mismatches.append(f"expect_amount 不是金额：{spec.expect_amount!r}")
        else:
            got_amount = round_cents(amount) if amount is not None else None
            if got_amount != want_amount:
                got_text = f"{got_amount:,}" if got_amount is not None else "无"
                mismatches.append(f"金额：期望 {want_amount:,}，实际 {got_text}")
    return CaseResult(case, outcome, statuses, amount, evidence, tuple(mismatches))


def _kind(outcome: str | None) -> str:
    label = NOT_JUDGED_LABEL if outcome == NOT_JUDGED else KIND_LABELS.get(outcome or "", "无")
    return f"{label}（{outcome}）"
