"""Delivery back-ends: the file outbox, e-mail over SMTP and an HTTP webhook, with retries.

The outbox (notifier/letters/outbox.py) is always written and is itself the `file` back-end: print shops
and the message centre can pick it up. `smtp` sends the e-mail channel's packages; `webhook` POSTs
one JSON document per package (by default the e-tax and SMS channels) to the e-tax bureau's message
centre. A failed attempt that may succeed later (a dropped connection, a 5xx, a 4xx SMTP reply) is
retried with exponential backoff; a permanent refusal is not. Either way a package that was not
delivered is reported and never recorded as sent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any, Protocol

from notifier.letters.build import Letter


@dataclass(frozen=True)
class Package:
    """A rendered letter, ready to deliver: the texts its channel needs and its outbox files."""

    letter: Letter
    html: str | None = None
    text: str | None = None
    sms: str | None = None
    subject: str | None = None
    pdf: bytes | None = None
    files: tuple[str, ...] = ()


class DeliveryError(Exception):
    """One delivery attempt failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all, waiting `delay`, then `delay × backoff`, ... (at most `max_delay`) between."""

    attempts: int = 4
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 30.0

    def waits(self) -> list[float]:
        return [min(self.delay * self.backoff**i, self.max_delay) for i in range(max(self.attempts - 1, 0))]


@dataclass(frozen=True)
class DeliveryResult:
    backend: str
    ok: bool
    attempts: int
    error: str = ""
    retryable: bool = False  # the last failure may go away by itself (server down, timeout, 4xx/5xx reply)


class Backend(Protocol):
    """A way to deliver packages of some channels."""

    name: str
    channels: frozenset[str]

    def send(self, package: Package) -> None:
        """Deliver one package or raise DeliveryError."""

    def close(self) -> None:
        """Release connections."""


def deliver(backend: Backend, package: Package, retry: RetryPolicy,
            sleep: Callable[[float], None] = time.sleep) -> DeliveryResult:
    """Send one package through one back-end, retrying what may succeed later."""
    waits = retry.waits()
    attempt = 0
    while True:
        attempt += 1
        try:
            backend.send(package)
            return DeliveryResult(backend.name, True, attempt)
        except (ValueError, TypeError, UnicodeError) as exc:  # a bad value in this package: it alone fails
            why = f"信函内容无法发送（{type(exc).__name__}: {exc}）（不可重试）"
            return DeliveryResult(backend.name, False, attempt, why, retryable=False)
        except DeliveryError as exc:
            if not exc.retryable or attempt > len(waits):
                how = "" if exc.retryable else "（不可重试）"
                return DeliveryResult(backend.name, False, attempt, f"{exc}{how}", retryable=exc.retryable)
            sleep(waits[attempt - 1])


# -------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send e-mail. Credentials come from the environment, never the command line."""

    host: str
    port: int = 25
    sender: str = "noreply@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0


