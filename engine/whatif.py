"""What-if runs (参数调整测算, issue 16): the catalogue as it is and with proposed changes, side by side.

An analyst states the change as parameter overrides (`--set small_low_profit_cit.income_cap=5000000`) and/or
whole alternative rule files (`--replace rules/x.yaml=proposal.yaml`). Overrides are checked like rule files:
an unknown rule or parameter gets a did-you-mean, a value of the wrong type or unit an error with the
expected form. An override replaces the value *in force for the period* (the parameter's dated value that
the engine reads, `Parameter.at(period.start)`); the catalogue on disk is never touched, and nothing of a
what-if reaches findings, letters or cases — it writes only into its own output folder.

Both variants are built by the batch engine (`engine.batch.build_query`) over the same loaded tables and
collected as one Polars plan: the per-taxpayer outcome columns of each variant, joined on the taxpayer.
Nothing loops over rows.

A taxpayer *enjoys* a rule when its outcome is 合规享受 or 应享未享 (eligible, with a positive estimated
benefit, claimed or not). The *estimated relief* of a rule is the sum of its estimated benefit over those
taxpayers — what the incentive costs if every entitled taxpayer enjoys it. 待核实 outcomes (missing
data) are not counted as relief on either side: missing data is no evidence.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from engine.backends.polars import eligible_col
from engine.batch import benefit_col, build_query, outcome_col
from engine.catalogue import CASES_SUFFIX, Catalogue, DatedValue, Parameter, load_catalogue
from engine.errors import UsageProblem, did_you_mean
from engine.findings import KIND_LABELS
from engine.findings.figures import money_plain
from engine.run import BATCH_ENGINE
from profiles.periods import KIND_LABELS as PERIOD_KIND_LABELS
from profiles.periods import Period
from profiles.schema import MONEY_DTYPE
from profiles.validation import Profiles

#: Outcomes in which a taxpayer enjoys (or is owed) the relief.
ENJOYED = ("compliant", "unclaimed")
CHANGE_LABELS = {"newly_eligible": "新增可享", "no_longer_eligible": "不再可享"}
#: 从业人数 bands (people), for the breakdown by size.
SIZE_BANDS: tuple[tuple[int, str], ...] = ((20, "20人及以下"), (100, "21至100人"), (300, "101至300人"))
SIZE_TOP = "300人以上"
SIZE_UNKNOWN = "从业人数未知"
SIZE_ORDER = {label: i for i, label in enumerate([*(label for _, label in SIZE_BANDS), SIZE_TOP, SIZE_UNKNOWN])}
BASIS = "参数调整测算（非现行政策）"

_ENGINE = cast("Literal['in-memory', 'streaming']", BATCH_ENGINE)

CHANGE_SCHEMA = {
    "rule_id": pl.String, "rule_name": pl.String, "change": pl.String, "change_label": pl.String,
    "taxpayer_id": pl.String, "taxpayer_name": pl.String, "district": pl.String, "tax_authority": pl.String,
    "industry_section": pl.String, "size_band": pl.String, "outcome_before": pl.String, "outcome_after": pl.String,
    "relief_before": MONEY_DTYPE, "relief_after": MONEY_DTYPE, "relief_delta": MONEY_DTYPE,
}


@dataclass(frozen=True)
class Override:
    """One `--set RULE.PARAM=VALUE`: the value replaces the one in force for the period."""

    rule_id: str
    parameter: str
    value: Any
    text: str  # as given on the command line

    @property
    def key(self) -> str:
        return f"{self.rule_id}.{self.parameter}"


def _problem(text: str, message: str, *, expected: str = "", suggestion: str = "") -> UsageProblem:
    parts = [f"--set {text}: {message}"]
    if expected:
        parts.append(f"    应为: {expected}")
    if suggestion:
        parts.append(f"    您是不是要写: {suggestion}")
    return UsageProblem("\n".join(parts))


_ASSIGN = re.compile(r"^\s*([^.=\s]+)\.([^=\s]+)\s*=(.*)$", re.DOTALL)


def parse_override(text: str, catalogue: Catalogue, period: Period) -> Override:
    """Check one `RULE.PARAM=VALUE` against the catalogue; UsageProblem (exit 64) names what is wrong."""
    m = _ASSIGN.match(text)
    if m is None:
        raise _problem(text, "格式不正确", expected="规则编号.参数名=取值，如 small_low_profit_cit.income_cap=5000000")
    rule_id, name, raw = m.group(1), m.group(2), m.group(3).strip()
    rule = catalogue.rules.get(rule_id)
    if rule is None:
        guess = did_you_mean(rule_id, catalogue.rules)
        raise _problem(text, f"没有编号为 {rule_id!r} 的规则", expected="规则目录中的规则编号",
                       suggestion=f"{guess}.{name}={raw}" if guess else "")
    param = rule.parameters.get(name)
    if param is None:
        guess = did_you_mean(name, rule.parameters)
        known = "、".join(rule.parameters) or "（该规则没有参数）"
        raise _problem(text, f"规则 {rule_id} 没有参数 {name!r}", expected=f"其参数之一：{known}",
                       suggestion=f"{rule_id}.{guess}={raw}" if guess else "")
    if not catalogue.judges(rule, period) or not rule.applies_to_kind(period.kind):
        kinds = "、".join(PERIOD_KIND_LABELS[k] for k in rule.granularity)
        raise _problem(text, f"规则 {rule_id} 不判定所属期 {period.label}，调整它不会改变任何结果",
                       expected=f"该规则判定的所属期（{kinds}，判定范围 {rule.judged_label}）")
    current = param.at(period.start)
    if current is None:
        current = param.values[-1].value if param.values else None
    value = _typed_value(text, raw, current, param)
    return Override(rule_id, name, value, text)


def _expected_form(current: Any, param: Parameter) -> str:
    unit = param.unit
    if isinstance(current, bool):
        return "true 或 false"
    if isinstance(current, int):
        return f"整数{f'（单位：{unit}）' if unit and unit != '%' else ''}，如 {current}"
    if isinstance(current, Decimal):
        if unit == "%" or (current < 1 and not unit):
            return f"小数形式的比例（不带 % 号），如 {current}（现行值）"
        return f"数值{f'（单位：{unit}）' if unit else ''}，如 {current}"
    if isinstance(current, date):
        return f"YYYY-MM-DD 格式的日期，如 {current.isoformat()}"
    if isinstance(current, tuple):
        shown = ", ".join(str(v) for v in current[:3])
        return f"方括号中的列表，如 [{shown}]"
    return f"与现行值同类型的取值（现行值 {current}）"


def _typed_value(text: str, raw: str, current: Any, param: Parameter) -> Any:
    """`raw` as a value of the parameter's kind (the kind of the value in force)."""
    expected = _expected_form(current, param)
    if raw == "":
        raise _problem(text, "缺少取值", expected=expected)
    if re.search(r"[%％万亿千]\s*$", raw):
        unit = param.unit or "比例（小数）"
        raise _problem(text, f"取值 {raw!r} 带有单位或百分号；参数按 {unit} 计", expected=expected)
    if isinstance(current, bool):
        lowered = raw.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise _problem(text, f"取值 {raw!r} 不是布尔值", expected=expected)
    if isinstance(current, int | Decimal):
        try:
            number = Decimal(raw.replace(",", "").replace("_", ""))
        except InvalidOperation:
            raise _problem(text, f"取值 {raw!r} 不是数值", expected=expected) from None
        if not number.is_finite():
            raise _problem(text, f"取值 {raw!r} 不是有限数值", expected=expected)
        if number < 0:
            raise _problem(text, f"取值 {raw!r} 为负数", expected=expected)
        if isinstance(current, int):
            if number != number.to_integral_value():
                raise _problem(text, f"取值 {raw!r} 不是整数", expected=expected)
            return int(number)
        return number
    if isinstance(current, date):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise _problem(text, f"取值 {raw!r} 不是日期", expected=expected) from None
    if isinstance(current, tuple | dict):
        from engine.catalogue import _value

        try:
            parsed = YAML(typ="safe").load(raw)
        except YAMLError:
            raise _problem(text, f"取值 {raw!r} 无法读取", expected=expected) from None
        value = _value(parsed)
        if type(value) is not type(current) or not _same_shape(value, current):
            raise _problem(text, f"取值 {raw!r} 与现行值的结构不同", expected=expected)
        return value
    if isinstance(current, str):
        return raw
    raise _problem(text, "该参数不支持测算调整", expected=expected)


