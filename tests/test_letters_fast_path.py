"""The fast path of a night's letters (issue 12 §3) says exactly what the plain path says.

- `taxpayer_facing` (Polars) judges every row as `is_taxpayer_facing` does, and `letter_rows` keeps every
  facing row and one row of a taxpayer who has none (still counted as opted out / nothing to tell).
- Bundled templates run outside the sandbox, so the clock that bounds a bureau's template does not stop
  the bundled preview page of a big night; a bureau file a bundled template includes puts it back in the
  sandbox.
- The catalogue is loaded once per process for the same file contents, and again when a file changes.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from engine.catalogue import load_catalogue
from engine.findings import is_taxpayer_facing, taxpayer_facing
from notifier.letters import render as letters_render
from notifier.letters.render import HTML_TEMPLATE, INDEX_TEMPLATE, TEMPLATE_NAMES, LetterRenderer
from notifier.letters.run import letter_rows
from tests.builders.letters import RULES, all_rows, frame

AMOUNT = pl.Decimal(18, 2)


def _judged(rows: list[dict[str, object]], dtype: pl.DataType) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"taxpayer_id": pl.String, "period": pl.String, "rule_id": pl.String,
                                      "kind": pl.String, "estimated_amount": dtype, "risk_tier": pl.String})


CASES = [
    ("unclaimed", "12.50", None), ("unclaimed", "0.00", None), ("unclaimed", "-3.00", None),
    ("unclaimed", None, None), ("improper", "500.00", "low"), ("improper", "500.00", "medium"),
    ("improper", None, "high"), ("improper", None, None), ("undetermined", "9.00", None), (None, "9.00", "low"),
]


@pytest.mark.parametrize("dtype", [AMOUNT, pl.Int64, pl.Float64, pl.String])
def test_taxpayer_facing_judges_each_row_as_is_taxpayer_facing(dtype: pl.DataType) -> None:
    rows = []
    for i, (kind, amount, tier) in enumerate(CASES):
        value: object = amount
        if amount is not None and dtype == AMOUNT:
            value = Decimal(amount)
        elif amount is not None and dtype == pl.Int64:
            value = int(Decimal(amount))
        elif amount is not None and dtype == pl.Float64:
            value = float(amount)
        rows.append({"taxpayer_id": f"T{i}", "period": "2025", "rule_id": "r", "kind": kind,
                     "estimated_amount": value, "risk_tier": tier})
    frame_ = _judged(rows, dtype)
    expected = [is_taxpayer_facing(r) for r in frame_.iter_rows(named=True)]
    assert taxpayer_facing(frame_).to_list() == expected
    assert expected.count(True) >= 2 and expected.count(False) >= 5


def test_letter_rows_keep_facing_rows_and_one_row_of_a_taxpayer_without_any() -> None:
    rows: list[dict[str, object]] = [
        {"taxpayer_id": "A", "period": "2025", "rule_id": "x", "kind": "undetermined", "estimated_amount": None,
         "risk_tier": None},
        {"taxpayer_id": "A", "period": "2025", "rule_id": "y", "kind": "unclaimed",
         "estimated_amount": Decimal("10.00"), "risk_tier": None},
        {"taxpayer_id": "B", "period": "2025", "rule_id": "z", "kind": "improper", "estimated_amount": None,
         "risk_tier": "high"},
        {"taxpayer_id": "B", "period": "2024", "rule_id": "z", "kind": "undetermined", "estimated_amount": None,
         "risk_tier": None},
    ]
    kept = letter_rows(_judged(rows, AMOUNT))
    assert kept.select("taxpayer_id", "period", "rule_id").rows() == [("A", "2025", "y"), ("B", "2024", "z")]


def test_letter_rows_of_the_test_findings_keep_every_taxpayer() -> None:
    findings = frame(all_rows())
    kept = letter_rows(findings)
    assert set(kept.get_column("taxpayer_id")) == set(findings.get_column("taxpayer_id"))
    facing = sum(is_taxpayer_facing(r) for r in findings.iter_rows(named=True))
    assert kept.height >= facing and kept.height < findings.height


def test_bundled_templates_run_outside_the_sandbox_and_a_bureau_file_brings_it_back(tmp_path: Path) -> None:
    assert LetterRenderer().trusted == frozenset(TEMPLATE_NAMES)
    bureau = tmp_path / "bureau"
    bureau.mkdir()
    (bureau / "letter.css").write_text("body { color: black; }\n", encoding="utf-8")
    (bureau / "sms.txt").write_text("{{ letter.name }}\n", encoding="utf-8")
    trusted = LetterRenderer(bureau).trusted
    assert HTML_TEMPLATE not in trusted  # it includes the bureau's letter.css
    assert "sms.txt" not in trusted
    assert INDEX_TEMPLATE in trusted


def test_bundled_preview_page_is_not_stopped_by_the_bureau_template_clock(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    """A 20,000-letter night's preview page took over the 2-second bound in the sandbox and was not written."""
    monkeypatch.setattr(letters_render, "RENDER_TIMEOUT", 0.0)  # any clocked render is already late
    run = {"date_text": "2026年11月27日", "dry_run": False, "packages": 1, "by_channel": [("电子税务局", 1)],
           "opted_out": 0, "suppressed": 0, "failed": 0}
    row = {"taxpayer_id": "T1", "name": "杭州<甲>有限公司", "authority": "局", "channel_label": "电子税务局",
           "incentives": ("甲",), "reminders": 0, "total": "1.00 元", "status": "queued",
           "status_label": "已放入发件箱", "files": ["etax/T1.html"]}
    assert "杭州&lt;甲&gt;有限公司" in LetterRenderer().index(run, [row])
    bureau = tmp_path / "bureau"
    shutil.copytree(letters_render.TEMPLATES_DIR, bureau)
    with pytest.raises(letters_render.RenderLimitError):
        LetterRenderer(bureau).index(run, [row])


def test_catalogue_is_loaded_once_for_the_same_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    first = load_catalogue(rules)
    assert load_catalogue(rules) is first
    victim = next(p for p in sorted(rules.glob("*.yaml")) if not p.name.startswith("_")
                  and not p.name.endswith(".cases.yaml"))
    text = victim.read_text("utf-8")
    victim.write_text(text + "\n# 已修改\n", encoding="utf-8")
    again = load_catalogue(rules)
    assert again is not first and again.version != first.version
