"""Errors a user of the profile readers can get, each with the exit code the command line uses.

`profiles` imports nothing from `engine`; `engine.errors` treats `ProfileError` like its own
`InputError` (exit code 2). Messages name the file and say how to fix it — users never see a
traceback for an input problem.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_INPUT_ERROR = 2


class ProfileError(Exception):
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
