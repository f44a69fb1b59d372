"""Profile tables in PostgreSQL: snapshot the contract tables to Parquet; load a data folder into them.

Reading uses Polars' database reader (`pl.read_database`, in batches) on one ADBC connection (driver
pinned in pyproject.toml), in one REPEATABLE READ transaction so the tables are a consistent snapshot,
and streams each table into a Parquet file. The run then reads that snapshot as a data folder: a
database is validated exactly like files, memory stays bounded, and any run can be repeated from it.

Each contract column is selected as the database stores it when that type is the contract's (text,
date, boolean, bigint, double precision) and as text otherwise. Money is always selected as text —
ADBC hands NUMERIC over as an opaque string, and text is exact — and becomes Decimal in the shared
validation, as a CSV cell does. Rows come ordered by the table's key (then the other columns), so
quarantine row numbers (positions in the snapshot file) are reproducible.

Loading creates the tables with the contract's types (NUMERIC(18,2) money, DATE, BOOLEAN, TEXT ids),
primary keys on the contract keys and an index on every taxpayer_id, and copies the rows with ADBC
bulk ingest (COPY), all in one transaction.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from profiles.errors import EXIT_RUNTIME_ERROR, ProfileError, ProfileStructureError, mask_secrets
from profiles.readers import REQUIRED_TABLES
from profiles.schema import TABLES, FieldKind, Table

LoadMode = Literal["replace", "append"]

#: Rows asked of the driver per batch when copying a table (ADBC also caps a batch at ~16 MB).
_BATCH_ROWS = 250_000

DATABASE_SCHEMES = ("postgresql", "postgres")

#: Column types of the tables `load_tables` creates.
SQL_TYPES: dict[FieldKind, str] = {
    "id": "TEXT",
    "string": "TEXT",
    "enum": "TEXT",
    "period": "TEXT",
    "bool": "BOOLEAN",
    "date": "DATE",
    "money": "NUMERIC(18, 2)",
    "number": "DOUBLE PRECISION",
    "int": "BIGINT",
}

#: Database types read as they are for each contract kind; any other type is read as text and parsed
#: by the validation like a CSV cell. Money is never in this table: it is always read as text.
_NATIVE: dict[FieldKind, frozenset[str]] = {
    "id": frozenset({"text", "character varying", "character"}),
    "string": frozenset({"text", "character varying", "character"}),
    "enum": frozenset({"text", "character varying", "character"}),
    "period": frozenset({"text", "character varying", "character"}),
    "bool": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "number": frozenset({"double precision"}),
    "int": frozenset({"bigint", "integer", "smallint"}),
    "money": frozenset(),
}


class DatabaseUnavailableError(ProfileError):
    """The database cannot be reached or refused the request (not a problem of the data itself)."""

    exit_code = EXIT_RUNTIME_ERROR


def is_database_url(source: str | Path) -> bool:
    """True when `source` is a PostgreSQL URL rather than a data folder."""
    scheme = str(source).split("://", 1)[0].lower() if "://" in str(source) else ""
    return scheme.split("+", 1)[0] in DATABASE_SCHEMES


def display_url(url: str) -> str:
    """The URL without its password, for messages, quarantine and summary.json."""
    return mask_secrets(url)


def _driver_url(url: str) -> str:
    """libpq wants postgresql://; accept SQLAlchemy-style postgresql+psycopg:// too."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.lower() != "postgresql" else url


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def connect(url: str) -> Iterator[Any]:
    """An ADBC connection (autocommit off); connection failures become DatabaseUnavailableError."""
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as dbapi

    try:
        conn = dbapi.connect(_driver_url(url))
    except adbc_driver_manager.Error as exc:
        raise DatabaseUnavailableError(
            f"无法连接数据库 {display_url(url)}：{_first_line(exc)}。请检查主机、端口、数据库名、用户名和密码，"
            "以及服务器是否在运行。"
        ) from exc
    try:
        yield conn
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"^(IO|INVALID_ARGUMENT|INTERNAL|UNKNOWN): ", "", text)
    text = text.replace("[libpq] ", "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


# --- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSnapshot:
    """The contract tables of one database, copied as read (before validation) into Parquet files."""

    url: str  # the database URL without its password
    schema: str  # the database schema the tables were found in
    files: dict[str, Path]  # table -> its Parquet file (absent optional tables have none)
    rows: dict[str, int]  # table -> rows copied
    sources: dict[str, str]  # table -> "postgresql://host/db#schema.table" (no password)


def _select_list(table: Table, db_types: Mapping[str, str]) -> list[str]:
    items = []
    for column in table.columns:
        if column.name not in db_types:
            continue
        name = _quote(column.name)
        if db_types[column.name] in _NATIVE[column.kind]:
            items.append(name)
        else:
            items.append(f"CAST({name} AS TEXT) AS {name}")
    return items


def _order_by(table: Table, present: list[str]) -> str:
    """The key first, then every other column: rows sharing a key (to be quarantined) keep a fixed order."""
    key = [c for c in table.key if c in present]
    return ", ".join(f"t.{_quote(c)}" for c in [*key, *(c for c in present if c not in key)])


def snapshot_tables(url: str, directory: Path) -> DatabaseSnapshot:
    """Copy the contract tables of `url` into `directory/<table>.parquet`, in one consistent snapshot.

    Rows stream through in the driver's batches (memory stays bounded whatever the table size) and
    each file is renamed into place when complete. A missing table or required column is a
    ProfileStructureError naming it and the fix, raised before any file is written.
    """
    shown = display_url(url)
    files: dict[str, Path] = {}
    rows: dict[str, int] = {}
    with connect(url) as conn:
        try:
            cur = conn.cursor()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SELECT current_schema()")
            schema = str(cur.fetchone()[0])
            cur.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            )
            db_columns: dict[str, dict[str, str]] = {}
            for table_name, column_name, data_type in cur.fetchall():
                db_columns.setdefault(str(table_name), {})[str(column_name)] = str(data_type)
            cur.close()
            _check_structure(db_columns, shown, schema)
            directory.mkdir(parents=True, exist_ok=True)
            for name, table in TABLES.items():
                if name not in db_columns:
                    continue
                types = db_columns[name]
                present = [c.name for c in table.columns if c.name in types]
                query = (f"SELECT {', '.join(_select_list(table, types))} FROM {_quote(schema)}.{_quote(name)} AS t "
                         f"ORDER BY {_order_by(table, present)}")
                files[name] = directory / f"{name}.parquet"
                rows[name] = _copy_query(conn, query, files[name])
            conn.rollback()
        except ProfileError:
            raise
        except OSError:
            raise
        except Exception as exc:  # the driver's errors: permissions, dropped connection, ...
            raise DatabaseUnavailableError(f"读取数据库 {shown} 失败：{_first_line(exc)}") from exc
    sources = {name: f"{shown}#{schema}.{name}" for name in files}
    return DatabaseSnapshot(shown, schema, files, rows, sources)


