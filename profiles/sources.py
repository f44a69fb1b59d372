"""Where profiles come from: a data folder or a PostgreSQL database, validated the same way.

`load_source` is what a run calls. A folder goes straight to `profiles.readers`. A database URL is first
copied to a Parquet snapshot (`profiles.database.snapshot_tables`) — in the run's output folder, so the
run can be repeated from files: `--data OUT/snapshot` gives the same findings, quarantine row numbers
and input hashes — and the snapshot is then read and validated by the very same reader as any folder.
Quarantine lines name the database table rather than the snapshot file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import polars as pl

from profiles.database import DatabaseSnapshot, is_database_url, snapshot_tables
from profiles.errors import EXIT_RUNTIME_ERROR, ProfileError
from profiles.readers import load_profiles
from profiles.validation import Profiles

SNAPSHOT_MANIFEST = "manifest.json"


class SnapshotError(ProfileError):
    """The snapshot of a database source cannot be written (a problem of the output folder)."""

    exit_code = EXIT_RUNTIME_ERROR


def load_source(source: str | Path, *, known_incentives: Collection[str] | None = None,
                snapshot_dir: Path | None = None) -> Profiles:
    """Validated profiles from a data folder or a `postgresql://` URL.

    A database is snapshotted to `snapshot_dir` (a temporary folder when None); the snapshot files'
    sha256 are the run's input hashes.
    """
    if not is_database_url(source):
        return load_profiles(source, known_incentives=known_incentives)
    with snapshot_folder(str(source), snapshot_dir) as (folder, snap):
        profiles = load_profiles(folder, known_incentives=known_incentives)
    return relabel(profiles, snap)


@contextmanager
def snapshot_folder(url: str, snapshot_dir: Path | None) -> Iterator[tuple[Path, DatabaseSnapshot]]:
    """The database copied to `snapshot_dir` (kept) or to a temporary folder (removed afterwards)."""
    if snapshot_dir is not None:
        yield snapshot_dir, write_snapshot(url, snapshot_dir)
        return
    with tempfile.TemporaryDirectory(prefix="zhixiang-snapshot-") as tmp:
        yield Path(tmp), write_snapshot(url, Path(tmp))


def write_snapshot(url: str, directory: Path) -> DatabaseSnapshot:
    """Copy the database's tables into `directory` and write its manifest.json."""
    try:
        snap = snapshot_tables(url, directory)
        manifest = {
            "source": snap.url,
            "schema": snap.schema,
            "read_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "tables": {name: {"file": path.name, "rows": snap.rows[name], "sha256": file_sha256(path),
                              "source": snap.sources[name]} for name, path in snap.files.items()},
            "reproduce": "zhixiang run --data <this folder> --period … --out …",
        }
        tmp = directory / f".{SNAPSHOT_MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, directory / SNAPSHOT_MANIFEST)
    except OSError as exc:
        raise SnapshotError(f"无法写入数据库快照目录 {directory}：{exc.strerror or exc}。"
                            "请检查输出目录的路径和权限。") from exc
    return snap


def relabel(profiles: Profiles, snap: DatabaseSnapshot) -> Profiles:
    """The profiles with quarantine lines that name the database tables instead of the snapshot files."""
    return dataclasses.replace(profiles, quarantine=relabel_quarantine(profiles.quarantine, snap))


def relabel_quarantine(quarantine: pl.DataFrame, snap: DatabaseSnapshot) -> pl.DataFrame:
    """Quarantine lines naming the database table (postgresql://…#schema.table) instead of the snapshot file."""
    labels = {path.name: snap.sources[name] for name, path in snap.files.items()}
    labels |= {str(path): snap.sources[name] for name, path in snap.files.items()}
    if not quarantine.height:
        return quarantine
    return quarantine.with_columns(pl.col("file").replace(labels))


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (what the folder reader records as the table's input hash)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
