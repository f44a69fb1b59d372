"""Engine benchmark: the batch engine against a hand-written Polars query, durable-rules and a Python loop.

    .venv/bin/python bench/engine.py                                  # 100k, 1M, 10M rows
    .venv/bin/python bench/engine.py --sizes 100000,1000000 --readme  # and write the table into README.md

Data: for each size N, `bench/data.py --kind year` makes N taxpayers with one indicators row each for
the tax year 2025 (plus their claims and risk events) — every row is judged by the `--period 2025` run,
so rows = taxpayer-years evaluated. Data sets are cached under --data-root and reused.

Configurations, each in a fresh subprocess (peak RSS is that process's VmHWM, CPU time from wait4):

1. `engine_catalogue` — `zhixiang run`'s path: read and validate the Parquet folder, the whole catalogue
   with evidence, findings.parquet/findings.csv/quarantine.csv/summary.json written. The target: ≤ 10 s
   at 10M rows on 2 cores; peak RSS ≤ 2 × the loaded (validated) tables.
2. `engine_five` — the engine on five catalogue rules (FIVE), findings with evidence.
3. `polars_five` — the same five rules hand-written as one Polars query (the baseline): the same
   findings (kind, amounts, risk tier) and a reason line per finding. Target: (2) ≤ 1.5 × (3).
4. `durable_five` — the five rules through the durable-rules path, one taxpayer at a time (≤ 100k rows).
5. `python_five` — a plain Python loop over the rows with Decimal arithmetic (≤ 1M rows).

(2)–(5) time the same work: read the four Parquet files, evaluate, write findings.parquet; they are
checked to agree on every finding's taxpayer, rule, kind, amount and risk tier.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.schema import TABLES  # noqa: E402

PERIOD = "2025"
#: Five yearly rules, closed under eligible()/claimed()/excludes references.
FIVE = ("small_low_profit_cit", "hnte_15pct", "six_taxes_two_fees_half", "individual_business_iit_half",
        "disability_fund_relief")
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
PARITY_COLUMNS = ["taxpayer_id", "rule_id", "kind", "estimated_amount", "risk_tier"]


@dataclass(frozen=True)
class Config:
    """One benchmark configuration."""

    key: str
    label: str
    max_rows: int | None


CONFIGS = (
    Config("engine_catalogue", "(1) engine, whole catalogue + evidence, Parquet → findings files", None),
    Config("engine_five", "(2) engine, five rules + evidence", None),
    Config("polars_five", "(3) hand-written Polars query, five rules (baseline)", None),
    Config("durable_five", "(4) durable-rules path, five rules", 100_000),
    Config("python_five", "(5) plain Python loop, five rules", 1_000_000),
)


# ------------------------------------------------------------------------------------------ workers


def _read_tables(data: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(data / f"{name}.parquet") for name in TABLES}


def _fits_in_memory(data: Path) -> bool:
    """Whether an in-memory plan over `data` fits in half the free memory (else (2) and (3) stream)."""
    from profiles.streaming import IN_MEMORY_FACTOR, available_memory, input_bytes

    return IN_MEMORY_FACTOR * input_bytes(data) < available_memory() // 2


def _write_plan(plan: pl.LazyFrame, data: Path, out: Path) -> tuple[int, str]:
    """Collect and write a findings plan: in memory when it fits, else with the streaming engine and a sink."""
    path = out / "findings.parquet"
    if _fits_in_memory(data):
        findings = plan.collect(engine="in-memory")
        findings.write_parquet(path, compression_level=1)
        return findings.height, "in memory"
    plan.sink_parquet(path, compression_level=1, engine="streaming")
    return pl.scan_parquet(path).select(pl.len()).collect().item(), "Polars streaming engine, sink_parquet"


def _tables(data: Path) -> dict[str, pl.DataFrame | pl.LazyFrame]:
    """The four tables: read when the plan runs in memory, scanned lazily when it streams."""
    if _fits_in_memory(data):
        return dict(_read_tables(data))
    return {name: pl.scan_parquet(data / f"{name}.parquet") for name in TABLES}


def five_rule_catalogue(tmp: Path) -> Any:
    """The catalogue restricted to FIVE (their rule files and the catalogue settings, nothing else)."""
    from engine.catalogue import load_catalogue

    folder = tmp / "rules5"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*(f"{r}.yaml" for r in FIVE), "_catalogue.yaml"):
        shutil.copy(ROOT / "rules" / name, folder / name)
    return load_catalogue(folder)


def run_engine_catalogue(data: Path, out: Path) -> dict[str, Any]:
    """(1): what `zhixiang run` does — in memory, or streaming when the folder is too large for memory."""
    from engine.catalogue import load_catalogue
    from engine.run import cleanup_streaming, evaluate_period, evaluate_streaming, write_outputs
    from profiles.periods import parse_period
    from profiles.readers import load_profiles
    from profiles.streaming import too_large_for_memory

    catalogue = load_catalogue()
    period = parse_period(PERIOD)
    start = time.perf_counter()
    if too_large_for_memory(data):
        result = evaluate_streaming(catalogue, data, period, out / ".streaming")
        evaluated = time.perf_counter()
        write_outputs(result, out)
        cleanup_streaming(out / ".streaming")
        stages = {k: v for k, v in result.timings.items() if k != "buckets"}
        mode = f"streaming, {result.timings['buckets']:.0f} buckets"
    else:
        profiles = load_profiles(data, known_incentives=catalogue.known_incentives)
        loaded = time.perf_counter()
        result = evaluate_period(catalogue, profiles, period)
        evaluated = time.perf_counter()
        write_outputs(result, out)
        stages = {"read_validate": loaded - start, "evaluate": evaluated - loaded}
        mode = "in memory"
    end = time.perf_counter()
    stages["write"] = end - evaluated
    return {"wall": end - start, "findings": sum(result.counts().values()),
            "judged": result.taxpayers_evaluated, "quarantined": result.quarantine.height, "stages": stages,
            "mode": mode}


def run_tables(data: Path, out: Path) -> dict[str, Any]:
    """The size of the four tables loaded in memory (what "the loaded table" means for the RSS target)."""
    start = time.perf_counter()
    size = sum(t.estimated_size() for t in _read_tables(data).values())
    return {"wall": time.perf_counter() - start, "findings": 0, "loaded_bytes": size}


def run_engine_five(data: Path, out: Path) -> dict[str, Any]:
    """(2): the engine's batch query for FIVE; findings with evidence."""
    from engine.batch import build_query
    from profiles.periods import parse_period

    with tempfile.TemporaryDirectory() as tmp:
        catalogue = five_rule_catalogue(Path(tmp))
    start = time.perf_counter()
    t = _tables(data)
    plan = build_query(catalogue, parse_period(PERIOD), taxpayers=t["taxpayers"], indicators=t["indicators"],
                       claims=t["claims"], risk_events=t["risk_events"])
    n, mode = _write_plan(plan.findings, data, out)
    return {"wall": time.perf_counter() - start, "findings": n, "mode": mode}


