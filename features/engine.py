"""Run SQL definitions over a shop's tables in DuckDB.

The tables are registered as DuckDB views named after their contract table
(``transactions``, ``customers``, ...), with every ``*_at`` column turned into a
naive UTC ``TIMESTAMP`` so that SQL stays portable (DuckDB and Spark SQL agree
on naive timestamps; time-zone arithmetic they do not).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from features.schema import SCHEMAS, ShopTables


def _as_naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy with tz-aware timestamp columns as naive UTC."""
    out = frame.copy(deep=False)
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def connect(
    tables: ShopTables,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with each present table registered as a view.

    Parameters
    ----------
    tables
        Validated shop tables (see ``features.schema``).
    con
        An existing connection to register into; a new in-memory one by default.
    threads, memory_limit
        DuckDB settings; DuckDB's own defaults when ``None``.
    """
    con = con if con is not None else duckdb.connect()
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit is not None:
        con.execute("SET memory_limit = ?", [memory_limit])
    for name, frame in tables.present().items():
        if name not in SCHEMAS:
            continue
        con.register(f"_winback_{name}", _as_naive_utc(frame))
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM _winback_{name}")
    return con
