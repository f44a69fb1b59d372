"""The command line as a newcomer meets it (issue 18): help in Chinese, bare `zhixiang` is help (exit 0),
usage errors exit 64 as the README says, `--as-of` is a date everywhere, defaults shown relative."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from engine import cli_examples
from engine.cli import main
from engine.cli_zh import ISO_DATE
from engine.errors import EXIT_USAGE

ENGLISH = ("Show this message and exit", "[required]", "[default:", "Usage:", "Options:", "Commands:")


def _commands(cmd: click.Command = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                    click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))


def test_bare_zhixiang_prints_help_and_exits_0() -> None:
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 0
    assert "用法：" in result.stdout and "示例：" in result.stdout


def test_a_bare_command_group_prints_its_help_and_exits_0() -> None:
    result = CliRunner().invoke(main, ["cases"])
    assert result.exit_code == 0 and "sync" in result.stdout


@pytest.mark.parametrize("args", [
    ["run", "--bogus"],
    ["nosuchcommand"],
    ["run", "--data", "x", "--out", "y"],  # --period missing
    ["run", "--data", "x", "--period", "2025Q5", "--out", "y"],
    ["explain", "--data", "x", "--period", "2026-13", "--taxpayer", "1"],
    ["nightly", "--as-of", "2026-02-30", "--data", "x", "--out", "y"],
    ["notify", "--findings", "x", "--out", "y", "--as-of", "tomorrow"],
    ["cases", "list", "--as-of", "20261015"],
    ["runs", "list", "--limit", "0"],
])
def test_usage_errors_exit_64_in_chinese(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output
    assert not any(word in result.output for word in ("Error:", "No such", "Missing", "Try '"))


@pytest.mark.parametrize(("path", "command"), list(_commands()), ids=lambda v: " ".join(v) if isinstance(v, tuple)
                         else None)
def test_help_is_chinese_complete_and_relative(path: tuple[str, ...], command: click.Command) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert not [w for w in ENGLISH if w in result.output], result.output
    assert "/work/" not in result.output and "/root/" not in result.output, "absolute default path"
    assert command.help, "command without a description"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no description"
            if param.name == "as_of":
                assert param.type is ISO_DATE, f"{' '.join(path)} --as-of is not a date"


def test_cases_and_runs_read_the_state_database_the_nightly_configuration_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZHIXIANG_STATE_URL", raising=False)
    monkeypatch.delenv("ZHIXIANG_CONFIG", raising=False)
    nightly_state = tmp_path / "nightly" / "state.sqlite"
    nightly_state.parent.mkdir()
    (tmp_path / "zhixiang.toml").write_text(f'state_url = "{nightly_state}"\n', encoding="utf-8")
    for args in (["cases", "list"], ["runs", "list"], ["cases", "stats"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert str(nightly_state) in result.output, (args, result.output)  # says which database it opened
    assert not (tmp_path / "zhixiang-state.sqlite").exists()
    assert nightly_state.exists()
    # a database that did not exist is named as new
    other = tmp_path / "other.sqlite"
    result = CliRunner().invoke(main, ["cases", "list", "--state", str(other)])
    assert result.exit_code == 0 and "不存在，已新建" in result.output and str(other) in result.output


def _leaf_commands() -> list[str]:
    return [" ".join(path) for path, command in _commands() if path and not isinstance(command, click.Group)]


@pytest.mark.parametrize("path", sorted(cli_examples.EXAMPLES))
def test_every_help_example_parses_against_its_command(path: str) -> None:
    """Each example is parsed by the real command (options, arguments, required ones), not run."""
    assert path in _leaf_commands(), f"examples for a command that does not exist: {path}"
    for line, comment in cli_examples.EXAMPLES[path]:
        assert comment and "zhixiang " + path in line
        args = shlex.split(line)[1:]
        command: click.Command = main
        for word in path.split():
            assert isinstance(command, click.Group) and args[0] == word, line
            command, args = command.commands[word], args[1:]
        ctx = command.make_context(path, args)  # raises on an unknown option, a missing required one …
        assert not ctx.args, f"{line}: left unparsed {ctx.args}"
        assert "示例" in (command.epilog or ""), path


def test_the_main_commands_have_examples() -> None:
    for path in ("run", "nightly", "check", "explain", "notify", "whatif", "cases list", "serve"):
        assert path in cli_examples.EXAMPLES
        result = CliRunner().invoke(main, [*path.split(), "--help"])
        assert result.exit_code == 0 and "示例" in result.output and cli_examples.EXAMPLES[path][0][0] in \
            result.output.replace("\n  ", " ")
