"""The nightly configuration: TOML file, environment overrides, errors that name the key, due periods."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.catalogue import DEFAULT_RULES_DIR
from notifier.nightly.config import Config, ConfigError, Periods, due_periods, environment_overrides, load_config

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zhixiang.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None, environ={})
    assert config.schedule.hour == "2" and config.schedule.minute == "0"
    assert config.schedule.timezone == "Asia/Shanghai"
    assert config.schedule.misfire_grace == timedelta(hours=6)
    assert config.letters.cooldown_days == 90
    assert config.service_levels().high == 10
    assert config.source == "默认配置"
    assert config.log_dir == Path("runs/logs")  # beside the runs, not in whatever directory the command ran
    assert load_config(None, environ={"ZHIXIANG_LOGGING__FILE": "false"}).log_dir is None


def test_the_sample_file_is_valid_and_documents_every_key() -> None:
    sample = ROOT / "zhixiang.example.toml"
    config = load_config(sample, environ={})
    text = sample.read_text(encoding="utf-8")
    for section, model in Config.model_fields.items():
        if model.exclude:
            continue
        assert (f"[{section}]" in text) or (f"{section} =" in text), f"{section} missing from {sample.name}"
    assert config.paths.out == Path("runs")


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, """
state_url = "sqlite:///from-file.sqlite"
[schedule]
hour = "3"
misfire_grace_hours = 4
[letters]
cooldown_days = 30
[cases]
high_days = 7
""")
    env = {"ZHIXIANG_STATE_URL": "postgresql://zx@db/zhixiang", "ZHIXIANG_SCHEDULE__HOUR": "1",
           "ZHIXIANG_LETTERS__MATERIAL_PCT": "5", "ZHIXIANG_PERIODS__KINDS": '["year", "month"]',
           "ZHIXIANG_TEST_PG_URL": "postgresql://ignored"}
    config = load_config(path, environ=env)
    assert config.state_url == "postgresql://zx@db/zhixiang"
    assert config.schedule.hour == "1"
    assert config.schedule.misfire_grace_hours == 4
    assert config.letters.cooldown_days == 30
    assert config.letters.material_pct == Decimal(5)
    assert config.periods.kinds == ("year", "month")
    assert config.suppression_policy().cooldown_days == 30
    assert config.service_levels().high == 7
    assert config.source == str(path)


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[report]\ntop_rules = 3\n")
    assert load_config(None, environ={"ZHIXIANG_CONFIG": str(path)}).report.top_rules == 3


def test_errors_name_every_key_and_where_it_came_from(tmp_path: Path) -> None:
    path = _write(tmp_path, """
[schedule]
hour = "25"
timezone = "Asia/Shanghia"
[letters]
cooldown_day = 30
""")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={"ZHIXIANG_LOCKS__HEARTBEAT_SECONDS": "-1"})
    text = str(err.value)
    assert "4 处错误" in text
    assert "schedule.hour = '25'" in text and "cron" in text
    assert "schedule.timezone = 'Asia/Shanghia'" in text and "IANA" in text
    assert "letters.cooldown_day" in text and "您是不是要写 letters.cooldown_days" in text
    assert "locks.heartbeat_seconds = '-1'（环境变量 ZHIXIANG_LOCKS__HEARTBEAT_SECONDS）" in text
    assert str(path) in text


def test_unknown_environment_variable_in_a_section_is_an_error() -> None:
    _, _, problems = environment_overrides({"ZHIXIANG_SCHEDULE__HOURR": "3", "ZHIXIANG_SOMETHING": "x"})
    assert problems == ["环境变量 ZHIXIANG_SCHEDULE__HOURR 不对应任何配置项（您是不是要写 ZHIXIANG_SCHEDULE__HOUR？）"]
    with pytest.raises(ConfigError, match="ZHIXIANG_SCHEDULE__HOURR"):
        load_config(None, environ={"ZHIXIANG_SCHEDULE__HOURR": "3"})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="不是有效的 TOML"):
        load_config(_write(tmp_path, "[schedule\nhour = 2"), environ={})
    with pytest.raises(ConfigError, match="不存在"):
        load_config(tmp_path / "nope.toml", environ={})


def test_heartbeat_must_leave_room_before_stale() -> None:
    with pytest.raises(ConfigError, match="至少是 heartbeat_seconds 的 3 倍"):
        load_config(None, environ={"ZHIXIANG_LOCKS__HEARTBEAT_SECONDS": "30",
                                   "ZHIXIANG_LOCKS__STALE_AFTER_SECONDS": "60"})


def test_command_line_overrides() -> None:
    config = load_config(None, environ={}).with_overrides(data="/data/x", out=Path("/o"), rules=None,
                                                          state_url="sqlite:///s.sqlite")
    assert config.paths.data == "/data/x" and config.paths.out == Path("/o")
    assert config.paths.rules == DEFAULT_RULES_DIR  # the installed catalogue, wherever the job is started
    assert config.state_url == "sqlite:///s.sqlite"


# ------------------------------------------------------------------------------------------- due periods


def _due(as_of: str, **kw: object) -> list[str]:
    return [p.text for p in due_periods(date.fromisoformat(as_of), Periods(**kw))]  # type: ignore[arg-type]


@pytest.mark.parametrize(("as_of", "expected"), [
    ("2026-04-15", ["2025", "2026Q1", "2026-03"]),
    ("2026-03-31", ["2025", "2026Q1", "2026-03"]),  # the day a quarter ends, its data is in
    ("2026-03-30", ["2025", "2025Q4", "2026-02"]),
    ("2026-01-01", ["2025", "2025Q4", "2025-12"]),
    ("2025-12-31", ["2025", "2025Q4", "2025-12"]),
    ("2025-12-30", ["2024", "2025Q3", "2025-11"]),
])
def test_latest_closed_periods(as_of: str, expected: list[str]) -> None:
    assert _due(as_of, lookback_quarters=0, lookback_months=0) == expected


def test_lookback_and_kinds() -> None:
    assert _due("2026-04-15", lookback_years=1, lookback_quarters=2, lookback_months=3) == [
        "2024", "2025", "2025Q3", "2025Q4", "2026Q1", "2025-12", "2026-01", "2026-02", "2026-03"]
    assert _due("2026-02-10", kinds=("month",), lookback_months=2) == ["2025-11", "2025-12", "2026-01"]


def test_filing_lag_delays_a_period() -> None:
    # the annual CIT settlement ends on 31 May: a year's figures are complete 151 days after it ends
    assert _due("2026-05-30", kinds=("year",), year_lag_days=151) == ["2024"]
    assert _due("2026-05-31", kinds=("year",), year_lag_days=151) == ["2025"]
    assert _due("2026-04-14", kinds=("quarter",), quarter_lag_days=15, lookback_quarters=0) == ["2025Q4"]
    assert _due("2026-04-15", kinds=("quarter",), quarter_lag_days=15, lookback_quarters=0) == ["2026Q1"]