def _same_shape(value: Any, current: Any) -> bool:
    """Lists hold items of the current items' type; mappings have the same keys (recursively)."""
    if isinstance(current, tuple):
        if not current:
            return True
        return all(_same_shape(v, current[0]) for v in value) if isinstance(value, tuple) else False
    if isinstance(current, dict):
        return isinstance(value, dict) and set(value) == set(current) and all(
            _same_shape(value[k], current[k]) for k in current)
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(current, bool)
    if isinstance(current, int | Decimal):
        return isinstance(value, int | Decimal)
    return type(value) is type(current)


def apply_overrides(catalogue: Catalogue, overrides: Sequence[Override], period: Period) -> Catalogue:
    """The catalogue with each override replacing the value in force on the period's first day."""
    rules = dict(catalogue.rules)
    for o in overrides:
        rule = rules[o.rule_id]
        param = rule.parameters[o.parameter]
        entry = param.entry_at(period.start)
        if entry is None:  # no value yet on that day: the override is the value from then on
            values = tuple(sorted((*param.values, DatedValue(period.start, o.value, BASIS)), key=lambda v: v.start))
        else:
            values = tuple(replace(v, value=o.value, basis=BASIS) if v is entry else v for v in param.values)
        params = {**rule.parameters, o.parameter: replace(param, values=values)}
        rules[o.rule_id] = replace(rule, parameters=params)
    if not overrides:
        return catalogue
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(f"{o.key}={o.value}" for o in overrides)).encode()).hexdigest()[:6]
    return replace(catalogue, rules=rules, version=f"{catalogue.version}+{digest}")


