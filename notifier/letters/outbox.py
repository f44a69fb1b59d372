"""The outbox: one folder per channel, a manifest, a preview page — the `file` delivery back-end.

    OUT/etax/<taxpayer>.html, .pdf     电子税务局: the letter to show and its printable PDF
    OUT/email/<taxpayer>.html, .txt    电子邮件: HTML body and plain-text alternative (+ .pdf, attached,
                                       when e-mails carry PDFs)
    OUT/sms/<taxpayer>.txt             短信: one text within 70 characters
    OUT/post/<taxpayer>.pdf            邮寄: the PDF to print
    OUT/manifest.csv                   one row per package (UTF-8 with BOM, so Excel reads it)
    OUT/skipped.csv                    taxpayers who got nothing, and why
    OUT/index.html                     preview page (at most 5,000 letters, failed first; manifest.csv lists all)
    OUT/notify-summary.json            the run's counts

Re-running into the same folder replaces the previous outbox; any other non-empty folder is refused
rather than mixed with letters.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ZhixiangError
from notifier.letters.delivery import Package
from profiles import excel
from profiles.schema import ENUM_LABELS

CHANNEL_DIRS = ("etax", "email", "sms", "post")
MANIFEST = "manifest.csv"
SKIPPED = "skipped.csv"
INDEX = "index.html"
SUMMARY = "notify-summary.json"
OUTBOX_FILES = (MANIFEST, SKIPPED, INDEX, SUMMARY)

MANIFEST_COLUMNS = (
    "taxpayer_id", "taxpayer_name", "tax_authority", "channel", "recipient", "files", "incentives", "incentive_names",
    "reminders", "total_estimated_saving", "package_id", "status", "note",
)
SKIPPED_COLUMNS = ("taxpayer_id", "taxpayer_name", "reason", "note")
_CHANNEL_LABELS: dict[str, str] = ENUM_LABELS["preferred_channel"]
STATUS_LABELS = {
    "queued": "已放入发件箱", "sent": "已发送", "failed": "失败", "dry_run": "试运行（未发送）",
}


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


class OutboxError(ZhixiangError):
    """The outbox folder cannot be used (not empty, not writable)."""


@dataclass
class ManifestRow:
    """One package in the manifest (and one line of the preview page)."""

    taxpayer_id: str
    taxpayer_name: str
    authority: str
    channel: str
    recipient: str
    files: tuple[str, ...]
    incentives: tuple[str, ...]
    incentive_names: tuple[str, ...]
    reminders: int
    total_estimated_saving: str
    package_id: str
    status: str
    note: str = ""

    def csv_row(self) -> list[str]:
        return [
            self.taxpayer_id, self.taxpayer_name, self.authority, self.channel, self.recipient, ";".join(self.files),
            ";".join(self.incentives), "；".join(self.incentive_names), str(self.reminders),
            self.total_estimated_saving, self.package_id, self.status, self.note,
        ]


class Outbox:
    """Writes packages into the outbox folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def prepare(self) -> None:
        """Create the folder, or clear a previous outbox in it; refuse a folder holding anything else."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise OutboxError(f"输出路径 {root} 是文件，不是目录")
        if root.is_dir() and any(root.iterdir()):
            if not (root / MANIFEST).exists():
                raise OutboxError(f"输出目录 {root} 不是空目录，也不是以前生成的发件箱；请指定新目录或清空它")
            for name in CHANNEL_DIRS:
                shutil.rmtree(root / name, ignore_errors=True)
            for name in OUTBOX_FILES:
                (root / name).unlink(missing_ok=True)
        try:
            root.mkdir(parents=True, exist_ok=True)
            for name in CHANNEL_DIRS:
                (root / name).mkdir(exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"无法创建发件箱目录 {root}：{exc.strerror}") from exc

    def write(self, package: Package) -> tuple[str, ...]:
        """Write the files of a package's channel; return their paths relative to the outbox."""
        letter = package.letter
        stem = _safe_stem(letter.taxpayer_id)
        channel = letter.channel
        files: list[tuple[str, bytes]] = []
        if package.html is not None and channel in ("etax", "email"):
            files.append((f"{channel}/{stem}.html", package.html.encode("utf-8")))
        if package.text is not None and channel == "email":
            files.append((f"{channel}/{stem}.txt", package.text.encode("utf-8")))
        if package.sms is not None and channel == "sms":
            files.append((f"{channel}/{stem}.txt", (package.sms + "\n").encode("utf-8")))
        if package.pdf is not None:  # post always; e-tax and e-mail when configured (pdf_channels)
            files.append((f"{channel}/{stem}.pdf", package.pdf))
        root = self._root_text
        for rel, data in files:
            path = f"{root}/{rel}"
            try:  # os-level: pathlib's open and buffered writer cost more than the write of a small file
                fd = os.open(path, _WRITE_FLAGS, 0o666)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            except OSError as exc:
                raise OutboxError(f"无法写入 {self.root / rel}：{exc.strerror}") from exc
        return tuple(rel for rel, _ in files)

    @property
    def _root_text(self) -> str:
        return os.fspath(self.root)

    def write_manifest(self, rows: Sequence[ManifestRow]) -> Path:
        # channel and status as their Chinese labels (read_manifest turns them back)
        ch, st = MANIFEST_COLUMNS.index("channel"), MANIFEST_COLUMNS.index("status")
        shown = []
        for r in rows:
            row = r.csv_row()
            row[ch], row[st] = _CHANNEL_LABELS.get(row[ch], row[ch]), STATUS_LABELS.get(row[st], row[st])
            shown.append(row)
        return _write_csv(self.root / MANIFEST, MANIFEST_COLUMNS, shown)

    def write_skipped(self, rows: Iterable[Sequence[str]]) -> Path:
        return _write_csv(self.root / SKIPPED, SKIPPED_COLUMNS, rows)

    def write_index(self, html: str) -> Path:
        path = self.root / INDEX
        path.write_text(html, encoding="utf-8")
        return path

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        path = self.root / SUMMARY
        path.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
        return path


def _safe_stem(taxpayer_id: str) -> str:
    """A file name from a taxpayer id (ids are [0-9A-Z]; anything else is replaced, never a path)."""
    return "".join(ch if ch.isalnum() else "_" for ch in taxpayer_id) or "_"


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    # Chinese headers, Excel-safe cells, UTF-8 with BOM (profiles.excel).
    return excel.write_rows(path, header, rows)


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """The manifest as dicts keyed by column name, with channel and status codes (for tests and tools)."""
    names = dict(zip(excel.headers(MANIFEST_COLUMNS), MANIFEST_COLUMNS, strict=True))
    channels = {v: k for k, v in _CHANNEL_LABELS.items()}
    statuses = {v: k for k, v in STATUS_LABELS.items()}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = [{names.get(k, k): excel.plain(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    for r in rows:
        r["channel"] = channels.get(r["channel"], r["channel"])
        r["status"] = statuses.get(r["status"], r["status"])
    return rows
