"""The suppression ledger: what was told to whom, so that the same news is not sent twice.

Every finding told in a delivered package is one row: taxpayer × incentive (rule) × period × kind,
with the estimated amount, the channel and the day. A later run leaves a finding out when the same
key was sent within the cool-down (90 days by default) — unless the estimated amount changed
materially since, which is news again. The table lives in the shared state database
(notifier/db.py), SQLite or PostgreSQL alike; `--dry-run` reads it but never writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, Integer, String, Table, select
from sqlalchemy.engine import Connection, Engine

from notifier.cases.bulk import insert_rows
from notifier.db import METADATA

#: One row per finding told in a delivered package. Append-only: the history is the audit trail.
NOTIFICATIONS = Table(
    "notification_ledger",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taxpayer_id", String(32), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # unclaimed / improper (low-risk reminder) / AUTO_APPLIED
    # Exact on every backend: whole fen in an integer (SQLite has no exact decimal type).
    Column("estimated_fen", BigInteger, nullable=True),
    Column("channel", String(8), nullable=False),
    Column("backend", String(16), nullable=False),  # file / smtp / webhook
    Column("package_id", String(32), nullable=False),
    Column("sent_on", Date, nullable=False),  # the run's as-of day: the cool-down clock
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_notification_ledger_key", "taxpayer_id", "rule_id", "period", "kind", "sent_on"),
    Index("ix_notification_ledger_sent_on", "sent_on"),
)

Key = tuple[str, str, str, str]  # taxpayer_id, rule_id, period, kind

#: The ledger kind of a 已为您自动享受 line (a 免申即享 relief the bureau applied): said once, ever.
AUTO_APPLIED = "auto_applied"


def to_fen(amount: Decimal | None) -> int | None:
    """Yuan → whole fen (四舍五入)."""
    return None if amount is None else int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_fen(fen: int | None) -> Decimal | None:
    return None if fen is None else (Decimal(fen) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class SuppressionPolicy:
    """When the same news may be sent again.

    Within `cooldown_days` of the last send, a finding is sent again only if its estimated amount
    changed materially: by at least `material_pct` percent of the last amount, or by at least
    `material_amount` yuan (either is enough; None disables that test).
    """

    cooldown_days: int = 90
    material_pct: Decimal | None = Decimal(10)
    material_amount: Decimal | None = Decimal(1000)

    def material(self, before: Decimal | None, now: Decimal | None) -> bool:
        """Whether an amount moved enough to be news again (a figure appearing or vanishing is)."""
        if before is None or now is None:
            return before is not now
        delta = abs(now - before)
        if delta == 0:
            return False
        if self.material_amount is not None and delta >= self.material_amount:
            return True
        if self.material_pct is not None:
            if before == 0:
                return True
            return delta * 100 >= abs(before) * self.material_pct
        return False


@dataclass(frozen=True)
class LastSent:
    sent_on: date
    amount: Decimal | None
    channel: str


@dataclass(frozen=True)
class SentRecord:
    """One finding told in one delivered package."""

    taxpayer_id: str
    rule_id: str
    period: str
    kind: str
    amount: Decimal | None
    channel: str
    backend: str
    package_id: str


class SuppressionLedger:
    """Reads the recent sends once per run and decides finding by finding; records delivered packages."""

    def __init__(self, engine: Engine, as_of: date, policy: SuppressionPolicy | None = None) -> None:
        self.engine = engine
        self.as_of = as_of
        self.policy = policy or SuppressionPolicy()
        self._recent: dict[Key, LastSent] = {}
        self._load()

    def _load(self) -> None:
        """The latest send of every key within the cool-down window (one query for the whole run)."""
        since = self.as_of - timedelta(days=self.policy.cooldown_days)
        t = NOTIFICATIONS.c
        query = (
            select(t.taxpayer_id, t.rule_id, t.period, t.kind, t.estimated_fen, t.channel, t.sent_on, t.id)
            .where(t.sent_on > since)
            .order_by(t.sent_on, t.id)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                amount = from_fen(row.estimated_fen)
                # later rows overwrite earlier ones: the last send is what the taxpayer last heard
                self._recent[(row.taxpayer_id, row.rule_id, row.period, row.kind)] = LastSent(
                    row.sent_on, amount, row.channel)

    def last_sent(self, key: Key) -> LastSent | None:
        return self._recent.get(key)

    def should_send(self, key: Key, amount: Decimal | None) -> bool:
        """False when the same news went out within the cool-down and the amount did not change materially."""
        last = self._recent.get(key)
        if last is None:
            return True
        return self.policy.material(last.amount, amount)

    def record(self, records: Sequence[SentRecord], *, conn: Connection | None = None) -> None:
        """Record delivered findings (one transaction); later decisions in this run see them too.

        `conn`: write inside the caller's transaction instead (the nightly run records its letters in
        the same transaction that marks the run succeeded, so a crash never records unpublished letters).
        """
        if not records:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "taxpayer_id": r.taxpayer_id, "rule_id": r.rule_id, "period": r.period, "kind": r.kind,
                "estimated_fen": to_fen(r.amount), "channel": r.channel, "backend": r.backend,
                "package_id": r.package_id, "sent_on": self.as_of, "recorded_at": now,
            }
            for r in records
        ]
        if conn is not None:
            insert_rows(conn, NOTIFICATIONS, rows)
        else:
            with self.engine.begin() as own:
                insert_rows(own, NOTIFICATIONS, rows)
        for r in records:
            self._recent[(r.taxpayer_id, r.rule_id, r.period, r.kind)] = LastSent(self.as_of, r.amount, r.channel)


def told_ever(engine: Engine, kind: str) -> set[tuple[str, str, str]]:
    """(taxpayer, rule, period) of every delivered package that told news of this kind, at any time."""
    t = NOTIFICATIONS.c
    with engine.connect() as conn:
        return {(r.taxpayer_id, r.rule_id, r.period)
                for r in conn.execute(select(t.taxpayer_id, t.rule_id, t.period).where(t.kind == kind).distinct())}


def history(engine: Engine, taxpayer_id: str | None = None) -> list[dict[str, object]]:
    """Every recorded send (optionally of one taxpayer), oldest first — for audits and tests."""
    t = NOTIFICATIONS.c
    query = select(NOTIFICATIONS).order_by(t.sent_on, t.id)
    if taxpayer_id is not None:
        query = query.where(t.taxpayer_id == taxpayer_id)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["estimated_amount"] = from_fen(row.pop("estimated_fen"))
    return rows


def records_for(findings: Iterable[tuple[str, str, str, Decimal | None]], *, taxpayer_id: str, channel: str,
                backend: str, package_id: str) -> list[SentRecord]:
    """The ledger rows of one delivered package from the letter's (kind, rule, period, amount) list."""
    return [SentRecord(taxpayer_id, rule_id, period, kind, amount, channel, backend, package_id)
            for kind, rule_id, period, amount in findings]
