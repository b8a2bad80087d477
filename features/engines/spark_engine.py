"""Run the same feature and label SQL on Apache Spark.

The features (``features.query.feature_query``), statuses, tiers' trailing
values and labels (``features.labels``, ``features.tiers``) are DuckDB-dialect
SQL over contract views (``transactions``, ``customers``, ...) and a
``cutoffs`` relation. This module runs that *same text* on a Spark session,
transpiled with ``sqlglot.transpile(sql, read="duckdb", write="spark")``, over
Spark temp views with the same names. There is no second copy of any
definition and no second API: :class:`SparkConnection` is an engine
(``features.engines.base.Engine``), so the builders themselves
(``build_feature_table_from``, ``build_training_table``, ``build_labels``,
``build_scoring_frame_from``, ...) run on Spark when given one as ``con``, and
the pandas post-processing (tiers, label populations, canonical dtypes) is
shared too. ``features.engines.duckdb_engine.outline(connection)`` gives the
stand-in tables those builders read column names and dates from.

Spark keeps ``NaN`` where DuckDB reads a missing value (a sum over a column
with a NaN becomes NaN), so every floating-point column of a registered table
has its NaNs turned into NULLs first. Results come back through Arrow with
decimals as ``float64``, dates as midnight timestamps and timestamps as naive
UTC, as DuckDB returns them.

PySpark is an optional dependency (``pip install winback[spark]``); it is
imported only when a session is created.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot

from features.inputs.keys import KEY_COLUMNS
from features.inputs.schema import SCHEMAS, ShopTables
from features.tiers import as_dates

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

#: Environment variable naming the Spark master (``local[2]``, ``spark://host:7077``, ``yarn``).
ENV_SPARK_MASTER = "WINBACK_SPARK_MASTER"


@dataclass(frozen=True)
class SparkConfig:
    """How to get a Spark session.

    Parameters
    ----------
    master
        ``spark.master``. ``"local[2]"`` runs in this process on two cores; a
        cluster URL (``spark://host:7077``, ``yarn``, ``k8s://...``) runs there.
        ``None`` leaves it to ``spark-submit`` or an existing session
        (Databricks), where the platform sets it.
    app_name
        Name shown in the Spark UI and the cluster manager.
    shuffle_partitions
        ``spark.sql.shuffle.partitions``: small for one machine (Spark's 200
        would make 200 tiny tasks per join); about 2-3 per executor core on a
        cluster.
    driver_memory
        ``spark.driver.memory`` (results are collected to the driver).
    ui
        Whether to start the Spark web UI (off for local runs and tests).
    options
        Any further ``spark.*`` settings as ``(key, value)`` pairs.
    """

    master: str | None = "local[2]"
    app_name: str = "winback"
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    ui: bool = False
    options: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.shuffle_partitions < 1:
            raise ValueError(
                f"SparkConfig.shuffle_partitions must be >= 1, got {self.shuffle_partitions}"
            )

    @classmethod
    def from_env(cls, master: str | None = None, **overrides: Any) -> SparkConfig:
        """The config with ``master`` from the argument, else ``$WINBACK_SPARK_MASTER``, else local."""
        chosen = master or os.environ.get(ENV_SPARK_MASTER) or cls.master
        return cls(master=chosen, **overrides)

    def settings(self) -> dict[str, str]:
        """Every ``spark.*`` setting this config applies (``spark.master`` included when set)."""
        out = {
            "spark.app.name": self.app_name,
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            # DuckDB semantics: a division by zero is NULL, not an error.
            "spark.sql.ansi.enabled": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.ui.enabled": str(self.ui).lower(),
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": self.driver_memory,
        }
        if self.master:
            out["spark.master"] = self.master
        out.update(dict(self.options))
        return out


def spark_session(config: SparkConfig = SparkConfig()) -> SparkSession:
    """A Spark session configured for winback (the running one when there is one).

    Local masters bind to ``127.0.0.1`` (``SPARK_LOCAL_IP``) so a machine
    without a resolvable host name works, and run Python workers with this
    interpreter (``PYSPARK_PYTHON``); on a cluster both come from its setup.
    An already active session (from ``spark-submit``, Databricks or an earlier
    call) is reused: only its SQL settings (time zone, shuffle partitions, ANSI
    mode) are set on it.

    Raises
    ------
    RuntimeError
        When PySpark is not installed or no Java runtime is found, saying how to install them.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "PySpark is not installed: install the spark extra (uv sync --extra spark, "
            "or pip install 'winback[spark]')"
        ) from exc
    active = SparkSession.getActiveSession()
    settings = config.settings()
    if active is not None:
        for key in (
            "spark.sql.session.timeZone",
            "spark.sql.shuffle.partitions",
            "spark.sql.ansi.enabled",
        ):
            active.conf.set(key, settings[key])
        return active
    if not os.environ.get("JAVA_HOME") and not _which("java"):
        raise RuntimeError(
            "no Java runtime found (java not on PATH, JAVA_HOME unset): Spark needs Java 17 "
            "or 21, e.g. apt-get install -y openjdk-17-jre-headless"
        )
    if config.master is not None and config.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Local Python workers must be this interpreter (with pandas, LightGBM, winback);
        # PySpark reads the variable, not spark.pyspark.python, when it starts them.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