def run_durable_five(data: Path, out: Path) -> dict[str, Any]:
    """(4): every taxpayer through durable-rules (engine.realtime.evaluate_period_durable)."""
    from engine.backends.durable import durable_available
    from engine.realtime import evaluate_period_durable
    from profiles.periods import parse_period
    from profiles.validation import Profiles

    if not durable_available():
        return {"unavailable": "durable-rules does not import here"}
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = five_rule_catalogue(Path(tmp))
    start = time.perf_counter()
    t = _read_tables(data)
    profiles = Profiles(taxpayers=t["taxpayers"], indicators=t["indicators"], claims=t["claims"],
                        risk_events=t["risk_events"])
    result = evaluate_period_durable(catalogue, profiles, parse_period(PERIOD))
    result.findings.write_parquet(out / "findings.parquet", compression_level=1)
    return {"wall": time.perf_counter() - start, "findings": result.findings.height}


# --- (3) the five rules written by hand in Polars -------------------------------------------------------

D6 = pl.Decimal(38, 6)
MONEY = pl.Decimal(38, 2)
CODES = {"small_low_profit_cit": ["small_low_profit_cit", "A107040_1"], "hnte_15pct": ["hnte_15pct"],
         "six_taxes_two_fees_half": ["six_taxes_two_fees_half"],
         "individual_business_iit_half": ["individual_business_iit_half"],
         "disability_fund_relief": ["disability_fund_relief"]}
SEVERITY = {"small_low_profit_cit": "high", "hnte_15pct": "high", "six_taxes_two_fees_half": "medium",
            "individual_business_iit_half": "medium", "disability_fund_relief": "low"}
RAISE_AT, LOWER_BELOW = Decimal(500000), Decimal(2000)
IIT_BRACKETS = ((30000, "0.05", 0), (90000, "0.1", 1500), (300000, "0.2", 10500), (500000, "0.3", 40500),
                (None, "0.35", 65500))
