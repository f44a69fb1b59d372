"""Delivery against real local servers: SMTP (aiosmtpd) and an HTTP webhook (http.server), with retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from notifier.db import open_state
from notifier.letters.deliveries import delivery_rows
from notifier.letters.delivery import (
    DeliveryError,
    RetryPolicy,
    SmtpBackend,
    SmtpSettings,
    WebhookBackend,
    WebhookSettings,
    deliver,
)
from notifier.letters.outbox import read_manifest
from notifier.letters.run import NotifyOptions, NotifyReport, notify
from notifier.letters.suppression import history
from tests.builders.letters import AS_OF, ID_FIVE, ID_ONE, ID_REMINDER, ID_SMS, RULES, all_rows, write_findings
from tests.conftest import MailSink, free_port

FAST = RetryPolicy(attempts=3, delay=0.01, backoff=2.0)


def _notify(tmp_path: Path, backends: list[Any], *, out: str = "out", rows: list[dict] | None = None,  # type: ignore[type-arg]
            **kw: Any) -> NotifyReport:
    findings = write_findings(rows if rows is not None else all_rows(), tmp_path / f"findings-{out}")
    return notify(NotifyOptions(findings=findings, out=tmp_path / out, state_url=str(tmp_path / "state.sqlite"),
                                as_of=AS_OF, rules_dir=RULES, backends=tuple(backends), retry=FAST, **kw))


def _smtp(port: int) -> SmtpBackend:
    return SmtpBackend(SmtpSettings(host="127.0.0.1", port=port, sender="zhixiang@hangzhou.chinatax.example",
                                    timeout=5))


def test_email_packages_are_sent_over_smtp(tmp_path: Path, smtp_server: tuple[MailSink, int]) -> None:
    sink, port = smtp_server
    report = _notify(tmp_path, [_smtp(port)])
    assert report.failed == 0 and report.delivered == {"smtp": 1, "file": 3}
    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert msg["To"].addresses[0].addr_spec == "finance@xinghe-ai.example.cn"
    assert msg["To"].addresses[0].display_name == "杭州星河智能科技有限公司"
    assert msg["From"].addresses[0].display_name == "国家税务总局杭州市滨江区税务局"
    assert msg["Subject"] == ("税费优惠政策提醒：您可能有5项优惠尚未享受，预计可减免87.60 万元"
                              "（国家税务总局杭州市滨江区税务局）")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "杭州星河智能科技有限公司：" in text and "87.60 万元" in text
    assert '<strong id="total">87.60 万元</strong>' in html
    assert msg["X-Zhixiang-Package"] == read_manifest(tmp_path / "out" / "manifest.csv")[1]["package_id"]
    engine = open_state(str(tmp_path / "state.sqlite"))
    sent = history(engine, ID_FIVE)
    engine.dispose()
    assert len(sent) == 5 and {r["backend"] for r in sent} == {"smtp"}


def test_email_carries_the_pdf_when_the_email_channel_gets_pdfs(tmp_path: Path,
                                                               smtp_server: tuple[MailSink, int]) -> None:
    sink, port = smtp_server
    report = _notify(tmp_path, [_smtp(port)], pdf_channels=("email",))
    assert report.failed == 0 and report.delivered["smtp"] == 1
    msg = sink.messages[0]
    assert msg.get_content_type() == "multipart/mixed"
    (attachment,) = list(msg.iter_attachments())
    package_id = msg["X-Zhixiang-Package"]
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"税费优惠政策礼包-{package_id}.pdf"
    pdf = attachment.get_content()
    assert pdf.startswith(b"%PDF")
    (row,) = [r for r in read_manifest(tmp_path / "out" / "manifest.csv") if r["channel"] == "email"]
    assert "email/" in row["files"] and ".pdf" in row["files"]
    assert pdf == next((tmp_path / "out" / "email").glob("*.pdf")).read_bytes()  # the outbox keeps what was sent
    assert msg.get_body(("html",)) is not None  # the letter itself is still the body


def test_temporary_smtp_failure_is_retried(tmp_path: Path, smtp_server: tuple[MailSink, int]) -> None:
    sink, port = smtp_server
    sink.defer_data = 2
    report = _notify(tmp_path, [_smtp(port)])
    assert report.failed == 0 and len(sink.messages) == 1
    row = next(r for r in read_manifest(tmp_path / "out" / "manifest.csv") if r["taxpayer_id"] == ID_FIVE)
    assert row["status"] == "sent" and "第 3 次尝试成功" in row["note"]


def test_refused_recipient_is_reported_and_not_recorded(tmp_path: Path, smtp_server: tuple[MailSink, int]) -> None:
    sink, port = smtp_server
    sink.refuse_rcpt = "finance@xinghe-ai.example.cn"
    report = _notify(tmp_path, [_smtp(port)])
    assert report.failed == 1 and sink.messages == []
    [(taxpayer_id, backend, error)] = report.delivery_failures
    assert (taxpayer_id, backend) == (ID_FIVE, "smtp") and "550" in error and "不可重试" in error
    row = next(r for r in read_manifest(tmp_path / "out" / "manifest.csv") if r["taxpayer_id"] == ID_FIVE)
    assert row["status"] == "failed" and "尝试 1 次" in row["note"]
    engine = open_state(str(tmp_path / "state.sqlite"))
    assert history(engine, ID_FIVE) == []  # never recorded as sent
    assert len(history(engine)) == 4  # the three file-delivered packages are (3 + 1 reminder)
    engine.dispose()
    # the next run tries it again
    sink.refuse_rcpt = None
    again = _notify(tmp_path, [_smtp(port)], out="again")
    assert again.packages == 1 and len(sink.messages) == 1


def test_unreachable_smtp_server_is_retried_then_reported(tmp_path: Path) -> None:
    report = _notify(tmp_path, [_smtp(free_port())])
    [(_, _, error)] = report.delivery_failures
    assert "无法连接邮件服务器" in error
    row = next(r for r in read_manifest(tmp_path / "out" / "manifest.csv") if r["taxpayer_id"] == ID_FIVE)
    assert row["status"] == "failed" and "尝试 3 次" in row["note"]


def test_a_server_that_stays_down_is_given_up_for_the_run_after_five_packages(tmp_path: Path) -> None:
    from notifier.letters.run import OUTAGE_AFTER
    from profiles.ids import make_credit_code

    template = [r for r in all_rows() if r["taxpayer_id"] == ID_ONE]
    ids = [make_credit_code("330106", f"MA2Y{i:04d}") for i in range(OUTAGE_AFTER + 3)]
    rows = [{**r, "taxpayer_id": tid} for tid in ids for r in template]
    tried: list[str] = []

    class Down:
        name = "webhook"
        channels = frozenset({"etax"})

        def send(self, package: Any) -> None:
            tried.append(package.letter.taxpayer_id)
            raise DeliveryError("连接消息中心超时", retryable=True)

        def close(self) -> None:
            pass

    report = _notify(tmp_path, [Down()], rows=rows, channel_override="etax")
    assert report.packages == len(ids) and len(report.delivery_failures) == len(ids)
    assert len(tried) == OUTAGE_AFTER * FAST.attempts  # five packages with their retries; no more waiting
    notes = {r["taxpayer_id"]: r["note"] for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    given_up = [tid for tid in ids if "不再尝试" in notes[tid]]
    assert len(given_up) == 3 and all(r["status"] == "failed" for r in read_manifest(tmp_path / "out" / "manifest.csv"))
    engine = open_state(str(tmp_path / "state.sqlite"))
    try:  # logged as failed, so a later night sends them
        assert {r["status"] for r in delivery_rows(engine, ids)} == {"failed"}
        assert len(delivery_rows(engine, ids)) == len(ids)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------- webhook

class Hook:
    """What the local message centre received, and what it answers."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answers: list[int] = []  # status codes to answer first (then 200)
        self.lock = threading.Lock()


