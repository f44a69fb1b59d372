"""Row-level validation of the profile tables: raw columns in, typed tables and a quarantine out.

Every check is a whole-column Polars operation: ten million indicator rows validate in seconds.
Columns with few distinct values (ids repeated across periods, periods, enums, booleans) are checked
once per distinct value and the verdict mapped back; numbers and dates take a fast cast over the
whole column and a slower clean-up (whitespace, thousands separators, other date forms) only on
the few values the fast cast rejected.

A row that breaks the contract is dropped from its table and listed in the quarantine, one line
per bad field, with the file, the row (CSV line number, header = line 1; Parquet 1-based index),
the column, the raw value and a Chinese reason saying what is wrong and what is expected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from profiles.ids import credit_code_problem
from profiles.periods import period_kind_expr
from profiles.schema import ENUM_LABELS, MONEY_DTYPE, TABLES, Column, Table

ROW = "__row"  #: source row number kept in every table (not part of the contract)
#: Columns of quarantine.csv: every row set aside, where it came from and why.
QUARANTINE_SCHEMA = pl.Schema({
    "file": pl.String(),
    "row": pl.Int64(),
    "column": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
})
TRUE_WORDS = ("true", "1", "是", "y", "yes", "t")
FALSE_WORDS = ("false", "0", "否", "n", "no", "f")
_WORK_MONEY = pl.Decimal(38, 6)
#: A column with at least this many rows is checked through its distinct values when they are few.
_DISTINCT_MIN_ROWS = 50_000


def empty_quarantine() -> pl.DataFrame:
    """A quarantine frame with no lines."""
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def empty_table(table: Table) -> pl.DataFrame:
    """A contract table with no rows (for an absent optional table)."""
    return pl.DataFrame(schema={**table.polars_schema, ROW: pl.Int64()})


@dataclass
class Profiles:
    """The four validated profile tables, what was quarantined, and where it all came from."""

    taxpayers: pl.DataFrame
    indicators: pl.DataFrame
    claims: pl.DataFrame
    risk_events: pl.DataFrame
    quarantine: pl.DataFrame = field(default_factory=empty_quarantine)
    sources: dict[str, Path] = field(default_factory=dict)  # table -> file it was read from
    input_hashes: dict[str, str] = field(default_factory=dict)  # table -> sha256 of the file's bytes

    def table(self, name: str) -> pl.DataFrame:
        """One table by its contract name."""
        if name not in TABLES:
            raise KeyError(f"no profile table {name!r}; tables are {', '.join(TABLES)}")
        frame: pl.DataFrame = getattr(self, name)
        return frame

    @property
    def tables(self) -> dict[str, pl.DataFrame]:
        """The four tables by name, in contract order."""
        return {name: self.table(name) for name in TABLES}


@dataclass
class RawTable:
    """One table as read from its file: columns as stored (CSV: all strings) plus ROW."""

    name: str
    frame: pl.DataFrame
    file: str  # label used in quarantine lines, e.g. "indicators.csv"


# ----------------------------------------------------------------------------------------------
# Reasons


def _who(col: Column) -> str:
    return f"{col.label}（{col.name}）"


def _enum_expected(col: Column) -> str:
    labels = ENUM_LABELS.get(col.name, {})
    return "、".join(f"{v}（{labels[v]}）" if v in labels else v for v in col.values)


def reason_for(col: Column, problem: str) -> str:
    """The Chinese reason for one kind of problem in one column."""
    who = _who(col)
    texts = {
        "empty": f"{who}为空：该列为必填项，每行都必须有值",
        "money": f"{who}不是有效金额：应为以元为单位的数字，最多两位小数，如 12345.67",
        "money_scale": f"{who}小数位超过两位：金额应精确到分，如 12345.67",
        "number": f"{who}不是有效数字：应为数字，如 12.5",
        "int": f"{who}不是整数：应为整数，如 25",
        "date": f"{who}不是有效日期：应为 YYYY-MM-DD 格式的日期，如 2025-03-31",
        "bool": f"{who}不是有效的是/否值：应为 true/false、1/0、是/否 或 Y/N",
        "enum": f"{who}取值无效：应为 {_enum_expected(col)} 之一",
        "period": f"{who}格式不正确：应为年度 2025、季度 2026Q3 或月份 2026-09",
        "control": f"{who}含有换行符或其他控制字符：请删除单元格中的换行、制表符、NUL 等不可见字符",
        "too_long": f"{who}过长：最多 {col.length_cap} 个字符",
        "pattern": f"{who}格式不正确：应为 {col.pattern_doc}",
        "below": f"{who}超出允许范围：不能小于 {_bound_text(col.bounds[0])}",
        "above": f"{who}超出允许范围：不能大于 {_bound_text(col.bounds[1])}",
    }
    return texts[problem]


def _bound_text(bound: float | None) -> str:
    return "" if bound is None else f"{bound:,.0f}" if bound == int(bound) else f"{bound:,}"


#: Control characters (C0, DEL, C1 NEL, line and paragraph separators): never part of a text cell's value.
CONTROL_CHARS = r"[\x00-\x1F\x7F\x{85}\x{2028}\x{2029}]"
_CONTROL_PY = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
#: Characters of a raw cell shown in the quarantine (the rest is cut, with "…").
QUARANTINE_VALUE_CHARS = 200


def value_problem(col: Column, value: object) -> str | None:
    """The reason a parsed, non-null cell breaks its column's bounds (text characters, length, format;
    a figure's range), or None. The scalar twin of the batch checks, for single profiles (models.py)."""
    if isinstance(value, str):
        if _CONTROL_PY.search(value):
            return reason_for(col, "control")
        if col.length_cap and len(value) > col.length_cap:
            return reason_for(col, "too_long")
        if col.pattern and not re.fullmatch(col.pattern, value):
            return reason_for(col, "pattern")
        return None
    low, high = col.bounds
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if low is not None and value < Decimal(str(low)):
            return reason_for(col, "below")
        if high is not None and value > Decimal(str(high)):
            return reason_for(col, "above")
    return None


