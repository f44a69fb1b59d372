"""The case ledger: findings in, risk-review cases out, and the officers' moves on them.

"无风险不打扰、低风险预提醒、中高风险严监控": medium- and high-tier improper claims become risk cases,
undetermined findings become data-verification items (tier `verification`), and low-tier improper
claims go to the taxpayer as reminders (`triage` is the one place that sorts them). `sync_findings`
feeds a run's findings into the ledger in bulk; `assign`, `resolve` and `close` are the officers' moves,
checked against the workflow table in notifier/cases/status.py. Every status change, by a person or by
the system, is appended to `case_history`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from engine.errors import InputError, ZhixiangError
from engine.findings import FINDINGS_FILE, audience_expr, fingerprints, read_findings
from engine.findings import TIER_LABELS as FINDING_TIER_LABELS
from engine.findings.figures import money
from notifier.cases.bulk import IN_CHUNK, EncodedJSON, chunks, insert_rows, update_keys, update_rows
from notifier.cases.status import (
    CLEARED,
    CLOSED,
    CONFIRMED,
    FALSE_ALARM,
    OPEN_STATUSES,
    PENDING,
    RESOLUTIONS,
    VERIFYING,
    CaseError,
    CaseNotFoundError,
    check_transition,
)
from notifier.cases.tables import case_history, case_syncs, cases
from profiles.schema import MONEY_DTYPE

SYSTEM = "system"

#: Case tiers: the two risk tiers of improper findings, and data verification for undetermined ones.
CASE_TIERS: tuple[str, ...] = ("high", "medium", "verification")
TIER_LABELS: Mapping[str, str] = {"high": FINDING_TIER_LABELS["high"], "medium": FINDING_TIER_LABELS["medium"],
                                  "verification": "数据核实"}
#: Which tier wins when a findings file holds the same taxpayer × rule × period twice.
_TIER_RANK: Mapping[str, int] = {"high": 0, "medium": 1, "verification": 2, "low": 3}

#: Findings columns the ledger reads (a subset of engine.findings.FINDINGS_SCHEMA).
SYNC_COLUMNS: tuple[str, ...] = (
    "taxpayer_id", "period", "rule_id", "rule_name", "kind", "estimated_amount", "claimed_amount",
    "risk_tier", "reasons", "evidence", "basis", "rule_version", "ruleset_version", "taxpayer_name",
    "district", "tax_authority",
)
_TEXT_COLUMNS = ("rule_name", "reasons", "basis", "taxpayer_name", "district", "tax_authority")

#: Key of the PostgreSQL advisory lock that serialises syncs (any constant shared by all writers).
_SYNC_LOCK_KEY = 0x7A78_6361_7365  # "zxcase"


# ----------------------------------------------------------------------------------------- service levels


@dataclass(frozen=True)
class ServiceLevels:
    """Days an officer has to finish a case, by tier (calendar days from the day it was opened)."""

    high: int = 10
    medium: int = 20
    verification: int = 30

    def days(self, tier: str) -> int:
        return int(getattr(self, tier))

    def due(self, tier: str, opened_on: date) -> date:
        return opened_on + timedelta(days=self.days(tier))

    @classmethod
    def parse(cls, items: Iterable[str], base: ServiceLevels | None = None) -> ServiceLevels:
        """`high=10`, `medium=20`, `verification=30` (也接受 高风险/中风险/数据核实) over `base`."""
        names = {**{t: t for t in CASE_TIERS}, **{label: t for t, label in TIER_LABELS.items()}}
        values = asdict(base or cls())
        for item in items:
            name, sep, days = item.partition("=")
            tier = names.get(name.strip())
            if not sep or tier is None or not days.strip().isdigit() or int(days) <= 0:
                raise CaseError(
                    f"办理时限 {item!r} 格式不正确：应为 等级=天数，如 high=10、medium=20、verification=30"
                )
            values[tier] = int(days)
        return cls(**values)


# ------------------------------------------------------------------------------------------------ triage


@dataclass(frozen=True)
class Triage:
    """A run's findings sorted by what happens to them."""

    cases: pl.DataFrame  # risk cases (tier high/medium) and data-verification items (tier verification)
    reminders: pl.DataFrame  # low-tier improper claims: a reminder to the taxpayer, not a case
    duplicates: int  # rows dropped because the same taxpayer × rule × period appeared again


