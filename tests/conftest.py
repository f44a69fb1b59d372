"""Shared fixtures: state databases on SQLite and on a real PostgreSQL server; a real local SMTP server."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# Property tests: reproducible in CI (the same examples every run, no example database, the failing example
# printed for replay); locally they keep exploring new examples. HYPOTHESIS_PROFILE chooses explicitly.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@contextmanager
def fresh_pg_database(prefix: str = "zx_") -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (ZHIXIANG_TEST_PG_URL, which scripts/test
    starts), dropped afterwards. Under CI its absence is a failure, not a skip: PostgreSQL is tested for real."""
    admin = os.environ.get("ZHIXIANG_TEST_PG_URL")
    if not admin:
        if os.environ.get("CI"):
            pytest.fail("ZHIXIANG_TEST_PG_URL is not set: run the tests with scripts/test")
        pytest.skip("no PostgreSQL server (set ZHIXIANG_TEST_PG_URL or use scripts/test)")
    import psycopg

    name = prefix + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state database URL: a SQLite file, then a new PostgreSQL database.

    PostgreSQL comes from ZHIXIANG_TEST_PG_URL (scripts/test starts one). Under CI its absence is a
    failure, not a skip: both backends must be tested for real.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    with fresh_pg_database() as url:
        yield url


# ------------------------------------------------------------------------------------- a mail server

def free_port() -> int:
    """A TCP port nobody listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MailSink:
    """An aiosmtpd handler that keeps messages, and can refuse or defer them on demand."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse_rcpt: str | None = None
        self.defer_data = 0  # answer DATA with 451 this many times first

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.refuse_rcpt and address == self.refuse_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.defer_data > 0:
            self.defer_data -= 1
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[MailSink, int]]:
    """A real SMTP server (aiosmtpd) on a free local port, keeping what it receives."""
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()
