"""The project's one exception root and its exit codes, defined once.

Every error a user is meant to read — a profile, engine (rules, runs) or notifier (letters, cases,
nightly) error — is a `ZhixiangError`; its class's `exit_code` is what the command line exits with, and
`exit_on_user_error` is the one place that turns it into a message and that code. The root lives here,
in the lowest layer, because `profiles` imports nothing from `engine`; engine.errors re-exports it.
Messages name the file and say how to fix it — users never see a traceback for a user error.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

EXIT_OK = 0
EXIT_INPUT_ERROR = 2  # the data folder / source is unusable (missing table, unreadable file)
EXIT_RULE_ERROR = 3  # the rule catalogue does not load or its tests fail
EXIT_RUNTIME_ERROR = 4  # unavailable backend, database unreachable, output not writable
#: The run finished and wrote every other letter, but some letters could not be made or sent (a template
#: that fails for them, a PDF over its bounds, a server that refused them): each is in the manifest
#: (status failed, with the reason) and in the summary's letter_failures / delivery_failures.
EXIT_LETTERS_FAILED = 5
EXIT_USAGE = 64
#: Exit code of a command refused because another holder has the lock (sysexits EX_TEMPFAIL: try later).
EXIT_LOCKED = 75



#: Credentials in a URL: `scheme://user:password@` and `?password=` (libpq also takes it as a parameter).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@'\"]*):[^\s@'\"]*@")
_PARAM_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&\s'\"]*")


def mask_secrets(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***: for every message and log line."""
    return _PARAM_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))

class ZhixiangError(Exception):
    """Root of every error a user is meant to read."""

    exit_code = EXIT_RUNTIME_ERROR


class ProfileError(ZhixiangError):
    """Root of every profile-input error a user is meant to read."""

    exit_code = EXIT_INPUT_ERROR


class ProfileStructureError(ProfileError):
    """The data folder cannot be used at all: missing table or column, unreadable file."""


class ProfileDataError(ProfileError):
    """A single taxpayer's profile (JSON) breaks the contract; every problem has a field path."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        lines = [f"{path}: {message}" for path, message in self.problems]
        super().__init__(f"纳税人画像有 {len(self.problems)} 处数据错误：\n" + "\n".join(lines))


def exit_code_of(exc: BaseException) -> int:
    """The exit code of an error: its class's for a user error, EXIT_RUNTIME_ERROR otherwise."""
    return exc.exit_code if isinstance(exc, ZhixiangError) else EXIT_RUNTIME_ERROR


F = TypeVar("F", bound=Callable[..., Any])


def exit_on_user_error(fn: F) -> F:
    """Decorator for CLI commands: a ZhixiangError becomes its message on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ZhixiangError as exc:
            import click

            click.echo(f"错误: {mask_secrets(str(exc))}", err=True)
            sys.exit(exit_code_of(exc))

    return wrapper  # type: ignore[return-value]
