"""People and machines who may use the workbench, and the audit log of what they did.

Accounts (argon2-hashed passwords, a role and the tax authority they belong to), API tokens scoped like
people, browser sessions kept on the server (the cookie holds only a random token) and the append-only
audit log. The tables live on `notifier.db.METADATA`, so `open_state` creates them on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from engine.errors import EXIT_USAGE, ZhixiangError
from notifier.cases.tables import HistoryId, UTCDateTime
from notifier.db import METADATA

#: The four roles of the issue, in Chinese as officers name them.
OFFICER = "科员"  # sees the authority's cases, acts on those assigned to them
CHIEF = "科长"  # also assigns within the authority
ANALYST = "分析员"  # reads every authority, runs and reports; no case actions
ADMIN = "管理员"  # accounts and the audit log
ROLES: tuple[str, ...] = (OFFICER, CHIEF, ANALYST, ADMIN)
ROLE_ALIASES = {"officer": OFFICER, "chief": CHIEF, "analyst": ANALYST, "admin": ADMIN}

#: Failed logins in a row that lock an account, and for how long.
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_TTL = timedelta(hours=8)
MIN_PASSWORD = 10

_HASHER = PasswordHasher()

users = Table(
    "wb_users",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("authority", String(64), nullable=False, default=""),  # 主管税务机关代码; "" for 分析员/管理员
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_tokens = Table(
    "wb_api_tokens",
    METADATA,
    Column("token_id", String(16), primary_key=True),  # the public half: `zx_<id>_<secret>`
    Column("secret_hash", String(64), nullable=False),  # sha256 of the secret (it has 256 bits: no stretching)
    Column("name", String(64), nullable=False),
    Column("role", String(8), nullable=False),
    Column("authority", String(64), nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

web_sessions = Table(
    "wb_sessions",
    METADATA,
    Column("token_hash", String(64), primary_key=True),
    Column("user_name", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

audit_log = Table(
    "wb_audit",
    METADATA,
    Column("id", HistoryId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),  # account or token name; "-" before login
    Column("action", String(32), nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("remote", String(64), nullable=False, default=""),
    Index("ix_wb_audit_at", "at"),
)


WORKBENCH_TABLES = (users, api_tokens, web_sessions, audit_log)


def ensure_tables(engine: Engine) -> None:
    """Create the workbench's tables in a state database opened before this module was imported."""
    METADATA.create_all(engine, tables=list(WORKBENCH_TABLES))