YEAR_END = date(2025, 12, 31)


def _d(x: Any) -> pl.Expr:
    return pl.lit(Decimal(str(x)), dtype=D6)


def _num(name: str) -> pl.Expr:
    return pl.col(name).cast(D6)


def _round(e: pl.Expr) -> pl.Expr:
    return e.round(2, mode="half_away_from_zero").cast(MONEY)


def _max0(e: pl.Expr) -> pl.Expr:
    return pl.when(e.is_null()).then(None).otherwise(pl.max_horizontal(e, _d(0)))


def _yuan(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).fill_null("缺失")


def _sentence(cond: pl.Expr, ok: pl.Expr | str, bad: pl.Expr | str, unknown: str) -> tuple[pl.Expr, pl.Expr]:
    """(condition, its reason for the verdict) — reasons as one hand-written sentence per outcome."""
    ok_e = pl.lit(ok) if isinstance(ok, str) else ok
    bad_e = pl.lit(bad) if isinstance(bad, str) else bad
    return cond, pl.when(cond).then(ok_e).when(~cond).then(bad_e).otherwise(pl.lit(unknown))


def _compare(name: str, label: str, unit: str, cap: int, *, upper: bool = True) -> tuple[pl.Expr, pl.Expr]:
    cond = _num(name) <= _d(cap) if upper else _num(name) > _d(cap)
    value = pl.concat_str([pl.lit(f"{label} "), _yuan(name), pl.lit(f" {unit}，")])
    ok = pl.concat_str([value, pl.lit(f"未超过 {cap:,} {unit}上限" if upper else f"大于 {cap}")])
    bad = pl.concat_str([value, pl.lit(f"超过 {cap:,} {unit}上限" if upper else f"不大于 {cap}")])
    return _sentence(cond, ok, bad, f"{label}：缺少{label}，无法判断")


def _decide(claimed: pl.Expr, eligible: pl.Expr, benefit: pl.Expr) -> pl.Expr:
    return (pl.when(claimed & eligible.not_()).then(pl.lit("improper"))
            .when(claimed & eligible.is_null()).then(pl.lit("undetermined"))
            .when(claimed).then(pl.lit("compliant"))
            .when(eligible.is_null()).then(pl.lit("undetermined"))
            .when(eligible.not_()).then(pl.lit("not_applicable"))
            .when(benefit.is_null()).then(pl.lit("undetermined"))
            .when(benefit > 0).then(pl.lit("unclaimed"))
            .otherwise(pl.lit("not_applicable")))


def _tier(severity: str, amount: pl.Expr) -> pl.Expr:
    order = ("low", "medium", "high")
    i = order.index(severity)
    return (pl.when(amount.is_null()).then(pl.lit(severity))
            .when(amount >= pl.lit(RAISE_AT, dtype=D6)).then(pl.lit(order[min(i + 1, 2)]))
            .when(amount < pl.lit(LOWER_BELOW, dtype=D6)).then(pl.lit(order[max(i - 1, 0)]))
            .otherwise(pl.lit(severity)))


