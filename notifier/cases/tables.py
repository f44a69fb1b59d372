"""The case ledger's tables in the state database: cases, their append-only history and the syncs.

Declared on `notifier.db.METADATA`, so `open_state` creates them with everything else. The same
definitions run on SQLite and PostgreSQL; where the two differ (exact money, JSON, the trigger that
keeps history append-only) the difference is a type variant or a dialect-specific DDL, not code paths.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import DDL
from sqlalchemy.types import TypeDecorator, TypeEngine

from notifier.db import METADATA

CENT = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    """CNY amounts, exact: NUMERIC(18,2) on PostgreSQL, integer fen on SQLite.

    SQLite has no decimal type (its NUMERIC is a double, inexact beyond 15 digits), so there the value
    is stored as an integer number of fen; sums and comparisons stay exact in SQL on both backends.
    Values are rounded 四舍五入 to the fen on the way in.
    """

    impl = Numeric(18, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
        return int(amount * 100) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(CENT)
        return Decimal(value).quantize(CENT)


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in time, stored in UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the case ledger; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc = JSON().with_variant(JSONB(), "postgresql")
#: History ids: 64-bit on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY (64-bit anyway).
HistoryId = BigInteger().with_variant(Integer(), "sqlite")

cases = Table(
    "cases",
    METADATA,
    # Derived from taxpayer × rule × period (see notifier/cases/ledger.py: case_number), never reassigned.
    Column("case_no", String(64), primary_key=True),
    Column("taxpayer_id", String(32), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # improper / undetermined (findings kinds)
    Column("tier", String(16), nullable=False),  # high / medium / verification (数据核实)
    Column("status", String(8), nullable=False),
    Column("resolution", String(8)),  # 已更正 / 放弃优惠 / 误报, kept after 已关闭
    Column("resolution_reason", Text),
    Column("assignee", String(64)),
    Column("amount", Money()),  # estimated amount at risk (findings.estimated_amount)
    Column("claimed_amount", Money()),
    Column("reasons", Text, nullable=False, default=""),
    Column("evidence", JSONDoc, nullable=False),  # findings.evidence: list of condition verdicts
    Column("fingerprint", String(64), nullable=False),  # of the evidence; decides reopening
    Column("rule_name", Text, nullable=False, default=""),
    Column("basis", Text, nullable=False, default=""),
    Column("rule_version", String(64)),
    Column("ruleset_version", String(64)),
    Column("taxpayer_name", Text, nullable=False, default=""),
    Column("tax_authority", String(64), nullable=False, default=""),
    Column("district", String(64), nullable=False, default=""),
    Column("opened_on", Date, nullable=False),  # as-of date of the run that opened (or reopened) it
    Column("due_on", Date, nullable=False),  # opened_on + the service level of its tier
    Column("first_run_id", String(128), nullable=False),
    # The run whose findings the evidence, amount and tier come from. A later run that finds the same
    # evidence writes nothing: an open case is, by construction, still found by every sync since.
    Column("evidence_run_id", String(128), nullable=False),
    Column("cleared_run_id", String(128)),  # the run that no longer found it (null while found)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("taxpayer_id", "rule_id", "period", name="uq_cases_taxpayer_rule_period"),
    Index("ix_cases_authority_status", "tax_authority", "status"),
    Index("ix_cases_period_rule", "period", "rule_id"),
    Index("ix_cases_status_due", "status", "due_on"),
)

case_history = Table(
    "case_history",
    METADATA,
    Column("id", HistoryId, primary_key=True, autoincrement=True),
    Column("case_no", String(64), ForeignKey("cases.case_no"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),  # officer name, or "system"
    Column("from_status", String(8)),  # null for the entry that opened the case
    Column("to_status", String(8), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("run_id", String(128)),  # the run behind a system change
)

case_syncs = Table(
    "case_syncs",
    METADATA,
    Column("id", HistoryId, primary_key=True, autoincrement=True),
    Column("run_id", String(128), nullable=False, index=True),
    Column("as_of", Date, nullable=False),
    Column("periods", JSONDoc, nullable=False),
    Column("rules", JSONDoc),  # the rule scope the run covered; null = every rule
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("counts", JSONDoc),
)

# History is evidence of who did what: the database itself refuses to change or delete it.
_NO_CHANGE = "case_history is append-only"
event.listen(case_history, "after_create", DDL(
    "CREATE TRIGGER case_history_no_update BEFORE UPDATE ON case_history "
    f"BEGIN SELECT RAISE(ABORT, '{_NO_CHANGE}'); END").execute_if(dialect="sqlite"))
event.listen(case_history, "after_create", DDL(
    "CREATE TRIGGER case_history_no_delete BEFORE DELETE ON case_history "
    f"BEGIN SELECT RAISE(ABORT, '{_NO_CHANGE}'); END").execute_if(dialect="sqlite"))
event.listen(case_history, "after_create", DDL(
    "CREATE OR REPLACE FUNCTION case_history_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_NO_CHANGE}'; END $$; "
    "CREATE TRIGGER case_history_append_only BEFORE UPDATE OR DELETE ON case_history "
    "FOR EACH ROW EXECUTE FUNCTION case_history_append_only()").execute_if(dialect="postgresql"))
