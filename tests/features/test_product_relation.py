"""The (customer, product) grouping gives what a ``COUNT(DISTINCT product_id)`` per window gives."""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import build_feature_table_from
from features.custom.windowed import Window, windowed
from features.engines.duckdb_engine import connect, connect_parquet
from features.feature_sets import FeatureSet
from features.training_table import monthly_cutoffs

_PURCHASED = "CASE WHEN NOT is_return THEN product_id END"
_READS = ("product_id", "is_return")
#: The product features as windowed aggregates over the lines of each window, as they were.
AS_WINDOWS = {
    "distinct_product_count_90d": windowed(
        "w_distinct_90d", f"COUNT(DISTINCT {_PURCHASED})", "90 days",
        Window("transactions", 90, fill=0), reads=_READS,
    ),
    "distinct_product_count_365d": windowed(
        "w_distinct_365d", f"COUNT(DISTINCT {_PURCHASED})", "365 days",
        Window("transactions", 365, fill=0), reads=_READS,
    ),
    "repeat_product_line_share_365d": windowed(
        "w_repeat_365d", f"1 - COUNT(DISTINCT {_PURCHASED}) / NULLIF(COUNT({_PURCHASED}), 0)",
        "365 days", Window("transactions", 365), reads=_READS,
    ),
}  # fmt: skip
BOTH = FeatureSet(
    "products_both",
    tuple((n, "float64") for n in [*AS_WINDOWS, *(d.name for d in AS_WINDOWS.values())]),
    tuple(AS_WINDOWS.values()),
)


@pytest.mark.parametrize("source", ["parquet", "frames", "frames-unkeyed"])
@pytest.mark.parametrize("count", [1, 3])
def test_the_product_features_equal_the_windowed_distinct_counts(
    small_shop, small_shop_dir, source, count
):
    cutoffs = monthly_cutoffs(small_shop.tables, 90, every_days=200, count=count)
    if source == "parquet":
        con = connect_parquet(small_shop_dir)
    else:
        con = connect(small_shop.tables, customer_keys=source == "frames")
    frame = build_feature_table_from(con, cutoffs, feature_set=BOTH)
    for name, old in AS_WINDOWS.items():
        expected = frame[old.name].rename(name)
        pd.testing.assert_series_equal(frame[name], expected, check_exact=True)
    assert frame["distinct_product_count_90d"].gt(0).sum() > 100
    assert frame["repeat_product_line_share_365d"].isna().sum() > 0
