"""The engine's errors, under the project's one exception root (profiles.errors.ZhixiangError, which also
defines every exit code and the one place that maps an error to its code, `exit_on_user_error`).

Rule-authoring errors carry `file:line:col`, what was found, what was expected, a did-you-mean and
an example; data errors name the file, row and field. Users see these messages, never tracebacks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from profiles.errors import (  # the root and the exit codes, defined once (re-exported here)
    EXIT_INPUT_ERROR,
    EXIT_LETTERS_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_RULE_ERROR,
    EXIT_RUNTIME_ERROR,
    EXIT_USAGE,
    ZhixiangError,
    exit_code_of,
    exit_on_user_error,
)

__all__ = ["EXIT_INPUT_ERROR", "EXIT_LETTERS_FAILED", "EXIT_LOCKED", "EXIT_OK", "EXIT_RULE_ERROR",
           "EXIT_RUNTIME_ERROR", "EXIT_USAGE", "InputError", "RuleError", "RuleProblem", "RuntimeUnavailableError",
           "UsageProblem", "ZhixiangError", "did_you_mean", "exit_code_of", "exit_on_user_error"]


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
