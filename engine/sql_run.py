"""Running the catalogue inside a SQL engine (DuckDB or PostgreSQL) and bringing back findings only.

The generated SQL (engine/backends/sql.py) computes, inside the engine, every condition, benefit,
qualification, eligibility and outcome of every taxpayer × rule, materialises that table once, and
returns (1) the rows with at least one finding, (2) the per-rule summary, aggregated in the engine, and
(3) the number of taxpayers judged. The findings' evidence sentences are then rendered by the batch's
own code (engine.batch._rule_findings) from the returned rows — the verdicts are the engine's, the
wording is the one place it is defined — so findings files are byte-identical to the Polars engine's.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlglot import exp

from engine.backends.polars import Context
from engine.backends.sql import TABLES, SqlPlan, check_catalogue, plan_sql
from engine.batch import _rule_findings
from engine.catalogue import Catalogue
from engine.errors import InputError, RuntimeUnavailableError
from engine.findings import FINDINGS_SCHEMA, KINDS
from engine.run import RunResult, claims_outside_granularity, run_result, timed
from profiles.database import display_url, is_database_url
from profiles.errors import ProfileStructureError
from profiles.periods import Period
from profiles.readers import REQUIRED_TABLES
from profiles.schema import CLAIMS, MONEY_DTYPE, PROFILE_FIELDS
from profiles.schema import TABLES as SCHEMA_TABLES
from profiles.validation import QUARANTINE_SCHEMA, Profiles

ENGINES = ("duckdb", "postgres", "spark")
WIDE_TABLE = "zx_wide"

_PG_TYPES = {pl.String: "TEXT", pl.Float64: "DOUBLE PRECISION", pl.Int64: "BIGINT", pl.Boolean: "BOOLEAN",
             pl.Date: "DATE"}


def _pg_type(dtype: Any) -> str:
    if isinstance(dtype, pl.Decimal):
        return f"NUMERIC({dtype.precision}, {dtype.scale})"
    for k, v in _PG_TYPES.items():
        if dtype == k:
            return v
    return "TEXT"


def _tables(profiles: Profiles) -> dict[str, pl.DataFrame]:
    """The four profile tables restricted to their contract columns (bookkeeping columns dropped)."""
    out = {}
    for name in TABLES:
        schema = SCHEMA_TABLES[name].polars_schema
        frame: pl.DataFrame = getattr(profiles, name)
        out[name] = frame.select([pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
                                  for c, t in schema.items()])
    return out


class _Session(ABC):
    """One engine connection: load tables, run statements, fetch frames (one subclass per engine)."""

    @abstractmethod
    def load(self, tables: dict[str, pl.DataFrame]) -> None: ...

    @abstractmethod
    def execute(self, sql: str) -> None: ...

    @abstractmethod
    def fetch(self, sql: str) -> pl.DataFrame: ...

    def columns(self, table: str) -> dict[str, str] | None:
        """The column names (lower case) and type names of one of the engine's own tables; None if absent."""
        raise RuntimeUnavailableError("该执行引擎不能直接读取库内的表；--data 请给数据目录")

    def create_view(self, name: str, sql: str) -> None:
        """A temporary view `name` (it hides a table of that name for the rest of the session)."""
        self.execute(f"CREATE TEMP VIEW {name} AS {sql}")


