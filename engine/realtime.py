"""Real-time checks for one taxpayer: the durable-rules path, and the event API for embedding.

    checker = RealtimeChecker(load_catalogue())
    findings = checker.check(profile, parse_period("2025"))      # rows with FINDINGS_SCHEMA's columns
    state = checker.start(profile, parse_period("2025"))
    changes = apply_event(state, FilingEvent("claim", {"period": "2025", "incentive": "hnte_15pct"}))

The verdicts come from engine/backends/durable.py; this module turns them into findings exactly as
the batch does (engine/batch.py `_evidence` / `_rule_findings`): the same evidence, values formatted
by engine.evidence.format_value (the twin of format_value_expr), the same Chinese sentences, amounts
and risk tiers. `evaluate_period_durable` runs a whole period one taxpayer at a time through this path
and returns a RunResult that engine.run.write_outputs writes in the batch format — the parity harness.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from engine import ir
from engine.backends.durable import (
    Env,
    RuleVerdict,
    Scope,
    build_env,
    compile_program,
    exact,
    value_fn,
)
from engine.catalogue import Catalogue, Rule
from engine.evidence import Subject, explain_condition, format_value
from engine.findings import DECIDING_STATUS, FINDINGS_SCHEMA, KIND_LABELS, KINDS, TAXPAYER_CONTEXT, reasons
from engine.findings.outcomes import risk_tier
from profiles.errors import ProfileDataError
from profiles.periods import Period
from profiles.schema import CLAIMS, INDICATORS, MONEY_DTYPE, PROFILE_FIELDS, RISK_EVENTS_TABLE, TAXPAYERS
from profiles.validation import Profiles

if TYPE_CHECKING:
    from engine.run import RunResult

# ------------------------------------------------------------------------------------------- profiles


@dataclass
class TaxpayerProfile:
    """Everything known about one taxpayer: the taxpayers row, indicators by period, claims, risk events.

    Values are typed as the validated tables hold them (Decimal money, float numbers, dates, bools).
    """

    taxpayer_id: str
    taxpayer: dict[str, Any] | None = None
    indicators: dict[str, dict[str, Any]] = field(default_factory=dict)  # period text -> row
    claims: list[dict[str, Any]] = field(default_factory=list)
    risk_events: list[dict[str, Any]] = field(default_factory=list)

    def judged_for(self, period: Period) -> bool:
        """Whether the batch judges this taxpayer for the period: figures for it, or a claim of it."""
        return period.text in self.indicators or any(c.get("period") == period.text for c in self.claims)

    def env(self, catalogue: Catalogue, period: Period) -> Env:
        return build_env(catalogue, period, taxpayer=self.taxpayer, indicators=self.indicators.get(period.text),
                         claims=self.claims, risk_events=self.risk_events)

    def frames(self) -> dict[str, pl.DataFrame]:
        """The profile as the four contract tables (for the Polars engine)."""
        def frame(table: Any, rows: list[dict[str, Any]]) -> pl.DataFrame:
            schema = table.polars_schema
            return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)

        return {
            "taxpayers": frame(TAXPAYERS, [self.taxpayer] if self.taxpayer else []),
            "indicators": frame(INDICATORS, list(self.indicators.values())),
            "claims": frame(CLAIMS, self.claims),
            "risk_events": frame(RISK_EVENTS_TABLE, self.risk_events),
        }


def _rows(frame: pl.DataFrame, table: Any) -> Iterator[dict[str, Any]]:
    """A table's rows as dicts of its contract columns (a column the frame lacks is missing)."""
    present = [c for c in table.names if c in frame.columns]
    absent = [c for c in table.names if c not in frame.columns]
    for row in frame.select(present).iter_rows(named=True):
        if absent:
            row.update(dict.fromkeys(absent))
        yield row


def _judged(profiles: Profiles, period: Period) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    ind = profiles.indicators.filter(pl.col("period") == period.text)
    claims = profiles.claims.filter(pl.col("period") == period.text)
    ids = pl.concat([ind.get_column("taxpayer_id"), claims.get_column("taxpayer_id")]).unique(maintain_order=True)
    return ind, claims, ids


def judged_count(profiles: Profiles, period: Period) -> int:
    """How many taxpayers the period judges (for progress bars)."""
    return _judged(profiles, period)[2].len()


