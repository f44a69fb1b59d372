"""Logs: JSON lines for machines, short lines for people, taxpayer ids masked in both.

`MaskingFilter` sits on every handler `setup_logging` installs, so it sees every record that is
written — ours, APScheduler's, SQLAlchemy's — after propagation, which a logger-level filter would
not. It rewrites the message, the exception text and any extra fields: an 18-character unified social
credit code becomes `9133**********123X` (the same masking as letters, notifier/letters/formatting.py), and
a field named `taxpayer_id` is masked whatever its shape. Ops can read and ship the logs without
handling taxpayer identities.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notifier.letters.formatting import mask_taxpayer_id
from profiles.errors import mask_secrets

#: A GB 32100-2015 unified social credit code: 18 characters of its alphabet (no I, O, S, V, Z), the
#: registering department, category and the 6-digit region code in front. Word boundaries keep it
#: from matching inside longer tokens (hashes, run ids).
CREDIT_CODE = re.compile(r"(?<![0-9A-Za-z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Za-z])")

#: Record attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_ID_FIELDS = frozenset({"taxpayer_id", "taxpayer", "taxpayer_ids"})

LOG_FILE = "zhixiang.jsonl"


def mask_text(text: str) -> str:
    """Every credit code and every URL's password in `text` masked."""
    return mask_secrets(CREDIT_CODE.sub(lambda m: mask_taxpayer_id(m.group(0)), text))


def _mask_value(key: str, value: Any) -> Any:
    if key in _ID_FIELDS:
        if isinstance(value, (list, tuple, set)):
            return [mask_taxpayer_id(str(v)) for v in value]
        return mask_taxpayer_id(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(key, v) for v in value]
    return value


class MaskingFilter(logging.Filter):
    """Masks taxpayer ids in a record's message, exception text and extra fields (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_zx_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg} {record.args}"
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
            record.exc_info = None  # the masked text is what gets written
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _mask_value(key, value))
        record._zx_masked = True
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields of a record (what came in through `extra=`)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC, ISO 8601), level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        doc.update(record_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`02:00:03 INFO  评估 2025年度 … run_id=20260415-1`: for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items() if k in ("run_id", "stage", "as_of"))
        text = f"{when} {record.levelname:<7} {record.getMessage()}" + (f"  [{fields}]" if fields else "")
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


_INSTALLED: list[logging.Handler] = []


def setup_logging(*, level: str = "INFO", console: str = "text", log_dir: Path | None = None) -> Path | None:
    """Install the handlers (replacing ones installed before): console as text or JSON, and a JSON-lines file.

    Returns the log file's path, if any. Every handler carries the masking filter.
    """
    root = logging.getLogger()
    for handler in _INSTALLED:
        root.removeHandler(handler)
        handler.close()
    _INSTALLED.clear()
    handlers: list[logging.Handler] = []
    if console != "off":
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(JsonFormatter() if console == "json" else TextFormatter())
        handlers.append(stream)
    path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / LOG_FILE
        # O_APPEND: lines from the scheduler and its nightly children interleave whole, not torn
        file = logging.FileHandler(path, mode="a", encoding="utf-8")
        file.setFormatter(JsonFormatter())
        handlers.append(file)
    for handler in handlers:
        handler.addFilter(MaskingFilter())
        root.addHandler(handler)
        _INSTALLED.append(handler)
    root.setLevel(level)
    # libraries' chatter stays out of the nightly log unless asked for
    for noisy in ("sqlalchemy", "weasyprint", "fontTools", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return path
