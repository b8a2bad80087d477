"""Time-ordered split: periods in order, gaps of horizon_days, nothing shuffled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.split import time_split

START = pd.Timestamp("2024-01-01")


def table_at(cutoff_days: list[int], customers: int = 3, seed: int = 0) -> pd.DataFrame:
    """A tiny training table: ``customers`` rows at each cutoff (days after START)."""
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_tuples(
        [(START + pd.Timedelta(days=d), f"c{i}") for d in cutoff_days for i in range(customers)],
        names=["cutoff", "customer_id"],
    )
    return pd.DataFrame(
        {"days_since_last_order": rng.random(len(index)), "churned": rng.random(len(index)) < 0.5},
        index=index,
    )


def days(cutoffs) -> list[int]:
    return [(c - START).days for c in cutoffs]


def test_monthly_cutoffs_split_with_horizon_gaps():
    table = table_at([30 * k for k in range(10)])  # days 0, 30, ..., 270
    split = time_split(table, gap_days=90)
    assert days(split.test_cutoffs) == [270]
    assert days(split.validation_cutoffs) == [180]  # latest cutoff with 180 + 90 <= 270
    assert days(split.train_cutoffs) == [0, 30, 60, 90]  # 90 + 90 <= 180
    assert days(split.dropped_cutoffs) == [120, 150, 210, 240]
    assert len(split.train) == 12 and len(split.validation) == 3 and len(split.test) == 3
    assert split.test_cutoff == START + pd.Timedelta(days=270)
    assert split.describe()["validation_cutoffs"] == ["2024-06-29"]


def test_no_gap_uses_adjacent_cutoffs():
    table = table_at([0, 30, 60, 90])
    split = time_split(table, gap_days=0)
    assert days(split.train_cutoffs) == [0, 30]
    assert days(split.validation_cutoffs) == [60]
    assert days(split.test_cutoffs) == [90]
    assert split.dropped_cutoffs == ()


def test_several_validation_and_test_cutoffs():
    table = table_at([30 * k for k in range(12)])  # 0 .. 330
    split = time_split(table, validation_cutoffs=2, test_cutoffs=2, gap_days=60)
    assert days(split.test_cutoffs) == [300, 330]
    assert days(split.validation_cutoffs) == [210, 240]  # 240 + 60 <= 300
    assert days(split.train_cutoffs) == [0, 30, 60, 90, 120, 150]  # 150 + 60 <= 210


def test_rows_keep_their_order_and_are_not_shuffled():
    table = table_at([0, 30, 60, 90, 120], customers=5).sample(frac=1.0, random_state=3)
    split = time_split(table, gap_days=30)
    for period in (split.train, split.validation, split.test):
        positions = table.index.get_indexer(period.index)
        assert (np.diff(positions) > 0).all()


def test_too_few_cutoffs_names_the_gap_and_what_to_do():
    table = table_at([0, 30, 60])
    with pytest.raises(ValueError, match=r"gap_days=90.*horizon_days"):
        time_split(table, gap_days=90)


def test_missing_cutoff_level_is_explained():
    frame = pd.DataFrame({"x": [1.0]}, index=pd.Index(["c1"], name="customer_id"))
    with pytest.raises(ValueError, match="'cutoff' index level"):
        time_split(frame, gap_days=0)


@settings(max_examples=60, deadline=None)
@given(
    cutoff_days=st.sets(st.integers(0, 2000), min_size=1, max_size=25),
    gap=st.integers(0, 400),
    n_val=st.integers(1, 3),
    n_test=st.integers(1, 3),
)
def test_split_invariants(cutoff_days, gap, n_val, n_test):
    cutoff_days = sorted(cutoff_days)
    table = table_at(cutoff_days, customers=2)
    try:
        split = time_split(table, validation_cutoffs=n_val, test_cutoffs=n_test, gap_days=gap)
    except ValueError:
        # Brute force: no feasible layout exists (latest possible choice at each step).
        test = cutoff_days[-n_test:] if len(cutoff_days) >= n_test else None
        if test is None:
            return
        val_pool = [d for d in cutoff_days if d < test[0] and d + gap <= test[0]]
        if len(val_pool) < n_val:
            return
        train_pool = [d for d in val_pool if d < val_pool[-n_val] and d + gap <= val_pool[-n_val]]
        assert not train_pool
        return
    train, val, test = (
        days(split.train_cutoffs),
        days(split.validation_cutoffs),
        days(split.test_cutoffs),
    )
    assert test == cutoff_days[-n_test:]
    assert len(val) == n_val and train
    assert max(train) + gap <= min(val) and max(val) + gap <= min(test)
    # the validation cutoffs are the latest allowed, training keeps every allowed cutoff
    assert max(train) < min(val) and max(val) < min(test)
    assert val == [d for d in cutoff_days if d < min(test) and d + gap <= min(test)][-n_val:]
    assert train == [d for d in cutoff_days if d < min(val) and d + gap <= min(val)]
    assert sorted(train + val + test + days(split.dropped_cutoffs)) == cutoff_days
    assert len(split.train) + len(split.validation) + len(split.test) == 2 * (
        len(train) + len(val) + len(test)
    )
