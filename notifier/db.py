"""The state database: one SQLAlchemy engine for everything Zhixiang must remember between runs.

SQLite (a file) is the embedded default; PostgreSQL is the production option, chosen by URL
(`postgresql://user@host/db`, driven by psycopg 3). The suppression ledger, the case ledger and the
run ledger all declare their tables on `METADATA` here, so one `create_all` sets up a database.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine

from engine.errors import EXIT_RUNTIME_ERROR, ZhixiangError
from profiles.errors import mask_secrets

METADATA = MetaData()

DEFAULT_STATE_URL = "sqlite:///zhixiang-state.sqlite"
#: The environment variable every command reads the state database URL from (the nightly's
#: configuration reads the same name as its `state_url` key).
STATE_URL_ENV = "ZHIXIANG_STATE_URL"


class StateDatabaseError(ZhixiangError):
    """The state database URL is wrong or the database cannot be reached (exit code 4)."""

    exit_code = EXIT_RUNTIME_ERROR


def normalise_url(url: str | Path) -> str:
    """Accept a plain file path for SQLite and `postgresql://` for PostgreSQL (psycopg 3 driver)."""
    text = str(url)
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    if text.startswith("postgresql://") or text.startswith("postgres://"):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith("sqlite://") or text.startswith("postgresql+"):
        return text
    raise StateDatabaseError(
        f"不支持的状态数据库地址 {mask_secrets(text)!r}：请使用 SQLite 文件路径（如 state.sqlite）"
        "或 postgresql://用户@主机/数据库"
    )


def state_exists(url: str | Path) -> bool:
    """False only for a SQLite file that is not there yet (opening it would create it); a server
    database is taken to exist."""
    text = normalise_url(url)
    if not text.startswith("sqlite:///") or text.endswith(":memory:"):
        return True
    return Path(text.removeprefix("sqlite:///")).exists()


def open_state(url: str | Path) -> Engine:
    """Open (and create the tables of) the state database at `url`."""
    engine = create_engine(normalise_url(url), future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    for attempt in range(3):
        try:
            METADATA.create_all(engine)
            break
        except Exception as exc:  # the driver's error type varies; the user needs the URL and the cause
            # Two processes opening a new database at once (two schedulers, a scheduler and its nightly)
            # both find a table missing and both create it; the loser's CREATE fails. Checking again settles it.
            if attempt == 2:
                cause = mask_secrets(str(exc))
                raise StateDatabaseError(f"无法打开状态数据库 {mask_secrets(str(url))}: {cause}") from exc
            time.sleep(0.2 * (attempt + 1))
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
