"""Reading the case ledger: filtered case lists, one case with its history, and each rule's precision.

Everything here only reads. The filters are the officers' (authority, tier, rule, status, period,
assignee, taxpayer, overdue as of a date); the figures per rule are how many of its cases officers
confirmed (已更正 + 放弃优惠) against how many they found to be false alarms (误报).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Engine

from notifier.cases.status import CLEARED, CONFIRMED, CORRECTED, FALSE_ALARM, OPEN_STATUSES, CaseNotFoundError
from notifier.cases.tables import case_history, cases


@dataclass(frozen=True)
class Case:
    """One row of the ledger."""

    case_no: str
    taxpayer_id: str
    rule_id: str
    period: str
    kind: str
    tier: str
    status: str
    resolution: str | None
    resolution_reason: str | None
    assignee: str | None
    amount: Decimal | None
    claimed_amount: Decimal | None
    reasons: str
    evidence: list[dict[str, Any]]
    fingerprint: str
    rule_name: str
    basis: str
    rule_version: str | None
    ruleset_version: str | None
    taxpayer_name: str
    tax_authority: str
    district: str
    opened_on: date
    due_on: date
    first_run_id: str
    evidence_run_id: str
    cleared_run_id: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def days_left(self, as_of: date) -> int:
        """Days until the due date (negative: overdue by that many days)."""
        return (self.due_on - as_of).days

    def is_overdue(self, as_of: date) -> bool:
        return self.is_open and self.due_on < as_of


@dataclass(frozen=True)
class HistoryEntry:
    """One status change of a case (from_status is None for the entry that opened it)."""

    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    note: str
    run_id: str | None


@dataclass(frozen=True)
class CaseFilter:
    """Which cases an officer wants to see; empty means no restriction."""

    authorities: Sequence[str] = ()
    tiers: Sequence[str] = ()
    rules: Sequence[str] = ()
    statuses: Sequence[str] = ()
    periods: Sequence[str] = ()
    assignee: str | None = None
    taxpayer: str | None = None
    overdue_on: date | None = None  # open and due before this date

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        for column, values in ((cases.c.tax_authority, self.authorities), (cases.c.tier, self.tiers),
                               (cases.c.rule_id, self.rules), (cases.c.status, self.statuses),
                               (cases.c.period, self.periods)):
            if values:
                stmt = stmt.where(column.in_(list(values)))
        if self.assignee:
            stmt = stmt.where(cases.c.assignee == self.assignee)
        if self.taxpayer:
            stmt = stmt.where(cases.c.taxpayer_id == self.taxpayer)
        if self.overdue_on is not None:
            stmt = stmt.where(cases.c.status.in_(sorted(OPEN_STATUSES)), cases.c.due_on < self.overdue_on)
        return stmt


_CASE_COLUMNS = [cases.c[f.name] for f in fields(Case)]
#: Task-list order: the most urgent first, then the largest amount.
_ORDER = (cases.c.due_on, cases.c.amount.desc().nulls_last(), cases.c.case_no)


def find_cases(engine: Engine, where: CaseFilter = CaseFilter(), *, limit: int | None = None) -> list[Case]:
    """Cases matching `where`, most urgent first."""
    stmt = where.apply(select(*_CASE_COLUMNS)).order_by(*_ORDER)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [Case(**r._mapping) for r in conn.execute(stmt)]


def count_cases(engine: Engine, where: CaseFilter = CaseFilter()) -> int:
    """How many cases match `where`."""
    with engine.connect() as conn:
        return int(conn.execute(where.apply(select(func.count()).select_from(cases))).scalar_one())


def get_case(engine: Engine, case_no: str) -> Case:
    """The case with this number; CaseNotFoundError (with similar numbers, if any) otherwise."""
    with engine.connect() as conn:
        row = conn.execute(select(*_CASE_COLUMNS).where(cases.c.case_no == case_no.strip())).first()
        if row is None:
            tail = case_no.strip().rsplit("-", 1)[-1]
            similar = conn.execute(
                select(cases.c.case_no).where(cases.c.case_no.like(f"%{_escape_like(tail)}%", escape="\\")).limit(3)
            ).scalars().all() if len(tail) >= 4 else []
            hint = f"；您是不是要找 {'、'.join(similar)}" if similar else "（可用 zhixiang cases list 查找）"
            raise CaseNotFoundError(f"没有编号为 {case_no} 的案件{hint}")
    return Case(**row._mapping)


def history_of(engine: Engine, case_no: str) -> list[HistoryEntry]:
    """Every status change of a case, oldest first."""
    stmt = (select(case_history.c.at, case_history.c.actor, case_history.c.from_status, case_history.c.to_status,
                   case_history.c.note, case_history.c.run_id)
            .where(case_history.c.case_no == case_no).order_by(case_history.c.id))
    with engine.connect() as conn:
        return [HistoryEntry(**r._mapping) for r in conn.execute(stmt)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ----------------------------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class RuleStats:
    """Outcome figures of one rule's cases."""

    rule_id: str
    rule_name: str
    cases: int
    open: int
    confirmed: int  # 已更正 + 放弃优惠 (also after 已关闭)
    corrected: int
    waived: int
    false_alarms: int  # 误报 (also after 已关闭)
    cleared: int  # 已消除 by a later run
    confirmed_amount: Decimal  # amount at risk of the confirmed cases

    @property
    def decided(self) -> int:
        return self.confirmed + self.false_alarms

    @property
    def precision(self) -> float | None:
        """Confirmed ÷ (confirmed + false alarms); None until an officer has decided a case."""
        return self.confirmed / self.decided if self.decided else None


def rule_stats(engine: Engine, *, authorities: Sequence[str] = (), periods: Sequence[str] = (),
               tiers: Sequence[str] = ("high", "medium")) -> list[RuleStats]:
    """Per rule: cases, open, confirmed, false alarms and precision — risk cases only by default.

    A case's decision counts while it stands: closing keeps it (in `resolution`), reopening withdraws it.
    """
    where = CaseFilter(authorities=authorities, periods=periods, tiers=tiers)
    stmt = where.apply(
        select(cases.c.rule_id, func.max(cases.c.rule_name).label("rule_name"), cases.c.status, cases.c.resolution,
               func.count().label("n"), func.sum(cases.c.amount).label("amount"))
    ).group_by(cases.c.rule_id, cases.c.status, cases.c.resolution)
    acc: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            s = acc.setdefault(r.rule_id, {"rule_id": r.rule_id, "rule_name": r.rule_name or r.rule_id, "cases": 0,
                                           "open": 0, "confirmed": 0, "corrected": 0, "waived": 0,
                                           "false_alarms": 0, "cleared": 0, "confirmed_amount": Decimal("0.00")})
            n = int(r.n)
            s["cases"] += n
            if r.status in OPEN_STATUSES:
                s["open"] += n
            elif r.status == CLEARED:
                s["cleared"] += n
            if r.status not in OPEN_STATUSES and r.resolution in CONFIRMED:
                s["confirmed"] += n
                s["corrected" if r.resolution == CORRECTED else "waived"] += n
                s["confirmed_amount"] += r.amount or Decimal("0.00")
            elif r.status not in OPEN_STATUSES and r.resolution == FALSE_ALARM:
                s["false_alarms"] += n
    return [RuleStats(**acc[k]) for k in sorted(acc)]