def polars_five_query(t: dict[str, Any]) -> pl.LazyFrame:
    """FIVE as one hand-written lazy query: findings with amount, risk tier and reasons."""
    hits = t["claims"].lazy().filter(pl.col("period") == PERIOD).with_columns(
        [pl.col("incentive").is_in(codes).alias(f"c_{r}") for r, codes in CODES.items()])
    hits = hits.with_columns([pl.when(pl.col(f"c_{r}")).then(pl.col("amount")).alias(f"a_{r}") for r in CODES])
    claims = hits.group_by("taxpayer_id").agg(
        [pl.col(f"c_{r}").any() for r in CODES]
        + [pl.when(pl.col(f"a_{r}").count() > 0).then(pl.col(f"a_{r}").sum()).alias(f"a_{r}") for r in CODES])
    ind = t["indicators"].lazy().filter(pl.col("period") == PERIOD)
    df = (ind.join(claims, on="taxpayer_id", how="full", coalesce=True)
          .join(t["taxpayers"].lazy(), on="taxpayer_id", how="left")
          .with_columns([pl.col(f"c_{r}").fill_null(False) for r in CODES]))
    enterprise = pl.col("entity_type") == "enterprise"
    individual = pl.col("entity_type") == "individual_business"
    ti = _num("taxable_income")

    conds: dict[str, list[tuple[pl.Expr, pl.Expr]]] = {}
    is_enterprise = _sentence(enterprise, "企业所得税纳税人（企业）：满足", "企业所得税纳税人（企业）：不满足",
                              "纳税人类型缺失，无法判断")
    conds["small_low_profit_cit"] = [
        is_enterprise,
        _sentence(~pl.col("restricted_industry"), "从事国家非限制和禁止行业", "从事国家限制或禁止行业",
                  "是否限制和禁止行业缺失，无法判断"),
        _compare("taxable_income", "应纳税所得额", "元", 3_000_000),
        _compare("employees_qavg", "从业人数", "人", 300),
        _compare("assets_qavg", "资产总额", "元", 50_000_000),
    ]
    cert = (pl.col("hnte_cert_issued_on").is_not_null() & (pl.col("hnte_cert_issued_on") <= YEAR_END)
            & pl.col("hnte_cert_valid_until").is_not_null() & (pl.col("hnte_cert_valid_until") >= YEAR_END))
    conds["hnte_15pct"] = [
        is_enterprise,
        _sentence(cert, "持有覆盖本年度的高新技术企业证书", "未持有覆盖本年度的高新技术企业证书",
                  "证书信息缺失，无法判断"),
    ]
    q_slp = pl.all_horizontal([c for c, _ in conds["small_low_profit_cit"]])
    conds["six_taxes_two_fees_half"] = [
        _sentence((pl.col("vat_status") == "small_scale") | individual | q_slp,
                  "增值税小规模纳税人、小型微利企业或个体工商户：满足",
                  "增值税小规模纳税人、小型微利企业或个体工商户：不满足", "身份信息缺失，无法判断"),
    ]
    conds["individual_business_iit_half"] = [
        _sentence(individual, "个体工商户：满足", "个体工商户：不满足", "纳税人类型缺失，无法判断"),
        _compare("taxable_income", "经营所得应纳税所得额", "元", 0, upper=False),
    ]
    conds["disability_fund_relief"] = [
        _sentence(enterprise & (pl.col("disability_fund_due").is_not_null() | pl.col("c_disability_fund_relief")),
                  "缴纳残疾人就业保障金的企业：满足", "缴纳残疾人就业保障金的企业：不满足", "信息缺失，无法判断"),
        _compare("employees", "在职职工总数", "人", 30),
    ]
    stacking = {"small_low_profit_cit": ~pl.col("c_hnte_15pct"), "hnte_15pct": ~pl.col("c_small_low_profit_cit")}
    capped = pl.when(ti.is_null()).then(None).otherwise(pl.min_horizontal(ti, _d(2_000_000)))
    tax: Any = pl.when(capped.is_null()).then(None)
    for upto, rate, quick in IIT_BRACKETS[:-1]:
        tax = tax.when(capped <= _d(upto)).then((capped * _d(rate) - _d(quick)).cast(D6))
    _, rate, quick = IIT_BRACKETS[-1]
    tax = tax.otherwise((capped * _d(rate) - _d(quick)).cast(D6))
    benefits = {
        "small_low_profit_cit": _round((_max0(ti) * _d("0.2")).cast(D6)),
        "hnte_15pct": _round((_max0(ti) * _d("0.1")).cast(D6)),
        "six_taxes_two_fees_half": _round((_num("six_taxes_due") * _d("0.5")).cast(D6)),
        "individual_business_iit_half": _round((tax * _d("0.5")).cast(D6)),
        "disability_fund_relief": _round(_max0(_num("disability_fund_due"))),
    }
    columns = []
    for rule, items in conds.items():
        qualifies = pl.all_horizontal([c for c, _ in items])
        eligible = pl.all_horizontal([qualifies, stacking[rule]]) if rule in stacking else qualifies
        columns += [eligible.alias(f"e_{rule}"), benefits[rule].alias(f"b_{rule}")]
        columns += [c.alias(f"k_{rule}_{i}") for i, (c, _) in enumerate(items)]
    df = df.with_columns(columns)
    df = df.with_columns([_decide(pl.col(f"c_{r}"), pl.col(f"e_{r}"), pl.col(f"b_{r}")).alias(f"o_{r}")
                          for r in conds])
    parts = []
    for rule, items in conds.items():
        kind = pl.col(f"o_{rule}")
        want = kind.replace_strict({"unclaimed": True, "improper": False, "undetermined": None}, default=None,
                                   return_dtype=pl.Boolean)
        reasons = [pl.when((pl.col(f"k_{rule}_{i}") == want) | (pl.col(f"k_{rule}_{i}").is_null() & want.is_null()))
                   .then(text) for i, (_, text) in enumerate(items)]
        at_stake = pl.coalesce(pl.col(f"a_{rule}").cast(D6), pl.col(f"b_{rule}").cast(D6))
        parts.append(df.filter(kind.is_in(["unclaimed", "improper", "undetermined"])).select(
            "taxpayer_id", pl.lit(rule).alias("rule_id"), kind.alias("kind"),
            pl.when(kind == "improper").then(at_stake).otherwise(pl.col(f"b_{rule}")).cast(MONEY)
            .alias("estimated_amount"),
            pl.col(f"a_{rule}").cast(MONEY).alias("claimed_amount"),
            pl.when(kind == "improper").then(_tier(SEVERITY[rule], at_stake)).alias("risk_tier"),
            pl.concat_str(reasons, separator="；", ignore_nulls=True).alias("reasons"),
            "district", "tax_authority"))
    return pl.concat(parts)


