"""Accounts, tokens, sessions and the audit log on both state database backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from notifier.db import open_state
from workbench import accounts

PASSWORD = "correct-horse-1"


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    e = open_state(state_url)
    yield e
    e.dispose()


def test_a_password_is_checked_and_repeated_failures_lock(engine: Engine) -> None:
    accounts.add_user(engine, "li", "officer", "13301060000", PASSWORD)
    assert accounts.authenticate(engine, "li", PASSWORD).principal == accounts.Principal("li", "科员", "13301060000")
    assert accounts.authenticate(engine, "nobody", PASSWORD).reason == "bad"
    now = accounts.now()
    for i in range(accounts.MAX_FAILURES - 1):
        assert accounts.authenticate(engine, "li", f"wrong-{i}", at=now).reason == "bad"
    assert accounts.authenticate(engine, "li", "wrong", at=now).reason == "locked"
    assert accounts.authenticate(engine, "li", PASSWORD, at=now + timedelta(minutes=1)).reason == "locked"
    later = now + accounts.LOCKOUT + timedelta(seconds=1)
    assert accounts.authenticate(engine, "li", PASSWORD, at=later).reason == "ok"


def test_a_success_resets_the_failure_count(engine: Engine) -> None:
    accounts.add_user(engine, "li", "科员", "13301060000", PASSWORD)
    for _ in range(3):
        accounts.authenticate(engine, "li", "wrong")
    accounts.authenticate(engine, "li", PASSWORD)
    for _ in range(accounts.MAX_FAILURES - 1):
        accounts.authenticate(engine, "li", "wrong")
    assert accounts.authenticate(engine, "li", PASSWORD).reason == "ok"


def test_sessions_end_when_the_account_is_disabled(engine: Engine) -> None:
    accounts.add_user(engine, "wang", "科长", "13301060000", PASSWORD)
    token, csrf = accounts.start_session(engine, "wang")
    found = accounts.session_principal(engine, token)
    assert found is not None and found[0].role == "科长" and found[1] == csrf
    assert accounts.session_principal(engine, token + "x") is None
    accounts.set_disabled(engine, "wang")
    assert accounts.session_principal(engine, token) is None
    assert accounts.authenticate(engine, "wang", PASSWORD).reason == "disabled"


@pytest.mark.parametrize(("role", "authority", "message"), [
    ("科员", "", "必须"), ("科长", " ", "必须"), ("boss", "x", "未知的角色")])
def test_bad_accounts_are_refused(engine: Engine, role: str, authority: str, message: str) -> None:
    with pytest.raises(accounts.AccountError, match=message):
        accounts.add_user(engine, "x", role, authority, PASSWORD)


def test_tokens_are_scoped_and_revocable(engine: Engine) -> None:
    token = accounts.add_token(engine, "12366", "科员", "13301060000")
    principal = accounts.token_principal(engine, token)
    assert principal is not None and principal.authorities() == ["13301060000"] and principal.kind == "token"
    assert accounts.token_principal(engine, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    with pytest.raises(accounts.AccountError, match="管理员"):
        accounts.add_token(engine, "x", "管理员", "")
    accounts.revoke_token(engine, token.split("_")[1])
    assert accounts.token_principal(engine, token) is None


def test_the_audit_log_keeps_who_what_and_where(engine: Engine) -> None:
    accounts.audit(engine, "li", "view_case", "FX-1", "", "127.0.0.1")
    accounts.audit(engine, "wang", "assign", "FX-1", "待分派 → 核实中", "10.0.0.2")
    entries = accounts.audit_entries(engine)
    assert [(e["actor"], e["action"], e["remote"]) for e in entries] == [
        ("wang", "assign", "10.0.0.2"), ("li", "view_case", "127.0.0.1")]
    assert accounts.audit_count(engine, ["assign"]) == 1
