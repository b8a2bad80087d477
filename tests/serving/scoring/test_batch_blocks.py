"""Large batches are scored from matrix blocks made on the fly: the same numbers as one matrix."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.feature_sets import VALUE_FEATURES_V1, FeatureSet
from serving.scoring.forest import BLOCK_ROWS, Forest
from serving.scoring.predict import FOREST_MIN_ROWS, FeatureColumns, MatrixBlocks, raw_scores
from serving.scoring.value import SUMMARY_COLUMNS, ServedValueModel, predicted_value
from tests.training import test_value_fit

FEATURES = FeatureSet("blocks", (("x", "float64"), ("region", "category"), ("y", "float64")))
CATEGORIES = {"region": ["north", "south", "west"]}
#: The value model fitted on the small shop (the fixture of the value model's own tests).
value_fitted = test_value_fit.fitted


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.2] = np.nan
    region = pd.Categorical(rng.choice(["north", "south", "east", None], rows))  # east: unseen
    return pd.DataFrame({"y": rng.poisson(3.0, rows).astype("float64"), "x": x, "region": region})


def test_blocks_hold_the_rows_of_the_model_matrix():
    frame = _frame(5_000)
    columns = FeatureColumns(frame)
    whole = columns.matrix(FEATURES.names, CATEGORIES)
    blocks = MatrixBlocks(columns, FEATURES.names, CATEGORIES)
    assert len(blocks) == 5_000
    np.testing.assert_array_equal(blocks.block(1_000, 1_700), whole[1_000:1_700])
    np.testing.assert_array_equal(blocks.block(4_990, 6_000), whole[4_990:])  # clipped at the end
    only = blocks.block(0, 10, features=[2])
    np.testing.assert_array_equal(only[:, 2], whole[:10, 2])
    assert np.isnan(only[:, :2]).all()  # columns the trees do not read are left empty
    rows = np.array([4_000, 3, 3, 17])  # a population: some rows, in any order
    subset = MatrixBlocks(columns.subset(rows), FEATURES.names, CATEGORIES)
    np.testing.assert_array_equal(subset.block(0, 4), whole[rows])
    replaced = columns.with_floats({"x": np.arange(5_000.0), "z": np.ones(5_000)})
    np.testing.assert_array_equal(
        MatrixBlocks(replaced, ["x", "z"], {}).block(2, 4), [[2, 1], [3, 1]]
    )
    assert replaced.floats("y") is columns.floats("y")  # the rest shared, not copied
    with pytest.raises(ValueError, match="different lengths"):
        columns.with_floats({"x": np.zeros(3)})


def test_a_row_subset_converts_only_its_rows_to_the_same_strings():
    frame = _frame(2_000, seed=3)
    rows = np.array([1_999, 0, 7, 7, 512])
    fresh = FeatureColumns(frame).subset(rows).strings("region")  # the parent converted nothing
    whole = FeatureColumns(frame).strings("region")
    assert fresh.dtype == object and fresh.tolist() == whole[rows].tolist()
    assert None in whole.tolist() and all(v is None or isinstance(v, str) for v in fresh)


def test_forest_reads_blocks_as_it_reads_the_matrix():
    rows = (FOREST_MIN_ROWS // BLOCK_ROWS + 1) * BLOCK_ROWS + BLOCK_ROWS // 2
    frame = _frame(rows, seed=1)  # a batch the forest scores, its last block partial
    columns = FeatureColumns(frame)
    matrix = columns.matrix(FEATURES.names, CATEGORIES)
    rng = np.random.default_rng(2)
    label = (np.nan_to_num(matrix[:, 0]) + (matrix[:, 1] == 1) + rng.normal(0, 1, len(matrix))) > 1
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1},
        lgb.Dataset(matrix, label.astype(int), categorical_feature=[1]),
        num_boost_round=20,
    )
    expected = booster.predict(matrix, raw_score=True)
    forest = Forest.from_booster(booster)
    assert forest is not None and len(matrix) >= FOREST_MIN_ROWS
    blocks = MatrixBlocks(columns, FEATURES.names, CATEGORIES)
    for threads in (1, 2):
        assert np.array_equal(forest.raw_score(blocks, threads=threads), expected)
    small = MatrixBlocks(columns.subset(np.arange(500)), FEATURES.names, CATEGORIES)
    assert np.array_equal(raw_scores(booster, small, None), expected[:500])  # LightGBM's route


def test_value_predicted_in_blocks_equals_the_model(value_fitted, small_shop):
    from features.training_table import build_scoring_frame
    from training.evaluation.value_baselines import value_summary_at_cutoffs

    model, table = value_fitted
    feature_set = VALUE_FEATURES_V1.subset(table.columns)
    assert model.regressor.offset is not None  # the fast route
    as_of = "2025-06-30"
    frame = build_scoring_frame(small_shop.tables, as_of, feature_set)
    summary = value_summary_at_cutoffs(small_shop.tables, [as_of]).droplevel("cutoff")
    frame = frame.join(summary[list(SUMMARY_COLUMNS)])
    copies = -(-FOREST_MIN_ROWS // len(frame))  # enough rows for the forest
    many = pd.concat([frame] * copies, ignore_index=True)
    served = ServedValueModel(model, "winback-value", "1")
    got = predicted_value(served, many, FeatureColumns(many)).to_numpy()
    expected = model.predict(many, many[list(SUMMARY_COLUMNS)])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(predicted_value(served, many).to_numpy(), expected)