def _copy_query(conn: Any, query: str, path: Path) -> int:
    """Stream the rows of `query` into one Parquet file (written beside it, then renamed)."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    n = 0
    try:
        for batch in pl.read_database(query, connection=conn, iter_batches=True, batch_size=_BATCH_ROWS):
            table = batch.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            n += batch.height
        if writer is None:  # no rows: the column types come from an empty read
            pl.read_database(f"SELECT * FROM ({query}) AS q LIMIT 0", connection=conn).write_parquet(tmp)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    return n


def _check_structure(db_columns: Mapping[str, Mapping[str, str]], shown: str, schema: str) -> None:
    problems = []
    for name, table in TABLES.items():
        if name not in db_columns and name not in REQUIRED_TABLES:
            continue  # an absent optional table is empty, as for a data folder
        if name not in db_columns:
            problems.append(f"数据库 {shown} 的模式 {schema} 中没有表 {name}（{table.label}）。"
                            f"请先用 `zhixiang load --data 数据目录 --to URL` 导入，或按数据契约建表。")
            continue
        missing = [c.name for c in table.columns if c.required and c.name not in db_columns[name]]
        if missing:
            problems.append(f"数据库表 {schema}.{name}（{table.label}）缺少必需的列：{', '.join(missing)}。"
                            f"请补上这些列（见 profiles/schema.py 的数据契约）后重试。")
    if problems:
        raise ProfileStructureError("\n".join(problems))


# --- loading ---------------------------------------------------------------------------------------


def table_ddl(table: Table, columns: list[str]) -> tuple[list[str], list[str]]:
    """(CREATE TABLE statement, statements for keys and indexes added after the rows) for `columns`."""
    name = _quote(table.name)
    defs = []
    for column in table.columns:
        if column.name in columns:
            not_null = " NOT NULL" if not column.nullable else ""
            defs.append(f"{_quote(column.name)} {SQL_TYPES[column.kind]}{not_null}")
    create = f"CREATE TABLE {name} (\n  " + ",\n  ".join(defs) + "\n)"
    after = []
    if table.key:
        key = ", ".join(_quote(c) for c in table.key)
        after.append(f"ALTER TABLE {name} ADD CONSTRAINT {_quote(table.name + '_pkey')} PRIMARY KEY ({key})")
    if table.key[:1] != ("taxpayer_id",):
        after.append(f"CREATE INDEX {_quote(table.name + '_taxpayer_idx')} ON {name} (\"taxpayer_id\")")
    return [create], after


def _db_frame(table: Table, frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The frame with the contract's column order and the database's types (money as NUMERIC(18,2))."""
    casts = []
    for name in columns:
        column = table.column(name)
        dtype = pl.Decimal(18, 2) if column.kind == "money" else column.dtype
        casts.append(pl.col(name).cast(dtype))
    return frame.select(casts)