def iter_profiles(profiles: Profiles, period: Period, *, taxpayer_ids: Collection[str] | None = None
                  ) -> Iterator[TaxpayerProfile]:
    """The taxpayers the batch judges for `period` (indicators of the period ∪ claims of it), one by one.

    Only what the period needs is kept: its indicators row, its claims, every risk event.
    """
    p = period.text
    ind, claims, ids = _judged(profiles, period)
    if taxpayer_ids is not None:
        ids = ids.filter(ids.is_in(list(taxpayer_ids)))
    id_set = ids.to_list()
    known = pl.col("taxpayer_id").is_in(id_set)
    tp = {r["taxpayer_id"]: r for r in _rows(profiles.taxpayers.filter(known), TAXPAYERS)}
    rows = {r["taxpayer_id"]: r for r in _rows(ind, INDICATORS)}
    by_claims: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(claims, CLAIMS):
        by_claims[r["taxpayer_id"]].append(r)
    by_events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(profiles.risk_events.filter(known), RISK_EVENTS_TABLE):
        by_events[r["taxpayer_id"]].append(r)
    for tid in id_set:
        yield TaxpayerProfile(tid, tp.get(tid), {p: rows[tid]} if tid in rows else {}, by_claims.get(tid, []),
                              by_events.get(tid, []))


def profile_from_tables(profiles: Profiles, taxpayer_id: str) -> TaxpayerProfile | None:
    """One taxpayer's whole profile from validated tables (None when the taxpayers table lacks it)."""
    def rows(frame: pl.DataFrame, table: Any) -> list[dict[str, Any]]:
        return list(_rows(frame.filter(pl.col("taxpayer_id") == taxpayer_id), table))

    tp = rows(profiles.taxpayers, TAXPAYERS)
    if not tp:
        return None
    return TaxpayerProfile(
        taxpayer_id, tp[0], {r["period"]: r for r in rows(profiles.indicators, INDICATORS)},
        rows(profiles.claims, CLAIMS), rows(profiles.risk_events, RISK_EVENTS_TABLE),
    )


def profile_from_json(document: str | bytes | Mapping[str, Any], *,
                      known_incentives: Collection[str] | None = None) -> TaxpayerProfile:
    """One taxpayer's profile from JSON, validated by the same contract checks as a data folder.

    Shape: {"taxpayer": {...}, "indicators": [{"period": "2025", ...}], "claims": [...], "risk_events": [...]};
    `taxpayer_id` may be left out of the lists (it is the taxpayer's). Raises ProfileDataError listing
    every problem with its path (e.g. `indicators[0].sales`). The parsing is profiles.models' (the
    validation of `parse_profile_json`, without its Polars frames: the rows come out typed as
    `profile_from_tables` reads them from those frames — tests/test_workbench_api.py holds them equal).
    """
    from profiles.models import profile_rows

    rows = profile_rows(document, known_incentives=known_incentives)
    taxpayer = rows["taxpayers"][0]  # the validation always yields the taxpayers row
    return TaxpayerProfile(taxpayer["taxpayer_id"], taxpayer, {r["period"]: r for r in rows["indicators"]},
                           rows["claims"], rows["risk_events"])


# ------------------------------------------------------------------- evidence: batch._evidence in Python

_DECIMAL6 = "decimal6"


def _dtype_kind(subject: Subject) -> str:
    """What batch._subject_dtype gives: the field's kind, Int64 for counts, else Decimal(38, 6)."""
    if isinstance(subject.node, ir.Field):
        return PROFILE_FIELDS[subject.node.name].kind
    return "int" if subject.fmt == "int" else _DECIMAL6


def render(value: Any, subject: Subject) -> str | None:
    """A value as format_value_expr renders it for the subject's format and dtype (None stays None)."""
    if value is None:
        return None
    kind = _dtype_kind(subject)
    column = subject.node.name if isinstance(subject.node, ir.Field) else ""
    if subject.fmt == "money":
        return format_value(exact(value), "money")
    if subject.fmt == "number":
        if kind in ("money", _DECIMAL6):
            return format_value(exact(value), "number")
        if kind == "int":
            return str(value)
        return format_value(float(value), "number")
    if subject.fmt == "int":
        return str(int(value))
    return format_value(value, subject.fmt, column=column)


@dataclass
class _ConditionText:
    """One condition's sentence with the compiled values it shows."""

    sentence: reasons.Sentence
    value: Callable[[Env], Any] | None
    threshold: Callable[[Env], Any] | None
    fields: list[tuple[Subject, Callable[[Env], Any]]]


@dataclass
class _RuleText:
    rule: Rule
    conditions: dict[str, _ConditionText]


