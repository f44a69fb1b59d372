"""The auto-apply ledger: one row per taxpayer × period × automatic rule, `listed` → `applied`.

`listed`: the nightly found the taxpayer eligible and not enjoying the relief and put it on the night's
auto-apply list. `applied`: the collection system confirmed it applied the relief (`zhixiang autoapply
confirm`). An applied entry is never listed again; a listed one is listed again each night the finding
persists (its amount and evidence refreshed) until it is confirmed. Both SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Column, Date, Integer, String, Table, Text, UniqueConstraint, bindparam, func, select
from sqlalchemy.engine import Connection, Engine

from notifier.cases.tables import Money, UTCDateTime
from notifier.db import METADATA

State = Literal["listed", "applied"]
STATE_LABELS: dict[str, str] = {"listed": "已列入清单", "applied": "已自动享受"}

autoapply_entries = Table(
    "autoapply_entries",
    METADATA,
    Column("entry_no", String(32), primary_key=True),  # entry_number(taxpayer, period, rule): stable, on the list
    Column("taxpayer_id", String(32), nullable=False),
    Column("period", String(16), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("rule_name", Text, nullable=False),
    Column("taxpayer_name", Text, nullable=False, default=""),
    Column("tax_authority", String(32), nullable=False, default=""),
    Column("amount", Money(), nullable=False),  # the estimated relief as last listed
    Column("basis", Text, nullable=False, default=""),  # the rule's basis and the basis of automatic application
    Column("evidence", Text, nullable=False, default=""),  # the finding's reason lines
    Column("state", String(8), nullable=False),  # listed / applied
    Column("first_listed_on", Date, nullable=False),
    Column("last_listed_on", Date, nullable=False),
    Column("listed_run", String(64), nullable=False, default=""),
    Column("applied_on", Date),
    Column("applied_amount", Money()),
    Column("confirm_file", Text),  # the confirmation file and row that applied it
    Column("confirm_row", Integer),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("taxpayer_id", "period", "rule_id", name="uq_autoapply_key"),
)


def entry_number(taxpayer_id: str, period: str, rule_id: str) -> str:
    """The list number of taxpayer × period × rule: the same on every night's list and in every database."""
    digest = hashlib.sha256(f"{taxpayer_id}|{period}|{rule_id}".encode()).hexdigest()[:12].upper()
    return f"ZA{digest}"


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    entry_no: str
    taxpayer_id: str
    period: str
    rule_id: str
    rule_name: str
    taxpayer_name: str
    tax_authority: str
    amount: Decimal
    basis: str
    evidence: str
    state: State
    first_listed_on: date
    last_listed_on: date
    applied_on: date | None = None
    applied_amount: Decimal | None = None
    confirm_file: str | None = None
    confirm_row: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ListingResult:
    """What one night did to the ledger."""

    new: int  # listed for the first time
    relisted: int  # still listed from an earlier night (not confirmed yet)
    already_applied: int  # found again although applied: not listed (the collection system has it)
    entries: tuple[Entry, ...]  # what goes on tonight's lists (new and relisted)


def record_listed(engine: Engine | Connection, rows: Sequence[Mapping[str, Any]], *, as_of: date,
                  run_id: str = "") -> ListingResult:
    """Record tonight's automatic 应享未享 rows (dicts with taxpayer_id, period, rule_id, rule_name,
    taxpayer_name, tax_authority, amount, basis, evidence) as listed; entries already applied stay applied.
    Idempotent: the same night recorded twice gives the same ledger."""
    if not rows:
        return ListingResult(0, 0, 0, ())
    keyed = {entry_number(str(r["taxpayer_id"]), str(r["period"]), str(r["rule_id"])): r for r in rows}
    now = utcnow()
    with _begin(engine) as conn:
        existing: dict[str, str] = {}
        numbers = sorted(keyed)
        for i in range(0, len(numbers), 1000):
            part = numbers[i:i + 1000]
            existing.update((str(no), str(state)) for no, state in conn.execute(
                select(autoapply_entries.c.entry_no, autoapply_entries.c.state)
                .where(autoapply_entries.c.entry_no.in_(part))))
        fresh = [_values(no, r) | {"state": "listed", "first_listed_on": as_of, "last_listed_on": as_of,
                                   "listed_run": run_id, "updated_at": now}
                 for no, r in keyed.items() if no not in existing]
        relist = [no for no in numbers if existing.get(no) == "listed"]
        if fresh:
            conn.execute(autoapply_entries.insert(), fresh)
        if relist:  # one executemany: the amount and evidence as tonight's run found them
            refreshed = ("rule_name", "taxpayer_name", "tax_authority", "amount", "basis", "evidence")
            conn.execute(
                autoapply_entries.update().where(autoapply_entries.c.entry_no == bindparam("b_no")).values(
                    {**{c: bindparam(f"b_{c}") for c in refreshed}, "last_listed_on": as_of, "listed_run": run_id,
                     "updated_at": now}),
                [{"b_no": no, **{f"b_{c}": v for c, v in _values(no, keyed[no]).items() if c in refreshed}}
                 for no in relist])
        listed = [no for no in numbers if existing.get(no) != "applied"]
        entries = _entries(conn, listed)
    return ListingResult(len(fresh), len(relist), sum(1 for s in existing.values() if s == "applied"),
                         tuple(entries))


