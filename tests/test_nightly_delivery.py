"""The nightly sends letters beyond the outbox ([delivery]): never twice when a day is redone, and a letter
that could not be delivered goes again on a later night. Real local SMTP server (aiosmtpd), real child
process killed at a stage."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from notifier.db import open_state
from notifier.letters.deliveries import delivery_rows
from notifier.letters.outbox import read_manifest
from notifier.nightly.config import ConfigError, load_config
from notifier.nightly.pipeline import run_nightly
from tests.builders.nightly import AS_OF, make_config, write_config, write_data_folder
from tests.conftest import MailSink, free_port
from tests.test_nightly import DAY, NEXT_DAY, _nightly_process


def _delivery(port: int) -> str:
    return f"""
[delivery]
backends = ["smtp"]
retries = 0
retry_delay_seconds = 0
[delivery.smtp]
host = "127.0.0.1"
port = {port}
sender = "zhixiang@hangzhou.chinatax.example"
"""


def _email_packages(run_dir: Path) -> dict[str, str]:
    """taxpayer → package id of the e-mail letters in a run's manifest."""
    return {r["taxpayer_id"]: r["package_id"] for r in read_manifest(run_dir / "letters" / "manifest.csv")
            if r["channel"] == "email"}


def test_a_day_redone_after_a_crash_sends_no_e_mail_twice(tmp_path: Path, smtp_server: tuple[MailSink, int]) -> None:
    sink, port = smtp_server
    data = write_data_folder(tmp_path / "data")
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    config = write_config(tmp_path, state, data=data, extra=_delivery(port))
    crashed = _nightly_process(config, AS_OF, fault="publish:kill")  # after the letters went out
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err
    first = Counter(m["X-Zhixiang-Package"] for m in sink.messages)
    assert first and set(first.values()) == {1}

    done = run_nightly(make_config(tmp_path, state, data=data, extra=_delivery(port)), DAY)
    assert done.status == "succeeded"
    sent = _email_packages(done.output_dir)
    assert set(sent.values()) == set(first)  # the redo rebuilt the same packages ...
    assert Counter(m["X-Zhixiang-Package"] for m in sink.messages) == first  # ... and sent none of them again
    notes = {r["note"] for r in read_manifest(done.output_dir / "letters" / "manifest.csv") if r["channel"] == "email"}
    assert all("不重复发送" in n for n in notes)
    recipients = {m["To"].addresses[0].addr_spec for m in sink.messages}
    assert len(recipients) == len(sent)


def test_letters_not_delivered_go_again_on_a_later_night(tmp_path: Path, state_url: str,
                                                        smtp_server: tuple[MailSink, int]) -> None:
    sink, port = smtp_server
    data = write_data_folder(tmp_path / "data")
    state = state_url
    down = run_nightly(make_config(tmp_path, state, data=data, extra=_delivery(free_port())), DAY)  # nobody there
    assert down.status == "succeeded"
    undelivered = _email_packages(down.output_dir)
    assert undelivered and not sink.messages
    engine = open_state(state)
    try:
        log = delivery_rows(engine, undelivered)
        assert {r["status"] for r in log} == {"failed"} and all(r["error"] for r in log)

        # Next night the data is the same (nothing new to tell), but the mail server is back.
        later = run_nightly(make_config(tmp_path, state, data=data, extra=_delivery(port)), NEXT_DAY)
        assert later.status == "succeeded"
        assert set(_email_packages(later.output_dir)) == set(undelivered)
        assert len(sink.messages) == len({m["To"].addresses[0].addr_spec for m in sink.messages}) == len(undelivered)
        latest = {r["taxpayer_id"]: r["status"] for r in delivery_rows(engine, undelivered)}
        assert set(latest.values()) == {"sent"}

        # Delivered now: a third night sends nothing again.
        third = run_nightly(make_config(tmp_path, state, data=data, extra=_delivery(port)), date(2026, 4, 17))
        assert third.status == "succeeded" and not _email_packages(third.output_dir)
        assert len(sink.messages) == len(undelivered)
    finally:
        engine.dispose()


def test_delivery_without_its_server_is_a_configuration_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "zhixiang.toml"
    path.write_text('[delivery]\nbackends = ["smtp"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"delivery.*\[delivery.smtp\] 的 host 和 sender"):
        load_config(path, environ={})
