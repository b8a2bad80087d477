"""The DuckDB fast path of ``features.build``: the Arrow result converted column by column."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot

from features import result_frame
from features.build import build_feature_table, build_feature_table_from
from features.definitions import resolve
from features.engines.duckdb_engine import MEMORY_LIMIT_VARIABLE, connect, table_columns
from features.query import feature_query
from features.result_frame import (
    canonical_frame,
    frame_from_arrow,
    ids_by_key,
    release_cached_memory,
)
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


def _keyed_result(shop, cutoffs, *, sort: bool):
    """A keyed shop's ``by_key`` query result (Arrow), its definitions and its ids by key."""
    con = connect(shop, threads=2, customer_keys=True)
    con.execute("CREATE OR REPLACE TEMP TABLE cutoffs (cutoff DATE)")
    con.executemany("INSERT INTO cutoffs VALUES (?)", [(d,) for d in cutoffs])
    columns = table_columns(con)
    definitions, _ = resolve(None, columns)
    single = cutoffs[0] if len(cutoffs) == 1 else None
    sql = feature_query(definitions, columns, cutoff=single, keyed=True, by_key=True, sort=sort)
    assert ("ORDER BY" in sql.splitlines()[-1]) is sort
    return con.sql(sql).to_arrow_table(), definitions, ids_by_key(con)


@pytest.mark.parametrize("threaded", [False, True], ids=["one thread", "threads"])
@pytest.mark.parametrize("cutoffs", [CUTOFFS[1:], CUTOFFS], ids=["one cutoff", "two cutoffs"])
def test_rows_sorted_after_the_fetch_give_the_frame_of_rows_sorted_in_the_query(
    cutoffs, threaded, monkeypatch
):
    """Keyed rows in any order become the canonical frame, value for value."""
    if threaded:  # the columns of a large result are converted on threads
        monkeypatch.setattr(result_frame, "_THREADED_ROWS", 0)
    shop = random_shop(customers=150, seed=5)
    ordered, definitions, ids = _keyed_result(shop, cutoffs, sort=True)
    expected = frame_from_arrow(ordered, definitions, ids)
    assert expected.index.is_monotonic_increasing
    assert {d.dtype for d in definitions} >= {"category"}
    unsorted, _, _ = _keyed_result(shop, cutoffs, sort=False)
    shuffled = unsorted.take(np.random.default_rng(0).permutation(unsorted.num_rows))
    assert not shuffled.column("customer_key").equals(ordered.column("customer_key"))
    for rows in (unsorted, shuffled):
        got = frame_from_arrow(rows, definitions, ids)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("cutoffs", [CUTOFFS[1:], CUTOFFS], ids=["one cutoff", "two cutoffs"])
def test_build_sorted_after_the_fetch_equals_the_sorted_builds_keyed_and_not(cutoffs):
    shop = random_shop(customers=150, seed=6)
    keyed = connect(shop, threads=2, customer_keys=True)
    after = build_feature_table_from(keyed, cutoffs, sort_in_query=False)
    assert after.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(after, build_feature_table_from(keyed, cutoffs), check_exact=True)
    plain = connect(shop, threads=2)
    pd.testing.assert_frame_equal(
        after, build_feature_table_from(plain, cutoffs, sort_in_query=False), check_exact=True
    )


def test_only_rows_by_key_are_left_unsorted():
    shop = random_shop(customers=20, seed=4)
    columns = table_columns(connect(shop, customer_keys=True))
    definitions, _ = resolve(None, columns)
    with pytest.raises(ValueError, match="by_key=True"):
        feature_query(definitions, columns, keyed=True, sort=False)
