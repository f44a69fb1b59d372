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


def test_readme_catalogue_table_is_current() -> None:
    """README's catalogue table is what `zhixiang rules table` makes of rules/ (every rule, basis, windows)."""
    from engine.catalogue import load_catalogue
    from engine.rule_commands import README_FILE, TABLE_END, TABLE_START, markdown_table, readme_with_table

    catalogue = load_catalogue()
    readme = README_FILE.read_text(encoding="utf-8")
    assert readme_with_table(readme, markdown_table(catalogue)) == readme, \
        "README.md's catalogue table is out of date: run `zhixiang rules table --write`"
    block = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    for rule in catalogue.rules.values():
        assert f"| `{rule.id}` | {rule.name} |" in block
        assert f"| {rule.window_label} | {rule.judged_label} |" in block


def test_the_table_writer_replaces_only_its_block() -> None:
    from engine.rule_commands import TABLE_END, TABLE_START, readme_with_table

    old = f"# head\n{TABLE_START}\n| old |\n{TABLE_END}\ntail\n"
    assert readme_with_table(old, "| new |\n") == f"# head\n{TABLE_START}\n| new |\n{TABLE_END}\ntail\n"
