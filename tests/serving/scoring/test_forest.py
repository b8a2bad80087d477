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


#: LightGBM's missing-value handling: NaN with learnt directions, zero and missing the
#: default way, a missing value read as zero.
MISSING_TYPES = pytest.mark.parametrize(
    "params",
    [{}, {"zero_as_missing": True}, {"use_missing": False}],
    ids=["nan", "zero", "none"],
)


def _booster(params: dict, seed: int, rounds: int) -> lgb.Booster:
    x, y = _data(4_000, seed)
    return lgb.train(
        {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, **params},
        lgb.Dataset(x, y, categorical_feature=[2]),
        num_boost_round=rounds,
    )


@MISSING_TYPES
def test_forest_equals_lightgbm_raw_scores(params):
    booster = _booster(params, 0, 30)
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


@MISSING_TYPES
def test_odd_values_go_where_lightgbm_sends_them(params):
    """Near-zero, negative, fractional, huge and infinite values, in numbers and categories."""
    booster = _booster(params, 3, 25)
    odd = np.array([np.nan, 0.0, -0.0, 1e-40, -1e-40, 1e-35, -1e-35, 2e-35, -2e-35, -0.5, -1.0,
                    -1.5, 0.5, 0.99, 1.0, 2.7, 5.999, 6.0, 1e12, -1e12, np.inf, -np.inf])  # fmt: skip
    rng = np.random.default_rng(4)
    test, _ = _data(BLOCK_ROWS + 300, 5)
    for column in range(test.shape[1]):
        hit = rng.random(len(test)) < 0.4
        test[hit, column] = rng.choice(odd, hit.sum())
    forest = Forest.from_booster(booster)
    assert forest is not None
    expected = booster.predict(test, raw_score=True)
    assert np.array_equal(forest.raw_score(test), expected)
    assert np.array_equal(forest.raw_score(np.asfortranarray(test), threads=2), expected)


def test_a_category_beyond_the_kernels_table_stays_with_lightgbm():
    x, _ = _data(4_000, 6)
    x[:, 2] = np.where(x[:, 2] == 5, 100_000, x[:, 2])  # a category code past MAX_CATEGORY
    y = (x[:, 2] == 100_000).astype(int)  # the split the trees must make
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1},
        lgb.Dataset(x, y, categorical_feature=[2]),
        num_boost_round=5,
    )
    named = [
        n for t in booster.dump_model()["tree_info"] for n in _nodes(t["tree_structure"])
        if n.get("decision_type") == "==" and "100000" in str(n["threshold"]).split("||")
    ]  # fmt: skip
    assert named  # the large category is in a split: the kernel cannot take it
    assert Forest.from_booster(booster) is None
    rows = np.repeat(x, -(-FOREST_MIN_ROWS // len(x)), axis=0)
    assert np.array_equal(raw_scores(booster, rows, None), booster.predict(rows, raw_score=True))


def _nodes(node: dict):
    yield node
    for child in ("left_child", "right_child"):
        if child in node:
            yield from _nodes(node[child])


def test_a_warmed_forest_is_the_one_a_batch_uses():
    from serving.scoring.forest import warm

    x, y = _data(4_000, 7)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1},
                        lgb.Dataset(x, y, categorical_feature=[2]), num_boost_round=8)  # fmt: skip
    warm(booster, 5)
    forest = forest_of(booster, 5)
    warm(booster, 5)
    assert forest_of(booster, 5) is forest
    rows = np.repeat(x, -(-FOREST_MIN_ROWS // len(x)), axis=0)
    expected = booster.predict(rows, raw_score=True, num_iteration=5)
    assert np.array_equal(raw_scores(booster, rows, 5), expected)
