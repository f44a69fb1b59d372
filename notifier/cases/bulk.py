"""Bulk writes for the case ledger: tens of thousands of rows in a few statements.

SQLAlchemy's per-row parameter handling costs more than the database itself at this size, so each
statement is compiled once, every value is converted by its column type's own bind processor (the
same conversion SQLAlchemy would apply: exact money, JSON, UTC times), and the whole batch goes to the
driver at once. PostgreSQL gets its fastest path, COPY into a staging table followed by one set-based
INSERT … ON CONFLICT or UPDATE … FROM; SQLite gets the driver's executemany. The statements are the
same SQLAlchemy constructs on both; only the transport differs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import UpdateBase

Row = Mapping[str, Any]
#: Rows per driver call (bounded memory; SQLite's and PostgreSQL's limits are far away).
BATCH = 5000
#: Keys per IN (...) list.
IN_CHUNK = 1000
_stage_ids = itertools.count()


def insert_rows(conn: Connection, table: Table, rows: Sequence[Row], *, conflict_key: Sequence[str] = ()) -> None:
    """INSERT every row (all rows have the same keys); with `conflict_key`, rows whose key exists are skipped."""
    if not rows:
        return
    columns = list(rows[0])
    if conn.dialect.name == "postgresql":
        stage = _stage(conn, table, columns, rows)
        conflict = f" ON CONFLICT ({', '.join(conflict_key)}) DO NOTHING" if conflict_key else ""
        cols = ", ".join(columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage}{conflict}")
        return
    stmt: UpdateBase = insert(table)
    if conflict_key:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=list(conflict_key))
    _execute_many(conn, stmt, columns, rows)


def update_rows(conn: Connection, table: Table, key: str, rows: Sequence[Row]) -> None:
    """UPDATE each row's columns on the row of `table` whose `key` column equals the row's `key`."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    if conn.dialect.name == "postgresql":
        stage = _stage(conn, table, [key, *columns], rows)
        sets = ", ".join(f"{c} = s.{c}" for c in columns)
        conn.exec_driver_sql(f"UPDATE {table.name} SET {sets} FROM {stage} s WHERE {table.name}.{key} = s.{key}")
        return
    stmt = (update(table).where(table.c[key] == bindparam("k__" + key))
            .values({c: bindparam(c) for c in columns}))
    renamed = [{**{c: r[c] for c in columns}, "k__" + key: r[key]} for r in rows]
    _execute_many(conn, stmt, [*columns, "k__" + key], renamed)


def update_keys(conn: Connection, table: Table, key: str, keys: Sequence[Any], values: Mapping[str, Any]) -> None:
    """Set the same `values` on every row whose `key` is in `keys` (chunked IN lists)."""
    for start in range(0, len(keys), IN_CHUNK):
        chunk = list(keys[start:start + IN_CHUNK])
        conn.execute(update(table).where(table.c[key].in_(chunk)).values(**values))


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _processors(conn: Connection, compiled: Any, names: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    dialect = conn.dialect
    return [compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]


class EncodedJSON(str):
    """A JSON document already serialised (e.g. by Polars): written as is, not encoded again."""

    __slots__ = ()


def _convert(rows: Sequence[Row], names: Sequence[str], procs: Sequence[Callable[[Any], Any] | None]
             ) -> Iterator[tuple[Any, ...]]:
    """The rows as driver values, converted column by column (far cheaper than value by value)."""
    columns = []
    for name, proc in zip(names, procs, strict=True):
        values = [r[name] for r in rows]
        if proc is not None:
            values = [v if v is None or type(v) is EncodedJSON else proc(v) for v in values]
        columns.append(values)
    return zip(*columns, strict=True)


def _execute_many(conn: Connection, stmt: UpdateBase, columns: Sequence[str], rows: Sequence[Row]) -> None:
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(columns))
    names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    missing = [n for n in names if n not in rows[0]]
    if missing:  # a column default the caller did not fill: refuse rather than write NULL
        raise ValueError(f"bulk write to {stmt} lacks values for {missing}")
    procs = _processors(conn, compiled, names)
    for batch in chunks(rows, BATCH):
        params: list[Any] = list(_convert(batch, names, procs))
        if not compiled.positional:
            params = [dict(zip(names, p, strict=True)) for p in params]
        conn.exec_driver_sql(compiled.string, params)


def _stage(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Row]) -> str:
    """PostgreSQL: a temporary table shaped like `columns` of `table`, filled by COPY; returns its name."""
    name = f"zx_stage_{next(_stage_ids)}"
    cols = ", ".join(columns)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS SELECT {cols} FROM {table.name} WITH NO DATA")
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    procs = _processors(conn, compiled, columns)
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
        for values in _convert(rows, columns, procs):
            copy.write_row(values)
    return name