class _DuckSession(_Session):
    def __init__(self) -> None:
        import duckdb

        self.con = duckdb.connect()

    def load(self, tables: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            self.con.register(f"zx_src_{name}", frame.to_arrow())
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM zx_src_{name}")

    def execute(self, sql: str) -> None:
        self.con.execute(sql)

    def fetch(self, sql: str) -> pl.DataFrame:
        return self.con.sql(sql).pl()

    def close(self) -> None:
        self.con.close()


class _PgSession(_Session):
    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def load(self, tables: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            cols = ", ".join(f"{c} {_pg_type(t)}" for c, t in frame.schema.items())
            self.conn.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
            self.conn.execute(f"CREATE TEMP TABLE {name} ({cols})")
            buf = io.BytesIO()
            frame.write_csv(buf, include_header=False, date_format="%Y-%m-%d")
            with self.conn.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buf.getvalue())

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)  # type: ignore[arg-type]

    def fetch(self, sql: str) -> pl.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql)  # type: ignore[arg-type]
            names = [d.name for d in cur.description or ()]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        with self.conn.cursor() as cur:
            cur.execute("SELECT lower(column_name), data_type FROM information_schema.columns "
                        "WHERE table_schema = coalesce(%s, current_schema()) AND table_name = %s",
                        (schema or None, name))
            rows = cur.fetchall()
        return {str(c): str(t) for c, t in rows} or None

    def close(self) -> None:
        self.conn.close()


#: Spark settings of the local session: 2 cores, few shuffle partitions (the profiles of one period are small
#: per partition), no UI; ZHIXIANG_SPARK_MASTER names another master (a cluster: spark://…, yarn).
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.ansi.enabled": "true",
}


