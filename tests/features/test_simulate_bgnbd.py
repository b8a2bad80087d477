"""The pure BG/NBD world: seeded, and its closed-form oracle is calibrated and optimal."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.simulation import (
    BgNbdWorldConfig,
    bgnbd_no_order_probability,
    simulate_bgnbd_world,
)
from training.evaluation.metrics import classification_metrics

CUTOFF = dt.date(2025, 3, 31)
HORIZON = 90


@pytest.fixture(scope="module")
def world():
    return simulate_bgnbd_world(BgNbdWorldConfig(customers=8000, seed=2))


def outcome(world, probability: pd.Series) -> np.ndarray:
    """True when the customer has no order in (CUTOFF, CUTOFF + HORIZON]."""
    tx = world.tables.transactions
    end = pd.Timestamp(CUTOFF, tz="UTC") + pd.Timedelta(days=1)
    window = tx[(tx["ordered_at"] >= end) & (tx["ordered_at"] < end + pd.Timedelta(days=HORIZON))]
    return ~probability.index.isin(window["customer_id"].unique())


def test_same_seed_same_orders_and_hand_computed_probability():
    config = BgNbdWorldConfig(customers=300, seed=4)
    a, b = simulate_bgnbd_world(config), simulate_bgnbd_world(config)
    pd.testing.assert_frame_equal(a.tables.transactions, b.tables.transactions)
    # one customer by hand: first order day 0, repeats on days 10 and 30; cutoff ends day 50
    start = pd.Timestamp("2024-01-01", tz="UTC")
    tx = pd.DataFrame(
        {
            "customer_id": pd.array(["c"] * 3, dtype="string"),
            "ordered_at": [start, start + pd.Timedelta(days=10), start + pd.Timedelta(days=30)],
        }
    )
    cutoff = (start + pd.Timedelta(days=49)).date()  # ends at day 50
    r, alpha, a_, b_ = 0.75, 45.0, 0.9, 5.0
    x, t_x, T, h = 2, 30.0, 50.0, 90
    p_alive = 1 / (1 + a_ / (b_ + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    expected = (1 - p_alive) + p_alive * ((alpha + T) / (alpha + T + h)) ** (r + x)
    got = bgnbd_no_order_probability(tx, cutoff, h, config)
    assert got["c"] == pytest.approx(expected, rel=1e-9)


def test_oracle_is_calibrated(world):
    p = world.oracle_churn_probability(CUTOFF, HORIZON)
    y = outcome(world, p)
    assert len(p) > 4000
    metrics = classification_metrics(y, p.to_numpy())
    assert metrics["ece"] < 0.02
    assert abs(p.mean() - y.mean()) < 0.015


def test_the_true_parameters_beat_wrong_ones(world):
    p = world.oracle_churn_probability(CUTOFF, HORIZON)
    y = outcome(world, p)
    best = classification_metrics(y, p.to_numpy())["log_loss"]
    for change in ({"alpha": world.config.alpha * 3}, {"a": 3.0}, {"r": 0.2}):
        wrong = bgnbd_no_order_probability(
            world.tables.transactions, CUTOFF, HORIZON, replace(world.config, **change)
        )
        assert classification_metrics(y, wrong.to_numpy())["log_loss"] > best + 0.002, change


def test_written_world_loads_through_the_contract_with_its_oracle(tmp_path):
    from features.simulation import write_bgnbd_world
    from winback.shop import load_tables

    world = simulate_bgnbd_world(BgNbdWorldConfig(customers=200, seed=1))
    write_bgnbd_world(world, tmp_path / "world")
    assert sorted(p.name for p in (tmp_path / "world").iterdir()) == [
        "bgnbd_world.json",
        "transactions.parquet",
    ]
    tables, truth = load_tables(tmp_path / "world", config=None)
    assert truth.config == world.config
    assert len(tables.transactions) == len(world.tables.transactions)
    p = truth.oracle_churn_probability(CUTOFF, HORIZON)
    pd.testing.assert_series_equal(p, world.oracle_churn_probability(CUTOFF, HORIZON))
