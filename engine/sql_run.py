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
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from engine.backends.polars import Context
from engine.backends.sql import TABLES, SqlPlan, check_catalogue, plan_sql
from engine.batch import _rule_findings
from engine.catalogue import Catalogue
from engine.errors import RuntimeUnavailableError
from engine.findings import FINDINGS_SCHEMA, KINDS
from engine.run import RunResult, claims_outside_granularity, run_result, timed
from profiles.periods import Period
from profiles.schema import MONEY_DTYPE, PROFILE_FIELDS
from profiles.schema import TABLES as SCHEMA_TABLES
from profiles.validation import Profiles

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

    def close(self) -> None:
        self.conn.close()


class _SparkSession(_Session):
    """A local Spark session (PySpark, optional: not a dependency of the project)."""

    def __init__(self) -> None:
        import tempfile

        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise RuntimeUnavailableError("--engine spark 需要 PySpark（pip install pyspark）和 Java 运行环境") from exc
        self.spark = (SparkSession.builder.master("local[2]").appName("zhixiang")
                      .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
                      .config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", "4")
                      .getOrCreate())
        self.folder = Path(tempfile.mkdtemp(prefix="zx-spark-"))

    def load(self, tables: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            path = self.folder / f"{name}.parquet"
            frame.write_parquet(path)
            self.spark.read.parquet(str(path)).createOrReplaceTempView(name)

    def execute(self, sql: str) -> None:
        sql = sql.replace(f"DROP TABLE IF EXISTS {WIDE_TABLE}", f"UNCACHE TABLE IF EXISTS {WIDE_TABLE}")
        sql = sql.replace(f"CREATE TEMP TABLE {WIDE_TABLE} AS", f"CACHE TABLE {WIDE_TABLE} AS")
        self.spark.sql(sql).collect()

    def fetch(self, sql: str) -> pl.DataFrame:
        return pl.from_arrow(self.spark.sql(sql).toArrow())  # type: ignore[return-value]

    def close(self) -> None:
        import shutil

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


def evaluate_period_sql(catalogue: Catalogue, profiles: Profiles, period: Period, engine: str = "duckdb",
                        url: str | None = None, outcomes: Collection[str] = KINDS) -> RunResult:
    """`engine.run.evaluate_period`, with the verdicts computed inside DuckDB or PostgreSQL.

    `outcomes`: which outcomes become findings rows (every outcome for the parity tests)."""
    timings: dict[str, float] = {}
    check_catalogue(catalogue, engine)
    claims_file = str(getattr(profiles, "sources", {}).get("claims", "claims"))
    extra = claims_outside_granularity(catalogue, profiles.claims, claims_file)
    plan = plan_sql(catalogue, period, engine)
    with session(engine, url) as s:
        with timed(timings, "load"):
            s.load(_tables(profiles))
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
    return run_result(catalogue, period, profiles, findings=findings, summary=summary, taxpayers=n,
                      extra_quarantine=extra, timings=timings)
