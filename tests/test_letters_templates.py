"""A bureau's own templates (`--templates`) cannot hurt (issue 12 §2).

Each attack is a template override that misbehaves for one taxpayer only: that letter fails, with the
reason in the manifest and the summary, every other letter is written, and `zhixiang notify` exits 5
(EXIT_LETTERS_FAILED). Files outside the template folder, the network and unbounded time or size are
out of a template's reach.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.errors import EXIT_LETTERS_FAILED
from notifier.letters import pdf as letters_pdf
from notifier.letters.outbox import read_manifest
from notifier.letters.pdf import TEMPLATES_DIR, pdf_text
from tests.builders.cli import notify_args, zx
from tests.builders.letters import ID_FIVE, ID_ONE, ID_REMINDER, ID_SMS, all_rows, write_findings

VICTIM = "杭州云栖数据服务有限公司"  # ID_ONE: the one letter each attack targets
SECRET = Path("/etc/passwd")


def _folder(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "bureau"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def _html_with(snippet: str) -> str:
    source = (TEMPLATES_DIR / "letter.html").read_text(encoding="utf-8")
    return source.replace("<main ", f'{{% if letter.name == "{VICTIM}" %}}{snippet}{{% endif %}}\n<main ', 1)


def _typ_with(snippet: str) -> str:
    """letter.typ doing `snippet` in the victim's letter (laid out in a batch with the others)."""
    source = (TEMPLATES_DIR / "letter.typ").read_text(encoding="utf-8")
    start = "#let O = L.office\n"
    assert start in source
    return source.replace(start, f'{start}#if L.name == "{VICTIM}" {{ {snippet} }}\n', 1)


def _notify(tmp_path: Path, templates: Path, *extra: str) -> tuple[int, Path, dict[str, dict[str, str]]]:
    findings = write_findings(all_rows(), tmp_path / "findings")
    out = tmp_path / "out"
    result = zx(*notify_args(findings, out, tmp_path / "s.sqlite", "--templates", str(templates), *extra))
    manifest = {m["taxpayer_id"]: m for m in read_manifest(out / "manifest.csv")}
    return result.exit_code, out, manifest


def _only_victim_failed(code: int, out: Path, manifest: dict[str, dict[str, str]], reason: str) -> str:
    assert code == EXIT_LETTERS_FAILED
    assert manifest[ID_ONE]["status"] == "failed"
    assert reason in manifest[ID_ONE]["note"], manifest[ID_ONE]["note"]
    for other in (ID_FIVE, ID_REMINDER, ID_SMS):
        assert manifest[other]["status"] == "queued" and manifest[other]["files"]
        for f in manifest[other]["files"].split(";"):
            assert (out / f).stat().st_size > 0
    summary = json.loads((out / "notify-summary.json").read_text(encoding="utf-8"))
    failures = summary["letter_failures"]
    assert [f["taxpayer_id"] for f in failures] == [ID_ONE] and reason in failures[0]["error"]
    return manifest[ID_ONE]["note"]


# ------------------------------------------------------------------------------------------ files


def test_html_attachment_link_to_a_local_file_embeds_nothing(tmp_path: Path) -> None:
    """`<link rel="attachment" href="file:///etc/passwd">` made every WeasyPrint PDF embed the file."""
    link = f'<link rel="attachment" href="file://{SECRET}"><img src="file://{SECRET}">'
    folder = _folder(tmp_path, "letter.html", _html_with(link))
    code, out, manifest = _notify(tmp_path, folder, "--channel-override", "post")
    assert code == 0
    for m in manifest.values():
        pdf = (out / m["files"]).read_bytes()
        assert b"/EmbeddedFile" not in pdf and b"/FileAttachment" not in pdf
        assert "root:" not in pdf_text(pdf)
    assert b"root:" not in b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("snippet", [
    f'read("{SECRET}")',
    'read("../../../../../../../../etc/passwd")',
    f'image("{SECRET}")',
])
def test_pdf_template_cannot_read_outside_its_folder(tmp_path: Path, snippet: str) -> None:
    folder = _folder(tmp_path, "letter.typ", _typ_with(snippet))
    code, out, manifest = _notify(tmp_path, folder, "--channel-override", "post")
    note = _only_victim_failed(code, out, manifest, "PDF 模板 letter.typ 排版失败")
    assert "root:" not in note


def test_html_template_cannot_include_a_file_outside_its_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "letter.html", _html_with('{% include "../../../../../../etc/passwd" %}'))
    code, out, manifest = _notify(tmp_path, folder)
    _only_victim_failed(code, out, manifest, "letter.html")


# ---------------------------------------------------------------------------------------- network


def test_pdf_template_cannot_fetch_from_the_network(tmp_path: Path) -> None:
    """Typst downloads @preview packages; the PDF workers' HTTP(S) goes to a port that refuses it."""
    folder = _folder(tmp_path, "letter.typ", _typ_with('import ("@prev" + "iew/cetz:0.3.0"): *'))
    start = time.monotonic()
    code, out, manifest = _notify(tmp_path, folder, "--channel-override", "post")
    note = _only_victim_failed(code, out, manifest, "failed to download package")
    assert "Connection refused" in note  # the refusing proxy answered, not a name lookup or a download
    assert time.monotonic() - start < 60


# ------------------------------------------------------------------------------------- errors, bounds


def test_division_by_zero_fails_that_letter_alone(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "letter.html", _html_with("{{ 1/0 }}"))
    code, out, manifest = _notify(tmp_path, folder)
    note = _only_victim_failed(code, out, manifest, "ZeroDivisionError")
    assert "letter.html" in note


@pytest.mark.parametrize("loop", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set r = range(100000)|list %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
])
def test_runaway_loop_is_stopped_and_fails_that_letter_alone(tmp_path: Path, loop: str) -> None:
    folder = _folder(tmp_path, "letter.html", _html_with(loop))
    start = time.monotonic()
    code, out, manifest = _notify(tmp_path, folder)
    _only_victim_failed(code, out, manifest, "letter.html")
    assert time.monotonic() - start < 30


def test_oversized_letter_fails_that_letter_alone(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "letter.html", _html_with('{{ "x" * 100000000 }}'))
    code, out, manifest = _notify(tmp_path, folder)
    _only_victim_failed(code, out, manifest, "上限")


def test_pdf_layout_past_its_time_bound_fails_that_letter_alone(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(letters_pdf, "PDF_TIMEOUT", 3.0)
    folder = _folder(tmp_path, "letter.typ", _typ_with("for i in range(1000000000) { let x = i * 2 }"))
    start = time.monotonic()
    code, out, manifest = _notify(tmp_path, folder, "--channel-override", "post")
    _only_victim_failed(code, out, manifest, "超过 3 秒上限")
    assert time.monotonic() - start < 60
    for m in manifest.values():
        if m["status"] != "failed":
            assert len(PdfReader(io.BytesIO((out / m["files"]).read_bytes())).pages) >= 1