def triage(findings: pl.DataFrame) -> Triage:
    """Sort findings into cases, verification items and reminders; unclaimed findings are for letters.

    Adds the column `tier` (high / medium / verification / low). An improper finding without a tier is
    treated as medium: a case that is not needed costs an officer a look, a missed one costs revenue.
    """
    missing = [c for c in SYNC_COLUMNS if c not in findings.columns]
    if missing:
        raise InputError(
            f"发现结果缺少列 {', '.join(missing)}：请使用 zhixiang run 生成的 findings.parquet"
        )
    who = audience_expr()
    tier = (
        pl.when(who == "verification").then(pl.lit("verification"))
        .when(who == "case").then(pl.when(pl.col("risk_tier").is_in(["high", "medium"])).then(pl.col("risk_tier"))
                                  .otherwise(pl.lit("medium")))
        .when(who == "reminder").then(pl.col("risk_tier"))
        .otherwise(pl.lit(None, pl.String))
    )
    frame = (
        findings.select(SYNC_COLUMNS)
        .with_columns(
            pl.col("estimated_amount").cast(MONEY_DTYPE),
            pl.col("claimed_amount").cast(MONEY_DTYPE),
            *(pl.col(c).fill_null("") for c in _TEXT_COLUMNS),
            tier.alias("tier"),
        )
        .filter(pl.col("tier").is_not_null())
    )
    before = frame.height
    frame = (
        frame.with_columns(pl.col("tier").replace_strict(_TIER_RANK, default=9, return_dtype=pl.Int8).alias("_rank"))
        .sort(["_rank", "estimated_amount"], descending=[False, True], nulls_last=True)
        .unique(["taxpayer_id", "rule_id", "period"], keep="first", maintain_order=True)
        .drop("_rank")
    )
    worthy = pl.col("tier").is_in(["high", "medium", "verification"])
    return Triage(cases=frame.filter(worthy), reminders=frame.filter(~worthy), duplicates=before - frame.height)


# ------------------------------------------------------------------------------------ numbers and prints

#: Crockford's base32 digits (no I, L, O, U: nothing to misread when a number is read aloud), in pairs.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def case_number(taxpayer_id: str, rule_id: str, period: str) -> str:
    """The case number of taxpayer × rule × period, e.g. `FX-2025-small_low_profit_cit-7K3M9Q2XH4TB`.

    A pure function of the key, so the same problem has the same number in every run and in every
    database. 60 bits of SHA-256 in Crockford base32: the chance that two of a year's cases of one
    rule collide is below 1e-4 even at twenty million cases (and a collision is refused, not merged).
    """
    digest = hashlib.sha256(f"{taxpayer_id}|{rule_id}|{period}".encode()).digest()
    bits = int.from_bytes(digest[:8], "big") >> 4  # the first 60 bits
    code = "".join(_PAIRS[(bits >> shift) & 1023] for shift in (50, 40, 30, 20, 10, 0))
    return f"FX-{period[:4]}-{rule_id}-{code}"


def case_numbers(frame: pl.DataFrame) -> pl.Series:
    """`case_number` of every row of a frame with taxpayer_id, rule_id and period."""
    keys = zip(frame["taxpayer_id"].to_list(), frame["rule_id"].to_list(), frame["period"].to_list(), strict=True)
    return pl.Series("case_no", [case_number(t, r, p) for t, r, p in keys], dtype=pl.String)


# -------------------------------------------------------------------------------------------------- sync


