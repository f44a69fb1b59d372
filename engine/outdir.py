"""Output folders zhixiang may write into, and the only deletions it ever makes (issue 13).

A folder zhixiang writes into holds `OWNER_MARKER` from the first time it uses it. A folder that already
holds files zhixiang did not write is refused (the caller's flag, e.g. `--adopt-out`, takes it over on
purpose; nothing in it is deleted then either). Deleting follows two rules: only a folder zhixiang
created (it holds the marker) is removed, and a symbolic link is never followed — shutil.rmtree removes
links inside a tree without following them, and a link in place of a folder is refused.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

from engine.errors import EXIT_USAGE, ZhixiangError

OWNER_MARKER = ".zhixiang-owned"
_MARKER_TEXT = "此目录由直享（zhixiang）创建和管理；直享只删除自己写出的文件。\n"


class OutputFolderError(ZhixiangError):
    """The output folder holds someone else's files, or a link where zhixiang expects its own folder."""

    exit_code = EXIT_USAGE


def mark_owned(folder: Path) -> None:
    """Put the ownership marker into a folder zhixiang created (or was told to adopt)."""
    marker = folder / OWNER_MARKER
    if not marker.exists():
        marker.write_text(_MARKER_TEXT, encoding="utf-8")


def is_owned(folder: Path) -> bool:
    """A real folder (not a link) holding the ownership marker."""
    return not folder.is_symlink() and folder.is_dir() and (folder / OWNER_MARKER).is_file()


def refuse_link(path: Path, what: str) -> None:
    """Stop when `path` is a symbolic link: zhixiang neither writes through nor deletes through one."""
    if path.is_symlink():
        raise OutputFolderError(
            f"{path}（{what}）是符号链接：直享不会通过符号链接写入或删除文件。请删除该链接（不会影响其指向的目录）后重试")


def claim_output_dir(out: Path, *, ours: Collection[str], adopt: bool, flag: str, create: bool = True) -> None:
    """Make sure `out` is zhixiang's: absent or empty (created and marked), already marked, or holding only
    entries named in `ours`. Anything else is refused unless `adopt` (the command's `flag`). With
    `create=False` only the check is made (the caller marks the folder once it writes there)."""
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"输出目录 {out} 是一个文件，不是目录：请换一个输出目录")
    if is_owned(out):
        return
    if out.is_dir() and not adopt:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if foreign:
            shown = "、".join(foreign[:5]) + (f" 等 {len(foreign)} 项" if len(foreign) > 5 else "")
            raise OutputFolderError(
                f"输出目录 {out} 中已有不是直享写出的文件（{shown}）：直享不会把结果与其他文件混放，也不会删除它们。"
                f"请换一个空目录或新目录；确要使用该目录请加 {flag}（其中已有的文件不会被删除）")
    if not create:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        mark_owned(out)
    except OSError as exc:
        raise OutputFolderError(f"无法创建输出目录 {out}：{exc.strerror or exc}。请检查路径和权限") from exc


def remove_owned(folder: Path) -> bool:
    """Remove a folder zhixiang created (it holds the marker), never following links. False when not ours."""
    if not is_owned(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
