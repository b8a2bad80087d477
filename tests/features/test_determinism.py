"""The same data gives the same features to the last bit, however DuckDB splits the work.

DuckDB aggregates in parallel and adds partial sums in whatever order its threads
finish; with floating-point money that order moves the last bits of a sum, two
customers' equal spends stop being equal, and a LightGBM model trained on them
splits elsewhere. Money is summed exactly (decimals, or integers of ten-thousandths
in the feature relations), so the thread count cannot change a feature.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from features.build import build_feature_table
from features.engines.duckdb_engine import connect, connect_parquet
from features.labels import build_labels


def _cutoffs(shop) -> list[dt.date]:
    return [dt.date(2024, 6, 30), dt.date(2025, 6, 30)]


def test_features_do_not_depend_on_the_number_of_threads(small_shop):
    tables = small_shop.tables
    one = build_feature_table(tables, _cutoffs(small_shop), con=connect(tables, threads=1))
    many = build_feature_table(tables, _cutoffs(small_shop), con=connect(tables, threads=8))
    pd.testing.assert_frame_equal(one, many, check_exact=True)


def test_features_read_in_place_do_not_depend_on_the_number_of_threads(small_shop_dir):
    from features.build import build_feature_table_from

    cutoffs = [dt.date(2025, 6, 30)]
    one = build_feature_table_from(connect_parquet(small_shop_dir, threads=1), cutoffs)
    many = build_feature_table_from(connect_parquet(small_shop_dir, threads=8), cutoffs)
    pd.testing.assert_frame_equal(one, many, check_exact=True)


def test_labels_do_not_depend_on_the_number_of_threads(small_shop):
    tables = small_shop.tables
    one = build_labels(tables, _cutoffs(small_shop), con=connect(tables, threads=1))
    many = build_labels(tables, _cutoffs(small_shop), con=connect(tables, threads=8))
    pd.testing.assert_frame_equal(one, many, check_exact=True)
