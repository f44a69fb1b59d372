"""Golden letters: each case's HTML, text, SMS and e-mail subject, and a whole outbox, byte for byte.

Regenerate after an intended change with one command, then review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_letters_golden.py

(see tests/golden/letters/README.md).
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from notifier.letters.build import Letter, Skip, build_letter
from notifier.letters.render import LetterRenderer, pdf_text
from notifier.letters.run import NotifyOptions, notify
from tests.builders.letters import ALL_CASES, AS_OF, GOLDEN, RULES, all_rows, catalogue, write_findings

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def assert_golden(relative: str, actual: str) -> None:
    """Compare with tests/golden/letters/<relative>, or rewrite it under UPDATE_GOLDEN=1."""
    path = GOLDEN / relative
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    assert path.exists(), f"no golden file {path}: run UPDATE_GOLDEN=1 pytest tests/test_letters_golden.py"
    expected = path.read_bytes().decode("utf-8")
    if actual != expected:
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "golden", "actual",
                                              lineterm="", n=2))
        pytest.fail(f"{relative} differs from its golden file (UPDATE_GOLDEN=1 to accept):\n{diff}")


@pytest.fixture(scope="module")
def renderer() -> LetterRenderer:
    return LetterRenderer()


@pytest.mark.parametrize("case", ["one_incentive", "five_incentives", "low_risk_reminder"])
def test_letter_matches_golden(case: str, renderer: LetterRenderer) -> None:
    letter = build_letter(ALL_CASES[case](), catalogue(), as_of=AS_OF)
    assert isinstance(letter, Letter)
    assert_golden(f"{case}/letter.html", renderer.html(letter))
    assert_golden(f"{case}/letter.txt", renderer.text(letter))
    assert_golden(f"{case}/sms.txt", renderer.sms(letter) + "\n")
    assert_golden(f"{case}/subject.txt", renderer.subject(letter) + "\n")


@pytest.mark.parametrize("case", ["opt_out", "only_undetermined"])
def test_no_letter_matches_golden(case: str) -> None:
    result = build_letter(ALL_CASES[case](), catalogue(), as_of=AS_OF)
    assert isinstance(result, Skip)
    decision = {"taxpayer_id": result.taxpayer_id, "taxpayer_name": result.name, "letter": None,
                "reason": result.reason}
    assert_golden(f"{case}/decision.json", json.dumps(decision, ensure_ascii=False, indent=2) + "\n")


def test_outbox_matches_golden(tmp_path: Path) -> None:
    """The whole run: manifest, skipped list, preview page and summary of all the golden taxpayers."""
    findings = write_findings(all_rows(), tmp_path / "findings")
    out = tmp_path / "outbox"
    report = notify(NotifyOptions(findings=findings, out=out, state_url=str(tmp_path / "state.sqlite"),
                                  as_of=AS_OF, rules_dir=RULES, pdf_channels=("etax", "post")))
    assert report.failed == 0
    for name in ("manifest.csv", "skipped.csv", "index.html", "notify-summary.json"):
        raw = (out / name).read_bytes()
        if name.endswith(".csv"):
            assert raw.startswith(b"\xef\xbb\xbf"), f"{name} must start with a UTF-8 BOM for Excel"
        assert_golden(f"outbox/{name}", raw.decode("utf-8-sig"))
    # The PDFs are not byte-stable (creation dates), so their text is compared instead.
    letter = build_letter(ALL_CASES["one_incentive"](), catalogue(), as_of=AS_OF)
    assert isinstance(letter, Letter)
    text = "".join(pdf_text((out / "etax" / f"{letter.taxpayer_id}.pdf").read_bytes()).split())
    for key in letter.key_texts():
        assert "".join(key.split()) in text