def _compile_texts(rule: Rule, period: Period, in_window: frozenset[str]) -> _RuleText:
    scope = Scope(period, rule, in_window)
    out: dict[str, _ConditionText] = {}
    for cond in rule.all_conditions():
        s = reasons.sentence(explain_condition(cond, rule, period))
        value = value_fn(s.value.node, scope) if s.value is not None else None
        threshold = value_fn(s.threshold.node, scope) if s.threshold is not None else None
        fields = [(f, value_fn(f.node, scope)) for f in s.fields]
        out[cond.id] = _ConditionText(s, value, threshold, fields)
    return _RuleText(rule, out)


def _evidence(text: _ConditionText, status: str, env: Env) -> dict[str, Any]:
    """One evidence struct, exactly as batch._evidence builds it (the sentence: engine.findings.reasons)."""
    s = text.sentence
    fields_text = reasons.FIELD_SEPARATOR.join(reasons.field_text(render(fn(env), f), f) for f, fn in text.fields)
    value = render(text.value(env), s.value) if s.value is not None and text.value else fields_text
    threshold = (render(text.threshold(env), s.threshold) if s.threshold is not None and text.threshold
                 else s.threshold_text)
    missing = reasons.missing([f.label for f, fn in text.fields if f.empty_text == reasons.MISSING_FIELD
                               and fn(env) is None]) if status == "unknown" else ""
    slots = {"value": value, "threshold": threshold, "detail": reasons.detail(fields_text), "missing": missing}
    return {"condition": s.explanation.condition, "label": s.explanation.label, "status": status,
            "value": value or "", "threshold": threshold or "", "reason": reasons.reason(s, status, slots)}


# ---------------------------------------------------------------------------------------- the checker

Engine = Literal["durable", "polars"]


