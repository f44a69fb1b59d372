"""The `zhixiang` command line: the root group that wires every command module together.

It is the one place that imports profiles, engine and notifier alike; nothing imports it. Each
command module (engine/commands.py, notifier/letters/commands.py, ...) exposes a `COMMANDS` list of click
commands that parse arguments, call one core function and map errors to exit codes.
"""

from __future__ import annotations

import sys

import click

from engine import check_commands, cli_examples, cli_zh, rule_commands
from engine import commands as engine_commands
from notifier.autoapply import commands as autoapply_commands
from notifier.cases import commands as cases_commands
from notifier.letters import commands as letters_commands
from notifier.nightly import commands as nightly_commands
from notifier.whatif import commands as whatif_commands
from profiles import commands as profiles_commands
from workbench import commands as workbench_commands

EXAMPLES = """\b
示例：
  zhixiang nightly --data sample_data/hangzhou --as-of 2026-10-15 --out out --state out/state.sqlite
  zhixiang run --data sample_data/hangzhou --period 2025 --out out/run-2025
  zhixiang explain --data sample_data/hangzhou --period 2025 --taxpayer 91330106MA2Y00028P
  zhixiang cases list --state out/state.sqlite
  zhixiang 命令 --help    查看某个命令的用法
"""

#: Every command module, imported plainly: a module that fails to import fails the CLI loudly.
COMMAND_MODULES = (
    engine_commands,
    rule_commands,
    check_commands,
    letters_commands,
    cases_commands,
    nightly_commands,
    whatif_commands,
    autoapply_commands,
    profiles_commands,
    workbench_commands,
)


cli_zh.install()


@click.group(cls=cli_zh.ZhixiangGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXAMPLES)
@click.version_option(package_name="zhixiang")
def main() -> None:
    """直享 Zhixiang — 税费优惠政策直达快享：应享未享提醒、违规享受识别。

    退出码：0 成功；2 输入数据不可用；3 规则目录有误；4 运行问题（数据库不可达、实时后端不可用等）；
    64 用法错误；75 另一个夜间批处理正在运行。
    """


def _with_examples(command: click.Command, path: str) -> None:
    """Attach each command's examples (engine/cli_examples.py) as its `--help` epilog, groups included."""
    if command.epilog is None:
        command.epilog = cli_examples.epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _with_examples(sub, f"{path} {name}")


def _register() -> None:
    for module in COMMAND_MODULES:
        for command in module.COMMANDS:
            _with_examples(command, command.name or "")
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
