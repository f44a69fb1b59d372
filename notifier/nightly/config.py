"""The nightly configuration: one TOML file, overridden by environment variables, validated by pydantic.

    state_url = "sqlite:///var/lib/zhixiang/state.sqlite"   # env ZHIXIANG_STATE_URL
    [paths]     data, out, rules, templates, log_dir       # env ZHIXIANG_PATHS__DATA, ...
    [schedule]  hour, minute, timezone, misfire_grace_hours # env ZHIXIANG_SCHEDULE__HOUR, ...
    [periods]   which periods are due and how far back to re-evaluate
    [letters]   cool-down and what counts as a material change (passed to the suppression ledger)
    [delivery]  smtp / webhook besides the file outbox, retries, and how many nights an undelivered letter
                is sent again ([delivery.smtp], [delivery.webhook]; secrets from the environment)
    [cases]     service levels by tier (passed to the case ledger)
    [guards]    when a night's input shrank implausibly (stop before the case ledger, unless accepted)
    [locks] [logging] [report]

Every key has a default, so an empty file (or none) is a valid configuration. An environment variable
is `ZHIXIANG_` + the key path in capitals with `__` between levels; its text is parsed as the key's type
(a list or table as JSON). A wrong value or an unknown key stops with a message that names the key,
where it came from (file or variable), what was expected and, for a misspelt key, the nearest one.
The sample file is zhixiang.example.toml at the repository root.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from datetime import date, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from engine.catalogue import DEFAULT_RULES_DIR
from engine.errors import EXIT_USAGE, ZhixiangError, did_you_mean
from profiles.periods import Period, parse_period

ENV_PREFIX = "ZHIXIANG_"
#: Variables of the same prefix that are not configuration keys (read elsewhere).
ENV_NOT_CONFIG = frozenset({"ZHIXIANG_CONFIG", "ZHIXIANG_TEST_PG_URL", "ZHIXIANG_PG_DIR",
                            "ZHIXIANG_NIGHTLY_FAULT", "ZHIXIANG_SMTP_USER", "ZHIXIANG_SMTP_PASSWORD",
                            "ZHIXIANG_WEBHOOK_TOKEN", "ZHIXIANG_PYTHON", "ZHIXIANG_VENV", "ZHIXIANG_WHEEL_CACHE"})
#: The one time zone every time a person reads is shown in (run report, run and case ledgers), labelled so.
#: China has no daylight saving, so a fixed offset is exact.
BEIJING = timezone(timedelta(hours=8), "北京时间")
#: The file read when neither --config nor ZHIXIANG_CONFIG names one (and it exists).
DEFAULT_CONFIG_FILE = "zhixiang.toml"


class ConfigError(ZhixiangError):
    """The configuration file or an override is wrong; the message names every bad key."""

    exit_code = EXIT_USAGE


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Section):
    """Where things are. Relative paths are relative to the working directory of the command."""

    data: str = Field(default="sample_data/hangzhou", description="档案数据目录，或 postgresql:// 数据库地址")
    out: Path = Field(default=Path("runs"), description="运行输出根目录：每个业务日期一个子目录")
    rules: Path = Field(default=DEFAULT_RULES_DIR, description="规则目录（缺省为随程序安装的规则目录）")
    templates: Path | None = Field(default=None, description="信函模板目录（空 = 内置模板）")
    log_dir: Path | None = Field(default=None, description="JSON 行日志目录（默认 <out>/logs）")


class Schedule(_Section):
    """When `zhixiang schedule` starts the nightly run (an APScheduler cron trigger)."""

    hour: str = Field(default="2", description="时（cron 语法，如 2、*/6）")
    minute: str = Field(default="0", description="分")
    second: str = Field(default="0", description="秒")
    day_of_week: str = Field(default="*", description="星期（如 mon-fri）")
    timezone: str = Field(default="Asia/Shanghai", description="时区")
    misfire_grace_hours: float = Field(default=6.0, gt=0, le=23, description="错过触发时间后仍补跑的宽限（小时）")
    as_of_offset_days: int = Field(default=1, ge=0, le=7,
                                   description="业务日期 = 触发日期 − 天数（凌晨运行处理前一天）")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"未知时区 {value!r}：应为 IANA 时区名，如 Asia/Shanghai") from None
        return value

    @field_validator("hour", "minute", "second", "day_of_week", mode="before")
    @classmethod
    def _valid_cron_field(cls, value: object, info: ValidationInfo) -> str:
        """A cron field as text (TOML may give `hour = 2`), checked by APScheduler itself."""
        value = str(value).strip()
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger(**{info.field_name: value}, timezone="UTC")  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"不是有效的 cron 字段：{exc}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(hours=self.misfire_grace_hours)


class Periods(_Section):
    """Which periods a business day evaluates.

    The latest closed year, quarter and month as of the day (a period is closed once its last day plus
    the kind's lag has passed — figures arrive with the filings, not on the last day), and before each
    the `lookback_*` previous ones, because late filings and corrections change them.
    """

    kinds: tuple[Literal["year", "quarter", "month"], ...] = ("year", "quarter", "month")
    lookback_years: int = Field(default=0, ge=0, le=5)
    lookback_quarters: int = Field(default=1, ge=0, le=8)
    lookback_months: int = Field(default=2, ge=0, le=24)
    year_lag_days: int = Field(default=0, ge=0, le=366, description="年度结束后多少天算已结束（如汇算清缴截止 151 天）")
    quarter_lag_days: int = Field(default=0, ge=0, le=92)
    month_lag_days: int = Field(default=0, ge=0, le=31)

    @field_validator("kinds")
    @classmethod
    def _some_kind(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("至少要评估一种所属期：year、quarter、month")
        return tuple(dict.fromkeys(value))

    def lag(self, kind: str) -> timedelta:
        return timedelta(days=int(getattr(self, f"{kind}_lag_days")))

    def lookback(self, kind: str) -> int:
        return int(getattr(self, f"lookback_{kind}s"))


class Letters(_Section):
    """Letters: the suppression ledger's cool-down and what makes a changed amount news again."""

    enabled: bool = True
    cooldown_days: int = Field(default=90, ge=0, le=3650, description="同一纳税人×政策×所属期的冷却天数")
    material_pct: Decimal | None = Field(default=Decimal(10), ge=0, description="测算金额变动达到该百分比视为重大变化")
    material_amount: Decimal | None = Field(default=Decimal(1000), ge=0, description="或变动达到该金额（元）")
    jobs: int = Field(default=0, ge=0, le=64, description="并行生成 PDF 信函的进程数（0 = CPU 核数）")
    pdf_channels: list[Literal["etax", "email", "post"]] = Field(
        default=["post"], description="信函附 PDF 的渠道（PDF 每封约 1 秒；电子税务局默认推送可打印的 HTML）")
    etax_name: str = "浙江省电子税务局"
    etax_url: str = "https://etax.zhejiang.chinatax.gov.cn"
    hotline: str = "12366"
    sms_signature: str = "杭州税务"


class SmtpServer(_Section):
    """The SMTP server of the e-mail channel (login from ZHIXIANG_SMTP_USER / ZHIXIANG_SMTP_PASSWORD)."""

    host: str = ""
    port: int = Field(default=25, gt=0, lt=65536)
    sender: str = Field(default="", description="发件人地址")
    starttls: bool = False
    ssl: bool = False


class WebhookEndpoint(_Section):
    """The message centre's endpoint (bearer token from ZHIXIANG_WEBHOOK_TOKEN)."""

    url: str = ""
    channels: list[Literal["etax", "email", "sms", "post"]] = Field(default=["etax", "sms"],
                                                                     description="经消息中心推送的渠道")


class Delivery(_Section):
    """Sending the night's letters beyond the file outbox; an undelivered letter is tried again on later nights."""

    backends: list[Literal["smtp", "webhook"]] = Field(default=[], description="除发件箱外的发送方式")
    retries: int = Field(default=3, ge=0, le=10, description="一次发送失败后的重试次数")
    retry_delay_seconds: float = Field(default=1.0, ge=0, le=300)
    retry_days: int = Field(default=7, ge=0, le=90, description="未送达的信函在此后多少天内每晚重发")
    smtp: SmtpServer = SmtpServer()
    webhook: WebhookEndpoint = WebhookEndpoint()

    @model_validator(mode="after")
    def _servers_given(self) -> Delivery:
        if "smtp" in self.backends and not (self.smtp.host and self.smtp.sender):
            raise ValueError("backends 含 smtp 时必须设置 [delivery.smtp] 的 host 和 sender")
        if "webhook" in self.backends and not self.webhook.url:
            raise ValueError("backends 含 webhook 时必须设置 [delivery.webhook] 的 url")
        return self

    def build(self) -> list[Any]:
        """The configured back-ends (notifier.letters.delivery), ready to send."""
        from notifier.letters.delivery import smtp_backend, webhook_backend

        out: list[Any] = []
        if "smtp" in self.backends:
            s = self.smtp
            out.append(smtp_backend(host=s.host, port=s.port, sender=s.sender, starttls=s.starttls, use_ssl=s.ssl))
        if "webhook" in self.backends:
            out.append(webhook_backend(url=self.webhook.url, channels=frozenset(self.webhook.channels)))
        return out

    def retry_policy(self) -> Any:
        from notifier.letters.delivery import RetryPolicy

        return RetryPolicy(attempts=self.retries + 1, delay=self.retry_delay_seconds)


class Cases(_Section):
    """Risk cases: the service levels (calendar days to finish a case) by tier."""

    high_days: int = Field(default=10, gt=0, le=365)
    medium_days: int = Field(default=20, gt=0, le=365)
    verification_days: int = Field(default=30, gt=0, le=365)


class Locks(_Section):
    """Leases in the state database: how often a holder says it is alive, and when it is presumed dead."""

    heartbeat_seconds: float = Field(default=15.0, gt=0, le=600)
    stale_after_seconds: float = Field(default=120.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> Locks:
        if self.stale_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                f"stale_after_seconds（{self.stale_after_seconds:g}）应至少是 heartbeat_seconds 的 3 倍"
                f"（{3 * self.heartbeat_seconds:g}），否则一次心跳延迟就会被当作进程已死")
        return self


class Logging(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    console: Literal["text", "json", "off"] = "text"
    file: bool = Field(default=True, description="写 JSON 行日志文件（paths.log_dir，默认 <out>/logs）")


class Report(_Section):
    trend_runs: int = Field(default=30, ge=2, le=366, description="趋势图包含的最近成功运行数")
    top_rules: int = Field(default=10, ge=1, le=50)


class Guards(_Section):
    """What stops a night before it changes anything (issue 13): an input that shrank implausibly."""

    max_shrink: float = Field(default=0.2, gt=0, le=1,
                              description="taxpayers、indicators、claims 行数比上次成功运行减少超过此比例即停止")
    accept_shrink: bool = Field(default=False, description="确认数据确实减少，照常运行（等同 --accept-shrink）")


class Config(_Section):
    """The whole configuration."""

    state_url: str = Field(default="sqlite:///zhixiang-state.sqlite", description="状态数据库（SQLite 路径或 postgresql://）")
    paths: Paths = Paths()
    schedule: Schedule = Schedule()
    periods: Periods = Periods()
    letters: Letters = Letters()
    delivery: Delivery = Delivery()
    cases: Cases = Cases()
    locks: Locks = Locks()
    logging: Logging = Logging()
    report: Report = Report()
    guards: Guards = Guards()
    source: str = Field(default="", exclude=True, description="where this configuration came from (for messages)")

    def service_levels(self) -> Any:
        """The case ledger's ServiceLevels from [cases]."""
        from notifier.cases.ledger import ServiceLevels

        c = self.cases
        return ServiceLevels(high=c.high_days, medium=c.medium_days, verification=c.verification_days)

    def suppression_policy(self) -> Any:
        """The suppression ledger's policy from [letters]."""
        from notifier.letters.suppression import SuppressionPolicy

        lt = self.letters
        return SuppressionPolicy(cooldown_days=lt.cooldown_days, material_pct=lt.material_pct,
                                 material_amount=lt.material_amount)

    def office(self) -> Any:
        """What every letter says about the bureau, from [letters]."""
        from notifier.letters.build import OfficeSettings

        lt = self.letters
        return OfficeSettings(etax_name=lt.etax_name, etax_url=lt.etax_url, hotline=lt.hotline,
                              sms_signature=lt.sms_signature)

    @property
    def log_dir(self) -> Path | None:
        """Where the JSON-lines log goes: paths.log_dir, else beside the runs in <out>/logs; None when off."""
        if not self.logging.file:
            return None
        return self.paths.log_dir or self.paths.out / "logs"

    def with_overrides(self, **paths: Any) -> Config:
        """A copy with command-line values (None = keep) put over [paths] and state_url."""
        state = paths.pop("state_url", None)
        given = {k: v for k, v in paths.items() if v is not None}
        updated = self.model_copy(update={"paths": self.paths.model_copy(update=given)}) if given else self
        return updated.model_copy(update={"state_url": state}) if state else updated


# ------------------------------------------------------------------------------------------------ loading


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable of a key path: ("schedule", "hour") → ZHIXIANG_SCHEDULE__HOUR."""
    return ENV_PREFIX + "__".join(p.upper() for p in path)


def _key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], bool]:
    """Every key path of the model → whether it is a section (a nested model)."""
    out: dict[tuple[str, ...], bool] = {}
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        path = (*prefix, name)
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out[path] = True
            out.update(_key_paths(sub, path))
        else:
            out[path] = False
    return out


def _env_value(text: str) -> Any:
    """An environment value: JSON for lists and tables, the text itself otherwise (pydantic converts it)."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def environment_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str],
                                                                list[str]]:
    """(nested overrides, key path → variable name, problems) from ZHIXIANG_* variables."""
    leaves = {env_name(p): p for p, section in _key_paths(Config).items() if not section}
    sections = {env_name(p) for p, section in _key_paths(Config).items() if section}
    overrides: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_CONFIG:
            continue
        path = leaves.get(name)
        if path is None:
            # only variables shaped like configuration keys are checked; others belong to someone else
            if "__" in name or any(name.startswith(s) for s in sections):
                guess = did_you_mean(name, leaves)
                problems.append(f"环境变量 {name} 不对应任何配置项" + (f"（您是不是要写 {guess}？）" if guess else ""))
            continue
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(environ[name])
        origin[path] = name
    return overrides, origin, problems


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def config_file(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file to read: --config, else ZHIXIANG_CONFIG, else ./zhixiang.toml when it exists."""
    if path:
        return Path(path)
    if environ.get("ZHIXIANG_CONFIG"):
        return Path(environ["ZHIXIANG_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), put the environment's overrides over it, and validate everything."""
    environ = os.environ if environ is None else environ
    file = config_file(path, environ)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"配置文件 {file} 不存在：请检查 --config 或 ZHIXIANG_CONFIG") from None
        except OSError as exc:
            raise ConfigError(f"配置文件 {file} 无法读取：{exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"配置文件 {file} 不是有效的 TOML：{exc}") from None
    overrides, origin, problems = environment_overrides(environ)
    merged = _merge(data, overrides)
    shown = str(file) if file else "默认配置"
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_explain(exc, merged, origin, shown))
        config = None
    if problems:
        raise ConfigError(f"配置有 {len(problems)} 处错误（{shown}）：\n" + "\n".join(f"  - {p}" for p in problems))
    assert config is not None
    return config.model_copy(update={"source": shown})


def _explain(exc: ValidationError, data: Mapping[str, Any], origin: Mapping[tuple[str, ...], str],
             file: str) -> list[str]:
    """One line per pydantic error: the key, where its value came from, what was wrong."""
    known = _key_paths(Config)
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"] if not isinstance(p, int))
        key = ".".join(loc) or "（顶层）"
        where = f"环境变量 {origin[loc]}" if loc in origin else file
        if err["type"] == "extra_forbidden":
            siblings = [p[-1] for p in known if p[:-1] == loc[:-1]]
            guess = did_you_mean(loc[-1], siblings)
            hint = f"，您是不是要写 {'.'.join((*loc[:-1], guess))}？" if guess else f"；可用的键：{', '.join(siblings)}"
            lines.append(f"{key}（{where}）：未知配置项{hint}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown_value = "" if isinstance(value, Mapping) else f" = {value!r}"
        lines.append(f"{key}{shown_value}（{where}）：{message}")
    return lines


# ------------------------------------------------------------------------------------------ due periods


def due_periods(as_of: date, periods: Periods) -> list[Period]:
    """The periods a business day evaluates: per kind, the latest closed one and `lookback` before it.

    Ordered year, quarters, months, oldest first within a kind.
    """
    out: list[Period] = []
    for kind in ("year", "quarter", "month"):
        if kind not in periods.kinds:
            continue
        cutoff = as_of - periods.lag(kind)  # a period is closed when its end is on or before the cutoff
        if kind == "year":
            latest = [str(cutoff.year if cutoff.month == 12 and cutoff.day == 31 else cutoff.year - 1)]
            texts = [str(int(latest[0]) - k) for k in range(periods.lookback(kind), -1, -1)]
        elif kind == "quarter":
            q = (cutoff.month - 1) // 3  # quarters fully before the cutoff's quarter
            index = cutoff.year * 4 + q - 1
            if cutoff == parse_period(f"{cutoff.year}Q{q + 1}").end:
                index += 1
            texts = [f"{i // 4}Q{i % 4 + 1}" for i in range(index - periods.lookback(kind), index + 1)]
        else:
            index = cutoff.year * 12 + cutoff.month - 1 - 1
            if cutoff == parse_period(f"{cutoff.year}-{cutoff.month:02d}").end:
                index += 1
            texts = [f"{i // 12}-{i % 12 + 1:02d}" for i in range(index - periods.lookback(kind), index + 1)]
        out.extend(parse_period(t) for t in texts)
    return out


def state_label(url: str) -> str:
    """The state database as a message names it: the SQLite file's full path, or the URL without password."""
    from notifier.db import normalise_url
    from profiles.database import display_url

    text = normalise_url(url)
    if text.startswith("sqlite:///"):
        return str(Path(text.removeprefix("sqlite:///")).resolve())
    return display_url(str(url))


def new_state_notice(url: str) -> str | None:
    """Before a command opens `url`: a note naming the database when it does not exist yet (a SQLite file
    that opening will create, empty), so that `cases`/`runs` never answer "0" from the wrong database
    without saying so."""
    from notifier.db import state_exists

    if state_exists(url):
        return None
    return (f"注意：状态数据库 {state_label(url)} 不存在，已新建（空）。夜间批处理的状态数据库由其配置的 "
            "state_url 决定（--config、环境变量 ZHIXIANG_CONFIG 或当前目录的 zhixiang.toml，或 ZHIXIANG_STATE_URL）；"
            "也可用 --state 指定。")