def run_polars_five(data: Path, out: Path) -> dict[str, Any]:
    """(3): the hand-written query."""
    start = time.perf_counter()
    n, mode = _write_plan(polars_five_query(_tables(data)), data, out)
    return {"wall": time.perf_counter() - start, "findings": n, "mode": mode}


# --- (5) the five rules in a plain Python loop -----------------------------------------------------------


def _and(*xs: bool | None) -> bool | None:
    if any(x is False for x in xs):
        return False
    return None if any(x is None for x in xs) else True


def _or(*xs: bool | None) -> bool | None:
    if any(x is True for x in xs):
        return True
    return None if any(x is None for x in xs) else False


def _not(x: bool | None) -> bool | None:
    return None if x is None else not x


def _le(a: Any, b: Any) -> bool | None:
    return None if a is None else Decimal(str(a)) <= b


def _half_up(x: Decimal | None) -> Decimal | None:
    return None if x is None else x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _decide_py(claimed: bool, eligible: bool | None, benefit: Decimal | None) -> str:
    # Written again on purpose, not imported from engine.findings.outcomes: (5) is checked against the engine.
    if claimed:
        return "undetermined" if eligible is None else ("compliant" if eligible else "improper")
    if eligible is None:
        return "undetermined"
    if not eligible:
        return "not_applicable"
    if benefit is None:
        return "undetermined"
    return "unclaimed" if benefit > 0 else "not_applicable"


def _tier_py(severity: str, amount: Decimal | None) -> str:
    order = ("low", "medium", "high")
    i = order.index(severity)
    if amount is not None:
        i += 1 if amount >= RAISE_AT else (-1 if amount < LOWER_BELOW else 0)
    return order[max(0, min(i, 2))]


def _iit(ti: Decimal | None) -> Decimal | None:
    if ti is None:
        return None
    x = min(ti, Decimal(2_000_000))
    for upto, rate, quick in IIT_BRACKETS:
        if upto is None or x <= upto:
            return (x * Decimal(rate) - quick) * Decimal("0.5")
    return None


