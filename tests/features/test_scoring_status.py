"""The one-scan scoring status query gives what the status, tier and summary queries give."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.engines.duckdb_engine import (
    connect,
    connect_parquet,
    has_customer_keys,
    outline,
    table_columns,
)
from features.inputs.schema import ShopTables
from features.labels import SUMMARY_COLUMNS, LabelConfig, customer_status
from features.scoring_frame import _sorted_status, _status_columns
from features.tiers import TierConfig
from features.training_table import monthly_cutoffs
from features.value_table import value_summary_from
from tests.features.test_labels import CONFIG, CUTOFF, HAND_ROWS, shop

#: Odd windows: the tier window longer than the active one, lapsed later than active.
WIDE = LabelConfig(
    active_window_days=30,
    lapsed_after_days=75,
    tiers=TierConfig(bands=(("gold", 0.5),), vip_tiers=("gold",), window_days=120),
)
#: Lines the hand shop lacks: a return-only day inside the window, a customer whose only
#: lines are returns, a missing margin, and a purchase the day after the cutoff.
EXTRA_ROWS = [
    ("A", "a9", "2024-03-25 11:00", 7.0, -3.0, True),
    ("R", "r1", "2024-03-01 10:00", 9.0, -4.0, True),
    ("M", "m1", "2024-03-30 10:00", 15.0, None, False),
    ("M", "m2", "2024-01-05 10:00", 25.0, 6.5, False),
    ("N", "n1", "2024-04-01 00:00", 30.0, 10.0, False),
    ("B", "b9", "2024-03-21 15:00", 10.0, -5.0, True),  # a return on a purchase day
    ("K", "k1", "2024-01-02 00:00", 50.0, 20.0, False),  # first day of the 90-day tier window
    ("L", "l1", "2024-01-01 23:59:59", 60.0, 30.0, False),  # the instant before it
]


def _reference(tables, as_of, config) -> pd.DataFrame:
    """Status (``customer_status``) and summary (``value_summary_from``), the separate queries."""
    con = connect(tables)
    status = customer_status(tables, [as_of], config, con=con).droplevel("cutoff")
    summary = value_summary_from(con, [as_of]).droplevel("cutoff")
    return status.join(summary, how="left")


def _one_scan(tables, as_of, config, con=None) -> pd.DataFrame:
    con = connect(tables) if con is None else con
    status = _sorted_status(tables, as_of, config, con, summary=True)
    columns = _status_columns(status, config.tiers)
    ids = pd.Index(status.column("customer_id").to_pylist(), dtype="string", name="customer_id")
    return pd.DataFrame(columns, index=ids)


@pytest.mark.parametrize("config", [CONFIG, WIDE, LabelConfig()], ids=["hand", "wide", "default"])
@pytest.mark.parametrize("margin", [True, False], ids=["margin", "revenue"])
@pytest.mark.parametrize("days_after", [0, -20, -61])
@pytest.mark.parametrize("keyed", [False, True], ids=["ids", "keys"])
def test_one_scan_equals_the_status_tier_and_summary_queries(config, margin, days_after, keyed):
    tables = shop(HAND_ROWS + EXTRA_ROWS, margin=margin)
    as_of = CUTOFF + dt.timedelta(days=days_after)
    expected = _reference(tables, as_of, config)
    con = connect(tables, customer_keys=keyed)
    assert has_customer_keys(con, table_columns(con)) == keyed
    got = _one_scan(tables, as_of, config, con=con)
    assert got.index.is_monotonic_increasing and "R" not in got.index
    pd.testing.assert_frame_equal(got[expected.columns], expected.loc[got.index])
    assert got.index.sort_values().equals(expected.index.sort_values())


def test_without_is_return_every_line_is_a_purchase():
    tables = shop(HAND_ROWS + EXTRA_ROWS)
    tables = ShopTables(transactions=tables.transactions.drop(columns="is_return"))
    expected = _reference(tables, CUTOFF, CONFIG)
    got = _one_scan(tables, CUTOFF, CONFIG)
    assert "R" in got.index
    pd.testing.assert_frame_equal(got[expected.columns], expected.loc[got.index])


def test_one_scan_on_a_simulated_shop_read_in_place(small_shop, small_shop_dir):
    """Exact decimal sums: the same numbers bit for bit, also on the simulator's Parquet files."""
    con = connect_parquet(small_shop_dir)
    assert has_customer_keys(con, table_columns(con))  # grouped by the simulator's keys
    tables = outline(con)
    for as_of in monthly_cutoffs(small_shop.tables, 90, every_days=300, count=2):
        expected = _reference(small_shop.tables, as_of, LabelConfig())
        got = _one_scan(tables, as_of, LabelConfig(), con=con)
        assert got.index.tolist() == sorted(expected.index.tolist())
        pd.testing.assert_frame_equal(got[expected.columns], expected.loc[got.index])
        assert np.isfinite(got[list(SUMMARY_COLUMNS)].to_numpy()).all()