# ------------------------------------------------------------ registering tables


def _without_nan(frame: SparkDataFrame) -> SparkDataFrame:
    """``frame`` with NaN turned into NULL in every floating-point column (DuckDB's reading)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    columns = []
    for spec in frame.schema.fields:
        col = F.col(f"`{spec.name}`")
        if isinstance(spec.dataType, DoubleType | FloatType):
            col = F.nanvl(col, F.lit(None).cast(spec.dataType)).alias(spec.name)
        columns.append(col)
    return frame.select(*columns)


def _parquet_source(directory: Path, name: str) -> Path | None:
    single = directory / f"{name}.parquet"
    if single.is_file():
        return single
    folder = directory / name
    if folder.is_dir() and any(folder.glob("*.parquet")):
        return folder
    return None


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    """A pandas contract table as Arrow (NaN → null, the index dropped, timestamps in UTC).

    Time-zone-aware columns go through naive UTC: pyarrow's own conversion of
    them uses an accessor pandas 3.1 deprecates.
    """
    aware = [c for c, d in frame.dtypes.items() if isinstance(d, pd.DatetimeTZDtype)]
    naive = frame.copy(deep=False)
    for name in aware:
        naive[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
    table = pa.Table.from_pandas(naive, preserve_index=False)
    for name in aware:
        i = table.column_names.index(name)
        unit = table.schema.field(name).type.unit
        table = table.set_column(i, name, table[name].cast(pa.timestamp(unit, tz="UTC")))
    return table


class SparkConnection:
    """An engine (``features.engines.base.Engine``) running the builders' SQL on Spark.

    It offers the part of a DuckDB connection the builders use, so they run on
    Spark: ``execute``/``sql`` transpile a query with SQLGlot and return a
    result with ``df()``, ``description`` and ``fetchall()``; ``CREATE OR REPLACE TEMP TABLE cutoffs`` +
    ``executemany("INSERT INTO cutoffs ...")`` (how the builders register their
    cutoff dates) become a Spark temp view ``cutoffs``. Contract tables are registered with :meth:`register_parquet`,
    :meth:`register_tables` or :meth:`register_shop`.

    Parameters
    ----------
    spark
        The session to run on (see :func:`spark_session`).
    """

    _CREATE_CUTOFFS = re.compile(r"^\s*CREATE\s+OR\s+REPLACE\s+TEMP\s+TABLE\s+cutoffs\b", re.I)
    _INSERT_CUTOFFS = re.compile(r"^\s*INSERT\s+INTO\s+cutoffs\s+VALUES\s*\(\s*\?\s*\)\s*$", re.I)

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.views: dict[str, list[str]] = {}
        self._cutoffs: list[dt.date] = []

    # -- contract tables
    def register(self, name: str, frame: SparkDataFrame) -> None:
        """Register a Spark DataFrame as the contract view ``name`` (NaN read as NULL).

        The integer keys of ``features.inputs.keys`` are left out: the Spark build
        groups by the ids.
        """
        frame = frame.drop(*KEY_COLUMNS)
        if name not in SCHEMAS:
            raise ValueError(f"{name!r} is not a contract table; use one of {sorted(SCHEMAS)}")
        missing = [c for c in SCHEMAS[name].required if c not in frame.columns]
        if missing:
            raise ValueError(
                f"table {name!r} lacks the required columns {missing} (it has {frame.columns}); "
                "map the source columns to the contract names first (features.inputs.schema)"
            )
        clean = _without_nan(frame)
        clean.createOrReplaceTempView(name)
        self.views[name] = list(clean.columns)

    def register_parquet(self, directory: str | Path) -> dict[str, list[str]]:
        """Register ``<directory>/<name>.parquet`` (or ``<name>/*.parquet``) of every contract table.

        Files are read in place by Spark (from any file system Spark reads),
        never through pandas. Returns the columns of each registered table.
        """
        directory = Path(directory)
        for name in SCHEMAS:
            source = _parquet_source(directory, name)
            if source is not None:
                self.register(name, self.spark.read.parquet(str(source)))
        if "transactions" not in self.views:
            raise FileNotFoundError(
                f"no transactions.parquet (or transactions/*.parquet) in {directory}: "
                "write the canonical transactions table there first"
            )
        return dict(self.views)

    def register_tables(self, tables: Mapping[str, str]) -> dict[str, list[str]]:
        """Register warehouse tables: contract name → Spark table name (``db.sales_lines``)."""
        if "transactions" not in tables:
            raise ValueError(
                f"no table given for 'transactions' (got {sorted(tables)}): it is required"
            )
        for name, table in tables.items():
            self.register(name, self.spark.table(table))
        return dict(self.views)

    def register_shop(self, tables: ShopTables) -> dict[str, list[str]]:
        """Register validated pandas tables (sent to Spark through Arrow)."""
        for name, frame in tables.present().items():
            if name in SCHEMAS:
                self.register(name, self.spark.createDataFrame(_arrow_table(frame)))
        return dict(self.views)

    # -- the engine interface (features.engines.base.Engine)
    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> SparkResult:
        """Run one DuckDB-dialect statement on Spark (see the class docstring)."""
        if parameters:
            raise ValueError(f"SparkConnection.execute takes no parameters, got {parameters!r}")
        if self._CREATE_CUTOFFS.match(sql):
            self.register_cutoffs([])
            return SparkResult(self, None)
        probe = re.fullmatch(r"\s*SELECT \* FROM (\w+) LIMIT 0\s*", sql)
        if probe and probe.group(1) in SCHEMAS and probe.group(1) not in self.views:
            raise duckdb.CatalogException(f"Table with name {probe.group(1)} does not exist!")
        return SparkResult(self, self.spark.sql(to_spark_sql(sql)))

    def sql(self, sql: str) -> SparkResult:
        """Same as :meth:`execute` (DuckDB's relational ``sql``)."""
        return self.execute(sql)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> SparkConnection:
        """Only ``INSERT INTO cutoffs VALUES (?)``: append dates to the ``cutoffs`` view."""
        if not self._INSERT_CUTOFFS.match(sql):
            raise NotImplementedError(
                f"SparkConnection.executemany only inserts cutoffs, got {sql.strip()[:80]!r}"
            )
        self.register_cutoffs([*self._cutoffs, *(row[0] for row in rows)])
        return self

    def register_cutoffs(self, dates: Iterable[dt.date]) -> None:
        """(Re)create the temp view ``cutoffs`` (one ``DATE`` column ``cutoff``) holding ``dates``."""
        chosen = list(dates)
        self._cutoffs = as_dates(chosen) if chosen else []
        frame = self.spark.createDataFrame([(d,) for d in self._cutoffs], "cutoff DATE")
        frame.createOrReplaceTempView("cutoffs")


class SparkResult:
    """The result of :meth:`SparkConnection.execute`, as ``features.engines.base.Result``."""

    def __init__(self, connection: SparkConnection, frame: SparkDataFrame | None) -> None:
        self.connection = connection
        self.frame = frame

    @property
    def description(self) -> list[tuple[str, ...]]:
        if self.frame is None:
            return []
        return [(f.name, f.dataType.simpleString()) for f in self.frame.schema.fields]

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self.frame is None:
            return []
        return [tuple(row) for row in self.frame.collect()]

    def df(self) -> pd.DataFrame:
        """The rows as pandas, typed as DuckDB's ``df()`` types them (NULL floats as NaN)."""
        if self.frame is None:
            return pd.DataFrame()
        return duckdb_types(self.frame.toArrow()).to_pandas()


def _double_literal(node: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
    if isinstance(node, sqlglot.exp.Literal) and node.is_number and "." in node.this:
        return sqlglot.exp.cast(node.copy(), "DOUBLE")
    return node


def to_spark_sql(sql: str) -> str:
    """DuckDB-dialect SQL as Spark SQL (one statement).

    Literals with a decimal point (``365.0``) become ``DOUBLE``: DuckDB divides
    such decimals in double precision, Spark in ``DECIMAL(38, 6)``, which
    would round ``365.0 / 90.0`` to six places.
    """
    trees = sqlglot.parse(sql, read="duckdb")
    if len(trees) != 1 or trees[0] is None:
        raise ValueError(f"expected one SQL statement, got {len(trees)}")
    return trees[0].transform(_double_literal).sql(dialect="spark")


def duckdb_types(table: pa.Table) -> pa.Table:
    """A Spark result typed as DuckDB gives it.

    Decimals become ``float64`` (Spark types a sum of ``1.0`` literals as a
    decimal), dates become midnight timestamps and time-zone-aware timestamps
    naive UTC.
    """
    columns = []
    for spec, column in zip(table.schema, table.columns, strict=True):
        kind = spec.type
        if pa.types.is_decimal(kind):
            column = column.cast(pa.float64())
        elif pa.types.is_date(kind):
            column = column.cast(pa.timestamp("s"))
        elif pa.types.is_timestamp(kind) and kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit, tz="UTC")).cast(pa.timestamp(kind.unit))
        columns.append(column)
    return pa.table(columns, names=table.schema.names)


__all__ = [
    "ENV_SPARK_MASTER",
    "SparkConfig",
    "SparkConnection",
    "SparkResult",
    "duckdb_types",
    "spark_session",
    "to_spark_sql",
]
