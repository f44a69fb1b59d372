"""Shared fixtures: state databases on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pg_admin_url() -> str | None:
    return os.environ.get("ZHIXIANG_TEST_PG_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state database URL: a SQLite file, then a new PostgreSQL database.

    PostgreSQL comes from ZHIXIANG_TEST_PG_URL (scripts/test starts one). Under CI its absence is a
    failure, not a skip: both backends must be tested for real.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    admin = _pg_admin_url()
    if not admin:
        if os.environ.get("CI"):
            pytest.fail("ZHIXIANG_TEST_PG_URL is not set: run the tests with scripts/test")
        pytest.skip("no PostgreSQL server (set ZHIXIANG_TEST_PG_URL or use scripts/test)")
    import psycopg

    name = "zx_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