def python_five(t: dict[str, pl.DataFrame]) -> list[dict[str, Any]]:
    """FIVE over the rows in Python: dict lookups for taxpayers and claims, Decimal money, Kleene logic."""
    taxpayers = {r["taxpayer_id"]: r for r in t["taxpayers"].iter_rows(named=True)}
    claimed: dict[str, dict[str, list[Decimal | None]]] = {}
    rule_of = {code: rule for rule, codes in CODES.items() for code in codes}
    for c in t["claims"].iter_rows(named=True):
        if c["period"] == PERIOD and c["incentive"] in rule_of:
            claimed.setdefault(c["taxpayer_id"], {}).setdefault(rule_of[c["incentive"]], []).append(c["amount"])
    rows = {r["taxpayer_id"]: r for r in t["indicators"].iter_rows(named=True) if r["period"] == PERIOD}
    findings: list[dict[str, Any]] = []
    for tid in [*rows, *(k for k in claimed if k not in rows)]:
        ind = rows.get(tid, {})
        tp = taxpayers.get(tid, {})
        cl = claimed.get(tid, {})
        get = {**tp, **ind}.get
        enterprise = None if tp.get("entity_type") is None else tp["entity_type"] == "enterprise"
        individual = None if tp.get("entity_type") is None else tp["entity_type"] == "individual_business"
        ti = get("taxable_income")
        restricted = tp.get("restricted_industry")
        slp = [("企业所得税纳税人（企业）", enterprise), ("从事国家非限制和禁止行业", _not(restricted)),
               ("应纳税所得额不超过300万元", _le(ti, 3_000_000)),
               ("从业人数不超过300人", _le(get("employees_qavg"), 300)),
               ("资产总额不超过5000万元", _le(get("assets_qavg"), 50_000_000))]
        q_slp = _and(*(v for _, v in slp))
        issued, valid = tp.get("hnte_cert_issued_on"), tp.get("hnte_cert_valid_until")
        cert = _and(issued is not None, None if issued is None else issued <= YEAR_END,
                    valid is not None, None if valid is None else valid >= YEAR_END)
        small = None if tp.get("vat_status") is None else tp["vat_status"] == "small_scale"
        due = get("disability_fund_due")
        conds = {
            "small_low_profit_cit": (slp, _and(q_slp, "hnte_15pct" not in cl),
                                     _half_up(max(ti, Decimal(0)) * Decimal("0.2")) if ti is not None else None),
            "hnte_15pct": ([("企业所得税纳税人（企业）", enterprise), ("持有覆盖本年度的高新技术企业证书", cert)],
                           _and(enterprise, cert, "small_low_profit_cit" not in cl),
                           _half_up(max(ti, Decimal(0)) * Decimal("0.1")) if ti is not None else None),
            "six_taxes_two_fees_half": ([("小规模纳税人、小型微利企业或个体工商户", _or(small, individual, q_slp))],
                                        _or(small, individual, q_slp),
                                        _half_up(get("six_taxes_due") * Decimal("0.5"))
                                        if get("six_taxes_due") is not None else None),
            "individual_business_iit_half": ([("个体工商户", individual),
                                              ("经营所得大于零", None if ti is None else ti > 0)],
                                             _and(individual, None if ti is None else ti > 0), _half_up(_iit(ti))),
            "disability_fund_relief": ([("缴纳保障金的企业", _and(enterprise, due is not None
                                                                 or "disability_fund_relief" in cl)),
                                        ("在职职工总数不超过30人", _le(get("employees"), 30))],
                                       _and(enterprise, due is not None or "disability_fund_relief" in cl,
                                            _le(get("employees"), 30)),
                                       _half_up(max(due, Decimal(0))) if due is not None else None),
        }
        for rule, (items, eligible, benefit) in conds.items():
            amounts = cl.get(rule)
            kind = _decide_py(amounts is not None, eligible, benefit)
            if kind not in ("unclaimed", "improper", "undetermined"):
                continue
            known = [a for a in amounts or [] if a is not None]
            claim_amount = sum(known, Decimal(0)) if known else None
            at_stake = claim_amount if claim_amount is not None else benefit
            want = {"unclaimed": True, "improper": False, "undetermined": None}[kind]
            findings.append({
                "taxpayer_id": tid, "rule_id": rule, "kind": kind,
                "estimated_amount": at_stake if kind == "improper" else benefit, "claimed_amount": claim_amount,
                "risk_tier": _tier_py(SEVERITY[rule], at_stake) if kind == "improper" else None,
                "reasons": "；".join(f"{label}：{'满足' if v else '不满足' if v is False else '无法判断'}"
                                    for label, v in items if v is want),
                "district": tp.get("district"), "tax_authority": tp.get("tax_authority")})
    return findings


def run_python_five(data: Path, out: Path) -> dict[str, Any]:
    """(5): the loop."""
    start = time.perf_counter()
    rows = python_five(_read_tables(data))
    pl.DataFrame(rows, schema={"taxpayer_id": pl.String, "rule_id": pl.String, "kind": pl.String,
                               "estimated_amount": MONEY, "claimed_amount": MONEY, "risk_tier": pl.String,
                               "reasons": pl.String, "district": pl.String, "tax_authority": pl.String}
                 ).write_parquet(out / "findings.parquet", compression_level=1)
    return {"wall": time.perf_counter() - start, "findings": len(rows)}


def run_idle(data: Path, out: Path) -> dict[str, Any]:
    """The interpreter with the engine imported and nothing done: the RSS every configuration starts from."""
    import engine.run  # noqa: F401
    import profiles.readers  # noqa: F401

    return {"wall": 0.0, "findings": 0}


