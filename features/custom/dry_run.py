"""A user-defined feature's SQL run once on empty contract tables, before any data is read.

Parsing proves the expression's shape; only the engine knows whether it binds
(``sum(product_id)`` on a text column does not) and returns a number. Running
the feature query on empty tables answers both in milliseconds, at config load.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from features.custom.windowed import WindowedFeature
from features.inputs.schema import PANDAS_DTYPES, SCHEMAS, ShopTables

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def empty_tables(*names: str) -> ShopTables:
    """Contract tables ``transactions`` and ``names`` with every column and no rows."""
    frames = {
        name: pd.DataFrame(
            {c.name: pd.Series([], dtype=PANDAS_DTYPES[c.kind]) for c in SCHEMAS[name].columns}
        )
        for name in dict.fromkeys(("transactions", *names))
    }
    return ShopTables(**frames)


def dry_run(definition: WindowedFeature) -> None:
    """Raise ``ValueError`` when the feature's query fails or does not give a number."""
    from features.engines.duckdb_engine import connect, table_columns
    from features.query import feature_query

    con = connect(empty_tables(definition.table), duckdb.connect())
    try:
        sql = feature_query([definition], table_columns(con), cutoff=date(2000, 1, 1))
        relation = con.sql(sql)
        kind = str(relation.types[relation.columns.index(definition.name)])
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(
            f"expression {definition.expression!r} fails on the {definition.table} "
            f"contract table: {first}"
        ) from None
    finally:
        con.close()
    if not kind.upper().startswith(_NUMERIC + ("BOOLEAN",)):
        raise ValueError(
            f"expression {definition.expression!r} gives {kind}, not a number; "
            "features are numbers (e.g. count, sum, a share)"
        )