def replaced_catalogue(rules_dir: Path, replacements: Sequence[tuple[str, Path]], workdir: Path) -> Catalogue:
    """The catalogue of `rules_dir` with whole rule files swapped for proposals, loaded (and checked like any
    catalogue: RuleError, exit 3) from a copy in `workdir` — the rule directory itself is never written."""
    if workdir.exists():
        shutil.rmtree(workdir)
    shutil.copytree(rules_dir, workdir, ignore=shutil.ignore_patterns(f"*{CASES_SUFFIX}"))
    for target, proposal in replacements:
        name = Path(target).name
        if not name.endswith(".yaml") or name.startswith("_"):
            raise UsageProblem(f"--replace {target}={proposal}: 只能替换规则文件 <规则编号>.yaml")
        if not proposal.is_file():
            raise UsageProblem(f"--replace {target}={proposal}: 找不到方案文件 {proposal}")
        shutil.copyfile(proposal, workdir / name)
    return load_catalogue(workdir)


def parse_replacement(text: str) -> tuple[str, Path]:
    target, sep, proposal = text.partition("=")
    if not sep or not target.strip() or not proposal.strip():
        raise UsageProblem(f"--replace {text}: 格式不正确\n    应为: rules/规则编号.yaml=方案文件.yaml")
    return target.strip(), Path(proposal.strip())


# --------------------------------------------------------------------------------------------- evaluation