class AccountError(ZhixiangError):
    """An account or token request that cannot be done."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Principal:
    """Who is asking: a person (kind "user") or a machine client (kind "token"), with role and authority."""

    name: str
    role: str
    authority: str
    kind: str = "user"

    @property
    def reads_all(self) -> bool:
        return self.role == ANALYST

    @property
    def sees_cases(self) -> bool:
        return self.role in (OFFICER, CHIEF, ANALYST)

    def authorities(self) -> list[str] | None:
        """Authorities whose cases this principal may read (None: every authority)."""
        if self.reads_all:
            return None
        if self.role in (OFFICER, CHIEF):
            return [self.authority]
        return []

    def may_read(self, authority: str) -> bool:
        scope = self.authorities()
        return scope is None or authority in scope

    def may_assign(self, authority: str) -> bool:
        return self.role == CHIEF and authority == self.authority

    def may_resolve(self, authority: str, assignee: str | None) -> bool:
        if self.role == CHIEF:
            return authority == self.authority
        return self.role == OFFICER and authority == self.authority and assignee == self.name


def now() -> datetime:
    return datetime.now(UTC)


def parse_role(text: str) -> str:
    value = text.strip()
    value = ROLE_ALIASES.get(value.lower(), value)
    if value not in ROLES:
        raise AccountError(f"未知的角色 {text!r}：应为 {'、'.join(ROLES)}")
    return value


def _check_scope(role: str, authority: str) -> str:
    authority = authority.strip()
    if role in (OFFICER, CHIEF) and not authority:
        raise AccountError(f"角色「{role}」必须用 --authority 指定主管税务机关代码")
    return authority if role in (OFFICER, CHIEF) else ""


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符")


def add_user(engine: Engine, name: str, role: str, authority: str, password: str) -> None:
    name = name.strip()
    if not name or len(name) > 64:
        raise AccountError("用户名不能为空，且不超过 64 个字符")
    role = parse_role(role)
    authority = _check_scope(role, authority)
    _check_password(password)
    with engine.begin() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == name)).first():
            raise AccountError(f"用户 {name} 已存在")
        conn.execute(insert(users).values(name=name, role=role, authority=authority,
                                          password_hash=_HASHER.hash(password), disabled=False, failed_logins=0,
                                          created_at=now()))


def list_users(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(users.c.name, users.c.role, users.c.authority, users.c.disabled,
                                   users.c.failed_logins, users.c.locked_until, users.c.created_at)
                            .order_by(users.c.name))
        return [dict(r._mapping) for r in rows]


def users_of(engine: Engine, authority: str) -> list[str]:
    """Active officers and chiefs of an authority (whom a chief may assign cases to)."""
    with engine.connect() as conn:
        return list(conn.execute(select(users.c.name).where(
            users.c.authority == authority, users.c.disabled.is_(False), users.c.role.in_([OFFICER, CHIEF]))
            .order_by(users.c.name)).scalars())


def _user_exists(engine: Engine, name: str) -> None:
    with engine.connect() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == name)).first() is None:
            raise AccountError(f"没有用户 {name}（可用 zhixiang users list 查看）")


def set_disabled(engine: Engine, name: str, disabled: bool = True) -> None:
    _user_exists(engine, name)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.name == name).values(disabled=disabled))
        if disabled:
            conn.execute(web_sessions.delete().where(web_sessions.c.user_name == name))


def set_password(engine: Engine, name: str, password: str) -> None:
    """A new password; also lifts a lockout and ends the user's sessions."""
    _user_exists(engine, name)
    _check_password(password)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.name == name).values(
            password_hash=_HASHER.hash(password), failed_logins=0, locked_until=None))
        conn.execute(web_sessions.delete().where(web_sessions.c.user_name == name))


@dataclass(frozen=True)
class LoginResult:
    principal: Principal | None
    reason: str  # "ok", "bad", "locked", "disabled"


def authenticate(engine: Engine, name: str, password: str, *, at: datetime | None = None) -> LoginResult:
    """Check a password; count failures and lock the account after MAX_FAILURES in a row.

    An unknown name costs the same hash as a known one, so timing does not tell which names exist.
    """
    at = at or now()
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.name == name.strip())).first()
        if row is None:
            with contextlib.suppress(VerificationError):
                _HASHER.verify(_DUMMY_HASH, password)
            return LoginResult(None, "bad")
        if row.locked_until is not None and row.locked_until > at:
            return LoginResult(None, "locked")
        ok: bool = False
        with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
            ok = _HASHER.verify(row.password_hash, password)
        if not ok:
            failures = (row.failed_logins or 0) + 1
            locked = at + LOCKOUT if failures >= MAX_FAILURES else None
            conn.execute(update(users).where(users.c.name == row.name).values(
                failed_logins=0 if locked else failures, locked_until=locked))
            return LoginResult(None, "locked" if locked else "bad")
        if row.disabled:
            return LoginResult(None, "disabled")
        conn.execute(update(users).where(users.c.name == row.name).values(failed_logins=0, locked_until=None))
        if _HASHER.check_needs_rehash(row.password_hash):
            conn.execute(update(users).where(users.c.name == row.name).values(password_hash=_HASHER.hash(password)))
        return LoginResult(Principal(row.name, row.role, row.authority), "ok")


_DUMMY_HASH = _HASHER.hash("not a password of anyone")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def start_session(engine: Engine, user_name: str) -> tuple[str, str]:
    """A new session: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    at = now()
    with engine.begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at < at))
        conn.execute(insert(web_sessions).values(token_hash=_sha(token), user_name=user_name, csrf=csrf,
                                                 created_at=at, expires_at=at + SESSION_TTL))
    return token, csrf


def session_principal(engine: Engine, token: str) -> tuple[Principal, str] | None:
    """The person behind a session cookie and the session's CSRF token (None: no such live session)."""
    if not token:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.name, users.c.role, users.c.authority, users.c.disabled, web_sessions.c.csrf,
                   web_sessions.c.expires_at)
            .join(users, users.c.name == web_sessions.c.user_name)
            .where(web_sessions.c.token_hash == _sha(token))).first()
    if row is None or row.disabled or row.expires_at < now():
        return None
    return Principal(row.name, row.role, row.authority), row.csrf