@pytest.fixture
def webhook() -> Iterator[tuple[Hook, str]]:
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with hook.lock:
                status = hook.answers.pop(0) if hook.answers else 200
                if status == 200:
                    hook.posts.append((dict(self.headers.items()), json.loads(body)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "busy"}')

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook, f"http://127.0.0.1:{server.server_address[1]}/message-centre/packages"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_one_json_document_per_package(tmp_path: Path, webhook: tuple[Hook, str]) -> None:
    hook, url = webhook
    report = _notify(tmp_path, [WebhookBackend(WebhookSettings(url=url, token="t0ken", timeout=5))],
                     pdf_channels=("etax", "post"))
    assert report.failed == 0 and report.delivered == {"webhook": 3, "file": 1}
    by_taxpayer = {p["taxpayer_id"]: (h, p) for h, p in hook.posts}
    assert set(by_taxpayer) == {ID_ONE, ID_REMINDER, ID_SMS}  # etax and sms channels
    headers, payload = by_taxpayer[ID_ONE]
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["Idempotency-Key"] == payload["package_id"]
    assert headers["Content-Type"].startswith("application/json")
    assert payload["taxpayer_name"] == "杭州云栖数据服务有限公司"
    assert payload["tax_authority"] == {"code": "13301060000", "name": "国家税务总局杭州市西湖区税务局"}
    assert payload["total_estimated_saving"] == "372000.00"
    assert payload["incentives"] == [{"rule_id": "small_low_profit_cit",
                                      "name": "小型微利企业减按25%计入应纳税所得额、按20%税率缴纳企业所得税",
                                      "period": "2025", "estimated_saving": "372000.00"}]
    assert payload["content"]["html"].startswith("<!DOCTYPE html>")
    assert payload["pdf_base64"]
    _, sms = by_taxpayer[ID_SMS]
    assert sms["channel"] == "sms" and sms["recipient"] == "13905712345" and len(sms["content"]["sms"]) <= 70
    reminder = by_taxpayer[ID_REMINDER][1]
    assert [r["rule_id"] for r in reminder["reminders"]] == ["disability_fund_relief"]


def test_webhook_5xx_is_retried_and_4xx_is_not(tmp_path: Path, webhook: tuple[Hook, str]) -> None:
    hook, url = webhook
    backend = WebhookBackend(WebhookSettings(url=url, timeout=5))
    hook.answers = [503, 502]
    report = _notify(tmp_path, [backend], rows=[r for r in all_rows() if r["taxpayer_id"] == ID_ONE])
    assert report.failed == 0 and len(hook.posts) == 1
    assert "第 3 次尝试成功" in read_manifest(tmp_path / "out" / "manifest.csv")[0]["note"]

    hook.answers = [400]
    report = _notify(tmp_path, [backend], out="bad", rows=[r for r in all_rows() if r["taxpayer_id"] == ID_SMS])
    [(_, _, error)] = report.delivery_failures
    assert "HTTP 400" in error and "不可重试" in error and hook.answers == []


def test_webhook_that_keeps_failing_is_reported_and_not_recorded(tmp_path: Path, webhook: tuple[Hook, str]) -> None:
    hook, url = webhook
    hook.answers = [500] * 3
    report = _notify(tmp_path, [WebhookBackend(WebhookSettings(url=url, timeout=5))],
                     rows=[r for r in all_rows() if r["taxpayer_id"] == ID_ONE])
    assert report.failed == 1 and hook.posts == [] and hook.answers == []
    engine = open_state(str(tmp_path / "state.sqlite"))
    assert history(engine) == []
    engine.dispose()
    # the outbox still holds the letter, marked failed, for a person to look at
    row = read_manifest(tmp_path / "out" / "manifest.csv")[0]
    assert row["status"] == "failed" and (tmp_path / "out" / row["files"].split(";")[0]).exists()


def test_deliver_backs_off_exponentially() -> None:
    waits: list[float] = []

    class Flaky:
        name = "flaky"
        channels = frozenset({"etax"})
        calls = 0

        def send(self, package: Any) -> None:
            Flaky.calls += 1
            raise DeliveryError("busy", retryable=True)

        def close(self) -> None:
            return None

    result = deliver(Flaky(), None, RetryPolicy(attempts=5, delay=0.5, backoff=2, max_delay=3),  # type: ignore[arg-type]
                     sleep=waits.append)
    assert not result.ok and result.attempts == 5 and Flaky.calls == 5
    assert waits == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("bad", ["finance@xinghe-ai.example.cn\r\nBcc: victim@example.com",
                                 "finance@xinghe-ai.example.cn\x00", "not an address"])
def test_a_bad_contact_value_fails_that_letter_only(tmp_path: Path, smtp_server: tuple[MailSink, int],
                                                     bad: str) -> None:
    """A contact value that slipped past validation (issue 13): that one letter fails and is recorded as
    failed; every other letter goes, and nothing is sent to anyone the value smuggled in."""
    sink, port = smtp_server
    rows = [dict(r, email=bad) if r["taxpayer_id"] == ID_FIVE else r for r in all_rows()]
    report = _notify(tmp_path, [_smtp(port)], rows=rows)
    assert report.failed == 1 and sink.messages == []
    assert report.delivered == {"file": 3}
    row = next(r for r in read_manifest(tmp_path / "out" / "manifest.csv") if r["taxpayer_id"] == ID_FIVE)
    assert row["status"] == "failed"
    engine = open_state(str(tmp_path / "state.sqlite"))
    assert history(engine, ID_FIVE) == []
    engine.dispose()
