"""Trees evaluated with NumPy give LightGBM's raw scores bit for bit, whatever the missing values."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from serving.scoring.forest import BLOCK_ROWS, Forest, forest_of
from serving.scoring.predict import FOREST_MIN_ROWS, raw_scores


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with NaN, exact and near zeros, plus a categorical column of codes (some NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    x[rng.random(rows) < 0.2, 0] = np.nan
    x[rng.random(rows) < 0.3, 1] = 0.0
    x[rng.random(rows) < 0.05, 1] = 1e-40  # LightGBM reads it as zero
    x[:, 2] = rng.integers(0, 6, rows)
    x[rng.random(rows) < 0.1, 2] = np.nan
    x[rng.random(rows) < 0.1, 3] = np.nan
    y = (np.nan_to_num(x[:, 0]) + (x[:, 2] % 3 == 1) + x[:, 4] + rng.normal(0, 1, rows)) > 0.5
    return x, y.astype(int)


@pytest.mark.parametrize(
    "params",
    [
        {},  # missing values as NaN, learnt default directions
        {"zero_as_missing": True},  # zero and missing go the default way
        {"use_missing": False},  # a missing value is read as zero
    ],
    ids=["nan", "zero", "none"],
)
def test_forest_equals_lightgbm_raw_scores(params):
    x, y = _data(4_000, 0)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, **params},
        lgb.Dataset(x, y, categorical_feature=[2]),
        num_boost_round=30,
    )
    test, _ = _data(3 * BLOCK_ROWS // 2, 1)  # two blocks, the second partial
    test[:50, 2] = 9.0  # a category unseen in training
    forest = Forest.from_booster(booster, 20)
    assert forest is not None
    expected = booster.predict(test, raw_score=True, num_iteration=20)
    assert np.array_equal(forest.raw_score(test), expected)
    assert np.array_equal(forest.raw_score(np.asfortranarray(test)), expected)
    for threads in (1, 2, 3):  # blocks on threads: the same bits, each row where it belongs
        assert np.array_equal(forest.raw_score(test, threads=threads), expected)


def test_large_trees_and_small_batches_stay_with_lightgbm():
    x, y = _data(4_000, 2)
    big = lgb.train({"objective": "binary", "num_leaves": 40, "min_data_in_leaf": 5,
                     "verbose": -1}, lgb.Dataset(x, y), num_boost_round=3)  # fmt: skip
    assert Forest.from_booster(big, None) is None
    rows = x[: FOREST_MIN_ROWS - 1]
    assert np.array_equal(raw_scores(big, rows, None), big.predict(rows, raw_score=True))
    small = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1},
                      lgb.Dataset(x, y), num_boost_round=5)  # fmt: skip
    assert forest_of(small, 3) is forest_of(small, 3)  # made once per booster and trees
    assert len(forest_of(small, 3).trees) == 3