def spark_session() -> Any:
    """The process's Spark session (created once; PySpark and a Java 17 runtime are needed)."""
    import os

    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeUnavailableError(
            "--engine spark 需要 PySpark 和 Java 17 运行环境（pip install 'zhixiang[spark]'，"
            "apt-get install openjdk-17-jre-headless）") from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master(os.environ.get("ZHIXIANG_SPARK_MASTER", "local[2]")).appName("zhixiang")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, or the JVM did not start
        raise RuntimeUnavailableError(f"无法启动 Spark：{str(exc).strip().splitlines()[0]}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class _SparkSession(_Session):
    """The Spark session (local[2] unless ZHIXIANG_SPARK_MASTER says otherwise); the profiles of a data
    folder are handed over as Parquet files in a temporary folder."""

    def __init__(self) -> None:
        import tempfile

        self.spark = spark_session()
        self.folder = Path(tempfile.mkdtemp(prefix="zx-spark-"))

    #: Tables up to this many rows go over in memory (Arrow); larger ones through Parquet files.
    IN_MEMORY_ROWS = 100_000

    def load(self, tables: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            if frame.height <= self.IN_MEMORY_ROWS:
                self.spark.createDataFrame(frame.to_arrow()).createOrReplaceTempView(name)
                continue
            path = self.folder / f"{name}.parquet"
            frame.write_parquet(path)
            self.spark.read.parquet(str(path)).createOrReplaceTempView(name)

    def execute(self, sql: str) -> None:
        # Spark has no temporary tables: the wide table is a cached temporary view.
        if sql == f"DROP TABLE IF EXISTS {WIDE_TABLE}":
            self.spark.sql(f"UNCACHE TABLE IF EXISTS {WIDE_TABLE}")
            self.spark.catalog.dropTempView(WIDE_TABLE)
            return
        sql = sql.replace(f"CREATE TEMP TABLE {WIDE_TABLE} AS", f"CACHE TABLE {WIDE_TABLE} AS")
        self.spark.sql(sql).collect()

    def fetch(self, sql: str) -> pl.DataFrame:
        return pl.from_arrow(self.spark.sql(sql).toArrow())  # type: ignore[return-value]

    def columns(self, table: str) -> dict[str, str] | None:
        if not self.spark.catalog.tableExists(table):
            return None
        return {f.name.lower(): f.dataType.simpleString() for f in self.spark.table(table).schema.fields}

    def create_view(self, name: str, sql: str) -> None:
        self.spark.sql(sql).createOrReplaceTempView(name)

    def close(self) -> None:
        import shutil

        self.spark.sql(f"UNCACHE TABLE IF EXISTS {WIDE_TABLE}")
        self.spark.catalog.dropTempView(WIDE_TABLE)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def session(engine: str, url: str | None = None) -> Iterator[Any]:
    """A connection to the engine: an in-process DuckDB, or the PostgreSQL server at `url`."""
    if engine == "duckdb":
        s: Any = _DuckSession()
    elif engine == "postgres":
        if not url:
            raise RuntimeUnavailableError("--engine postgres 需要数据库地址：--pg-url 或环境变量 ZHIXIANG_PG_URL")
        s = _PgSession(url)
    elif engine == "spark":
        s = _SparkSession()
    else:
        raise RuntimeUnavailableError(f"未知的执行引擎 {engine}（可选：polars、{'、'.join(ENGINES)}）")
    try:
        yield s
    finally:
        s.close()


# ------------------------------------------------------------------------------- the engine's own tables

#: `--data spark:<database>.<prefix>`: the profile tables are <database>.<prefix>taxpayers, …indicators,
#: …claims and …risk_events in the Spark session's catalog (the prefix may be empty: `spark:tax.`).
SPARK_DATA_SCHEME = "spark:"
_SPARK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.?[A-Za-z0-9_]*$")

_SQL_TYPES = {pl.String: "TEXT", pl.Float64: "DOUBLE", pl.Int64: "BIGINT", pl.Boolean: "BOOLEAN", pl.Date: "DATE"}


@dataclass(frozen=True)
class EngineTables:
    """Profile tables already inside the engine, evaluated where they are (nothing copied, nothing read
    into Python but the findings): a PostgreSQL database (its current schema, as `zhixiang load` writes
    it) or a Spark catalog prefix."""

    engine: str
    location: str  # the database URL, or the Spark prefix `database.prefix_`
    shown: str = field(default="")

    def table(self, name: str) -> str:
        return f"{self.location}{name}" if self.engine == "spark" else name

    def label(self, name: str) -> str:
        """How a table is named in messages and the quarantine's file column."""
        return f"{self.shown}#{name}" if self.engine == "postgres" else f"spark:{self.table(name)}"


def engine_tables(data: str, engine: str) -> EngineTables | None:
    """`--data` as the engine's own tables (None: a data folder, or a database to copy from first).

    `--engine postgres --data postgresql://…` evaluates inside that server on the tables there;
    `--engine spark --data spark:db.prefix_` on the Spark catalog's tables db.prefix_taxpayers, ….
    """
    if data.startswith(SPARK_DATA_SCHEME):
        prefix = data[len(SPARK_DATA_SCHEME):]
        if engine != "spark":
            raise InputError(f"--data {data} 是 Spark 目录中的表，只能与 --engine spark 一起使用")
        if not _SPARK_NAME.match(prefix) or "." not in prefix:
            raise InputError(f"--data {data}：应为 spark:库名.表名前缀（如 spark:tax.zx_，表为 tax.zx_taxpayers 等；"
                             "前缀可为空：spark:tax.）")
        return EngineTables("spark", prefix, data)
    if engine == "postgres" and is_database_url(data):
        return EngineTables("postgres", data, display_url(data))
    return None


def _sql_type(dtype: Any, dialect: str) -> str:
    if isinstance(dtype, pl.Decimal):
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    text = next((v for k, v in _SQL_TYPES.items() if dtype == k), "TEXT")
    return exp.DataType.build(text).sql(dialect=dialect)


def _type_fits(kind: str, found: str) -> bool:
    """Whether a column the engine stores as `found` can be read as the contract's `kind` (by a CAST)."""
    found = found.lower()
    if kind in ("money", "number", "int"):
        return any(t in found for t in ("numeric", "decimal", "double", "real", "float", "int"))
    if kind == "date":
        return "date" in found or "timestamp" in found
    if kind == "bool":
        return "bool" in found
    return True  # ids, text, enums, periods: read as text


def attach(s: _Session, source: EngineTables) -> None:
    """The four profile tables as temporary views over the engine's own tables, with the contract's
    columns and types (an absent optional column or table is empty, as in a data folder); a missing
    table or required column, or a column of a type that cannot be read, stops the run naming it."""
    problems: list[str] = []
    views: dict[str, str] = {}
    for name in TABLES:
        table = SCHEMA_TABLES[name]
        qualified = source.table(name)
        found = s.columns(qualified)
        if found is None and name in REQUIRED_TABLES:
            problems.append(f"{source.shown} 中没有表 {qualified}（{table.label}）。"
                            f"请先用 `zhixiang load --data 数据目录 --to …` 导入，或按数据契约建表。")
            continue
        found = found or {}
        missing = [c.name for c in table.columns if c.required and c.name not in found]
        if missing:
            problems.append(f"表 {qualified}（{table.label}）缺少必需的列：{', '.join(missing)}。"
                            "请补上这些列（见 profiles/schema.py 的数据契约）后重试。")
        wrong = [f"{c.name}（{found[c.name]}）" for c in table.columns
                 if c.name in found and not _type_fits(c.kind, found[c.name])]
        if wrong:
            problems.append(f"表 {qualified}（{table.label}）的列类型无法按数据契约读取：{', '.join(wrong)}。")
        items = [f"CAST({c.name} AS {_sql_type(c.dtype, source.engine)}) AS {c.name}" if c.name in found
                 else f"CAST(NULL AS {_sql_type(c.dtype, source.engine)}) AS {c.name}" for c in table.columns]
        views[name] = (f"SELECT {', '.join(items)} FROM {qualified}" if found
                       else f"SELECT {', '.join(items)} WHERE 1 = 0")
    if problems:
        raise ProfileStructureError("\n".join(problems))
    for name, sql in views.items():
        s.create_view(name, sql)


def _claims_needed(catalogue: Catalogue, period: Period, dialect: str) -> str:
    """The claims the run reports on besides the findings: the period's claims of rules it does not judge
    (counted) and claims of a period kind their rule never judges (quarantined) — a superset, filtered
    again by engine.run exactly as for a data folder; no other claim leaves the engine."""
    kind = exp.Case().when(exp.Like(this=exp.column("period"), expression=exp.Literal.string("%Q%")),
                           exp.Literal.string("quarter")) \
        .when(exp.Like(this=exp.column("period"), expression=exp.Literal.string("%-%")), exp.Literal.string("month")) \
        .else_(exp.Literal.string("year"))
    tests: list[exp.Expr] = []
    not_judged = {r.id for r in catalogue.not_judged(period)}
    codes = sorted(c for c, rid in catalogue.code_to_rule.items() if rid in not_judged)
    if codes:
        tests.append(exp.and_(exp.EQ(this=exp.column("period"), expression=exp.Literal.string(period.text)),
                              exp.In(this=exp.column("incentive"), expressions=[exp.Literal.string(c) for c in codes])))
    by_kinds: dict[tuple[str, ...], list[str]] = {}
    for code, rid in catalogue.code_to_rule.items():
        by_kinds.setdefault(tuple(catalogue.rules[rid].granularity), []).append(code)
    for kinds, group in sorted(by_kinds.items()):
        tests.append(exp.and_(
            exp.In(this=exp.column("incentive"), expressions=[exp.Literal.string(c) for c in sorted(group)]),
            exp.Not(this=exp.In(this=kind.copy(), expressions=[exp.Literal.string(k) for k in kinds]))))
    where = exp.or_(*tests) if tests else exp.Boolean(this=False)
    return exp.select(*(exp.column(c) for c in CLAIMS.polars_schema)).from_("claims").where(where).sql(dialect=dialect)


@dataclass
class _InEngine:
    """What engine.run reads of a data folder's profiles, for tables that stay inside the engine."""

    claims: pl.DataFrame
    sources: dict[str, str]
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    input_hashes: dict[str, str] = field(default_factory=dict)


def _wide_schema(plan: SqlPlan) -> dict[str, Any]:
    """The batch's dtype for every column the findings read."""
    out: dict[str, Any] = {"taxpayer_id": pl.String, "period": pl.String}
    for name, f in PROFILE_FIELDS.items():
        out[name] = f.dtype
    for sql_name, name in plan.names.items():
        if name.startswith("__claimed__") or name.endswith(("__eligible", "__qualifies")) or "__c__" in name:
            out[sql_name] = pl.Boolean
        elif name.startswith("__claim_amount__") or name.endswith("__benefit"):
            out[sql_name] = MONEY_DTYPE
        elif name.startswith("__events__"):
            out[sql_name] = pl.Int64
        elif name.endswith("__outcome"):
            out[sql_name] = pl.String
    return out


def _as_wide(rows: pl.DataFrame, plan: SqlPlan) -> pl.DataFrame:
    schema = _wide_schema(plan)
    keep = [c for c in rows.columns if c in schema]
    frame = rows.select([pl.col(c).cast(schema[c]) for c in keep])
    return frame.rename({c: plan.names[c] for c in keep if c in plan.names})


def evaluate_period_sql(catalogue: Catalogue, profiles: Profiles | None, period: Period, engine: str = "duckdb",
                        url: str | None = None, outcomes: Collection[str] = KINDS, *,
                        tables: EngineTables | None = None) -> RunResult:
    """`engine.run.evaluate_period`, with the verdicts computed inside DuckDB, PostgreSQL or Spark.

    The profiles are loaded into the engine, or — `tables` given, `profiles` None — read where they are
    (`engine_tables`). `outcomes`: which outcomes become findings rows (every outcome for the parity tests)."""
    timings: dict[str, float] = {}
    check_catalogue(catalogue, engine)
    plan = plan_sql(catalogue, period, engine)
    source: Profiles | _InEngine
    with session(engine, tables.location if tables is not None and engine == "postgres" else url) as s:
        with timed(timings, "load"):
            if tables is None:
                if profiles is None:
                    raise ValueError("evaluate_period_sql needs profiles or the engine's own tables")
                source = profiles
                s.load(_tables(profiles))
            else:
                attach(s, tables)
                source = _InEngine(claims=s.fetch(_claims_needed(catalogue, period, engine)).cast(
                    CLAIMS.polars_schema),  # type: ignore[arg-type]
                    sources={name: tables.label(name) for name in TABLES})
        claims_file = str(source.sources.get("claims", "claims"))
        extra = claims_outside_granularity(catalogue, source.claims, claims_file)
        with timed(timings, "evaluate"):
            s.execute(f"DROP TABLE IF EXISTS {WIDE_TABLE}")
            s.execute(f"CREATE TEMP TABLE {WIDE_TABLE} AS {plan.sql(engine)}")
            n = int(s.fetch(f"SELECT COUNT(*) AS n FROM {WIDE_TABLE}")["n"][0])
            filt = plan.findings_filter(outcomes).sql(dialect=engine)
            rows = s.fetch(f"SELECT * FROM {WIDE_TABLE} WHERE {filt}")
            summary_rows = s.fetch(plan.summary(WIDE_TABLE).sql(dialect=engine))
    with timed(timings, "evidence"):
        wide = _as_wide(rows, plan).lazy()
        ctx = Context(period=period, active=plan.in_window, events=dict(plan.events))
        parts = [_rule_findings(wide, rule, catalogue, ctx, rule.id in plan.in_window, outcomes)
                 for rule in sorted(plan.rules, key=lambda r: r.id)]
        findings = pl.concat([pl.LazyFrame(schema=FINDINGS_SCHEMA), *parts], how="vertical").collect()
    summary = (summary_rows.select(
        pl.col("rule_id").cast(pl.String), pl.col("outcome").cast(pl.String), pl.col("count").cast(pl.Int64),
        pl.col("amount").cast(MONEY_DTYPE))
        if summary_rows.height else pl.DataFrame(schema={"rule_id": pl.String, "outcome": pl.String,
                                                         "count": pl.Int64, "amount": MONEY_DTYPE}))
    return run_result(catalogue, period, source, findings=findings, summary=summary, taxpayers=n,
                      extra_quarantine=extra, timings=timings)