def end_session(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.token_hash == _sha(token)))


def add_token(engine: Engine, name: str, role: str, authority: str) -> str:
    """A new API token (shown once): `zx_<id>_<secret>`; its holder is scoped like a person of `role`."""
    role = parse_role(role)
    if role == ADMIN:
        raise AccountError("API 令牌不能是管理员角色")
    authority = _check_scope(role, authority)
    if not name.strip():
        raise AccountError("请为令牌指定名称（调用方系统名，如 12366）")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(api_tokens).values(token_id=token_id, secret_hash=_sha(secret), name=name.strip(),
                                               role=role, authority=authority, disabled=False, created_at=now()))
    return f"zx_{token_id}_{secret}"


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(api_tokens.c.token_id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.authority,
                   api_tokens.c.disabled, api_tokens.c.created_at).order_by(api_tokens.c.created_at))]


def revoke_token(engine: Engine, token_id: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(update(api_tokens).where(api_tokens.c.token_id == token_id).values(disabled=True)).rowcount
    if done != 1:
        raise AccountError(f"没有编号为 {token_id} 的令牌（可用 zhixiang tokens list 查看）")


#: Built once: the token check runs on every API call (statement construction showed in profiles).
_TOKEN_QUERY = select(api_tokens.c.secret_hash, api_tokens.c.name, api_tokens.c.role, api_tokens.c.authority,
                      api_tokens.c.disabled).where(api_tokens.c.token_id == bindparam("token_id"))


def token_principal(engine: Engine, token: str) -> Principal | None:
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "zx":
        return None
    with engine.connect() as conn:
        row = conn.execute(_TOKEN_QUERY, {"token_id": parts[1]}).first()
    if row is None or row.disabled or not secrets.compare_digest(row.secret_hash, _sha(parts[2])):
        return None
    return Principal(f"令牌:{row.name}", row.role, row.authority, kind="token")


#: How long a server trusts a token it has checked (seconds): revoking a token or disabling it reaches a
#: running server within this time. The look-up is a database round trip on every API call otherwise.
TOKEN_CACHE_SECONDS = 5.0


class TokenCache:
    """`token_principal` remembered for `ttl` seconds per token (only valid tokens: a wrong or revoked one
    is looked up every time). Keyed by the token's hash, never the token itself; one per server process."""

    def __init__(self, engine: Engine, ttl: float = TOKEN_CACHE_SECONDS, size: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.ttl, self.size, self.clock = engine, ttl, size, clock
        self._known: dict[str, tuple[Principal, float]] = {}

    def principal(self, token: str) -> Principal | None:
        key, at = _sha(token), self.clock()
        hit = self._known.get(key)
        if hit is not None and at < hit[1]:
            return hit[0]
        found = token_principal(self.engine, token)
        if found is None:
            self._known.pop(key, None)
            return None
        if len(self._known) >= self.size:  # many distinct tokens: forget them all rather than grow
            self._known.clear()
        self._known[key] = (found, at + self.ttl)
        return found


def audit(engine: Engine, actor: str, action: str, target: str = "", detail: str = "", remote: str = "") -> None:
    """Append one action to the audit log."""
    with engine.begin() as conn:
        conn.execute(insert(audit_log).values(at=now(), actor=actor or "-", action=action, target=target,
                                              detail=detail, remote=remote))


def audit_entries(engine: Engine, *, actor: str | None = None, action: str | None = None,
                  since: datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
    stmt = select(audit_log)
    if actor:
        stmt = stmt.where(audit_log.c.actor == actor)
    if action:
        stmt = stmt.where(audit_log.c.action == action)
    if since:
        stmt = stmt.where(audit_log.c.at >= since)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt.order_by(audit_log.c.id.desc()).limit(limit))]


def audit_count(engine: Engine, actions: Sequence[str] = ()) -> int:
    stmt = select(func.count()).select_from(audit_log)
    if actions:
        stmt = stmt.where(audit_log.c.action.in_(list(actions)))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