@dataclass
class SyncReport:
    """What one sync did to the ledger."""

    run_id: str
    opened: int = 0  # new cases
    updated: int = 0  # open cases whose evidence, amount or tier changed
    reopened: int = 0  # decided, closed or cleared cases that came back with new evidence
    cleared: int = 0  # open cases the run no longer found (→ 已消除)
    unchanged: int = 0  # cases found again with the same evidence
    kept_decided: int = 0  # of those, decided cases not reopened (e.g. 误报 with the same evidence)
    reminders: int = 0  # low-tier improper findings, left to taxpayer reminders
    verification: int = 0  # data-verification items among the run's findings
    duplicates: int = 0  # repeated taxpayer × rule × period rows dropped from the input
    by_tier: dict[str, int] = field(default_factory=dict)  # case-worthy findings of the run by tier

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: What the sync reads of the cases in its scope: text columns only, so the read is cheap.
_EXISTING: dict[str, pl.DataType] = {
    "case_no": pl.String(), "old_taxpayer_id": pl.String(), "old_rule_id": pl.String(), "old_period": pl.String(),
    "old_status": pl.String(), "old_resolution": pl.String(), "old_fingerprint": pl.String(),
    "old_tier": pl.String(), "old_kind": pl.String(), "old_cleared_run_id": pl.String(),
}
#: Case columns taken from the finding on every write.
_FROM_FINDING: dict[str, str] = {
    "kind": "kind", "tier": "tier", "amount": "estimated_amount", "claimed_amount": "claimed_amount",
    "reasons": "reasons", "evidence": "evidence", "fingerprint": "fingerprint", "rule_name": "rule_name",
    "basis": "basis", "rule_version": "rule_version", "ruleset_version": "ruleset_version",
    "taxpayer_name": "taxpayer_name", "tax_authority": "tax_authority", "district": "district",
}


def sync_findings(
    engine: Engine,
    findings: pl.DataFrame,
    *,
    run_id: str,
    as_of: date,
    periods: Collection[str],
    rules: Collection[str] | None = None,
    service_levels: ServiceLevels | None = None,
    at: datetime | None = None,
) -> SyncReport:
    """Bring the ledger in line with one run's findings for `periods` (and `rules`, None = every rule).

    New problems open cases (待分派); open cases take the run's evidence, amount and tier; a decided or
    closed case is reopened only when its evidence changed (so 误报 stays 误报 on the same evidence), or
    when a corrected problem comes back after a run had stopped finding it; a case cleared by the
    system reopens whenever its problem is found again. Open cases within the run's scope that the run
    no longer finds become 已消除, recording `run_id`. One transaction; a few bulk statements in all.
    """
    if not run_id.strip():
        raise CaseError("运行编号 run_id 不能为空")
    scope_periods = sorted(set(periods))
    sorted_out = triage(findings)
    found = sorted_out.cases
    stray = sorted(set(found["period"].unique().to_list()) - set(scope_periods))
    if stray:
        raise InputError(f"发现结果含有所属期 {', '.join(stray)}，不在本次同步的所属期 {', '.join(scope_periods)} 之内")
    at = at or datetime.now(UTC)
    rule_scope = None if rules is None else sorted(set(rules))
    found = found.with_columns(case_numbers(found), fingerprints(found))
    report = SyncReport(run_id=run_id, reminders=sorted_out.reminders.height, duplicates=sorted_out.duplicates,
                        by_tier={t: int((found["tier"] == t).sum()) for t in CASE_TIERS})
    report.verification = report.by_tier["verification"]
    reminder_nos = case_numbers(sorted_out.reminders)

    with _write_transaction(engine) as conn:
        inserted = conn.execute(
            insert(case_syncs).values(run_id=run_id, as_of=as_of, periods=scope_periods, rules=rule_scope,
                                      started_at=at)
        ).inserted_primary_key
        assert inserted is not None  # a single-row INSERT always has one
        existing = _load_existing(conn, scope_periods)
        plan = _Plan(run_id=run_id, as_of=as_of, at=at, levels=service_levels or ServiceLevels())
        plan.take(_classify(found, existing), conn, report)
        lost = existing.join(found.select("case_no"), on="case_no", how="anti")
        if rule_scope is not None:
            lost = lost.filter(pl.col("old_rule_id").is_in(rule_scope))
        plan.lose(lost.with_columns(pl.col("case_no").is_in(reminder_nos.implode()).alias("to_reminder")), report)
        plan.write(conn)
        conn.execute(update(case_syncs).where(case_syncs.c.id == inserted[0])
                     .values(finished_at=datetime.now(UTC), counts=report.as_dict()))
    return report


def _load_existing(conn: Connection, periods: Sequence[str]) -> pl.DataFrame:
    cols = [cases.c[name.removeprefix("old_")] for name in _EXISTING]
    rows = conn.execute(select(*cols).where(cases.c.period.in_(periods))).all() if periods else []
    return pl.DataFrame([tuple(r) for r in rows], schema=_EXISTING, orient="row")


