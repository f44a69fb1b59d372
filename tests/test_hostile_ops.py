"""Operators' mistakes (issue 13): credentials never printed or logged, clean messages for a bad data
source, no traceback for an input problem."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiles.database import display_url
from profiles.errors import mask_secrets

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Sup3rS3cretPW"
BAD_STATE = f"postgresql://zx:{SECRET}@127.0.0.1:1/state"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIXIANG_LOG_DIR": str(cwd / "logs")}
    env.pop("ZHIXIANG_STATE_URL", None)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_mask_secrets_masks_every_url_in_a_text() -> None:
    text = (f"无法打开状态数据库 {BAD_STATE}: (psycopg) x; also postgres://a:b@h/d and "
            "postgresql://h/db?user=u&password=pw2 and sqlite:///x.sqlite")
    masked = mask_secrets(text)
    assert SECRET not in masked and ":b@" not in masked and "pw2" not in masked
    assert "postgresql://zx:***@127.0.0.1:1/state" in masked and "sqlite:///x.sqlite" in masked
    assert display_url(BAD_STATE) == "postgresql://zx:***@127.0.0.1:1/state"


@pytest.mark.parametrize("args", [
    ("nightly", "--data", "sample_data/hangzhou", "--as-of", "2026-10-15", "--out", "OUT", "--state", BAD_STATE),
    ("cases", "list", "--state", BAD_STATE),
    ("runs", "list", "--state", BAD_STATE),
])
def test_state_database_password_is_never_printed_or_logged(tmp_path: Path, args: tuple[str, ...]) -> None:
    args = tuple(str(ROOT / a) if a == "sample_data/hangzhou" else str(tmp_path / a) if a == "OUT" else a
                 for a in args)
    got = _cli(*args, cwd=tmp_path)
    assert got.returncode == 4, got.stderr
    assert "无法打开状态数据库" in got.stderr
    assert SECRET not in got.stdout + got.stderr
    for log in (tmp_path / "logs").glob("*"):
        assert SECRET not in log.read_text(encoding="utf-8")


def test_schedule_does_not_print_the_state_password(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text(f'state_url = "{BAD_STATE}"\n[paths]\ndata = "{ROOT / "sample_data/hangzhou"}"\n'
                      f'out = "{tmp_path / "out"}"\n', encoding="utf-8")
    got = _cli("schedule", "--config", str(config), cwd=tmp_path)
    assert got.returncode == 4 and SECRET not in got.stdout + got.stderr, got.stderr


def test_log_records_never_hold_a_url_password(tmp_path: Path) -> None:
    from notifier.nightly.logs import MaskingFilter

    record = logging.LogRecord("x", logging.ERROR, "", 0, "connect %s failed", (BAD_STATE,), None)
    MaskingFilter().filter(record)
    assert SECRET not in record.getMessage()


@pytest.mark.parametrize("data,words", [
    ("MISSING", "不存在"),
    (f"postgresql://zx:{SECRET}@127.0.0.1:1/profiles", "无法连接数据库"),
])
def test_nightly_with_a_bad_data_source_prints_the_message_not_a_traceback(tmp_path: Path, data: str,
                                                                            words: str) -> None:
    data = str(tmp_path / "missing") if data == "MISSING" else data
    got = _cli("nightly", "--data", data, "--as-of", "2026-10-15", "--out", str(tmp_path / "out"),
               "--state", str(tmp_path / "state.sqlite"), "--rules", str(ROOT / "rules"), cwd=tmp_path)
    assert got.returncode == 2 if data.startswith("/") else got.returncode == 4
    assert words in got.stderr
    assert "Traceback" not in got.stdout + got.stderr
    assert SECRET not in got.stdout + got.stderr