@dataclass
class WhatIfResult:
    """The comparison of one period under the catalogue as is (before) and with the changes (after)."""

    period: Period
    overrides: list[Override]
    replacements: list[tuple[str, str]]
    by_rule: pl.DataFrame  # rule_id, rule_name, counts and relief before/after
    changes: pl.DataFrame  # CHANGE_SCHEMA: newly / no longer eligible taxpayers
    by_district: pl.DataFrame  # district, relief_before, relief_after, relief_delta, newly, no_longer
    by_industry: pl.DataFrame
    by_size: pl.DataFrame
    taxpayers_evaluated: int
    versions: tuple[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def totals(self) -> dict[str, Any]:
        s = self.by_rule.select(pl.exclude("rule_id", "rule_name")).sum()
        return dict(s.row(0, named=True)) if self.by_rule.height else {}


def size_band_expr() -> pl.Expr:
    """从业人数 band of a row (quarterly average for the year, else the period's employees)."""
    people = pl.coalesce(pl.col("employees_qavg").cast(pl.Float64), pl.col("employees").cast(pl.Float64))
    expr: Any = pl.when(people.is_null()).then(pl.lit(SIZE_UNKNOWN))
    for top, label in SIZE_BANDS:
        expr = expr.when(people <= top).then(pl.lit(label))
    return expr.otherwise(pl.lit(SIZE_TOP))


def _side(catalogue: Catalogue, period: Period, profiles: Profiles, tag: str) -> tuple[pl.LazyFrame, dict[str, str]]:
    """One variant's per-taxpayer outcome and relief per rule (columns `<rule>__<tag>_outcome|relief|elig`)."""
    plan = build_query(catalogue, period, taxpayers=profiles.taxpayers, indicators=profiles.indicators,
                       claims=profiles.claims, risk_events=profiles.risk_events)
    cols: list[pl.Expr] = [pl.col("taxpayer_id")]
    for rule in plan.rules:
        outcome = pl.col(outcome_col(rule.id))
        cols.append(outcome.alias(f"{rule.id}__{tag}_outcome"))
        if rule.id in plan.in_window:
            relief = pl.when(outcome.is_in(ENJOYED)).then(pl.col(benefit_col(rule.id))).otherwise(0)
            elig = pl.col(eligible_col(rule.id))
        else:
            relief, elig = pl.lit(0), pl.lit(False)
        cols.append(relief.cast(MONEY_DTYPE).alias(f"{rule.id}__{tag}_relief"))
        cols.append(elig.alias(f"{rule.id}__{tag}_elig"))
    return plan.wide.select(cols), {r.id: r.name for r in plan.rules}


def evaluate_whatif(before: Catalogue, after: Catalogue, profiles: Profiles, period: Period, *,
                    overrides: Sequence[Override] = (), replacements: Sequence[tuple[str, str]] = (),
                    one_plan: bool = True) -> WhatIfResult:
    """Both variants over the same tables, collected as one plan; see the module doc for the definitions.

    `one_plan=False` collects each variant on its own (bench/whatif.py compares the two)."""
    import time

    start = time.perf_counter()
    lf_before, names_before = _side(before, period, profiles, "b")
    lf_after, names_after = _side(after, period, profiles, "a")
    # The two variants' outcome tables are materialised first — in one collect_all, which computes the
    # shared joins of the tables once — and compared afterwards: comparing inside the same lazy plan made
    # Polars recompute the wide tables for every aggregation (2.3x a plain run at 100k rows, bench/whatif.py).
    if one_plan:
        got = pl.collect_all([lf_before, lf_after], engine=_ENGINE)
    else:
        got = [lf_before.collect(engine=_ENGINE), lf_after.collect(engine=_ENGINE)]
    lf_before, lf_after = got[0].lazy(), got[1].lazy()
    names = {**names_before, **names_after}
    rule_ids = sorted(names)
    ind = profiles.indicators.lazy() if isinstance(profiles.indicators, pl.DataFrame) else profiles.indicators
    taxpayers = profiles.taxpayers.lazy() if isinstance(profiles.taxpayers, pl.DataFrame) else profiles.taxpayers
    context = (taxpayers.select("taxpayer_id", pl.col("name").alias("taxpayer_name"), "district", "tax_authority",
                                pl.col("industry_code").str.slice(0, 1).str.to_uppercase().alias("industry_section"))
               .join(ind.filter(pl.col("period") == period.text).select("taxpayer_id", size_band_expr()
                                                                         .alias("size_band")),
                     on="taxpayer_id", how="left"))
    joined = (lf_before.join(lf_after, on="taxpayer_id", how="full", coalesce=True)
              .join(context, on="taxpayer_id", how="left"))
    # A rule absent on one side (added or dropped by a replacement, or not judged there): nothing enjoyed.
    fill = []
    for rid in rule_ids:
        for tag, side in (("b", names_before), ("a", names_after)):
            if rid not in side:
                fill += [pl.lit(None, pl.String).alias(f"{rid}__{tag}_outcome"),
                         pl.lit(0).cast(MONEY_DTYPE).alias(f"{rid}__{tag}_relief"),
                         pl.lit(False).alias(f"{rid}__{tag}_elig")]
    if fill:
        joined = joined.with_columns(fill)
    joined = joined.with_columns(
        [pl.col(f"{rid}__{tag}_relief").fill_null(0) for rid in rule_ids for tag in ("b", "a")]
        + [pl.col(c).fill_null(pl.lit(label))
           for c, label in (("district", "（未知）"), ("industry_section", "（未知）"), ("size_band", SIZE_UNKNOWN))]
    ).collect(engine=_ENGINE).lazy()  # read by every aggregation below: joined once

    def enjoys(rid: str, tag: str) -> pl.Expr:
        return pl.col(f"{rid}__{tag}_outcome").is_in(ENJOYED).fill_null(False)

    per_rule = []
    for rid in rule_ids:
        b, a = enjoys(rid, "b"), enjoys(rid, "a")
        per_rule.append(joined.select(
            pl.lit(rid).alias("rule_id"),
            (~b & a).sum().cast(pl.Int64).alias("newly_eligible"),
            (b & ~a).sum().cast(pl.Int64).alias("no_longer_eligible"),
            *[(pl.col(f"{rid}__{tag}_outcome") == kind).sum().cast(pl.Int64).alias(f"{kind}_{side}")
              for kind in ("unclaimed", "improper", "undetermined") for tag, side in (("b", "before"), ("a", "after"))],
            pl.col(f"{rid}__b_relief").sum().cast(MONEY_DTYPE).alias("relief_before"),
            pl.col(f"{rid}__a_relief").sum().cast(MONEY_DTYPE).alias("relief_after"),
        ))
    changes = []
    for rid in rule_ids:
        b, a = enjoys(rid, "b"), enjoys(rid, "a")
        change = pl.when(~b & a).then(pl.lit("newly_eligible")).when(b & ~a).then(pl.lit("no_longer_eligible"))
        rb, ra = pl.col(f"{rid}__b_relief"), pl.col(f"{rid}__a_relief")
        changes.append(joined.filter(b != a).select(
            pl.lit(rid).alias("rule_id"), pl.lit(names[rid]).alias("rule_name"), change.alias("change"),
            change.replace_strict(CHANGE_LABELS, return_dtype=pl.String).alias("change_label"),
            "taxpayer_id", "taxpayer_name", "district", "tax_authority", "industry_section", "size_band",
            pl.col(f"{rid}__b_outcome").replace_strict(KIND_LABELS, default="未判定").alias("outcome_before"),
            pl.col(f"{rid}__a_outcome").replace_strict(KIND_LABELS, default="未判定").alias("outcome_after"),
            rb.alias("relief_before"), ra.alias("relief_after"), (ra - rb).cast(MONEY_DTYPE).alias("relief_delta"),
        ))
    total_b = pl.sum_horizontal([pl.col(f"{rid}__b_relief") for rid in rule_ids]) if rule_ids else pl.lit(0)
    total_a = pl.sum_horizontal([pl.col(f"{rid}__a_relief") for rid in rule_ids]) if rule_ids else pl.lit(0)
    n_new = pl.sum_horizontal([(~enjoys(r, "b") & enjoys(r, "a")).cast(pl.Int64) for r in rule_ids]) \
        if rule_ids else pl.lit(0)
    n_lost = pl.sum_horizontal([(enjoys(r, "b") & ~enjoys(r, "a")).cast(pl.Int64) for r in rule_ids]) \
        if rule_ids else pl.lit(0)
    per_taxpayer = joined.select("district", "industry_section", "size_band",
                                 total_b.cast(MONEY_DTYPE).alias("relief_before"),
                                 total_a.cast(MONEY_DTYPE).alias("relief_after"),
                                 n_new.alias("newly_eligible"), n_lost.alias("no_longer_eligible"))

    def breakdown(column: str) -> pl.LazyFrame:
        return (per_taxpayer.group_by(column).agg(
            pl.col("relief_before").sum(), pl.col("relief_after").sum(),
            pl.col("newly_eligible").sum(), pl.col("no_longer_eligible").sum())
            .with_columns((pl.col("relief_after") - pl.col("relief_before")).cast(MONEY_DTYPE).alias("relief_delta"))
            .sort(pl.col(column).replace_strict(SIZE_ORDER, default=None) if column == "size_band" else column,
                  column))

    empty_changes = pl.LazyFrame(schema=CHANGE_SCHEMA)  # type: ignore[arg-type]
    frames = pl.collect_all([
        pl.concat(per_rule) if per_rule else pl.LazyFrame(),
        pl.concat([empty_changes, *[c.cast(CHANGE_SCHEMA) for c in changes]]),  # type: ignore[arg-type]
        breakdown("district"), breakdown("industry_section"), breakdown("size_band"),
        joined.select(pl.len()),
    ], engine=_ENGINE)
    by_rule, changed, by_district, by_industry, by_size, n = frames
    if by_rule.height:
        by_rule = (by_rule.with_columns(
            pl.col("rule_id").replace_strict(names, return_dtype=pl.String).alias("rule_name"),
            (pl.col("relief_after") - pl.col("relief_before")).cast(MONEY_DTYPE).alias("relief_delta"))
            .select("rule_id", "rule_name", pl.exclude("rule_id", "rule_name")))
    return WhatIfResult(
        period=period, overrides=list(overrides), replacements=list(replacements), by_rule=by_rule,
        changes=changed.sort("rule_id", "change", "taxpayer_id"), by_district=by_district, by_industry=by_industry,
        by_size=by_size, taxpayers_evaluated=int(n.item()), versions=(before.version, after.version),
        timings={"evaluate": round(time.perf_counter() - start, 3)},
    )


# --------------------------------------------------------------------------------------------- outputs


def _records(frame: pl.DataFrame, money: Iterable[str]) -> list[dict[str, Any]]:
    cols = set(money)
    return [{k: (money_plain(v) if k in cols else v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


MONEY_COLUMNS = ("relief_before", "relief_after", "relief_delta")


def whatif_document(result: WhatIfResult, *, data_source: str = "") -> dict[str, Any]:
    """whatif.json: what was changed and what it changes."""
    totals: Mapping[str, Any] = result.totals()
    return {
        "period": result.period.text,
        "period_label": result.period.label,
        "data": data_source,
        "ruleset_version_before": result.versions[0],
        "ruleset_version_after": result.versions[1],
        "overrides": [{"rule_id": o.rule_id, "parameter": o.parameter, "value": str(o.value), "text": o.text}
                      for o in result.overrides],
        "replacements": [{"rule_file": t, "proposal": p} for t, p in result.replacements],
        "taxpayers_evaluated": result.taxpayers_evaluated,
        "totals": {k: (money_plain(v) if k in MONEY_COLUMNS else int(v or 0)) for k, v in totals.items()},
        "by_rule": _records(result.by_rule, MONEY_COLUMNS),
        "by_district": _records(result.by_district, MONEY_COLUMNS),
        "by_industry_section": _records(result.by_industry, MONEY_COLUMNS),
        "by_size_band": _records(result.by_size, MONEY_COLUMNS),
        "timings_seconds": result.timings,
    }


def write_whatif(result: WhatIfResult, out: Path, *, data_source: str = "") -> dict[str, Path]:
    """changes.parquet, changes.csv (Chinese headers, for Excel), by_rule.csv and whatif.json into `out`."""
    import json

    from profiles import excel

    out.mkdir(parents=True, exist_ok=True)
    paths = {"changes.parquet": out / "changes.parquet", "changes.csv": out / "changes.csv",
             "by_rule.csv": out / "by_rule.csv", "whatif.json": out / "whatif.json"}
    result.changes.write_parquet(paths["changes.parquet"])
    excel.write_frame(result.changes.drop("change"), paths["changes.csv"])
    excel.write_frame(result.by_rule, paths["by_rule.csv"])
    paths["whatif.json"].write_text(json.dumps(whatif_document(result, data_source=data_source),
                                               ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return paths
