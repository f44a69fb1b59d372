"""The delivery log: every attempt to hand a package to an outside back-end (SMTP, webhook), as it happens.

The suppression ledger (notifier/letters/suppression.py) says what a taxpayer has been *told*; it is written by the
nightly run only when the run commits. Sending an e-mail cannot wait for that commit, and cannot be undone,
so each outside delivery is logged in its own transaction right after it succeeds or finally fails:
- a nightly run redone after a crash rebuilds the same packages (a package id is a function of the
  taxpayer, the day and the news) and finds them here, so nobody gets the same e-mail twice;
- a package that could not be delivered (server down, refused) is here as `failed`; later nights send
  that taxpayer's letter again, until it goes through or `retry_days` have passed.
The only window left is a crash between the server's acceptance and this log's commit: that one package
may be sent again, carrying the same package id (the e-mail's Message-ID, the webhook's `package_id`),
so the receiving side can drop the copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Column, Date, DateTime, Integer, String, Table, Text, and_, delete, func, insert, select
from sqlalchemy.engine import Engine

from notifier.db import METADATA

DELIVERIES = Table(
    "delivery_log",
    METADATA,
    Column("package_id", String(32), primary_key=True),
    Column("backend", String(16), primary_key=True),  # smtp / webhook
    Column("taxpayer_id", String(32), nullable=False, index=True),
    Column("channel", String(8), nullable=False),
    Column("business_date", Date, nullable=False, index=True),
    Column("status", String(8), nullable=False),  # sent / failed
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("logged_at", DateTime(timezone=True), nullable=False),
)


class DeliveryLog:
    """Reads and writes the delivery log for one business day's packages."""

    def __init__(self, engine: Engine, as_of: date) -> None:
        self.engine = engine
        self.as_of = as_of
        with engine.connect() as conn:
            rows = conn.execute(select(DELIVERIES.c.package_id, DELIVERIES.c.backend).where(
                DELIVERIES.c.business_date == as_of, DELIVERIES.c.status == "sent"))
            self._sent = {(p, b) for p, b in rows}

    def already_sent(self, package_id: str, backend: str) -> bool:
        """Whether this package went out through `backend` earlier (a redone run)."""
        return (package_id, backend) in self._sent

    def log(self, *, package_id: str, backend: str, taxpayer_id: str, channel: str, ok: bool, attempts: int,
            error: str = "") -> None:
        """Record one package's outcome with one back-end, committed at once."""
        row = {"package_id": package_id, "backend": backend, "taxpayer_id": taxpayer_id, "channel": channel,
               "business_date": self.as_of, "status": "sent" if ok else "failed", "attempts": attempts,
               "error": error or None, "logged_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            conn.execute(delete(DELIVERIES).where(DELIVERIES.c.package_id == package_id,
                                                  DELIVERIES.c.backend == backend))
            conn.execute(insert(DELIVERIES).values(**row))
        if ok:
            self._sent.add((package_id, backend))


def undelivered_taxpayers(engine: Engine, as_of: date, retry_days: int) -> set[str]:
    """Taxpayers whose latest logged delivery (within `retry_days` before `as_of`) failed.

    A taxpayer counts as delivered again as soon as any later package of theirs went out.
    """
    since = as_of - timedelta(days=retry_days)
    window = and_(DELIVERIES.c.business_date >= since, DELIVERIES.c.business_date < as_of)
    latest = (select(DELIVERIES.c.taxpayer_id, func.max(DELIVERIES.c.business_date).label("day"))
              .where(window).group_by(DELIVERIES.c.taxpayer_id).subquery())
    failed = (select(DELIVERIES.c.taxpayer_id).distinct()
              .join(latest, and_(DELIVERIES.c.taxpayer_id == latest.c.taxpayer_id,
                                 DELIVERIES.c.business_date == latest.c.day))
              .where(DELIVERIES.c.status == "failed"))
    with engine.connect() as conn:
        return set(conn.execute(failed).scalars())


def delivery_rows(engine: Engine, taxpayer_ids: Iterable[str]) -> list[dict[str, object]]:
    """The log of some taxpayers, oldest first (for tests and `runs show`-style inspection)."""
    ids = list(taxpayer_ids)
    with engine.connect() as conn:
        rows = conn.execute(select(DELIVERIES).where(DELIVERIES.c.taxpayer_id.in_(ids))
                            .order_by(DELIVERIES.c.business_date, DELIVERIES.c.logged_at))
        return [dict(r._mapping) for r in rows]