WORKERS: dict[str, Callable[[Path, Path], dict[str, Any]]] = {
    "idle": run_idle,
    "tables": run_tables,
    "engine_catalogue": run_engine_catalogue,
    "engine_five": run_engine_five,
    "polars_five": run_polars_five,
    "durable_five": run_durable_five,
    "python_five": run_python_five,
}


# ------------------------------------------------------------------------------------------- driver


def peak_rss_self() -> int:
    """This process's peak RSS since exec (VmHWM). getrusage's ru_maxrss would also count the parent's
    peak: a vforked child shares the parent's memory until exec, and the kernel keeps that high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_config(key: str, data: Path, out: Path) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its result with the child's peak RSS."""
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, __file__, "--worker", key, "--data", str(data), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    process_wall = time.perf_counter() - start
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result.update(process_wall=process_wall, load_before=load, cpu=usage.ru_utime + usage.ru_stime)
    return result


def check_parity(outs: dict[str, Path]) -> str:
    """Whether (2)–(5) found the same findings (taxpayer, rule, kind, amount, risk tier)."""
    frames = {k: pl.read_parquet(p / "findings.parquet", columns=PARITY_COLUMNS).sort(PARITY_COLUMNS)
              for k, p in outs.items() if (p / "findings.parquet").exists()}
    if "polars_five" not in frames:
        return "not checked"
    ref = frames["polars_five"]
    bad = [k for k, f in frames.items() if not f.equals(ref)]
    return "all agree" if not bad else f"DIFFER: {', '.join(bad)} vs polars_five"


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "unknown CPU")
    mem = next((int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), 0)
    return (f"{cpu}, {os.cpu_count()} cores, {mem / 1024**2:.0f} GiB RAM; Linux {platform.release()}; "
            f"Python {platform.python_version()}, Polars {pl.__version__}")


def _mib(n: float) -> str:
    return f"{n / 1024**2:,.0f}"