class SmtpBackend:
    """E-mail over SMTP: one multipart/alternative message (text + HTML) per package, one connection per run."""

    name = "smtp"
    channels = frozenset({"email"})

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.use_ssl:
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                conn.starttls(context=ssl.create_default_context())
        if s.username:
            conn.login(s.username, s.password or "")
        return conn

    def message(self, package: Package) -> EmailMessage:
        letter = package.letter
        if not package.text or not package.html:
            raise DeliveryError("电子邮件缺少正文（需要 HTML 和纯文本两种格式）", retryable=False)
        msg = EmailMessage()
        msg["Subject"] = package.subject or "税费优惠政策提醒"
        msg["From"] = formataddr((letter.authority.name, self.settings.sender))
        msg["To"] = formataddr((letter.name, letter.email))
        msg["Date"] = formatdate(localtime=True)
        domain = self.settings.sender.rsplit("@", 1)[-1] or None
        msg["Message-ID"] = make_msgid(idstring=letter.package_id, domain=domain)
        msg["X-Zhixiang-Package"] = letter.package_id
        msg.set_content(package.text, subtype="plain", charset="utf-8")
        msg.add_alternative(package.html, subtype="html", charset="utf-8")
        if package.pdf is not None:  # when the e-mail channel gets PDFs (--pdf-for email / [letters] pdf_channels)
            msg.add_attachment(package.pdf, maintype="application", subtype="pdf",
                               filename=f"税费优惠政策礼包-{letter.package_id}.pdf")
        return msg

    def send(self, package: Package) -> None:
        if not package.letter.email:
            raise DeliveryError("纳税人没有电子邮箱", retryable=False)
        if not is_mail_address(package.letter.email):
            raise DeliveryError(f"纳税人电子邮箱 {package.letter.email!r} 不是有效的邮件地址", retryable=False)
        msg = self.message(package)
        try:
            if self._conn is None:
                self._conn = self._connect()
            refused = self._conn.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"邮件服务器拒收收件人 {package.letter.email}：{_smtp_reasons(exc.recipients)}",
                                retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise DeliveryError(f"邮件服务器答复 {exc.smtp_code} {text}", retryable=400 <= exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryError(f"无法连接邮件服务器 {self.settings.host}:{self.settings.port}：{exc}",
                                retryable=True) from exc
        if refused:
            raise DeliveryError(f"邮件服务器拒收收件人：{_smtp_reasons(refused)}", retryable=False)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._conn.quit()
            self._drop()


_ATOM = r"[^@\s<>()\[\],;:\"\\\x00-\x1f\x7f]"
_ADDRESS = re.compile(rf"{_ATOM}+@{_ATOM}+\.(?:(?!\.){_ATOM})+")


def is_mail_address(value: str) -> bool:
    """One plain address (local@domain.tld), nothing that could add a header or a recipient: no line
    breaks or other control characters, no spaces, brackets, commas or a second @."""
    return bool(_ADDRESS.fullmatch(value)) and len(value) <= 254


def _smtp_reasons(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "；".join(f"{addr} {code} {msg.decode(errors='replace')}" for addr, (code, msg) in recipients.items())


# ----------------------------------------------------------------------------------------- webhook


@dataclass(frozen=True)
class WebhookSettings:
    """The message centre's endpoint. The bearer token comes from the environment."""

    url: str
    token: str | None = None
    timeout: float = 10.0
    channels: frozenset[str] = field(default_factory=lambda: frozenset({"etax", "sms"}))
    include_pdf: bool = True


def package_payload(package: Package, *, include_pdf: bool = True) -> dict[str, Any]:
    """The JSON document of one package: who, what, how much, and the rendered texts."""
    letter = package.letter
    payload: dict[str, Any] = {
        "package_id": letter.package_id,
        "reference": letter.reference,
        "taxpayer_id": letter.taxpayer_id,
        "taxpayer_name": letter.name,
        "tax_authority": {"code": letter.authority.code, "name": letter.authority.name},
        "channel": letter.channel,
        "recipient": letter.recipient,
        "as_of": letter.as_of.isoformat(),
        "total_estimated_saving": str(letter.total_saving),
        "incentives": [  # one entry a finding: an incentive of two periods gives two
            {"rule_id": i.rule_id, "name": i.name, "period": p.period, "estimated_saving": str(p.saving)}
            for i in letter.incentives for p in i.periods
        ],
        "reminders": [
            {"rule_id": r.rule_id, "name": r.name, "period": r.period,
             "claimed_amount": str(r.claimed) if r.claimed is not None else None}
            for r in letter.reminders
        ],
        "content": {"html": package.html, "text": package.text, "sms": package.sms, "subject": package.subject},
    }
    if include_pdf and package.pdf is not None:
        payload["pdf_base64"] = base64.b64encode(package.pdf).decode("ascii")
    return payload


class WebhookBackend:
    """One JSON POST per package; 2xx is delivered, 429 and 5xx are retried, other 4xx are refusals."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.channels = frozenset(settings.channels)

    def send(self, package: Package) -> None:
        body = json.dumps(package_payload(package, include_pdf=self.settings.include_pdf),
                          ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": package.letter.package_id,  # a retried POST must not show twice
            "User-Agent": "zhixiang-notifier",
        }
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        request = urllib.request.Request(self.settings.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", errors="replace").strip()
            retryable = exc.code == 429 or exc.code >= 500
            raise DeliveryError(f"消息中心答复 HTTP {exc.code}{'：' + detail if detail else ''}",
                                retryable=retryable) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"无法连接消息中心 {self.settings.url}：{reason}", retryable=True) from exc

    def close(self) -> None:
        return None


# ----------------------------------------------------------------------------------- from settings

#: Where the back-ends' secrets come from: the environment, never a file or the command line.
SMTP_USER_ENV = "ZHIXIANG_SMTP_USER"
SMTP_PASSWORD_ENV = "ZHIXIANG_SMTP_PASSWORD"
WEBHOOK_TOKEN_ENV = "ZHIXIANG_WEBHOOK_TOKEN"


def smtp_backend(*, host: str, port: int, sender: str, starttls: bool = False, use_ssl: bool = False) -> SmtpBackend:
    """The SMTP back-end of `notify --deliver smtp` and of the nightly's [delivery] (login from the environment)."""
    return SmtpBackend(SmtpSettings(host=host, port=port, sender=sender, starttls=starttls, use_ssl=use_ssl,
                                    username=os.environ.get(SMTP_USER_ENV),
                                    password=os.environ.get(SMTP_PASSWORD_ENV)))


def webhook_backend(*, url: str, channels: frozenset[str]) -> WebhookBackend:
    """The webhook back-end of `notify --deliver webhook` and of the nightly's [delivery] (token from the
    environment)."""
    return WebhookBackend(WebhookSettings(url=url, token=os.environ.get(WEBHOOK_TOKEN_ENV), channels=channels))
