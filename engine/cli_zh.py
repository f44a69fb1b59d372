"""The command line in Chinese, and its usage errors on exit code 64.

click writes its own boilerplate ("Show this message and exit.", "[required]", "[default: …]",
"Error: No such option") through gettext; `install()` gives those messages Chinese text (the
placeholders stay), for the `zhixiang` process only. `ZhixiangGroup` is the root command: bare
`zhixiang` prints the help and exits 0, and every usage error (an unknown option, a missing one, a value
of the wrong type) exits with EXIT_USAGE (64) as the README says, instead of click's 2 — which is the
input-data error code here. `ISO_DATE` is the one type of every `--as-of`.
"""

from __future__ import annotations

import importlib
import re
from datetime import date
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

from engine.errors import EXIT_USAGE

#: click's messages (as of click 8.1–8.3) and their Chinese text; unknown messages stay as they are.
MESSAGES: dict[str, str] = {
    "Usage:": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "Positional arguments": "位置参数",
    "Show this message and exit.": "显示本帮助并退出。",
    "Show the version and exit.": "显示版本并退出。",
    "%(prog)s, version %(version)s": "%(prog)s 版本 %(version)s",
    "default: {default}": "默认：{default}",
    "required": "必填",
    "env var: {var}": "环境变量：{var}",
    "(dynamic)": "（动态）",
    "deprecated": "已弃用",
    "Error: {message}": "错误：{message}",
    "Try '{command} {option}' for help.": "用 '{command} {option}' 查看帮助。",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "Missing {param_type}": "缺少{param_type}",
    "Missing parameter: {param_name}": "缺少参数：{param_name}",
    "Missing command.": "缺少命令。",
    "No such command {name!r}.": "没有命令 {name!r}。",
    "No such option {name!r}.": "没有选项 {name!r}。",
    "No such option: {name}": "没有选项：{name}",
    "Option {name!r} does not take a value.": "选项 {name!r} 不带值。",
    "Option {name!r} requires an argument.": "选项 {name!r} 需要一个值。",
    "Option {name!r} requires {nargs} arguments.": "选项 {name!r} 需要 {nargs} 个值。",
    "Argument {name!r} takes {nargs} values.": "参数 {name!r} 需要 {nargs} 个值。",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的值无效：{message}",
    "Invalid value: {message}": "值无效：{message}",
    "Got unexpected extra argument ({args})": "多余的参数（{args}）",
    "Got unexpected extra arguments ({args})": "多余的参数（{args}）",
    "Did you mean {possibility}?": "您是不是要写 {possibility}？",
    "(Did you mean one of: {possibilities}?)": "（您是不是要写其中之一：{possibilities}？）",
    "{value!r} is not a valid {number_type}.": "{value!r} 不是有效的{number_type}。",
    "{value!r} is not one of {choices}.": "{value!r} 不在可选值 {choices} 之中。",
    "{value!r} is not {choice}.": "{value!r} 不是 {choice}。",
    "{value} is not in the range {range}.": "{value} 不在范围 {range} 之内。",
    "{value!r} is not a valid boolean. Recognized values: {states}": "{value!r} 不是有效的布尔值，可用：{states}",
    "{value!r} does not match the format {format}.": "{value!r} 不符合格式 {format}。",
    "{value!r} does not match the formats {formats}.": "{value!r} 不符合格式 {formats}。",
    "integer": "整数",
    "float": "数值",
    # ("path", "file", "directory" stay: they are also the metavars, and CJK metavars break the alignment
    # of the options column)
    "{name} {filename!r} does not exist.": "{filename!r} 不存在。",
    "{name} {filename!r} is a file.": "{filename!r} 是文件，不是目录。",
    "{name} {filename!r} is a directory.": "{filename!r} 是目录，不是文件。",
    "{name} {filename!r} is not readable.": "{filename!r} 不可读。",
    "{name} {filename!r} is not writable.": "{filename!r} 不可写。",
    "Could not open file {filename!r}: {message}": "无法打开文件 {filename!r}：{message}",
    "Aborted!": "已中止。",
    "Do you want to continue?": "是否继续？",
}


def _gettext(message: str) -> str:
    return MESSAGES.get(message, message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _gettext(singular if n == 1 else plural)


def install() -> None:
    """Route click's messages through MESSAGES (idempotent)."""
    for name in ("core", "exceptions", "formatting", "decorators", "types", "parser", "_parser", "termui"):
        try:
            module = importlib.import_module(f"click.{name}")
        except ImportError:
            continue
        if hasattr(module, "_"):
            module._ = _gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = _ngettext  # type: ignore[attr-defined]


class ZhixiangGroup(click.Group):
    """The root command: help on stdout when it (or a command group) is called bare, exit 0; every other
    usage error exits 64."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _usage(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage(exc)
            raise


def _usage(exc: click.UsageError) -> None:
    if isinstance(exc, NoArgsIsHelpError):
        click.echo(exc.ctx.get_help())
        raise click.exceptions.Exit(0) from None
    exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # click reads it from the instance


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD; the value stays that text (normalised)."""

    name = "日期"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        self.fail(f"{value!r} 不是日期：应为 YYYY-MM-DD，如 2026-10-15", param, ctx)


ISO_DATE = IsoDate()