# ----------------------------------------------------------------------------------------------
# Helpers over Series


_STRING = pl.String()


def _nulls(n: int, dtype: pl.DataType = _STRING) -> pl.Series:
    """A Series of n nulls."""
    return pl.Series(values=[], dtype=dtype).extend_constant(None, n)


def _null_where(values: pl.Series, mask: pl.Series) -> pl.Series:
    """`values` with nulls where mask is true."""
    out = pl.select(pl.when(pl.lit(mask)).then(None).otherwise(pl.lit(values))).to_series()
    return out.alias(values.name)


def _const_where(mask: pl.Series, text: str) -> pl.Series:
    """`text` where mask is true, null elsewhere."""
    return pl.select(pl.when(pl.lit(mask)).then(pl.lit(text)).otherwise(None)).to_series()


def _clean_text(s: pl.Series, *, upper: bool = False) -> pl.Series:
    """Strip whitespace (incl. full-width spaces); empty becomes null; optionally upper-case."""
    out = s.str.strip_chars(" \t\r\n\u3000\ufeff")
    if upper:
        out = out.str.to_uppercase()
    empty = out.str.len_bytes() == 0
    if not empty.any():
        return out
    return pl.select(pl.when(pl.lit(empty)).then(None).otherwise(pl.lit(out))).to_series()


def _few_distinct(s: pl.Series) -> pl.Series | None:
    """The distinct non-null values when they are much fewer than the rows, else None."""
    if s.len() < _DISTINCT_MIN_ROWS or int(s.approx_n_unique() or 0) * 4 >= s.len():  # type: ignore[arg-type]
        return None
    return s.unique().drop_nulls()


@dataclass
class Parsed:
    """One column after parsing: typed values and a reason per row (null = fine)."""

    values: pl.Series
    problems: pl.Series
    #: Member ids (_parse_member_id): positions of the rows whose id is not a valid taxpayer's.
    outside: pl.Series | None = None


