"""Shared by the backend parity tests: profile strategies (boundary values, missing figures, event windows,
claims) and the comparison of the batch engine with the durable-rules path."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.batch import build_query
from engine.catalogue import Catalogue, load_catalogue
from engine.findings import FINDINGS_SCHEMA, OUTCOMES
from engine.functions import add_months, events_window
from engine.realtime import RealtimeChecker, evaluate_period_durable, iter_profiles
from engine.run import evaluate_period
from profiles.periods import Period, parse_period
from profiles.schema import CLAIMS, CREDIT_GRADES, INDICATORS, RISK_EVENTS, RISK_EVENTS_TABLE, TAXPAYERS
from profiles.validation import Profiles

ROOT = Path(__file__).resolve().parent.parent
PROBE_RULES = ROOT / "tests" / "parity_rules"

#: Periods that put rules on both sides of their windows: 2023Q4/2023-12 inside service_vat_credit_plus and
#: probe_expired, 2024Q1/2024-01 after the one, 2025 after the other; 2024-02 ends on a leap day.
PERIODS = ("2025", "2024", "2023", "2026Q3", "2023Q4", "2024Q1", "2023-12", "2024-01", "2024-02", "2026-09")

INDUSTRIES = ("C3911", "C1610", "C16", "C", "I6510", "I65", "H5211", "F5123", "K7010", "L7211", "R9011",
              "M7320", "X", "", "c3911")


def catalogues() -> list[Catalogue]:
    """The real catalogue and the probe catalogue (every node of the language)."""
    return [load_catalogue(), load_catalogue(PROBE_RULES)]


def numeric_thresholds(catalogue: Catalogue, period: Period) -> list[Decimal]:
    """Every number a rule compares with in this period (parameters in force, bracket bounds)."""
    out: set[Decimal] = {Decimal(0)}
    for rule in catalogue.active(period):
        for p in rule.parameters.values():
            v = p.at(period.start)
            values = v if isinstance(v, tuple) else (v,)
            for x in values:
                if isinstance(x, dict):
                    out.update(Decimal(str(y)) for y in x.values() if isinstance(y, int | Decimal))
                elif isinstance(x, int | Decimal) and not isinstance(x, bool):
                    out.add(Decimal(x))
    return sorted(out)


def _money(thresholds: list[Decimal]) -> st.SearchStrategy[Decimal | None]:
    near = sorted({(t + d).quantize(Decimal("0.01")) for t in thresholds
                   for d in (Decimal("-0.01"), Decimal(0), Decimal("0.01"), Decimal(-1))})
    return st.one_of(st.none(), st.sampled_from(near),
                     st.decimals(min_value=-10**6, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))


def _floats(thresholds: list[Decimal]) -> st.SearchStrategy[float | None]:
    small = [t for t in thresholds if abs(t) <= 10**6]
    near = sorted({float(t) + d for t in small for d in (0.0, 4e-7, 6e-7, -4e-7, -6e-7, 0.125, -0.5, 2.675)})
    return st.one_of(st.none(), st.sampled_from(near),
                     st.floats(min_value=0, max_value=10**5, allow_nan=False).map(lambda x: round(x, 3)))


def _ints(thresholds: list[Decimal]) -> st.SearchStrategy[int | None]:
    near = sorted({int(t) + d for t in thresholds if t == t.to_integral_value() and abs(t) <= 10**7
                   for d in (-1, 0, 1)})
    return st.one_of(st.none(), st.sampled_from(near or [0]), st.integers(min_value=-3, max_value=5000))


def _dates(period: Period) -> st.SearchStrategy[date | None]:
    start, end = period.start, period.end
    edges = [start, start - timedelta(days=1), start + timedelta(days=1), end, end - timedelta(days=1),
             end + timedelta(days=1), add_months(end, -12), add_months(end, -12) + timedelta(days=1),
             add_months(start, -12), date(2009, 12, 31), date(2010, 1, 1)]
    return st.one_of(st.none(), st.sampled_from(edges),
                     st.dates(min_value=date(2000, 1, 1), max_value=date(2027, 12, 31)))


def _event_dates(period: Period) -> st.SearchStrategy[date]:
    window_start, end = events_window(period.end, 36)
    edges = [window_start - timedelta(days=1), window_start, window_start + timedelta(days=1), end,
             end + timedelta(days=1), date(2019, 3, 31), date(2019, 4, 1)]
    return st.one_of(st.sampled_from(edges), st.dates(min_value=date(2015, 1, 1), max_value=date(2027, 12, 31)))


@st.composite
def profile_tables(draw: st.DrawFn, catalogue: Catalogue, period: Period, max_taxpayers: int = 4) -> Profiles:
    """A handful of taxpayers with figures at and around every threshold, gaps, claims and risk events."""
    thresholds = numeric_thresholds(catalogue, period)
    money, floats, ints, dates = _money(thresholds), _floats(thresholds), _ints(thresholds), _dates(period)
    bools = st.sampled_from([True, False, None])
    codes = sorted(catalogue.code_to_rule)
    other = ("2024" if period.text != "2024" else "2025")
    taxpayers, indicators, claims, events = [], [], [], []
    for i in range(draw(st.integers(min_value=1, max_value=max_taxpayers))):
        tid = f"T{i:04d}"
        taxpayers.append({
            "taxpayer_id": tid, "name": f"纳税人{i}", "tax_authority": "13301000000", "district": "西湖区",
            "entity_type": draw(st.sampled_from(["enterprise", "individual_business"])),
            "vat_status": draw(st.sampled_from(["general", "small_scale", None])),
            "vat_filing_cycle": draw(st.sampled_from(["month", "quarter", None])),
            "industry_code": draw(st.sampled_from([*INDUSTRIES, None])),
            "restricted_industry": draw(bools),
            "credit_grade": draw(st.sampled_from([*CREDIT_GRADES, None])),
            "registered_on": draw(dates),
            "hnte_cert_issued_on": draw(dates),
            "hnte_cert_valid_until": draw(dates),
            "software_copyright": draw(bools),
            "key_group_owner": draw(bools),
            "preferred_channel": "etax", "opt_out": False,
        })
        if draw(st.integers(0, 5)):  # mostly with figures; sometimes a claim without any
            row: dict[str, Any] = {"taxpayer_id": tid, "period": period.text}
            for col in INDICATORS.columns[2:]:
                strategy = {"money": money, "number": floats, "int": ints, "bool": bools}[col.kind]
                row[col.name] = draw(strategy)
            indicators.append(row)
        for code in draw(st.lists(st.sampled_from(codes), max_size=3, unique=True)):
            amount = draw(st.one_of(st.none(), st.sampled_from([Decimal("0.00"), Decimal("1999.99"),
                                                                Decimal("500000.00")]), money))
            claims.append({"taxpayer_id": tid, "period": draw(st.sampled_from([period.text] * 4 + [other])),
                           "incentive": code, "amount": amount})
        for _ in range(draw(st.integers(0, 3))):
            events.append({"taxpayer_id": tid, "event": draw(st.sampled_from(RISK_EVENTS)),
                           "occurred_on": draw(_event_dates(period))})
    claims = list({(c["taxpayer_id"], c["period"], c["incentive"]): c for c in claims}.values())
    return Profiles(
        taxpayers=pl.DataFrame(taxpayers, schema=TAXPAYERS.polars_schema),
        indicators=pl.DataFrame(indicators, schema=INDICATORS.polars_schema),
        claims=pl.DataFrame(claims, schema=CLAIMS.polars_schema),
        risk_events=pl.DataFrame(events, schema=RISK_EVENTS_TABLE.polars_schema),
    )


def every_outcome_batch(catalogue: Catalogue, profiles: Profiles, period: Period) -> pl.DataFrame:
    """Every taxpayer × rule the batch judges, compliant and not-applicable included, with evidence."""
    plan = build_query(catalogue, period, taxpayers=profiles.taxpayers, indicators=profiles.indicators,
                       claims=profiles.claims, risk_events=profiles.risk_events, outcomes=OUTCOMES)
    return plan.findings.collect().sort(["taxpayer_id", "rule_id"])


def every_outcome_durable(catalogue: Catalogue, profiles: Profiles, period: Period, **kw: Any) -> pl.DataFrame:
    """The same through durable-rules, one taxpayer at a time."""
    checker = RealtimeChecker(catalogue, **kw)
    rows: list[dict[str, Any]] = []
    for profile in iter_profiles(profiles, period):
        env, verdicts = checker.verdicts(profile, period)
        rows.extend(checker.rows(profile.taxpayer_id, env, verdicts, outcomes=OUTCOMES))
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA).sort(["taxpayer_id", "rule_id"])


def assert_paths_agree(catalogue: Catalogue, profiles: Profiles, period: Period | str, **kw: Any) -> None:
    """Both paths: the same verdict and evidence for every taxpayer × rule, the same findings and summary."""
    p = parse_period(period) if isinstance(period, str) else period
    assert_frame_equal(every_outcome_durable(catalogue, profiles, p, **kw), every_outcome_batch(catalogue, profiles, p))
    batch = evaluate_period(catalogue, profiles, p)
    durable = evaluate_period_durable(catalogue, profiles, p, **kw)
    assert_frame_equal(durable.findings, batch.findings)
    assert_frame_equal(durable.summary, batch.summary)
    assert durable.taxpayers_evaluated == batch.taxpayers_evaluated
