"""The `zhixiang` command line: the root group that wires every command module together.

It is the one place that imports profiles, engine and notifier alike; nothing imports it. Each
command module (engine/commands.py, notifier/commands.py, ...) exposes a `COMMANDS` list of click
commands that parse arguments, call one core function and map errors to exit codes.
"""

from __future__ import annotations

import importlib
import sys

import click

#: Modules whose COMMANDS are attached to `zhixiang`; a module that is absent is skipped.
COMMAND_MODULES = (
    "engine.commands",
    "engine.rule_commands",
    "engine.check_commands",
    "notifier.commands",
    "notifier.case_commands",
    "notifier.nightly_commands",
    "profiles.commands",
    "workbench.commands",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zhixiang")
def main() -> None:
    """直享 Zhixiang — 税费优惠政策直达快享：应享未享提醒、违规享受识别。"""


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