def render(results: list[dict[str, Any]], notes: list[str]) -> str:
    """The results as a markdown table, then the ratios against the targets."""
    lines = ["| rows | configuration | wall s | CPU s | rows/s | peak RSS MiB | findings | note |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "skip" in r:
            lines.append(f"| {r['rows']:,} | {r['label']} | n/a | n/a | n/a | n/a | | {r['skip']} |")
            continue
        note = r.get("note", "")
        lines.append(f"| {r['rows']:,} | {r['label']} | {r['wall']:.2f} | {r['cpu']:.1f} | "
                     f"{r['rows'] / r['wall']:,.0f} | {_mib(r['peak_rss'])} | {r['findings']:,} | {note} |")
    return "\n".join([*lines, "", *notes])


def ratios(results: list[dict[str, Any]], idle_rss: int) -> list[str]:
    """(2)/(3) per size, (1) against 10 s at 10M, (1) peak RSS against the loaded tables."""
    by = {(r["rows"], r["key"]): r for r in results if "wall" in r}
    notes = []
    for rows in sorted({r["rows"] for r in results}):
        two, three = by.get((rows, "engine_five")), by.get((rows, "polars_five"))
        one = by.get((rows, "engine_catalogue"))
        parts = []
        if two and three:
            ratio = two["wall"] / three["wall"]
            parts.append(f"(2)/(3) = {ratio:.2f}× (target ≤ 1.5×{'' if ratio <= 1.5 else ', MISSED'})")
        if one:
            rss = one["peak_rss"] / one["loaded_bytes"]
            net = (one["peak_rss"] - idle_rss) / one["loaded_bytes"]
            parts.append(f"(1) peak RSS = {rss:.2f}× the loaded tables ({_mib(one['loaded_bytes'])} MiB), "
                         f"{net:.2f}× above the idle interpreter ({_mib(idle_rss)} MiB) (target ≤ 2×"
                         f"{'' if rss <= 2 else ', MISSED' if net > 2 else ', met above the interpreter'})")
            if rows >= 10_000_000:
                parts.append(f"(1) = {one['wall']:.1f} s (target ≤ 10 s{'' if one['wall'] <= 10 else ', MISSED'})")
            stages = one.get("stages", {})
            parts.append("(1) stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
        for key in ("durable_five", "python_five"):
            other = by.get((rows, key))
            if other and three:
                parts.append(f"({'4' if key == 'durable_five' else '5'})/(3) = {other['wall'] / three['wall']:.0f}×")
        notes.append(f"- {rows:,} rows: " + "; ".join(parts))
    return notes


BENCH_START, BENCH_END = "<!-- bench/engine.py: start -->", "<!-- bench/engine.py: end -->"


def write_readme(text: str) -> None:
    """Put the table into README's "Performance" section, between its bench markers (the rest of the
    section is prose kept as written); create the section at the end of the README if absent."""
    path = ROOT / "README.md"
    readme = path.read_text(encoding="utf-8")
    block = f"{BENCH_START}\n{text.strip()}\n{BENCH_END}"
    if BENCH_START in readme and BENCH_END in readme:
        head, rest = readme.split(BENCH_START, 1)
        readme = head + block + rest.split(BENCH_END, 1)[1]
    else:
        readme = readme.rstrip("\n") + f"\n\n## Performance\n\n{block}\n"
    path.write_text(readme, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="rows per data set, comma-separated")
    parser.add_argument("--configs", default=",".join(c.key for c in CONFIGS))
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "zhixiang-bench")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; the fastest is reported")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md (Performance)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](args.data, args.out)
        result["peak_rss"] = peak_rss_self()
        print(json.dumps(result))
        return 0

    from bench.data import make_dataset

    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = set(args.configs.split(","))
    results: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%d %H:%M")
    for rows in sizes:
        data = args.data_root / f"year-{rows}"
        if not (data / "indicators.parquet").exists():
            print(f"generating {rows:,} rows into {data} …", file=sys.stderr, flush=True)
            make_dataset("year", rows, data)
        loaded = run_config("tables", data, args.data_root / "out" / "tables").get("loaded_bytes", 0)
        outs: dict[str, Path] = {}
        for config in CONFIGS:
            if config.key not in wanted:
                continue
            entry: dict[str, Any] = {"rows": rows, "key": config.key, "label": config.label}
            if config.max_rows is not None and rows > config.max_rows:
                entry["skip"] = f"only up to {config.max_rows:,} rows"
                results.append(entry)
                continue
            out = args.data_root / "out" / f"{rows}-{config.key}"
            runs = [run_config(config.key, data, out) for _ in range(args.repeat)]
            good = [r for r in runs if "wall" in r]
            if not good:
                reason = next((r.get("unavailable") or r.get("error") for r in runs), "failed")
                entry["skip"] = str(reason)
                results.append(entry)
                print(f"{rows:>11,}  {config.label}: n/a ({reason})", file=sys.stderr, flush=True)
                continue
            best = min(good, key=lambda r: r["wall"])
            best["peak_rss"] = max(r["peak_rss"] for r in good)
            entry.update(best)
            if len(good) > 1:
                entry["note"] = f"best of {len(good)}; median {sorted(r['wall'] for r in good)[len(good) // 2]:.2f} s"
            entry["loaded_bytes"] = loaded
            notes = [best.get("mode", ""), entry.get("note", ""), f"load {best['load_before']:.1f}"]
            entry["note"] = "; ".join(n for n in notes if n)
            results.append(entry)
            if config.key != "engine_catalogue":
                outs[config.key] = out
            print(f"{rows:>11,}  {config.label}: {entry['wall']:.2f} s, {_mib(entry['peak_rss'])} MiB, "
                  f"{entry['findings']:,} findings", file=sys.stderr, flush=True)
        parity = check_parity(outs)
        for r in results:
            if r["rows"] == rows and r["key"] in outs and "wall" in r:
                r["parity"] = parity
        print(f"{rows:>11,}  parity of (2)–(5): {parity}", file=sys.stderr, flush=True)
    idle = run_config("idle", args.data_root / f"year-{sizes[0]}", args.data_root / "out" / "idle")
    notes = ratios(results, int(idle.get("peak_rss", 0)))
    parities = sorted({f"{r['rows']:,} rows: {r['parity']}" for r in results if "parity" in r})
    header = (f"Measured {started} by `bench/engine.py --sizes {args.sizes} --repeat {args.repeat}` on {machine()}. "
              "Each configuration runs in a fresh process; wall = reading Parquet to findings written; CPU = "
              "user + system of that process; peak RSS = its VmHWM. Rows = taxpayer-year rows evaluated (every "
              "row of the data set is judged). The machine is shared: the load average before each run is in "
              "the note column.")
    text = "\n".join([header, "", render(results, notes), "", "Findings of (2)–(5) agree on taxpayer, rule, kind, "
                      "amount and risk tier: " + "; ".join(parities) + "."])
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if args.readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
