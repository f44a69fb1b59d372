"""Where profiles come from: a data folder or a PostgreSQL database, validated the same way.

`load_source` is what a run calls. A folder goes to `profiles.readers`; a database URL is read by
`profiles.database`, snapshotted to Parquet (so the run can be reproduced from files: `--data
OUT/snapshot` gives the same findings, quarantine row numbers and input hashes) and then validated by
the very same `validate_tables` as files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

import polars as pl

from profiles.database import DatabaseTables, is_database_url, read_tables
from profiles.errors import ProfileError
from profiles.readers import load_profiles
from profiles.validation import ROW, Profiles, RawTable, validate_tables

SNAPSHOT_MANIFEST = "manifest.json"


class SnapshotError(ProfileError):
    """The snapshot of a database source cannot be written (a problem of the output folder)."""

    exit_code = 4


def load_source(source: str | Path, *, known_incentives: Collection[str] | None = None,
                snapshot_dir: Path | None = None) -> Profiles:
    """Validated profiles from a data folder or a `postgresql://` URL.

    For a database, `snapshot_dir` receives one Parquet file per table as read (before validation)
    and a manifest with their sha256; those hashes become the run's input hashes.
    """
    if not is_database_url(source):
        return load_profiles(source, known_incentives=known_incentives)
    db = read_tables(str(source))
    hashes = write_snapshot(db, snapshot_dir) if snapshot_dir is not None else {}
    raw = {name: RawTable(name=name, frame=_numbered(frame), file=db.sources[name])
           for name, frame in db.frames.items()}
    tables, quarantine = validate_tables(raw, known_incentives=known_incentives)
    return Profiles(**tables, quarantine=quarantine, sources={k: Path(v) for k, v in db.sources.items()},
                    input_hashes=hashes)


def _numbered(frame: pl.DataFrame) -> pl.DataFrame:
    """ROW as the readers number a Parquet file: 1-based position (here, in key order)."""
    return frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))


def write_snapshot(db: DatabaseTables, directory: Path) -> dict[str, str]:
    """Write each table to `directory/<table>.parquet` atomically; returns table -> sha256 of the file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        hashes: dict[str, str] = {}
        for name, frame in db.frames.items():
            final = directory / f"{name}.parquet"
            tmp = final.with_name(f".{final.name}.tmp")
            frame.write_parquet(tmp)
            hashes[name] = _sha256(tmp)
            os.replace(tmp, final)
        manifest = {
            "source": db.url,
            "schema": db.schema,
            "read_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "tables": {name: {"file": f"{name}.parquet", "rows": db.frames[name].height, "sha256": hashes[name]}
                       for name in db.frames},
            "reproduce": "zhixiang run --data <this folder> --period … --out …",
        }
        tmp = directory / f".{SNAPSHOT_MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, directory / SNAPSHOT_MANIFEST)
    except OSError as exc:
        raise SnapshotError(f"无法写入数据库快照目录 {directory}：{exc.strerror or exc}。"
                            "请检查输出目录的路径和权限。") from exc
    return hashes


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
