"""One exception tree for everything a user can get wrong, with the exit code the CLI maps it to.

Rule-authoring errors carry `file:line:col`, what was found, what was expected, a did-you-mean and
an example; data errors name the file, row and field. Users see these messages, never tracebacks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_INPUT_ERROR = 2  # the data folder / source is unusable (missing table, unreadable file)
EXIT_RULE_ERROR = 3  # the rule catalogue does not load or its tests fail
EXIT_RUNTIME_ERROR = 4  # unavailable backend, database unreachable, output not writable
#: The run finished and wrote every other letter, but some letters could not be made or sent (a template
#: that fails for them, a PDF over its bounds, a server that refused them): each is in the manifest
#: (status failed, with the reason) and in the summary's letter_failures / delivery_failures.
EXIT_LETTERS_FAILED = 5
EXIT_USAGE = 64


class ZhixiangError(Exception):
    """Root of every error a user is meant to read."""

    exit_code = EXIT_RUNTIME_ERROR


class InputError(ZhixiangError):
    """The input data cannot be used at all (a structural problem, not a bad row)."""

    exit_code = EXIT_INPUT_ERROR


class UsageProblem(ZhixiangError):
    """A command-line value the command cannot use (a malformed period, date or id): exit 64."""

    exit_code = EXIT_USAGE


class RuntimeUnavailableError(ZhixiangError):
    """A component needed for the request is not available here (e.g. durable-rules on Python 3.13)."""

    exit_code = EXIT_RUNTIME_ERROR


@dataclass(frozen=True)
class RuleProblem:
    """One problem in a rule file, located to the character."""

    file: str
    line: int
    col: int
    message: str
    expected: str = ""
    suggestion: str = ""
    example: str = ""

    def format(self) -> str:
        parts = [f"{self.file}:{self.line}:{self.col}: {self.message}"]
        if self.expected:
            parts.append(f"    应为: {self.expected}")
        if self.suggestion:
            parts.append(f"    您是不是要写: {self.suggestion}")
        if self.example:
            parts.append(f"    示例: {self.example}")
        return "\n".join(parts)


class RuleError(ZhixiangError):
    """The rule catalogue has problems; all of them are listed, not just the first."""

    exit_code = EXIT_RULE_ERROR

    def __init__(self, problems: Iterable[RuleProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col))
        super().__init__(self.format())

    def format(self) -> str:
        n = len(self.problems)
        lines = [p.format() for p in self.problems]
        lines.append(f"规则目录有 {n} 处错误，请修改后重试。")
        return "\n".join(lines)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """The closest candidate to a misspelt name, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else ""


def exit_on_user_error(fn):  # type: ignore[no-untyped-def]
    """Decorator for CLI commands: a ZhixiangError becomes its message on stderr and its exit code."""
    import functools
    import sys

    import click

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        from profiles.errors import ProfileError

        try:
            return fn(*args, **kwargs)
        except (ZhixiangError, ProfileError) as exc:
            from profiles.database import mask_secrets

            click.echo(f"错误: {mask_secrets(str(exc))}", err=True)
            sys.exit(getattr(exc, "exit_code", EXIT_RUNTIME_ERROR))

    return wrapper