def _values(entry_no: str, r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "entry_no": entry_no, "taxpayer_id": str(r["taxpayer_id"]), "period": str(r["period"]),
        "rule_id": str(r["rule_id"]), "rule_name": str(r.get("rule_name") or ""),
        "taxpayer_name": str(r.get("taxpayer_name") or ""), "tax_authority": str(r.get("tax_authority") or ""),
        "amount": r["amount"], "basis": str(r.get("basis") or ""), "evidence": str(r.get("evidence") or ""),
    }


def _entries(conn: Connection, numbers: Sequence[str]) -> list[Entry]:
    out: list[Entry] = []
    for i in range(0, len(numbers), 1000):
        part = list(numbers[i:i + 1000])
        rows = conn.execute(select(autoapply_entries).where(autoapply_entries.c.entry_no.in_(part))).mappings()
        out.extend(Entry.from_row(r) for r in rows)
    return sorted(out, key=lambda e: (e.tax_authority, e.period, e.rule_id, e.taxpayer_id))


def get_entries(engine: Engine | Connection, numbers: Iterable[str]) -> dict[str, Entry]:
    with _begin(engine) as conn:
        return {e.entry_no: e for e in _entries(conn, sorted(set(numbers)))}


def mark_applied(conn: Connection, entry_no: str, *, applied_on: date, amount: Decimal, file: str,
                 row: int) -> bool:
    """listed → applied; False when the entry was applied already (a confirmation read twice)."""
    result = conn.execute(autoapply_entries.update().where(
        autoapply_entries.c.entry_no == entry_no, autoapply_entries.c.state == "listed").values(
        state="applied", applied_on=applied_on, applied_amount=amount, confirm_file=file, confirm_row=row,
        updated_at=utcnow()))
    return result.rowcount == 1


def applied_for(engine: Engine | Connection, taxpayer_ids: Iterable[str] | None = None
                ) -> dict[str, tuple[Entry, ...]]:
    """The applied entries (of these taxpayers, or of all), by taxpayer: the 政策礼包's 已为您自动享受 section."""
    out: dict[str, list[Entry]] = {}
    applied = select(autoapply_entries).where(autoapply_entries.c.state == "applied")
    with _begin(engine) as conn:
        if taxpayer_ids is None:
            batches = [conn.execute(applied).mappings()]
        else:
            ids = sorted(set(taxpayer_ids))
            batches = [conn.execute(applied.where(autoapply_entries.c.taxpayer_id.in_(ids[i:i + 1000]))).mappings()
                       for i in range(0, len(ids), 1000)]
        for rows in batches:
            for r in rows:
                out.setdefault(str(r["taxpayer_id"]), []).append(Entry.from_row(r))
    return {t: tuple(sorted(es, key=lambda e: (e.period, e.rule_id))) for t, es in out.items()}


def _scoped(stmt: Any, authorities: Sequence[str] | None) -> Any:
    """`stmt` limited to these tax authorities (None: every authority; an empty list: none)."""
    return stmt if authorities is None else stmt.where(autoapply_entries.c.tax_authority.in_(list(authorities)))


def state_counts(engine: Engine | Connection, authorities: Sequence[str] | None = None) -> dict[str, int]:
    """Entries per state (of these tax authorities, or of all), every state named (0 when none)."""
    with _begin(engine) as conn:
        rows = [tuple(r) for r in conn.execute(_scoped(select(autoapply_entries.c.state, func.count()), authorities)
                                               .group_by(autoapply_entries.c.state))]
    counts = {state: 0 for state in STATE_LABELS}
    counts.update({str(s): int(n) for s, n in rows})
    return counts


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a ledger page shows: tax authorities (None: all), a state, a rule, an authority chosen."""

    authorities: Sequence[str] | None = None
    state: State | None = None
    rule_id: str | None = None

    def apply(self, stmt: Any) -> Any:
        stmt = _scoped(stmt, self.authorities)
        if self.state is not None:
            stmt = stmt.where(autoapply_entries.c.state == self.state)
        if self.rule_id is not None:
            stmt = stmt.where(autoapply_entries.c.rule_id == self.rule_id)
        return stmt


def find_entries(engine: Engine | Connection, where: EntryFilter, *, offset: int = 0,
                 limit: int | None = None) -> tuple[int, list[Entry]]:
    """(how many match, one page of them): entries still listed first, the longest listed first — what the
    collection system has waited on longest — then the applied ones, the latest applied first."""
    c = autoapply_entries.c
    with _begin(engine) as conn:
        total = int(conn.execute(where.apply(select(func.count()).select_from(autoapply_entries))).scalar_one())
        stmt = (where.apply(select(autoapply_entries))
                .order_by((c.state == "applied"), c.first_listed_on, c.applied_on.desc(), c.entry_no)
                .offset(offset))
        if limit is not None:
            stmt = stmt.limit(limit)
        return total, [Entry.from_row(r) for r in conn.execute(stmt).mappings()]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _begin:
    """A transaction on an engine, or the caller's own on a connection."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.bind = bind
        self.ctx: Any = None

    def __enter__(self) -> Connection:
        if isinstance(self.bind, Connection):
            return self.bind
        self.ctx = self.bind.begin()
        conn: Connection = self.ctx.__enter__()
        return conn

    def __exit__(self, *exc: Any) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)