def _text_column(
    raw: pl.Series,
    normalize: Callable[[pl.Series], pl.Series],
    check: Callable[[pl.Series], pl.Series] | None = None,
) -> Parsed:
    """Normalise a text column and check it, once per distinct value when they are few.

    `check` maps values to a reason or null; it sees each distinct normalised value once.
    """
    s = raw.cast(pl.String)
    uniq = _few_distinct(s)
    if uniq is None:
        values = normalize(s).alias(s.name)
        return Parsed(values, check(values).alias(s.name) if check else _nulls(s.len()))
    mapped = normalize(uniq)
    changed = (mapped != uniq).fill_null(True)
    values = s if not changed.any() else s.replace(uniq.filter(changed), mapped.filter(changed))
    if check is None:
        return Parsed(values, _nulls(s.len()))
    targets = mapped.drop_nulls().unique()
    verdict = check(targets)
    bad = verdict.is_not_null()
    if not bad.any():
        return Parsed(values, _nulls(s.len()))
    mapping = dict(zip(targets.filter(bad).to_list(), verdict.filter(bad).to_list(), strict=True))
    return Parsed(values, values.replace_strict(mapping, default=None, return_dtype=pl.String))


def _retry(values: pl.Series, raw: pl.Series, parse: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """Re-parse, with `parse`, only the raw values whose fast parse failed; scatter the results back."""
    failed = values.is_null() & raw.is_not_null()
    if not failed.any():
        return values
    idx = failed.arg_true()
    again = parse(raw.gather(idx))
    return values.scatter(idx, again)


# ----------------------------------------------------------------------------------------------
# Column parsers: raw Series -> (typed values, reason or null per row)


def _failed(values: pl.Series, text: pl.Series) -> pl.Series:
    """True where a non-blank raw value did not parse (blank cells are missing, not bad)."""
    miss = (values.is_null() & text.is_not_null()).fill_null(False)
    if not miss.any():
        return miss
    idx = miss.arg_true()
    blank = _clean_text(text.gather(idx)).is_null()
    return miss.scatter(idx.filter(blank), False)


def _strip_number(t: pl.Series) -> pl.Series:
    """Clean-up for numbers written by hand: whitespace, thousands separators, a trailing 元."""
    return _clean_text(t).str.replace_all(r"[,，\s]", "").str.strip_suffix("元")


def _parse_money(raw: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    if raw.dtype == MONEY_DTYPE or (isinstance(raw.dtype, pl.Decimal) and (raw.dtype.scale or 0) <= 2):
        return raw.cast(MONEY_DTYPE), _nulls(raw.len())
    if raw.dtype.is_float():
        values = raw.round(2).cast(MONEY_DTYPE, strict=False)
        bad = ((values.is_null() & raw.is_not_null()) | ~raw.is_finite()).fill_null(False)
        return _null_where(values, bad), _const_where(bad, reason_for(col, "money"))
    if raw.dtype.is_numeric():
        work = raw.cast(_WORK_MONEY, strict=False)
        unparsable = (work.is_null() & raw.is_not_null()).fill_null(False)
    else:
        text = raw.cast(pl.String)
        work = text.cast(_WORK_MONEY, strict=False)
        work = _retry(work, text, lambda t: _strip_number(t).cast(_WORK_MONEY, strict=False))
        unparsable = _failed(work, text)
    values = work.cast(MONEY_DTYPE)
    too_precise = (values.cast(_WORK_MONEY) != work).fill_null(False)
    if not (unparsable.any() or too_precise.any()):
        return values, _nulls(raw.len())
    problem = pl.select(
        pl.when(pl.lit(unparsable))
        .then(pl.lit(reason_for(col, "money")))
        .when(pl.lit(too_precise))
        .then(pl.lit(reason_for(col, "money_scale")))
        .otherwise(None)
    ).to_series()
    return _null_where(values, too_precise), problem


def _parse_float(raw: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    if raw.dtype.is_numeric():
        values = raw.cast(pl.Float64)
        bad = ~values.is_finite().fill_null(True)
    else:
        text = raw.cast(pl.String)
        values = text.cast(pl.Float64, strict=False)
        values = _retry(values, text, lambda t: _strip_number(t).cast(pl.Float64, strict=False))
        bad = _failed(values, text) | ~values.is_finite().fill_null(True)
    if not bad.any():
        return values, _nulls(raw.len())
    return _null_where(values, bad), _const_where(bad, reason_for(col, "number"))


def _parse_int(raw: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    if raw.dtype.is_integer():
        return raw.cast(pl.Int64), _nulls(raw.len())
    if raw.dtype.is_numeric():
        floats = raw.cast(pl.Float64)
        missing = pl.Series([False] * 0, dtype=pl.Boolean).extend_constant(False, raw.len())
    else:
        text = raw.cast(pl.String)
        fast = text.cast(pl.Int64, strict=False)
        if not (fast.is_null() & text.is_not_null()).any():
            return fast, _nulls(raw.len())
        floats = text.cast(pl.Float64, strict=False)
        floats = _retry(floats, text, lambda t: _strip_number(t).cast(pl.Float64, strict=False))
        missing = _failed(floats, text)
    integral = (floats.is_finite() & (floats == floats.floor())).fill_null(True)
    bad = missing | ~integral
    values = _null_where(floats, bad).cast(pl.Int64, strict=False)
    return values, _const_where(bad, reason_for(col, "int"))


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")


def _slow_dates(t: pl.Series) -> pl.Series:
    """Dates in the other accepted forms (and with a midnight time part, as Excel writes them)."""
    text = _clean_text(t).str.replace(r"[ T]00:00(:00(\.0+)?)?$", "")
    frame = pl.DataFrame({"t": text})
    tries = [pl.col("t").str.to_date(f, strict=False) for f in DATE_FORMATS]
    return frame.select(pl.coalesce(tries)).to_series()


def _parse_date(raw: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    if raw.dtype == pl.Date:
        return raw, _nulls(raw.len())
    if isinstance(raw.dtype, pl.Datetime):
        return raw.dt.date(), _nulls(raw.len())
    text = raw.cast(pl.String)
    values = text.str.to_date("%Y-%m-%d", strict=False)
    values = _retry(values, text, _slow_dates)
    bad = _failed(values, text)
    if not bad.any():
        return values, _nulls(raw.len())
    return values, _const_where(bad, reason_for(col, "date"))


def _lookup(
    raw: pl.Series, mapping: dict[str, object], dtype: pl.DataType, reason: str
) -> tuple[pl.Series, pl.Series]:
    """Values through a small word list (enums, booleans), matched per distinct value."""
    text = raw.cast(pl.String)
    uniq = text.unique().drop_nulls()
    cleaned = _clean_text(uniq)
    keys = uniq.to_list()
    found: dict[str, object] = {}
    unknown: list[str] = []
    for key, c in zip(keys, cleaned.to_list(), strict=True):
        if c is None:
            found[key] = None
        elif c in mapping:
            found[key] = mapping[c]
        elif c.lower() in mapping:
            found[key] = mapping[c.lower()]
        else:
            unknown.append(key)
    values = text.replace_strict(found, default=None, return_dtype=dtype)
    if not unknown:
        return values, _nulls(raw.len())
    return values, _const_where(text.is_in(unknown), reason)


def _parse_bool(raw: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    if raw.dtype == pl.Boolean:
        return raw, _nulls(raw.len())
    if raw.dtype.is_integer():
        raw = raw.cast(pl.String)
    mapping: dict[str, object] = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
    return _lookup(raw, mapping, pl.Boolean(), reason_for(col, "bool"))


def _parse_enum(raw: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    mapping: dict[str, object] = {}
    for v in col.values:
        mapping[v] = v
        mapping[v.lower()] = v
    for v, label in ENUM_LABELS.get(col.name, {}).items():
        mapping[label] = v
    return _lookup(raw, mapping, pl.String(), reason_for(col, "enum"))


def _id_problems(s: pl.Series, col: Column) -> pl.Series:
    problems = pl.select(credit_code_problem(pl.lit(s))).to_series()
    if problems.null_count() == problems.len():
        return problems
    return pl.select(pl.format("{}无效：{}", pl.lit(_who(col)), pl.lit(problems))).to_series()


def _parse_id(raw: pl.Series, col: Column) -> Parsed:
    return _text_column(raw, lambda s: _clean_text(s, upper=True), lambda s: _id_problems(s, col))


def _period_problem(s: pl.Series, col: Column) -> pl.Series:
    kind = pl.select(period_kind_expr(pl.lit(s))).to_series()
    return _const_where(kind.is_null() & s.is_not_null(), reason_for(col, "period"))


def _parse_period(raw: pl.Series, col: Column) -> Parsed:
    return _text_column(raw, lambda s: _clean_text(s, upper=True), lambda s: _period_problem(s, col))


def _positions_outside(values: pl.Series, known: pl.Series) -> pl.Series:
    """Positions (ascending) of the non-null values that are not among `known` (an anti-join: no hash set
    of `known` is built per call, as is_in would)."""
    frame = pl.DataFrame({"k": values, "__pos": pl.int_range(values.len(), dtype=pl.UInt32, eager=True)})
    outside = frame.lazy().filter(pl.col("k").is_not_null()).join(
        known.rename("k").to_frame().lazy(), on="k", how="anti").select("__pos").collect()
    return outside.to_series().sort()


def _parse_member_id(raw: pl.Series, col: Column, valid_ids: pl.Series) -> Parsed:
    """A taxpayer id in a table that refers to `taxpayers`: ids among the valid taxpayers' ids passed the
    same check there, so only the others are checked (in a claims table, a few rows of millions)."""
    values = raw.cast(pl.String).alias(col.name)
    outside = _positions_outside(values, valid_ids)  # a raw id equal to a valid one is clean already
    if outside.len():  # trimmed and upper-cased, some may match after all
        values = values.scatter(outside, _clean_text(values.gather(outside), upper=True))
        outside = outside.gather(_positions_outside(values.gather(outside), valid_ids))
    problems = _nulls(values.len())
    if outside.len():
        problems = problems.scatter(outside, _id_problems(values.gather(outside), col))
    return Parsed(values, problems.alias(col.name), outside=outside)


def _text_problems(s: pl.Series, col: Column) -> pl.Series:
    """Per value: control characters, more than the column's cap of characters, or not its pattern."""
    frame = pl.DataFrame({"s": s})
    checks: Any = pl.when(pl.col("s").str.contains(CONTROL_CHARS)).then(pl.lit(reason_for(col, "control")))
    if col.length_cap:
        checks = checks.when(pl.col("s").str.len_chars() > col.length_cap).then(
            pl.lit(reason_for(col, "too_long")))
    if col.pattern:
        checks = checks.when(~pl.col("s").str.contains(f"^(?:{col.pattern})$")).then(
            pl.lit(reason_for(col, "pattern")))
    return frame.select(checks.otherwise(None)).to_series()


def _parse_string(raw: pl.Series, col: Column) -> Parsed:
    return _text_column(raw, _clean_text, lambda s: _text_problems(s, col))


def _range_problems(values: pl.Series, problem: pl.Series, col: Column) -> pl.Series:
    """Reasons for figures outside the column's range (where the cell has no other problem)."""
    low, high = col.bounds
    if low is None and high is None:
        return problem
    num = pl.col("v").cast(pl.Float64)
    expr: Any = pl.when(pl.col("p").is_not_null()).then(pl.col("p"))
    if low is not None:
        expr = expr.when(num < low).then(pl.lit(reason_for(col, "below")))
    if high is not None:
        expr = expr.when(num > high).then(pl.lit(reason_for(col, "above")))
    return pl.DataFrame({"v": values, "p": problem}).select(expr.otherwise(None)).to_series()


PARSERS: dict[str, Callable[[pl.Series, Column], Parsed | tuple[pl.Series, pl.Series]]] = {
    "id": _parse_id,
    "string": _parse_string,
    "enum": _parse_enum,
    "bool": _parse_bool,
    "date": _parse_date,
    "money": _parse_money,
    "number": _parse_float,
    "int": _parse_int,
    "period": _parse_period,
}


def parse_column(raw: pl.Series, col: Column, *, valid_ids: pl.Series | None = None) -> Parsed:
    """Typed values (bad ones null) and a reason per row (null = fine), empties included.

    `valid_ids`: for the taxpayer_id of a table that refers to taxpayers, the ids already validated there.
    """
    if valid_ids is not None and col.name == "taxpayer_id":
        parsed = _parse_member_id(raw, col, valid_ids)
    else:
        got = PARSERS[col.kind](raw, col)
        parsed = got if isinstance(got, Parsed) else Parsed(*got)
    values = parsed.values.cast(col.dtype).alias(col.name)
    problem = _range_problems(values, parsed.problems, col)
    if problem is not parsed.problems and problem.null_count() < problem.len():
        values = _null_where(values, problem.is_not_null() & parsed.problems.is_null())
    if not col.nullable:
        empty = values.is_null() & problem.is_null()
        if empty.any():
            problem = pl.select(
                pl.when(pl.lit(empty)).then(pl.lit(reason_for(col, "empty"))).otherwise(pl.lit(problem))
            ).to_series()
    return Parsed(values, problem.alias(col.name), parsed.outside)


# ----------------------------------------------------------------------------------------------
# Tables


@dataclass
class _Checked:
    """One table after column checks: typed frame, problems per column, raw cell text."""

    table: Table
    file: str
    values: pl.DataFrame  # contract columns (typed) + extra columns + ROW
    problems: dict[str, pl.Series]  # column (or key label) -> reason or null
    raw: pl.DataFrame  # the raw cells, for the quarantine's value column
    #: With `valid_ids`: positions of the rows whose taxpayer_id is not a valid taxpayer's.
    outside: pl.Series | None = None


def _check_columns(raw: RawTable, valid_ids: pl.Series | None = None) -> _Checked:
    table = TABLES[raw.name]
    frame = raw.frame
    typed: dict[str, pl.Series] = {}
    problems: dict[str, pl.Series] = {}
    outside = None
    for col in table.columns:
        if col.name in frame.columns:
            parsed = parse_column(frame.get_column(col.name), col, valid_ids=valid_ids)
            typed[col.name] = parsed.values
            if parsed.problems.null_count() < parsed.problems.len():
                problems[col.name] = parsed.problems
            if parsed.outside is not None:
                outside = parsed.outside
        else:  # optional column absent from the file: all missing
            typed[col.name] = _nulls(frame.height, col.dtype).alias(col.name)
    extras = [c for c in frame.columns if c not in typed and c != ROW]
    values = pl.DataFrame(
        [*typed.values(), *(frame.get_column(c) for c in extras), frame.get_column(ROW).cast(pl.Int64)]
    )
    return _Checked(table, raw.file, values, problems, frame, outside)


def _add_problem(checked: _Checked, column: str, new: pl.Series) -> None:
    """Add reasons to a column's problems where it has none yet (one line per bad field)."""
    old = checked.problems.get(column)
    checked.problems[column] = new if old is None else old.zip_with(old.is_not_null(), new)


def _clean_mask(checked: _Checked, columns: Collection[str]) -> pl.Series:
    """True where none of `columns` has a problem."""
    mask = pl.Series(values=[True] * 0, dtype=pl.Boolean).extend_constant(True, checked.values.height)
    for c in columns:
        if c in checked.problems:
            mask = mask & checked.problems[c].is_null()
    return mask


def _check_taxpayer_known(checked: _Checked, all_ids: pl.Series) -> None:
    """Rows whose taxpayer is not in taxpayers, or whose taxpayers row was quarantined.

    Reads `checked.outside` (the rows whose id is not a valid taxpayer's, from _check_columns with
    valid_ids); a row whose id is itself malformed keeps that reason.
    """
    outside = checked.outside
    if outside is None or outside.is_empty():
        return
    ids = checked.values.get_column("taxpayer_id")
    own = checked.problems.get("taxpayer_id")
    if own is not None:
        outside = outside.filter(own.gather(outside).is_null())
        if outside.is_empty():
            return
    col = checked.table.column("taxpayer_id")
    absent_reason = f"{_who(col)}在 taxpayers 表中不存在：请先在 taxpayers 中登记该纳税人，或更正识别号"
    dropped_reason = (
        f"{_who(col)}对应的 taxpayers 记录因数据问题已被隔离（见 taxpayers 的隔离记录）："
        "更正该纳税人信息后本行才能使用"
    )
    reasons = _const_where(pl.repeat(True, outside.len(), eager=True), dropped_reason)
    absent = _positions_outside(ids.gather(outside), all_ids)  # not even among the quarantined taxpayers
    reasons = reasons.scatter(absent, absent_reason)
    problem = _nulls(ids.len()).scatter(outside, reasons)
    _add_problem(checked, "taxpayer_id", problem)


def unknown_incentive_reason(value: str, known: Collection[str]) -> str:
    """Reason for a claim of an incentive the catalogue does not know, with a did-you-mean."""
    guess = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    hint = f"；您是不是要写 {guess[0]}？" if guess else ""
    return (
        f"{_who(TABLES['claims'].column('incentive'))}「{value}」不在规则目录中：应为规则编号、规则列出的减免性质代码"
        f"或代码对照表（rules/_claim_codes.yaml）登记的代码{hint}"
    )


def _check_incentives(checked: _Checked, known: Collection[str]) -> None:
    """Claims of an incentive that is neither a rule id nor one of the rules' claim codes."""
    incentive = checked.values.get_column("incentive")
    known_list = sorted(set(known))
    uniq = incentive.unique().drop_nulls()
    unknown = uniq.filter(~uniq.is_in(known_list)).to_list()
    if not unknown:
        return
    reasons = {value: unknown_incentive_reason(value, known_list) for value in unknown}
    problem = incentive.replace_strict(reasons, default=None, return_dtype=pl.String)
    _add_problem(checked, "incentive", problem)


def key_label(table: Table) -> str:
    """The quarantine 'column' of a duplicate-key line, e.g. taxpayer_id+period."""
    return "+".join(table.key)


def _hash_duplicates(frame: pl.DataFrame, key: list[str]) -> np.ndarray | None:
    """Positions of rows whose key hash is shared with another row (None when every hash is unique).

    Sorting one UInt64 hash per row is much cheaper than grouping by the key itself; the few
    candidates it leaves are then compared exactly.
    """
    combined = pl.lit(0, dtype=pl.UInt64)
    for i, k in enumerate(key):
        combined = combined ^ (pl.col(k).hash(seed=i + 1) * (2 * i + 3))
    hashes = frame.select(combined.alias("h")).to_series().to_numpy()
    ordered = np.sort(hashes)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return None
    return np.flatnonzero(np.isin(hashes, np.unique(ordered[1:][same])))


def _check_duplicates(checked: _Checked) -> None:
    """Every copy of a key after the first: quarantined, the reason names the first row."""
    key = list(checked.table.key)
    if not key:
        return
    ok = _clean_mask(checked, key)
    for k in key:
        ok = ok & checked.values.get_column(k).is_not_null()
    frame = checked.values.select([*key, ROW]).with_columns(
        __ok=ok, __pos=pl.int_range(pl.len(), dtype=pl.Int64)
    )
    candidates = frame.filter(pl.col("__ok"))
    suspects = _hash_duplicates(candidates, key)
    if suspects is None:
        return
    candidates = candidates[suspects]  # in file order: positions are ascending
    later = ~candidates.select(pl.struct(key).is_first_distinct()).to_series()
    if not later.any():
        return
    firsts = candidates.group_by(key).agg(pl.col(ROW).min().alias("__first"))
    label = key_label(checked.table)
    dups = (
        candidates.filter(later)
        .join(firsts, on=key, how="left")
        .select(
            "__pos",
            pl.format(
                f"主键重复：与第 {{}} 行的 {label} 相同，同一主键只保留第一次出现的记录", "__first"
            ).alias("__reason"),
        )
    )
    problem = _nulls(frame.height).scatter(dups["__pos"], dups["__reason"])
    _add_problem(checked, label, problem)


def _quarantine_lines(checked: _Checked) -> pl.DataFrame:
    parts = []
    label = key_label(checked.table) if checked.table.key else ""
    for column, problem in checked.problems.items():
        if problem.null_count() == problem.len():
            continue
        mask = problem.is_not_null()
        if column == label:
            value = checked.values.select(
                pl.concat_str([pl.col(k).cast(pl.String) for k in checked.table.key], separator="+")
            ).to_series()
        else:
            value = _shown(checked.raw.get_column(column).cast(pl.String))
        n = int(mask.sum())
        parts.append(
            pl.DataFrame(
                {
                    "file": pl.Series(values=[], dtype=pl.String).extend_constant(checked.file, n),
                    "row": checked.values.get_column(ROW).filter(mask),
                    "column": pl.Series(values=[], dtype=pl.String).extend_constant(column, n),
                    "value": value.filter(mask),
                    "reason": problem.filter(mask),
                }
            )
        )
    if not parts:
        return empty_quarantine()
    return pl.concat(parts).cast(QUARANTINE_SCHEMA)


def _shown(raw: pl.Series) -> pl.Series:
    """Raw cells as the quarantine shows them: control characters escaped (\\n, \\x00…), at most
    QUARANTINE_VALUE_CHARS characters followed by "…"."""
    out = raw.str.replace_many(["\r", "\n", "\t", "\x00"], ["\\r", "\\n", "\\t", "\\x00"])
    out = out.str.replace_all(CONTROL_CHARS, "\uFFFD")
    long = out.str.len_chars() > QUARANTINE_VALUE_CHARS
    if not long.any():
        return out
    return pl.select(pl.when(pl.lit(long)).then(pl.lit(out).str.slice(0, QUARANTINE_VALUE_CHARS) + "…")
                     .otherwise(pl.lit(out))).to_series()


def _kept(checked: _Checked) -> pl.DataFrame:
    ok = _clean_mask(checked, list(checked.problems))
    return checked.values if ok.all() else checked.values.filter(ok)


def validate_tables(
    raw_tables: dict[str, RawTable], *, known_incentives: Collection[str] | None = None
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Validate raw tables (taxpayers first: the others are checked against its ids).

    Returns the typed tables (absent optional tables empty) and the quarantine, ordered by table,
    row and column.
    """
    out: dict[str, pl.DataFrame] = {}
    lines: list[pl.DataFrame] = []
    all_ids = pl.Series(dtype=pl.String)
    valid_ids = pl.Series(dtype=pl.String)
    for name, table in TABLES.items():
        if name not in raw_tables:
            out[name] = empty_table(table)
            continue
        members = name in ("indicators", "claims")
        checked = _check_columns(raw_tables[name], valid_ids if members else None)
        if members:
            _check_taxpayer_known(checked, all_ids)
        if name == "claims" and known_incentives is not None:
            _check_incentives(checked, known_incentives)
        _check_duplicates(checked)
        kept = _kept(checked)
        if name == "taxpayers":
            # Compared by anti-joins, which need no distinct values: valid ids are unique once duplicates
            # are quarantined.
            all_ids = checked.values.get_column("taxpayer_id").drop_nulls()
            valid_ids = kept.get_column("taxpayer_id")
        out[name] = kept
        q = _quarantine_lines(checked)
        if q.height:
            order = {c: i for i, c in enumerate([*table.names, key_label(table)])}
            q = q.with_columns(pl.col("column").replace_strict(order, default=len(order)).alias("__c"))
            lines.append(q.sort(["row", "__c"]).drop("__c"))
    quarantine = pl.concat(lines) if lines else empty_quarantine()
    return out, quarantine
