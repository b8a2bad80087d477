"""One engine interface: where the contract tables are registered and the builders' SQL runs.

The feature, status, tier and label builders (``features.build``,
``features.labels``, ``features.tiers``, ``features.training_table``) write
DuckDB-dialect SQL over contract views (``transactions``, ``customers``, ...)
and a ``cutoffs`` relation. They run it on an :class:`Engine`, passed as
``con``: a DuckDB connection (``features.engines.duckdb_engine.connect`` or
``connect_parquet``) or a ``features.engines.spark_engine.SparkConnection``,
which transpiles each statement to Spark SQL. An engine is the part of a DuckDB
connection those builders call, so DuckDB's own connection is one as it is.

On any engine, ``features.engines.duckdb_engine.table_columns`` lists the
registered tables' columns, ``features.engines.duckdb_engine.outline`` gives a
stand-in ``ShopTables`` with their columns and date range, and
``features.tiers.register_cutoffs`` (re)creates the ``cutoffs`` relation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import pandas as pd


class Result(Protocol):
    """The result of one statement, as DuckDB returns it."""

    @property
    def description(self) -> Any:
        """``(name, type, ...)`` per column."""

    def df(self) -> pd.DataFrame:
        """The rows as pandas (decimals as ``float64``, timestamps naive UTC)."""

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The rows as tuples."""


class Engine(Protocol):
    """Runs DuckDB-dialect SQL over the registered contract views and ``cutoffs``.

    ``execute`` of ``SELECT * FROM <table> LIMIT 0`` raises
    ``duckdb.CatalogException`` for an unregistered contract table (how
    ``table_columns`` finds the present ones); ``executemany`` need only insert
    rows into ``cutoffs``.
    """

    def execute(self, query: str, parameters: Sequence[Any] | None = None) -> Result:
        """Run one statement."""

    def sql(self, query: str) -> Result:
        """Run one query (DuckDB's relational ``sql``)."""

    def executemany(self, query: str, parameters: Iterable[Sequence[Any]]) -> object:
        """Run one statement once per parameter row."""