def load_tables(url: str, frames: Mapping[str, pl.DataFrame], *, mode: LoadMode = "replace") -> dict[str, int]:
    """Put validated contract tables into the database at `url`; returns rows loaded per table.

    `replace` drops and recreates each table; `append` adds rows to existing tables (creating missing
    ones) and fails as a whole if a key is already there. Either way it is one transaction.
    """
    shown = display_url(url)
    loaded: dict[str, int] = {}
    with connect(url) as conn:
        try:
            cur = conn.cursor()
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            existing = {str(r[0]) for r in cur.fetchall()}
            for name, frame in frames.items():
                table = TABLES[name]
                columns = [c.name for c in table.columns if c.name in frame.columns]
                create, after = table_ddl(table, columns)
                if mode == "replace" or name not in existing:
                    cur.execute(f"DROP TABLE IF EXISTS {_quote(name)}")
                    for stmt in create:
                        cur.execute(stmt)
                else:
                    after = []
                    _check_append_columns(cur, table, columns, shown)
                data = _db_frame(table, frame, columns)
                if data.height:
                    cur.adbc_ingest(name, data.to_arrow(), mode="append")
                for stmt in after:
                    cur.execute(stmt)
                loaded[name] = data.height
            cur.close()
            conn.commit()
        except ProfileError:
            conn.rollback()
            raise
        except Exception as exc:
            conn.rollback()
            text = _first_line(exc)
            if "duplicate key" in text or "unique constraint" in text.lower():
                raise ProfileStructureError(
                    f"导入 {shown} 失败，没有写入任何数据：追加的行与表中已有行主键重复（{text}）。"
                    "请改用 --mode replace，或先删除重复的行。") from exc
            raise DatabaseUnavailableError(f"导入 {shown} 失败，没有写入任何数据：{text}") from exc
    return loaded


def _check_append_columns(cur: Any, table: Table, columns: list[str], shown: str) -> None:
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = $1", parameters=(table.name,))
    have = {str(r[0]) for r in cur.fetchall()}
    missing = [c for c in columns if c not in have]
    if missing:
        raise ProfileStructureError(
            f"{shown} 的表 {table.name} 缺少列 {', '.join(missing)}，无法追加导入。请改用 --mode replace 重建该表。")
