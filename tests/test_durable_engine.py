"""durable-rules' known failures, handled: unhandled and duplicate events, long runs, event size, a missing
interpreter build — and the translation's own guarantees (one verdict per event, sessions left empty)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine.backends.durable as durable
from engine import ir
from engine.backends.durable import (
    DurableEngineError,
    build_env,
    compile_program,
    require_durable,
    unavailable_message,
)
from engine.backends.polars import NotTranslatableError
from engine.catalogue import load_catalogue
from engine.errors import RuntimeUnavailableError
from profiles.periods import parse_period
from tests.parity_support import ROOT, assert_paths_agree
from tests.test_parity_nodes import checked, probe_rule

YEAR = parse_period("2025")


def _env(catalogue: Any, **row: Any) -> durable.Env:
    return build_env(catalogue, YEAR, taxpayer=row, indicators=None, claims=[], risk_events=[])


def test_the_unavailable_message_says_why_and_what_to_do() -> None:
    text = unavailable_message(ImportError("undefined symbol: PyEval_CallObject"), (3, 13))
    assert "Python 3.13" in text and "PyEval_CallObject" in text
    assert "scripts/setup" in text and "--engine polars" in text and "zhixiang run" in text
    missing = unavailable_message(ModuleNotFoundError("No module named 'durable'"), (3, 12))
    assert "未安装或无法加载" in missing and "No module named" in missing


def test_require_durable_raises_the_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "_IMPORT_ERROR", ImportError("undefined symbol: PyEval_CallObject"))
    with pytest.raises(RuntimeUnavailableError, match="实时核查（durable-rules 引擎）不可用") as info:
        require_durable()
    assert info.value.exit_code == 4


def _write_folder(folder: Path) -> None:
    from engine.realtime import profile_from_json
    from tests.test_durable_realtime import small_firm

    catalogue = load_catalogue()
    profile = profile_from_json(small_firm(), known_incentives=catalogue.known_incentives)
    folder.mkdir()
    for name, frame in profile.frames().items():
        frame.write_csv(folder / f"{name}.csv")


def test_without_durable_rules_check_explains_and_run_still_works(tmp_path: Path) -> None:
    """As on Python 3.13, where durable_rules_engine does not import."""
    data = tmp_path / "data"
    _write_folder(data)
    prelude = ("import sys; sys.modules['durable_rules_engine'] = None; "
               "from engine.cli import main; sys.argv = ['zhixiang'] + sys.argv[1:]; main()")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def zx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", prelude, *args], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=300)

    check = zx("check", "--data", str(data), "--period", "2025", "--taxpayer", "91330106MA2Y0001XP")
    assert check.returncode == 4, check.stderr
    assert "实时核查（durable-rules 引擎）不可用" in check.stderr and "Traceback" not in check.stderr
    polars = zx("check", "--data", str(data), "--period", "2025", "--taxpayer", "91330106MA2Y0001XP",
                "--engine", "polars")
    assert polars.returncode == 0, polars.stderr
    assert "小型微利企业" in polars.stdout
    run = zx("run", "--data", str(data), "--period", "2025", "--out", str(tmp_path / "out"), "--quiet")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "findings.parquet").exists()


def test_many_evaluations_in_one_process_leave_no_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Well past the ~100k events after which durable-rules used to refuse (MessageObservedException),
    with identical profiles posted over and over, and the session dropped and recreated on the way."""
    monkeypatch.setattr(durable, "RESET_EVERY", 7_000)
    catalogue, _ = probe_rule(checked("(employees_qavg <= cap and not restricted_industry) or has(registered_on)"))
    program = compile_program(catalogue, YEAR)
    rows = [{"employees_qavg": 100.0, "restricted_industry": False}, {"employees_qavg": 400.0},
            {"registered_on": date(2020, 1, 1)}, {}]
    expected = ["pass", "fail", "pass", "unknown"]
    for i in range(60_000):  # two events each: 120k events
        (verdict,) = program.evaluate(_env(catalogue, **rows[i % 4]))
        assert verdict.statuses["scope"] == expected[i % 4]
    ruleset = durable._host().get_ruleset(program.plans[0].ruleset)
    assert durable._dre.get_events(ruleset._handle, ruleset.sid) == "[]"  # nothing pending in the session


def test_a_fresh_session_per_taxpayer_gives_the_same_findings() -> None:
    from tests.parity_support import PROBE_RULES

    catalogue = load_catalogue(PROBE_RULES)
    from engine.realtime import profile_from_json
    from tests.test_durable_realtime import small_firm

    profile = profile_from_json(small_firm(), known_incentives=load_catalogue().known_incentives)
    profiles = _tables(profile)
    assert_paths_agree(catalogue, profiles, YEAR, session="per_taxpayer")


def _tables(profile: Any) -> Any:
    from profiles.validation import Profiles

    return Profiles(**profile.frames())


def test_no_dispatch_threads_are_started() -> None:
    before = {t.name for t in threading.enumerate()}
    catalogue, _ = probe_rule(checked("sales > 0"))
    compile_program(catalogue, YEAR).evaluate(_env(catalogue, sales=Decimal("1.00")))
    assert {t.name for t in threading.enumerate()} == before


def test_a_condition_reading_too_many_inputs_is_refused_at_compile_time() -> None:
    names = [f"sales > {i}" for i in range(15)] + [f"taxable_income < {i}" for i in range(15)]
    wide = ir.And(tuple(checked(text) for text in names))
    derived = ir.And(tuple(checked(f"sales * {i} > 1") for i in range(2, 32)))
    catalogue, _ = probe_rule(derived)
    with pytest.raises(NotTranslatableError, match="超过实时核查引擎每个条件"):
        compile_program(catalogue, YEAR)
    catalogue, _ = probe_rule(wide)  # only two fields: fine
    (verdict,) = compile_program(catalogue, YEAR).evaluate(_env(catalogue, sales=Decimal(20), taxable_income=-1))
    assert verdict.statuses["scope"] == "pass"


def test_a_missing_verdict_is_an_engine_error_not_a_silent_gap() -> None:
    catalogue, _ = probe_rule(checked("sales > 0"))
    program = compile_program(catalogue, YEAR)
    plan = program.plans[0]
    with pytest.raises(DurableEngineError, match="只得到"):
        program._decode(plan, [], 1)
    with pytest.raises(DurableEngineError, match="两个结论"):
        program._decode(plan, [0, 1], 1)