class RealtimeChecker:
    """The whole catalogue for one taxpayer at a time, through durable-rules (or the batch, for comparison)."""

    def __init__(self, catalogue: Catalogue, *, engine: Engine = "durable", session: str = "shared") -> None:
        self.catalogue = catalogue
        self.engine = engine
        self.session = session
        self._texts: dict[str, dict[str, _RuleText]] = {}
        tiers = catalogue.settings.risk_tiers
        self._raise_at = Decimal(str(tiers.raise_at))
        self._lower_below = Decimal(str(tiers.lower_below))

    def prepare(self, period: Period) -> None:
        """Compile everything the period needs that does not depend on the taxpayer (done on first use too)."""
        if self.engine == "durable":
            compile_program(self.catalogue, period, session=self.session)
        self._rule_texts(period)

    # -- verdicts and findings

    def verdicts(self, profile: TaxpayerProfile, period: Period) -> tuple[Env, list[RuleVerdict]]:
        """durable-rules' verdict for every active rule (whether or not the taxpayer is judged)."""
        program = compile_program(self.catalogue, period, session=self.session)
        env = profile.env(self.catalogue, period)
        return env, program.evaluate(env)

    def check(self, profile: TaxpayerProfile, period: Period, *, outcomes: Collection[str] = KINDS
              ) -> list[dict[str, Any]]:
        """The taxpayer's findings for the period (FINDINGS_SCHEMA's columns), ordered by rule id and kind."""
        if not profile.judged_for(period):
            return []
        if self.engine == "polars":
            return self._check_polars(profile, period, outcomes)
        env, verdicts = self.verdicts(profile, period)
        return self.rows(profile.taxpayer_id, env, verdicts, outcomes=outcomes)

    def rows(self, taxpayer_id: str, env: Env, verdicts: list[RuleVerdict], *, outcomes: Collection[str] = KINDS
             ) -> list[dict[str, Any]]:
        """Finding rows for the verdicts whose outcome is in `outcomes` (as batch._rule_findings builds them)."""
        period = env.period
        texts = self._rule_texts(period)
        out = []
        for v in verdicts:
            if v.outcome not in outcomes:
                continue
            rule = v.rule
            if v.in_window:
                conditions = texts[rule.id].conditions
                evidence = [_evidence(conditions[cid], status, env) for cid, status in v.statuses.items()]
                want = DECIDING_STATUS[v.outcome]
                reason_text = reasons.FIELD_SEPARATOR.join(
                    e["reason"] for e in evidence if e["status"] == want and e["reason"] is not None)
                benefit = v.benefit
            else:
                evidence = [reasons.out_of_window_evidence(rule.window_label, period)]
                reason_text, benefit = evidence[0]["reason"], None
            at_stake = v.claim_amount if v.claim_amount is not None else benefit
            row = {
                "taxpayer_id": taxpayer_id,
                "period": period.text,
                "rule_id": rule.id,
                "rule_name": rule.name,
                "kind": v.outcome,
                "kind_label": KIND_LABELS[v.outcome],
                "estimated_amount": at_stake if v.outcome == "improper" else benefit,
                "claimed_amount": v.claim_amount,
                "risk_tier": risk_tier(rule.severity, at_stake, raise_at=self._raise_at,
                                       lower_below=self._lower_below) if v.outcome == "improper" else None,
                "reasons": reason_text,
                "evidence": evidence,
                "basis": rule.basis_text,
                "rule_version": rule.version,
                "ruleset_version": self.catalogue.version,
            }
            row.update({dst: env.row.get(src) for src, dst in TAXPAYER_CONTEXT.items()})
            out.append(row)
        out.sort(key=lambda r: (r["rule_id"], r["kind"]))
        return out

    def _rule_texts(self, period: Period) -> dict[str, _RuleText]:
        texts = self._texts.get(period.text)
        if texts is None:
            rules = self.catalogue.active(period)
            in_window = frozenset(r.id for r in rules if r.covers(period))
            texts = {r.id: _compile_texts(r, period, in_window) for r in rules if r.id in in_window}
            self._texts[period.text] = texts
        return texts

    def _check_polars(self, profile: TaxpayerProfile, period: Period, outcomes: Collection[str]
                      ) -> list[dict[str, Any]]:
        from engine.batch import build_query

        frames = profile.frames()
        plan = build_query(self.catalogue, period, taxpayers=frames["taxpayers"], indicators=frames["indicators"],
                           claims=frames["claims"], risk_events=frames["risk_events"], outcomes=outcomes)
        rows = plan.findings.sort(["rule_id", "kind"]).collect().to_dicts()
        return rows

    # -- the event API

    def start(self, profile: TaxpayerProfile, period: Period) -> TaxpayerState:
        """A taxpayer's state for `period`: the profile and its current findings."""
        findings = {f["rule_id"]: f for f in self.check(profile, period)}
        return TaxpayerState(self, profile, period, findings)

    def apply_event(self, state: TaxpayerState, event: FilingEvent) -> list[FindingChange]:
        """Add a filing event to the state's profile, re-check, and return the findings that changed."""
        row = _validated_row(self.catalogue, state.profile, event)
        profile = state.profile
        if event.kind == "indicators":
            profile.indicators[row["period"]] = row
        elif event.kind == "claim":
            key = (row["period"], row["incentive"])
            profile.claims = [c for c in profile.claims if (c["period"], c["incentive"]) != key] + [row]
        else:
            profile.risk_events.append(row)
        now = {f["rule_id"]: f for f in self.check(profile, state.period)}
        changes: list[FindingChange] = []
        for rid in sorted(set(now) | set(state.findings)):
            before, after = state.findings.get(rid), now.get(rid)
            if before is None and after is not None:
                changes.append(FindingChange("new", after, None))
            elif after is None and before is not None:
                changes.append(FindingChange("resolved", before, before))
            elif before != after and after is not None:
                changes.append(FindingChange("changed", after, before))
        state.findings = now
        return changes


EventKind = Literal["indicators", "claim", "risk_event"]
_EVENT_TABLES: dict[str, str] = {"indicators": "indicators", "claim": "claims", "risk_event": "risk_events"}


@dataclass(frozen=True)
class FilingEvent:
    """A filing event for one taxpayer: a new (or corrected) indicators row, a claim, or a risk event.

    `row` holds the table's columns (taxpayer_id may be left out); values as JSON would carry them or
    as Python values (Decimal, date, bool).
    """

    kind: EventKind
    row: Mapping[str, Any]

    @classmethod
    def from_json(cls, document: str | Mapping[str, Any]) -> FilingEvent:
        """{"kind": "claim", "row": {...}} as an event."""
        data = json.loads(document, parse_float=Decimal) if isinstance(document, str) else document
        kind = data.get("kind")
        if kind not in _EVENT_TABLES:
            raise ProfileDataError([("kind", f"应为 {'、'.join(_EVENT_TABLES)} 之一")])
        return cls(kind, dict(data.get("row") or {}))


