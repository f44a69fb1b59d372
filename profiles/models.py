"""Pydantic row models built from schema.py, and one taxpayer's profile from JSON.

`TaxpayerRow`, `IndicatorRow`, `ClaimRow` and `RiskEventRow` are generated from the contract tables,
so a field added to schema.py is validated here at once. Cells are coerced by the same rules as
the vectorized validation (booleans 是/否/Y/N, Chinese enum labels, dates in a few forms, money with
at most two decimals, credit-code check digits) and fail with the same Chinese reasons.

`parse_profile_json` turns {"taxpayer": {...}, "indicators": [...], "claims": [...],
"risk_events": [...]} into `Profiles` with the exact dtypes of the batch path, or raises
`ProfileDataError` listing every problem with its field path (e.g. `indicators[2].sales`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Annotated, Any

import polars as pl
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model

from profiles.errors import ProfileDataError
from profiles.ids import credit_code_problem_py
from profiles.periods import PeriodError, parse_period
from profiles.schema import ENUM_LABELS, TABLES, Column, Table
from profiles.validation import (
    DATE_FORMATS,
    FALSE_WORDS,
    ROW,
    TRUE_WORDS,
    Profiles,
    empty_quarantine,
    reason_for,
    unknown_incentive_reason,
    value_problem,
)

_PY_TYPES: dict[str, type] = {
    "id": str,
    "string": str,
    "enum": str,
    "bool": bool,
    "date": date,
    "money": Decimal,
    "number": float,
    "int": int,
    "period": str,
}
_MIDNIGHT = re.compile(r"[ T]00:00(:00(\.0+)?)?$")
_NUMBER_JUNK = re.compile(r"[,，\s]")
#: JSON keys of a single-taxpayer profile -> contract table.
JSON_KEYS: dict[str, str] = {
    "taxpayer": "taxpayers",
    "indicators": "indicators",
    "claims": "claims",
    "risk_events": "risk_events",
}


def _text(v: Any) -> str | None:
    """A cell as stripped text; blank is None."""
    s = str(v).strip(" \t\r\n\u3000\ufeff")
    return s or None


def _number_text(s: str) -> str:
    return _NUMBER_JUNK.sub("", s).removesuffix("元")


def coerce_cell(col: Column, v: Any) -> Any:
    """One cell to its contract type, or ValueError with the Chinese reason (the batch path's)."""
    if v is None or (isinstance(v, str) and _text(v) is None):
        if not col.nullable:
            raise ValueError(reason_for(col, "empty"))
        return None
    value = _coerce(col, v)
    problem = value_problem(col, value)
    if problem:
        raise ValueError(problem)
    return value


def _coerce(col: Column, v: Any) -> Any:
    kind = col.kind
    if kind in ("id", "string", "enum", "period"):
        return _coerce_text(col, _text(v) or "")
    if kind == "bool":
        return _coerce_bool(col, v)
    if kind == "date":
        return _coerce_date(col, v)
    if kind == "money":
        return _coerce_money(col, v)
    if kind == "number":
        return _coerce_number(col, v)
    if kind == "int":
        return _coerce_int(col, v)
    raise ValueError(f"unknown field kind {kind}")  # pragma: no cover - schema kinds are closed


def _coerce_text(col: Column, s: str) -> str:
    if col.kind == "id":
        s = s.upper()
        problem = credit_code_problem_py(s)
        if problem:
            raise ValueError(f"{col.label}（{col.name}）无效：{problem}")
    elif col.kind == "period":
        s = s.upper()
        try:
            parse_period(s)
        except PeriodError:
            raise ValueError(reason_for(col, "period")) from None
    elif col.kind == "enum":
        labels = {label: value for value, label in ENUM_LABELS.get(col.name, {}).items()}
        for candidate in (s, s.lower()):
            if candidate in col.values:
                return candidate
        if s in labels:
            return labels[s]
        raise ValueError(reason_for(col, "enum"))
    return s


def _coerce_bool(col: Column, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = (_text(v) or "").lower()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return False
    raise ValueError(reason_for(col, "bool"))


def _coerce_date(col: Column, v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = _MIDNIGHT.sub("", _text(v) or "")
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(reason_for(col, "date"))


def _decimal(v: Any) -> Decimal | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        return Decimal(repr(v)) if math.isfinite(v) else None
    try:
        d = Decimal(_number_text(str(v)) if not isinstance(v, (int, Decimal)) else v)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _coerce_money(col: Column, v: Any) -> Decimal:
    d = _decimal(v)
    if d is None:
        raise ValueError(reason_for(col, "money"))
    cents = d.quantize(Decimal("0.01"))
    if cents != d:
        raise ValueError(reason_for(col, "money_scale"))
    return cents


def _coerce_number(col: Column, v: Any) -> float:
    d = _decimal(v)
    if d is None or not math.isfinite(f := float(d)):  # 1e400 overflows Float64: the batch refuses it too
        raise ValueError(reason_for(col, "number"))
    return f


def _coerce_int(col: Column, v: Any) -> int:
    d = _decimal(v)
    if d is None or d != d.to_integral_value() or not _INT64_MIN <= d <= _INT64_MAX:  # the tables hold Int64
        raise ValueError(reason_for(col, "int"))
    return int(d)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def row_model(table: Table) -> type[BaseModel]:
    """A pydantic model of one row of `table`: every contract column, extra fields allowed."""
    fields: dict[str, Any] = {}
    for col in table.columns:
        annotation = Annotated[_PY_TYPES[col.kind] | None, BeforeValidator(partial(coerce_cell, col))]  # type: ignore[valid-type,name-defined]
        must = col.required and not col.nullable
        fields[col.name] = (annotation, ... if must else None)
    name = {
        "taxpayers": "TaxpayerRow",
        "indicators": "IndicatorRow",
        "claims": "ClaimRow",
        "risk_events": "RiskEventRow",
    }.get(table.name, f"{table.name.title()}Row")
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name,
        __config__=ConfigDict(extra="allow", frozen=True),
        __doc__=f"One row of {table.name}: {table.label}",
        **fields,
    )
    return model


TaxpayerRow = row_model(TABLES["taxpayers"])
IndicatorRow = row_model(TABLES["indicators"])
ClaimRow = row_model(TABLES["claims"])
RiskEventRow = row_model(TABLES["risk_events"])
ROW_MODELS: dict[str, type[BaseModel]] = {
    "taxpayers": TaxpayerRow,
    "indicators": IndicatorRow,
    "claims": ClaimRow,
    "risk_events": RiskEventRow,
}


def _error_message(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", ""))
    if err.get("type") == "missing":
        return "缺少必填字段"
    return msg.removeprefix("Value error, ")


def parse_profile_json(
    obj: str | bytes | Mapping[str, Any], *, known_incentives: Collection[str] | None = None
) -> Profiles:
    """One taxpayer's profile from JSON (text or an already-parsed mapping) as validated Profiles.

    `taxpayer_id` may be left out of the indicators, claims and risk events (it is the taxpayer's).
    Raises ProfileDataError listing every problem with its path.
    """
    data, rows = _validate(obj, known_incentives)
    tables = {name: _frame(TABLES[name], [m for _, m in models]) for name, models in rows.items()}
    digest = hashlib.sha256(
        json.dumps(data, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()
    return Profiles(**tables, quarantine=empty_quarantine(), sources={}, input_hashes={"json": digest})


def profile_rows(
    obj: str | bytes | Mapping[str, Any], *, known_incentives: Collection[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The same validation as `parse_profile_json`, without building frames (the real-time hot path):
    table -> rows of the contract columns, each value exactly as the frame of `parse_profile_json` holds
    it (extra fields are left out, as `engine.realtime` reads only contract columns)."""
    _, rows = _validate(obj, known_incentives)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, models in rows.items():
        money = _MONEY_COLUMNS[name]
        records = []
        for _, model in models:
            record = {c: getattr(model, c) for c in TABLES[name].names}
            for c in money:
                v = record[c]
                if v is not None and v.is_zero():
                    record[c] = _ZERO_CENTS  # Decimal(38, 2) has no negative zero: -0.00 reads back as 0.00
            records.append(record)
        out[name] = records
    return out


_ZERO_CENTS = Decimal("0.00")
_MONEY_COLUMNS = {name: [c.name for c in t.columns if c.kind == "money"] for name, t in TABLES.items()}


def _validate(
    obj: str | bytes | Mapping[str, Any], known_incentives: Collection[str] | None
) -> tuple[Any, dict[str, list[tuple[int, BaseModel]]]]:
    """The parsed document and its validated rows per table, or ProfileDataError with every problem."""
    raw = obj.encode("utf-8") if isinstance(obj, str) else obj
    if isinstance(raw, bytes):
        try:
            data = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ProfileDataError(
                [(f"第{exc.lineno}行第{exc.colno}列", f"不是合法的 JSON：{exc.msg}")]
            ) from None
    else:
        data = raw
    if not isinstance(data, Mapping):
        raise ProfileDataError([("$", '应为一个对象：{"taxpayer": {...}, "indicators": [...], ...}')])
    problems: list[tuple[str, str]] = [
        (str(k), "未知的键" + _suggest(str(k), JSON_KEYS) + "（应为 taxpayer、indicators、claims、risk_events 之一）")
        for k in data
        if k not in JSON_KEYS
    ]
    taxpayer = data.get("taxpayer")
    if not isinstance(taxpayer, Mapping):
        raise ProfileDataError([*problems, ("taxpayer", "缺少纳税人基础信息对象（至少要有 taxpayer_id）")])
    tid = _text(taxpayer.get("taxpayer_id") or "")
    rows: dict[str, list[tuple[int, BaseModel]]] = {}  # table -> (index in the JSON list, row)
    for key, name in JSON_KEYS.items():
        value = data.get(key, [])
        items = [value] if key == "taxpayer" else value
        if not isinstance(items, list):
            problems.append((key, "应为对象列表"))
            continue
        rows[name] = []
        for i, item in enumerate(items):
            where = key if key == "taxpayer" else f"{key}[{i}]"
            if not isinstance(item, Mapping):
                problems.append((where, "应为对象"))
                continue
            record = dict(item)
            # Other fields may be added to the contract, so an unknown field is kept — unless it is
            # so close to a contract field that it is almost surely a misspelling of it.
            table = TABLES[name]
            for column in record:
                if not table.has(str(column)):
                    hint = _suggest(str(column), table.names, cutoff=0.8)
                    if hint:
                        problems.append((f"{where}.{column}", f"{table.label}没有这个字段{hint}"))
            if key != "taxpayer":
                given = record.setdefault("taxpayer_id", tid)
                if (
                    tid
                    and given is not None
                    and _text(given or "")
                    and str(_text(given)).upper() != tid.upper()
                ):
                    problems.append(
                        (f"{where}.taxpayer_id", f"与纳税人 {tid} 不一致：一份画像只能有一户纳税人")
                    )
                    continue
            try:
                rows[name].append((i, ROW_MODELS[name].model_validate(record)))
            except ValidationError as exc:
                for err in exc.errors():
                    path = ".".join(str(p) for p in err["loc"])
                    problems.append((f"{where}.{path}", _error_message(err)))
    problems += _key_problems(rows, known_incentives)
    if problems:
        raise ProfileDataError(problems)
    return data, rows


def _suggest(name: str, candidates: Collection[str], *, cutoff: float = 0.6) -> str:
    """'，您是不是要写 X？' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return f"，您是不是要写 {close[0]}？" if close else ""


def _key_problems(
    rows: dict[str, list[tuple[int, BaseModel]]], known: Collection[str] | None
) -> list[tuple[str, str]]:
    """Duplicate keys within a table and claims of unknown incentives."""
    out: list[tuple[str, str]] = []
    for name in ("indicators", "claims"):  # the JSON key is the table name for these two
        seen: dict[tuple[Any, ...], int] = {}
        for i, row in rows.get(name, []):
            k = tuple(getattr(row, c) for c in TABLES[name].key)
            if k in seen:
                out.append(
                    (f"{name}[{i}]", f"主键重复：与 {name}[{seen[k]}] 的 {'+'.join(TABLES[name].key)} 相同")
                )
            seen.setdefault(k, i)
    if known is not None:
        known_set = set(known)
        for i, row in rows.get("claims", []):
            if row.incentive not in known_set:  # type: ignore[attr-defined]
                out.append((f"claims[{i}].incentive", unknown_incentive_reason(row.incentive, known_set)))  # type: ignore[attr-defined]
    return out


def _frame(table: Table, models: list[BaseModel]) -> pl.DataFrame:
    """Validated rows as a frame with the contract dtypes (extra fields as text) and ROW."""
    records = [m.model_dump() for m in models]
    extras = sorted({k for r in records for k in r if not table.has(k)})
    frame = (
        pl.DataFrame(
            [{c: r.get(c) for c in table.names} for r in records], schema=table.polars_schema, orient="row"
        )
        if records
        else pl.DataFrame(schema=table.polars_schema)
    )
    extra_cols = [
        pl.Series(k, [None if r.get(k) is None else str(r.get(k)) for r in records], dtype=pl.String)
        for k in extras
    ]
    return frame.with_columns(*extra_cols, pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))
