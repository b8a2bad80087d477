"""The DuckDB fast path of ``features.build``: Arrow fetch sorted in pyarrow, no ``ORDER BY``."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlglot

from features.build import _canonical, build_feature_table, feature_query
from features.engine import connect, table_columns
from features.registry import resolve
from tests.features.reference_features import random_shop

CUTOFFS = [date(2022, 9, 30), date(2023, 6, 30)]


def test_arrow_path_equals_the_sql_sorted_df_path():
    """Sorting in pyarrow gives the rows, values and dtypes of ``ORDER BY`` + ``df()``."""
    shop = random_shop(customers=150, seed=3)
    con = connect(shop)
    built = build_feature_table(shop, CUTOFFS, con=con)
    columns = table_columns(con)
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[1]):
        sql = feature_query(definitions, columns, cutoff=cutoff)
        assert sql.rstrip().endswith(
            "ORDER BY " + ("customer_id" if cutoff else "cutoff, customer_id")
        )
        expected = _canonical(con.execute(sql).df(), definitions)
        got = (
            built
            if cutoff is None
            else built.xs(pd.Timestamp(cutoff), level="cutoff", drop_level=False)
        )
        assert got.index.is_monotonic_increasing
        pd.testing.assert_frame_equal(got, expected, check_categorical=False)


def test_unsorted_query_has_no_order_by_and_still_transpiles_to_spark():
    shop = random_shop(customers=20, seed=4)
    columns = {name: list(frame.columns) for name, frame in shop.present().items()}
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[0]):
        sql = feature_query(definitions, columns, cutoff=cutoff, sort=False)
        assert "ORDER BY cutoff" not in sql and not sql.rstrip().endswith("customer_id")
        spark = sqlglot.transpile(sql, read="duckdb", write="spark")
        assert sqlglot.parse_one(spark[0], read="spark").find(sqlglot.exp.Select) is not None
