"""Documentation that is derived from code stays in step with it."""

from __future__ import annotations

from engine.functions import FUNCTIONS
from tests.conftest import ROOT


def test_rule_guide_lists_every_function() -> None:
    guide = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for fn in FUNCTIONS.values():
        row = f"| `{fn.signature}` | {fn.doc} |"
        assert row in guide, f"docs/rules.md is missing {fn.name}(): regenerate the table"


def test_readme_starts_with_the_two_setup_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    head = "\n".join(lines[:15])
    assert "bash scripts/setup && .venv/bin/zhixiang" in head
    assert "bash scripts/setup && bash scripts/test" in head
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text()
