"""The value label: hand-computed horizon edges, brute force, leakage properties, the table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given

from features.feature_sets import FeatureSet
from features.value_table import (
    build_value_labels,
    build_value_table,
    supported_value_horizon,
    value_targets,
)
from tests.features.test_labels import (
    CONFIG,
    CUTOFF,
    FASTER,
    HAND_ROWS,
    P_CUTOFF,
    PROPERTY_CONFIG,
    _split,
    brute_force_labels,
    shop,
    transactions,
)


def value_at(rows, horizon_days, *, margin=True, cutoff=CUTOFF, config=CONFIG) -> pd.DataFrame:
    labels = build_value_labels(
        shop(rows, margin=margin), [cutoff], horizon_days=horizon_days, label_config=config
    )
    return labels.loc[pd.Timestamp(cutoff)]


def test_value_by_hand_at_the_horizon_edges():
    labels = value_at(HAND_ROWS, 30)
    # B's order at the first instant of the horizon and C's at its last count; D's order at
    # 05-01 00:00 lies one instant past a 30-day horizon; A and J only returned something.
    assert labels["future_value"].to_dict() == {
        "A": -2.0, "B": 500.0, "C": 0.0, "D": 0.0, "E": 0.0, "G": 3.0,
        "H": 20.0, "I": 0.0, "J": -20.0,
    }  # fmt: skip
    assert value_at(HAND_ROWS, 31).loc["D", "future_value"] == 999.0
    assert labels["future_orders"].tolist() == [0, 1, 1, 0, 0, 1, 1, 0, 0]
    # the population is active and lapsed customers alike; F (first order after) is absent
    assert labels["is_lapsed"][["H", "I", "J"]].all() and "F" not in labels.index


def test_without_margin_the_value_is_signed_revenue_and_says_so():
    frame = build_value_labels(shop(HAND_ROWS, margin=False), [CUTOFF], horizon_days=30)
    assert frame.attrs == {"horizon_days": 30, "value_basis": "revenue"}
    values = frame.loc[pd.Timestamp(CUTOFF), "future_value"]
    assert values[["A", "B", "J"]].tolist() == [-5.0, 900.0, -50.0]
    with_margin = build_value_labels(shop(HAND_ROWS), [CUTOFF], horizon_days=30)
    assert with_margin.attrs["value_basis"] == "margin"


@FASTER
@given(transactions())
def test_value_matches_brute_force(rows):
    tables = shop(rows)
    got = build_value_labels(
        tables, [P_CUTOFF], horizon_days=PROPERTY_CONFIG.horizon_days, label_config=PROPERTY_CONFIG
    )
    expected = brute_force_labels(tables, P_CUTOFF, PROPERTY_CONFIG)
    if expected.empty:
        assert got.empty
        return
    got = got.loc[pd.Timestamp(P_CUTOFF)]
    assert sorted(got.index) == sorted(expected.index)
    np.testing.assert_allclose(
        got["future_value"], expected.loc[got.index, "future_margin"].astype(float)
    )


@FASTER
@given(transactions(), transactions())
def test_data_after_the_horizon_or_before_the_cutoff_leaves_the_value_alone(rows, other):
    horizon = PROPERTY_CONFIG.horizon_days
    start = pd.Timestamp(P_CUTOFF, tz="UTC") + pd.Timedelta(days=1)
    end = start + pd.Timedelta(days=horizon)
    kept, _ = _split(rows, end)
    _, later = _split(other, end)

    def values(lines):
        frame = build_value_labels(
            shop(lines), [P_CUTOFF], horizon_days=horizon, label_config=PROPERTY_CONFIG
        )
        return frame["future_value"]

    base = values(kept)
    assert values(kept + later).equals(base)
    # re-pricing history (amounts and margins on or before the cutoff) moves no label
    repriced = [(c, o, t, a * 3, m * 3 + 1, r) if t < start else (c, o, t, a, m, r)
                for c, o, t, a, m, r in kept]  # fmt: skip
    assert values(repriced).equals(base)


def test_value_table_joins_features_and_checks_the_horizon():
    tables = shop(HAND_ROWS)
    feature_set = FeatureSet(
        "value_test", (("order_count", "float64"), ("spend_amount", "float64"))
    )
    table = build_value_table(tables, [CUTOFF], horizon_days=30, feature_set=feature_set)
    assert list(table.columns[:2]) == ["order_count", "spend_amount"]
    assert table.attrs["target"] == "value" and table.attrs["value_basis"] == "margin"
    assert table.loc[(pd.Timestamp(CUTOFF), "B"), "future_value"] == 500.0
    assert value_targets(table).dtype == np.float64
    with pytest.raises(ValueError, match="horizon that runs past the last data date"):
        build_value_table(tables, [CUTOFF], horizon_days=60, feature_set=feature_set)
    with pytest.raises(ValueError, match="no 'future_value' column"):
        value_targets(table.drop(columns="future_value"))


def test_supported_horizon_is_the_longest_the_history_can_evaluate():
    def spanning(days: int):
        first = dt.date(2020, 1, 1)
        return shop(
            [("A", "a1", f"{first} 10:00", 1.0, 1.0, False),
             ("A", "a2", f"{first + dt.timedelta(days=days)} 10:00", 1.0, 1.0, False)]
        )  # fmt: skip

    # two horizons, two 30-day steps between three origins, 60 days of history
    assert supported_value_horizon(spanning(2 * 365 + 120)) == 365
    assert supported_value_horizon(spanning(2 * 365 + 119)) == 180
    assert supported_value_horizon(spanning(2 * 365 + 59), origins=1) == 180
    assert supported_value_horizon(spanning(373)) == 90  # Online Retail's 2010-12 .. 2011-12
    assert supported_value_horizon(spanning(373), requested_days=120) == 120
    with pytest.raises(ValueError, match="covers 100 days"):
        supported_value_horizon(spanning(100))
