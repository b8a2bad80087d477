"""The DuckDB fast path of ``features.build``: the sorted Arrow result converted column by column."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import sqlglot

from features.build import build_feature_table, feature_query
from features.definitions import resolve
from features.engines.duckdb_engine import MEMORY_LIMIT_VARIABLE, connect, table_columns
from features.result_frame import canonical_frame, release_cached_memory
from tests.features.reference_features import random_shop

CUTOFFS = [date(2022, 9, 30), date(2023, 6, 30)]


def test_arrow_path_equals_the_sql_sorted_df_path():
    """The Arrow conversion gives the rows, values, dtypes and index of ``df()`` + ``_canonical``."""
    shop = random_shop(customers=150, seed=3)
    con = connect(shop)
    built = build_feature_table(shop, CUTOFFS, con=con)
    columns = table_columns(con)
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[1]):
        sql = feature_query(definitions, columns, cutoff=cutoff)
        assert sql.rstrip().endswith(
            "ORDER BY " + ("joined.customer_id" if cutoff else "joined.cutoff, joined.customer_id")
        )
        expected = canonical_frame(con.execute(sql).df(), definitions)
        got = built if cutoff is None else build_feature_table(shop, [cutoff], con=con)
        if cutoff is not None:  # one cutoff: its own fast path, same rows as in the table
            pd.testing.assert_frame_equal(
                got,
                built.xs(pd.Timestamp(cutoff), level="cutoff", drop_level=False),
                check_categorical=False,
            )
        assert got.index.is_monotonic_increasing
        pd.testing.assert_frame_equal(got, expected, check_categorical=False)


def test_query_is_sorted_and_transpiles_to_spark():
    shop = random_shop(customers=20, seed=4)
    columns = {name: list(frame.columns) for name, frame in shop.present().items()}
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[0]):
        sql = feature_query(definitions, columns, cutoff=cutoff)
        spark = sqlglot.transpile(sql, read="duckdb", write="spark")
        parsed = sqlglot.parse_one(spark[0], read="spark")
        assert [o.this.name for o in parsed.args["order"].expressions] == (
            ["customer_id"] if cutoff else ["cutoff", "customer_id"]
        )


def test_released_memory_keeps_the_limit_winback_set():
    con = connect(random_shop(50), memory_limit="1280MB")
    con.execute("CREATE TEMP TABLE t AS SELECT range AS x FROM range(100000)")
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()
    for _ in range(3):  # setting it again must not drift as a rounded read-back would
        release_cached_memory(con)
    assert con.execute("SELECT current_setting('memory_limit')").fetchall() == before
    assert con.execute(f"SELECT getvariable('{MEMORY_LIMIT_VARIABLE}')").fetchall() == [("1280MB",)]
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(100000,)]


def test_release_leaves_a_connection_winback_did_not_limit_alone():
    con = duckdb.connect()
    con.execute("SET memory_limit = '777MB'")
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()
    release_cached_memory(con)
    assert con.execute("SELECT current_setting('memory_limit')").fetchall() == before
