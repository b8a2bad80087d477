"""The scoring status from the feature query's own aggregates equals the line query's, bit for bit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_feature_table_from
from features.engines.duckdb_engine import connect, connect_parquet, outline
from features.feature_sets import CHURN_FEATURES_V3
from features.labels import STATUS_COLUMNS, SUMMARY_COLUMNS, LabelConfig
from features.scoring_frame import (
    _attach_status,
    _sorted_status,
    _with_parts,
    build_scoring_frame,
    build_scoring_frame_from,
)
from features.status_features import SPANNING, status_definitions, status_from_features
from features.tiers import TierConfig
from features.training_table import monthly_cutoffs
from tests.features.test_labels import CUTOFF, HAND_ROWS, shop
from tests.features.test_scoring_status import EXTRA_ROWS

#: The 275-day tier window (a net margin window of the feature query), odd active and lapsed ones.
KEPT = LabelConfig(
    active_window_days=30,
    lapsed_after_days=75,
    tiers=TierConfig(bands=(("gold", 0.5),), vip_tiers=("gold",), window_days=275),
)
#: More hand lines: an order with two lines of one day, lines of many margins, a customer
#: whose lines in the tier window are returns only, one at the first instant of the window.
MORE_ROWS = [
    ("P", "p1", "2024-03-02 09:00", 10.1, 1.1, False),
    ("P", "p1", "2024-03-02 18:00", 20.3, 2.7, False),
    ("P", "p2", "2023-08-01 12:00", 30.7, 3.3, False),
    ("Q", "q1", "2023-01-10 12:00", 70.0, 20.1, False),
    ("Q", "q2", "2024-02-10 12:00", 7.0, -2.9, True),
    ("S", "s1", "2023-07-01 00:00", 11.0, 0.7, False),
]
COLUMNS = [*STATUS_COLUMNS, *SUMMARY_COLUMNS]
ONLINE_RETAIL = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "online_retail_I.csv.gz"
)


def _line_query(con, tables, as_of, config) -> pd.DataFrame:
    """The status of the line query (``features.labels.scoring_status_sql``), as before."""
    features = build_feature_table_from(con, [as_of], feature_set=CHURN_FEATURES_V3)
    status = _sorted_status(tables, as_of, config, con, summary=True)
    return _attach_status(features, status, tables, as_of, config, con, CHURN_FEATURES_V3)


def _from_features(con, tables, as_of, config):
    """What ``features.status_features`` makes of the feature query, or None."""
    parts = status_definitions(tables.transactions.columns, config, summary=True)
    features = build_feature_table_from(con, [as_of], feature_set=_with_parts(None, parts))
    return features, status_from_features(features, config)


@pytest.mark.parametrize("config", [LabelConfig(), KEPT], ids=["default", "kept"])
@pytest.mark.parametrize("margin", [True, False], ids=["margin", "revenue"])
@pytest.mark.parametrize("days_after", [0, -20, -61, 300])
@pytest.mark.parametrize("keyed", [False, True], ids=["ids", "keys"])
def test_status_from_the_features_equals_the_line_query(config, margin, days_after, keyed):
    tables = shop(HAND_ROWS + EXTRA_ROWS + MORE_ROWS, margin=margin)
    as_of = CUTOFF + dt.timedelta(days=days_after)
    con = connect(tables, customer_keys=keyed)
    expected = _line_query(con, tables, as_of, config)
    features, status = _from_features(con, tables, as_of, config)
    assert status is not None  # no order spans two dates
    got = pd.DataFrame(status, index=features.index.droplevel("cutoff"))
    pd.testing.assert_frame_equal(got[COLUMNS], expected[COLUMNS], check_exact=True)
    frame = build_scoring_frame(tables, as_of, CHURN_FEATURES_V3, label_config=config,
                                con=con, summary=True)  # fmt: skip
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert not [c for c in frame.columns if c.startswith("_status")]


def test_an_order_over_two_dates_leaves_the_status_to_the_line_query():
    """The last purchase line is not the last order's first one: the line query decides."""
    spanning = [("P", "p3", "2024-03-31 23:00", 5.0, 1.0, False),
                ("P", "p3", "2024-03-30 10:00", 6.0, 2.0, False)]  # fmt: skip
    tables = shop(HAND_ROWS + MORE_ROWS + spanning)
    con = connect(tables)
    features, status = _from_features(con, tables, CUTOFF, LabelConfig())
    assert status is None and features.loc[(pd.Timestamp(CUTOFF), "P"), SPANNING] == 1
    expected = _line_query(con, tables, CUTOFF, LabelConfig())
    frame = build_scoring_frame(tables, CUTOFF, CHURN_FEATURES_V3, con=con, summary=True)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame.loc["P", "recency"] == 243.0  # 2023-08-01 .. 2024-03-31, by the line dates


def test_a_tier_window_without_margin_parts_uses_the_line_query():
    config = LabelConfig(tiers=TierConfig(window_days=120))
    assert status_definitions(["margin_amount"], config) is None
    tables = shop(HAND_ROWS + MORE_ROWS)
    con = connect(tables)
    expected = _line_query(con, tables, CUTOFF, config)
    frame = build_scoring_frame(tables, CUTOFF, CHURN_FEATURES_V3, label_config=config,
                                con=con, summary=True)  # fmt: skip
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_status_from_the_features_of_a_simulated_shop_read_in_place(small_shop_dir, small_shop):
    """Thousands of customers and margins: the trailing margins and means to the last bit."""
    con = connect_parquet(small_shop_dir)
    tables = outline(con)
    for as_of in monthly_cutoffs(small_shop.tables, 90, every_days=300, count=2):
        expected = _line_query(con, tables, as_of, LabelConfig())
        got = build_scoring_frame_from(con, as_of, CHURN_FEATURES_V3, tables=tables, summary=True)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert got["is_vip"].sum() > 10 and np.isfinite(got[list(SUMMARY_COLUMNS)]).all().all()


def test_every_feature_and_the_status_without_the_status_parts():
    """Without a feature set: every feature, the status, and none of the status's own parts."""
    tables = shop(HAND_ROWS + MORE_ROWS)
    con = connect(tables)
    frame = build_scoring_frame(tables, CUTOFF, con=con, summary=True)
    features = build_feature_table_from(con, [CUTOFF])
    assert list(frame.columns) == [*features.columns, *COLUMNS]
    assert frame.attrs["omitted_features"] == features.attrs["omitted_features"]


@pytest.mark.realdata
@pytest.mark.skipif(not ONLINE_RETAIL.is_file(), reason=f"real data not available: {ONLINE_RETAIL}")
@pytest.mark.parametrize("as_of", ["2011-09-09", "2011-06-30"])
def test_status_from_the_features_of_online_retail(as_of):
    """Invoices whose lines share a date: the feature query gives the status, bit for bit."""
    from features.inputs.sources import load_shop

    now = pd.Timestamp("2012-01-01", tz="UTC")
    tables = load_shop(ONLINE_RETAIL, "online-retail", now=now).tables
    date, config = dt.date.fromisoformat(as_of), LabelConfig()
    con = connect(tables)
    frame = build_scoring_frame(tables, date, con=con, summary=True)
    features = build_feature_table_from(con, [date])
    status = _sorted_status(tables, date, config, con, summary=True)
    expected = _attach_status(features, status, tables, date, config, con, None)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame["is_vip"].sum() > 100 and frame.attrs == expected.attrs