def _classify(found: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Each finding with its case's current state, the action it calls for and, to reopen, why.

    insert: no case yet · refresh: open case, new evidence/tier · touch: open case, same evidence ·
    reopen: a case not open comes back (see `reopen_why`) · keep: decided, same evidence, stays decided.
    """
    status, resolution = pl.col("old_status"), pl.col("old_resolution")
    is_open = status.is_in(sorted(OPEN_STATUSES))
    changed = pl.col("old_fingerprint") != pl.col("fingerprint")
    why = (
        pl.when(status == CLEARED).then(pl.lit("问题再次出现"))
        .when(changed & (resolution == FALSE_ALARM)).then(pl.lit("新一轮运行的证据与误报认定时不同"))
        .when(changed).then(pl.lit("新一轮运行的证据发生变化"))
        # The run had stopped finding it (the correction showed in the data) and now finds it again.
        .when(resolution.is_in(sorted(CONFIRMED)) & pl.col("old_cleared_run_id").is_not_null())
        .then(pl.lit("问题在更正后再次出现"))
    )
    action = (
        pl.when(status.is_null()).then(pl.lit("insert"))
        .when(is_open & (changed | (pl.col("old_tier") != pl.col("tier")) | (pl.col("old_kind") != pl.col("kind"))))
        .then(pl.lit("refresh"))
        .when(is_open).then(pl.lit("touch"))
        .when(why.is_not_null()).then(pl.lit("reopen"))
        .otherwise(pl.lit("keep"))
    )
    frame = found.join(existing, on="case_no", how="left").with_columns(action.alias("action"), why.alias("why"))
    clash = frame.filter(status.is_not_null() & ((pl.col("old_taxpayer_id") != pl.col("taxpayer_id"))
                                                 | (pl.col("old_rule_id") != pl.col("rule_id"))
                                                 | (pl.col("old_period") != pl.col("period"))))
    if clash.height:
        row = clash.row(0, named=True)
        raise ZhixiangError(f"案件编号 {row['case_no']} 冲突（{row['old_taxpayer_id']} {row['old_period']} 与 "
                            f"{row['taxpayer_id']} {row['period']}）：请联系系统管理员")
    return frame


@dataclass
class _Plan:
    """The rows one sync will write, gathered per action and written in bulk."""

    run_id: str
    as_of: date
    at: datetime
    levels: ServiceLevels
    inserts: list[dict[str, Any]] = field(default_factory=list)
    refreshes: list[dict[str, Any]] = field(default_factory=list)  # open case, new evidence
    reopens: list[dict[str, Any]] = field(default_factory=list)
    clears: list[str] = field(default_factory=list)  # open → 已消除
    gone: list[str] = field(default_factory=list)  # a decided case no longer found: note the run
    returned: list[str] = field(default_factory=list)  # decided, no longer found before, found again unchanged
    history: list[dict[str, Any]] = field(default_factory=list)

    def take(self, frame: pl.DataFrame, conn: Connection, report: SyncReport) -> None:
        """Plan what each classified finding does to its case."""
        parts = frame.partition_by("action", as_dict=True, include_key=False)

        def get(action: str) -> pl.DataFrame:
            return parts.get((action,), frame.clear())

        for row in self._values(get("insert")):
            self.inserts.append({**row, "status": PENDING, "opened_on": self.as_of,
                                 "due_on": self.levels.due(row["tier"], self.as_of), "first_run_id": self.run_id,
                                 "created_at": self.at, "cleared_run_id": None})
            note = f"新立案：{TIER_LABELS[row['tier']]}，{_amount_text(row['amount'])}"
            self._log(row["case_no"], None, PENDING, note)
        refresh = get("refresh")
        before = _amounts_and_dates(conn, refresh["case_no"].to_list())
        for row, (status, old_tier) in zip(self._values(refresh), refresh.select("old_status", "old_tier").iter_rows(),
                                           strict=True):
            old_amount, opened_on = before[row["case_no"]]
            self.refreshes.append({**_update_values(row), "due_on": self.levels.due(row["tier"], opened_on)})
            self._log(row["case_no"], status, status, "证据更新：" + _changes(old_amount, old_tier, row))
        reopen = get("reopen")
        for status, first in reopen.group_by("old_status").agg(pl.col("case_no").first()).iter_rows():
            check_transition(first, status, PENDING, "system")
        for row, (status, why) in zip(self._values(reopen), reopen.select("old_status", "why").iter_rows(),
                                      strict=True):
            self.reopens.append({
                **_update_values(row), "status": PENDING, "assignee": None, "resolution": None,
                "resolution_reason": None, "opened_on": self.as_of, "due_on": self.levels.due(row["tier"], self.as_of),
                "cleared_run_id": None,
            })
            self._log(row["case_no"], status, PENDING,
                      f"{why}，重新打开：{TIER_LABELS[row['tier']]}，{_amount_text(row['amount'])}")
        keep = get("keep")
        # Unchanged cases need no write; a decided case that a run had stopped finding is found again.
        self.returned = keep.filter(pl.col("old_cleared_run_id").is_not_null())["case_no"].to_list()
        report.opened, report.updated, report.reopened = len(self.inserts), len(self.refreshes), len(self.reopens)
        report.unchanged, report.kept_decided = get("touch").height + keep.height, keep.height

    def lose(self, lost: pl.DataFrame, report: SyncReport) -> None:
        """Plan what it means that the run no longer finds these cases' problems."""
        open_ = lost.filter(pl.col("old_status").is_in(sorted(OPEN_STATUSES)))
        for status, first in open_.group_by("old_status").agg(pl.col("case_no").first()).iter_rows():
            check_transition(first, status, CLEARED, "system")
        for case_no, status, to_reminder in open_.select("case_no", "old_status", "to_reminder").iter_rows():
            self.clears.append(case_no)
            note = (f"运行 {self.run_id}：风险等级降为低风险，改为向纳税人发送提醒，不再立案" if to_reminder
                    else f"运行 {self.run_id} 未再发现该问题")
            self._log(case_no, status, CLEARED, note)
        decided = lost.filter(~pl.col("old_status").is_in([*OPEN_STATUSES, CLEARED])
                              & pl.col("old_cleared_run_id").is_null())
        for case_no, status in decided.select("case_no", "old_status").iter_rows():
            self.gone.append(case_no)
            self._log(case_no, status, status, f"运行 {self.run_id} 未再发现该问题（状态不变）")
        report.cleared = len(self.clears)

    def write(self, conn: Connection) -> None:
        """Run the plan: a handful of bulk statements whatever the number of rows."""
        insert_rows(conn, cases, self.inserts, conflict_key=("taxpayer_id", "rule_id", "period"))
        update_rows(conn, cases, "case_no", self.refreshes)
        update_rows(conn, cases, "case_no", self.reopens)
        update_keys(conn, cases, "case_no", self.clears,
                    {"status": CLEARED, "cleared_run_id": self.run_id, "updated_at": self.at})
        update_keys(conn, cases, "case_no", self.gone, {"cleared_run_id": self.run_id, "updated_at": self.at})
        update_keys(conn, cases, "case_no", self.returned, {"cleared_run_id": None, "updated_at": self.at})
        insert_rows(conn, case_history, self.history)

    def _values(self, frame: pl.DataFrame) -> list[dict[str, Any]]:
        """The case columns a finding sets, one dict per row."""
        # Evidence is serialised to JSON by Polars: no Python object per condition, no second encoding.
        evidence = pl.format("[{}]", pl.col("evidence").list.eval(pl.element().struct.json_encode()).list.join(","))
        rows = frame.select(
            "case_no", "taxpayer_id", "rule_id", "period",
            *(pl.col(src).alias(dst) for dst, src in _FROM_FINDING.items() if dst != "evidence"),
            evidence.fill_null("[]").alias("evidence"),
        ).to_dicts()
        for row in rows:
            row["evidence"] = EncodedJSON(row["evidence"])
            row["evidence_run_id"] = self.run_id
            row["updated_at"] = self.at
        return rows

    def _log(self, case_no: str, from_status: str | None, to_status: str, note: str) -> None:
        self.history.append({"case_no": case_no, "at": self.at, "actor": SYSTEM, "from_status": from_status,
                             "to_status": to_status, "note": note, "run_id": self.run_id})


def _update_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """A finding's values for an UPDATE: the key columns never change."""
    return {k: v for k, v in row.items() if k not in ("taxpayer_id", "rule_id", "period")}


def _amounts_and_dates(conn: Connection, case_nos: Sequence[str]) -> dict[str, tuple[Decimal | None, date]]:
    """Current amount and opening date of some cases (for the notes and due dates of refreshed cases)."""
    found: dict[str, tuple[Decimal | None, date]] = {}
    for chunk in chunks(case_nos, IN_CHUNK):
        stmt = select(cases.c.case_no, cases.c.amount, cases.c.opened_on).where(cases.c.case_no.in_(chunk))
        found.update({r.case_no: (r.amount, r.opened_on) for r in conn.execute(stmt)})
    return found


def _amount_text(amount: Decimal | None) -> str:
    return f"涉及金额 {money(amount, '元')}"


def _changes(old_amount: Decimal | None, old_tier: str, row: Mapping[str, Any]) -> str:
    parts = []
    if old_amount != row["amount"]:
        parts.append(f"涉及金额 {money(old_amount)} → {money(row['amount'])} 元")
    if old_tier != row["tier"]:
        parts.append(f"等级 {TIER_LABELS.get(old_tier, old_tier)} → {TIER_LABELS[row['tier']]}")
    if not parts:
        parts.append("条件取值有变化")
    return "；".join(parts)


@contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the ledger's write lock from its first statement.

    PostgreSQL: an advisory lock, so two syncs never interleave. SQLite: the first statement of a sync
    is a write, which takes the database's write lock; the reads after it see a settled ledger.
    """
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SYNC_LOCK_KEY})
            yield conn
    except OperationalError as err:
        raise _busy(err) from err


def _busy(err: OperationalError) -> ZhixiangError:
    if "locked" in str(err).lower():
        return ZhixiangError("状态数据库正忙（可能正在同步运行结果），请稍后重试")
    return ZhixiangError(f"状态数据库操作失败：{err.orig}")


# ------------------------------------------------------------------------------------------ officer moves


@dataclass(frozen=True)
class CaseChange:
    """One status change an officer made."""

    case_no: str
    from_status: str
    to_status: str


def assign(engine: Engine, case_nos: Sequence[str], officer: str, *, actor: str, note: str = "",
           at: datetime | None = None) -> list[CaseChange]:
    """Give cases to `officer` (待分派 → 核实中; a case already 核实中 is reassigned)."""
    if not officer.strip():
        raise CaseError("请指定承办人（--to 姓名或工号）")
    return _move(engine, case_nos, VERIFYING, actor=actor, note=note or f"分派给 {officer.strip()}",
                 values={"assignee": officer.strip()}, at=at)


def resolve(engine: Engine, case_nos: Sequence[str], outcome: str, *, actor: str, reason: str = "",
            at: datetime | None = None) -> list[CaseChange]:
    """Record the officer's decision: 已更正 / 放弃优惠 / 误报 (a false alarm needs its reason)."""
    if outcome not in RESOLUTIONS:
        raise CaseError(f"核实结论应为 {'、'.join(RESOLUTIONS)} 之一，而不是 {outcome!r}")
    if outcome == FALSE_ALARM and not reason.strip():
        raise CaseError("认定为误报必须说明理由（--reason），以便改进规则")
    return _move(engine, case_nos, outcome, actor=actor, note=reason.strip(),
                 values={"resolution": outcome, "resolution_reason": reason.strip() or None}, at=at)


def close(engine: Engine, case_nos: Sequence[str], *, actor: str, note: str = "",
          at: datetime | None = None) -> list[CaseChange]:
    """Close decided cases (已更正 / 放弃优惠 / 误报 → 已关闭); the decision stays in `resolution`."""
    return _move(engine, case_nos, CLOSED, actor=actor, note=note.strip(), values={}, at=at)


def send_back(engine: Engine, case_nos: Sequence[str], *, actor: str, note: str,
              at: datetime | None = None) -> list[CaseChange]:
    """Return a decided case for more verification (→ 核实中); the earlier decision is withdrawn."""
    if not note.strip():
        raise CaseError("退回重新核实必须说明理由（--reason）")
    return _move(engine, case_nos, VERIFYING, actor=actor, note=note.strip(),
                 values={"resolution": None, "resolution_reason": None}, at=at)


def _move(engine: Engine, case_nos: Sequence[str], target: str, *, actor: str, note: str,
          values: Mapping[str, Any], at: datetime | None) -> list[CaseChange]:
    """Move every case to `target` or none of them: all checks pass before anything is written."""
    numbers = list(dict.fromkeys(n.strip() for n in case_nos if n.strip()))
    if not numbers:
        raise CaseError("请至少指定一个案件编号")
    if not actor.strip():
        raise CaseError("请指定操作人（--by）")
    at = at or datetime.now(UTC)
    try:
        with engine.begin() as conn:
            current = {r.case_no: r.status for r in conn.execute(
                select(cases.c.case_no, cases.c.status).where(cases.c.case_no.in_(numbers)))}
            missing = [n for n in numbers if n not in current]
            if missing:
                raise CaseNotFoundError(f"没有编号为 {'、'.join(missing)} 的案件（可用 zhixiang cases list 查找）")
            for n in numbers:
                check_transition(n, current[n], target, "officer")
            changes = [CaseChange(n, current[n], target) for n in numbers]
            for ch in changes:
                done = conn.execute(
                    update(cases).where(cases.c.case_no == ch.case_no, cases.c.status == ch.from_status)
                    .values(status=target, updated_at=at, **values)
                ).rowcount
                if done != 1:
                    raise CaseError(f"案件 {ch.case_no} 刚被他人修改，请用 zhixiang cases show 查看后重试")
            conn.execute(insert(case_history), [
                {"case_no": ch.case_no, "at": at, "actor": actor.strip(), "from_status": ch.from_status,
                 "to_status": target, "note": note, "run_id": None} for ch in changes
            ])
    except OperationalError as err:
        raise _busy(err) from err
    return changes


# ------------------------------------------------------------------------------------------ run folders


@dataclass(frozen=True)
class FindingsFolder:
    """A run's output folder, read for the ledger: its findings and the scope the run covered."""

    findings: pl.DataFrame
    periods: tuple[str, ...]  # from summary.json, else the periods present in the findings
    rules: frozenset[str] | None  # rules the run judged (summary.json by_rule); None when unknown
    run_id: str  # summary.json run_id, else period + generation time + summary hash, else findings hash


def read_findings_folder(path: str | Path) -> FindingsFolder:
    """Read `findings.parquet` (and `summary.json` when present) from a `zhixiang run` output folder.

    The summary tells the run's scope: the period and every rule judged — with or without findings —
    which is what lets a sync clear cases the run no longer finds. Without it the scope falls back to
    the periods present in the findings and every rule.
    """
    folder = Path(path)
    parquet = folder if folder.suffix == ".parquet" or folder.is_file() else folder / FINDINGS_FILE
    findings = read_findings(parquet)
    summary: dict[str, Any] = {}
    summary_bytes = b""
    summary_path = parquet.parent / "summary.json"
    if summary_path.is_file():
        try:
            summary_bytes = summary_path.read_bytes()
            summary = json.loads(summary_bytes.decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"无法读取 {summary_path}：{exc}") from exc
    periods = summary.get("periods") or ([summary["period"]] if summary.get("period") else [])
    if not periods and "period" in findings.columns:
        periods = sorted(findings["period"].drop_nulls().unique().to_list())
    by_rule = summary.get("by_rule")
    rules = frozenset(str(r["rule_id"]) for r in by_rule if "rule_id" in r) if isinstance(by_rule, list) else None
    run_id = summary.get("run_id")
    if not run_id and summary.get("generated_at"):
        # Period and time for people; a hash of the summary (inputs, counts) so two runs never share an id.
        stamp = re.sub(r"[^0-9T]", "", str(summary["generated_at"]))[:15]
        run_id = f"run-{'+'.join(map(str, periods))}-{stamp}-{hashlib.sha256(summary_bytes).hexdigest()[:6]}"
    if not run_id:
        run_id = "findings-" + hashlib.sha256(parquet.read_bytes()).hexdigest()[:12]
    return FindingsFolder(findings=findings, periods=tuple(str(p) for p in periods), rules=rules, run_id=str(run_id))