@dataclass(frozen=True)
class FindingChange:
    """A finding that changed with an event: new, changed (with the previous version) or resolved."""

    change: Literal["new", "changed", "resolved"]
    finding: dict[str, Any]  # the finding now (for resolved: as it was)
    previous: dict[str, Any] | None


@dataclass
class TaxpayerState:
    """One taxpayer for one period in an embedding host: the profile so far and its current findings."""

    checker: RealtimeChecker
    profile: TaxpayerProfile
    period: Period
    findings: dict[str, dict[str, Any]]  # rule id -> finding


def apply_event(state: TaxpayerState, event: FilingEvent) -> list[FindingChange]:
    """Feed one filing event; return the findings it made new, changed or resolved."""
    return state.checker.apply_event(state, event)


def _validated_row(catalogue: Catalogue, profile: TaxpayerProfile, event: FilingEvent) -> dict[str, Any]:
    """The event's row typed and checked by the contract (same checks as a data folder's rows)."""
    if event.kind not in _EVENT_TABLES:
        raise ProfileDataError([("kind", f"应为 {'、'.join(_EVENT_TABLES)} 之一")])
    row = {k: v for k, v in event.row.items()}
    tid = row.setdefault("taxpayer_id", profile.taxpayer_id)
    if tid != profile.taxpayer_id:
        raise ProfileDataError([(f"{event.kind}.taxpayer_id", f"事件属于纳税人 {tid}，不是 {profile.taxpayer_id}")])
    key = {"indicators": "indicators", "claim": "claims", "risk_event": "risk_events"}[event.kind]
    checked = profile_from_json({"taxpayer": profile.taxpayer or {"taxpayer_id": profile.taxpayer_id}, key: [row]},
                                known_incentives=catalogue.known_incentives)
    if event.kind == "indicators":
        return next(iter(checked.indicators.values()))
    return (checked.claims if event.kind == "claim" else checked.risk_events)[0]


# ---------------------------------------------------------------------------- a whole period, one by one


def evaluate_period_durable(catalogue: Catalogue, profiles: Profiles, period: Period, *,
                            on_taxpayer: Callable[[int], None] | None = None, session: str = "shared") -> RunResult:
    """Every taxpayer of the period through the durable-rules path, one at a time; a RunResult in the
    batch format (findings sorted as engine.run.evaluate_period sorts them, the same summary)."""
    from engine.run import RunResult, claims_outside_granularity, not_judged_rules, timed
    from profiles.validation import QUARANTINE_SCHEMA

    checker = RealtimeChecker(catalogue, session=session)
    timings: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    counts: dict[tuple[str, str], list[Any]] = {}
    judged = 0
    with timed(timings, "evaluate"):
        for profile in iter_profiles(profiles, period):
            env, verdicts = checker.verdicts(profile, period)
            rows.extend(checker.rows(profile.taxpayer_id, env, verdicts))
            for v in verdicts:
                amount = (v.claim_amount if v.claim_amount is not None else v.benefit) \
                    if v.outcome == "improper" else v.benefit
                entry = counts.setdefault((v.rule.id, v.outcome), [0, Decimal("0.00")])
                entry[0] += 1
                if amount is not None and v.outcome != "not_applicable":
                    entry[1] += amount
            judged += 1
            if on_taxpayer is not None:
                on_taxpayer(judged)
    findings = pl.DataFrame(rows, schema=FINDINGS_SCHEMA).sort(["rule_id", "kind", "taxpayer_id"])
    names = {r.id: r.name for r in catalogue.rules.values()}
    summary = pl.DataFrame(
        [{"rule_id": rid, "rule_name": names[rid], "outcome": outcome, "count": n,
          "amount": None if outcome == "not_applicable" else amount}
         for (rid, outcome), (n, amount) in sorted(counts.items())],
        schema={"rule_id": pl.String, "rule_name": pl.String, "outcome": pl.String, "count": pl.Int64,
                "amount": MONEY_DTYPE},
    )
    claims_file = str(getattr(profiles, "sources", {}).get("claims", "claims"))
    extra = claims_outside_granularity(catalogue, profiles.claims, claims_file)
    quarantine = pl.concat([profiles.quarantine.cast(QUARANTINE_SCHEMA), extra]) \
        if profiles.quarantine.height else extra
    return RunResult(period=period, ruleset_version=catalogue.version, findings=findings, summary=summary,
                     quarantine=quarantine, taxpayers_evaluated=judged, timings=timings,
                     inputs=dict(getattr(profiles, "input_hashes", {})),
                     not_judged=not_judged_rules(catalogue, period, profiles.claims))

