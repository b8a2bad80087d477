"""The service's fast scoring path: same numbers as the models' own predict_proba, typed rows.

``predict_probability`` feeds LightGBM one matrix instead of the classifier's
pandas round trip, ``rows_to_columns`` checks a column's value types in one
pass and hands the models typed arrays (no DataFrame in between); all must give
exactly what the slow, obvious route gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.feature_sets import FeatureSet, FeatureSetMismatch
from serving.config import ServingConfig
from serving.scoring.models import ServedModel, ServedModels
from serving.scoring.predict import (
    FeatureColumns,
    model_matrix,
    predict_probability,
    predict_scores,
)
from serving.scoring.rows import RowsInvalid, rows_to_columns, rows_to_frame
from training.model.classifier import WinbackClassifier

FS = FeatureSet(
    "fast_path_v1",
    (("recency_days", "float64"), ("channel", "category"), ("orders", "float64")),
)
CHANNELS = ["app", "shop", "web"]


def _training_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "recency_days": rng.uniform(0, 300, n),
            "channel": pd.array(rng.choice(CHANNELS, n), dtype="string"),
            "orders": rng.poisson(3, n).astype("float64"),
        }
    )
    X.loc[::13, "recency_days"] = np.nan
    app = (X["channel"] == "app").to_numpy(dtype=float)
    z = X["recency_days"].fillna(150).to_numpy() / 100 - app * 1.5 - X["orders"].to_numpy() / 3
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
    return X, y


@pytest.fixture(scope="module", params=["sigmoid", "isotonic", "none"])
def fitted(request) -> WinbackClassifier:
    X, y = _training_frame(1200, 1)
    model = WinbackClassifier(
        FS, n_estimators=25, num_leaves=7, min_child_samples=10, calibration=request.param
    )
    return model.fit(X.iloc[:900], y[:900], eval_set=(X.iloc[900:], y[900:]))


def _posted() -> pd.DataFrame:
    """Rows with a missing number, a missing channel and a channel never seen in training."""
    return pd.DataFrame(
        {
            "recency_days": [10.0, np.nan, 250.0, 40.0, 120.0],
            "channel": pd.array(["app", None, "fax", "web", "shop"], dtype="string"),
            "orders": [1.0, 4.0, 0.0, 7.0, 2.0],
        }
    )


def test_model_matrix_puts_categories_at_their_fitted_codes(fitted):
    assert fitted.categories_["channel"] == CHANNELS  # sorted at fit
    matrix = model_matrix(fitted, _posted())
    expected = np.array(
        [
            [10.0, 0.0, 1.0],
            [np.nan, np.nan, 4.0],
            [250.0, np.nan, 0.0],  # "fax" was never seen: missing, like the classifier does
            [40.0, 2.0, 7.0],
            [120.0, 1.0, 2.0],
        ]
    )
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.float64 and matrix.flags.c_contiguous


@pytest.mark.parametrize(
    "as_sent",
    [
        lambda f: f,
        lambda f: f.astype({"channel": "category"}),
        lambda f: f.astype({"channel": object}),
        lambda f: f.astype({"orders": "Int64"}),
        lambda f: f[["orders", "channel", "recency_days"]].assign(extra=1.0),
    ],
    ids=["string", "category", "object", "nullable-int", "reordered-with-extra"],
)
@pytest.mark.parametrize("threads", [None, 1, 2])
def test_predict_probability_equals_predict_proba(fitted, as_sent, threads):
    frame = as_sent(_posted())
    expected = fitted.predict_proba(frame[FS.names])
    got = predict_probability(fitted, frame, num_threads=threads)
    np.testing.assert_array_equal(got, expected)


def test_predict_probability_on_many_rows_equals_predict_proba(fitted):
    X, _ = _training_frame(3000, 7)
    np.testing.assert_array_equal(predict_probability(fitted, X), fitted.predict_proba(X))


def test_predict_scores_uses_each_models_own_columns_and_the_thread_setting(fitted):
    models = ServedModels({"churn": ServedModel("churn", fitted, "winback-churn", "4")})
    frame = _posted()
    scores = predict_scores(models, frame, num_threads=1)
    assert list(scores.columns) == ["churn_risk"]
    np.testing.assert_array_equal(scores["churn_risk"], fitted.predict_proba(frame))


class _OnlyPredictProba:
    """A model without a booster: the fast path must call its predict_proba."""

    feature_set_ = FeatureSet("stand_in_v1", (("orders", "float64"),))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        assert list(X.columns) == ["orders"]
        return X["orders"].to_numpy() / 10


def test_models_without_a_booster_use_their_own_predict_proba():
    got = predict_probability(_OnlyPredictProba(), _posted(), num_threads=1)
    np.testing.assert_allclose(got, [0.1, 0.4, 0.0, 0.7, 0.2])


# ------------------------------------------------------------- typed rows

NUMBER = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
CHANNEL = st.one_of(st.none(), st.sampled_from(["app", "web", "fax", ""]))
ROW = st.fixed_dictionaries({"recency_days": NUMBER, "channel": CHANNEL, "orders": NUMBER})


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=30))
def test_rows_and_columns_give_the_same_frame_as_a_plain_loop(rows):
    by_rows = rows_to_frame(FS, rows=rows)
    columns = {c: [r[c] for r in rows] for c in FS.names}
    by_columns = rows_to_frame(FS, columns=columns)
    pd.testing.assert_frame_equal(by_rows, by_columns)
    for name in ("recency_days", "orders"):
        loop = [np.nan if r[name] is None else float(r[name]) for r in rows]
        np.testing.assert_array_equal(by_rows[name].to_numpy(), np.array(loop))
    assert [None if pd.isna(v) else v for v in by_rows["channel"]] == [r["channel"] for r in rows]


@pytest.mark.parametrize(
    ("column", "value", "got"),
    [
        ("orders", True, "bool"),
        ("orders", "12", "str"),
        ("orders", [1.0], "list"),
        ("channel", 3, "int"),
        ("channel", False, "bool"),
    ],
)
def test_a_wrong_type_anywhere_in_a_column_is_named(column, value, got):
    rows = [{"recency_days": 1.0, "channel": "app", "orders": 2.0} for _ in range(50)]
    rows[37][column] = value
    with pytest.raises(RowsInvalid) as caught:
        rows_to_frame(FS, rows=rows)
    assert caught.value.wrong_dtypes == {column: (FS.dtypes[column], got)}
    with pytest.raises(RowsInvalid) as caught_columns:
        rows_to_frame(FS, columns={c: [r[c] for r in rows] for c in FS.names})
    assert caught_columns.value.wrong_dtypes == caught.value.wrong_dtypes


def test_float_subclasses_passed_in_process_are_still_numbers():
    frame = rows_to_frame(
        FS,
        columns={
            "recency_days": [np.float64(3.5), None],
            "channel": ["app", None],
            "orders": [2, 1],
        },
    )
    np.testing.assert_array_equal(frame["recency_days"], [3.5, np.nan])
    np.testing.assert_array_equal(frame["orders"], [2.0, 1.0])


def test_rows_with_extra_keys_in_some_rows_name_them_and_the_gaps():
    rows = [
        {"recency_days": 1.0, "channel": "app", "orders": 2.0},
        {"recency_days": 1.0, "channel": "app", "orders": 2.0, "postcode": "AB1"},
        {"recency_days": 1.0, "orders": 2.0},
    ]
    with pytest.raises(RowsInvalid) as caught:
        rows_to_frame(FS, rows=rows)
    assert caught.value.unexpected == ["postcode"]
    assert caught.value.incomplete_rows == {"channel": [2]}


# ---------------------------------------------------- typed columns, no frame


@pytest.fixture(scope="module")
def small_model() -> WinbackClassifier:
    """A small model fitted once for every generated example (the rows vary, not the model)."""
    X, y = _training_frame(600, 5)
    model = WinbackClassifier(FS, n_estimators=10, num_leaves=5, min_child_samples=10)
    return model.fit(X.iloc[:400], y[:400], eval_set=(X.iloc[400:], y[400:]))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=30))
def test_typed_columns_score_exactly_like_the_frame(small_model, rows):
    model = small_model
    models = ServedModels({"churn": ServedModel("churn", model, "winback-churn", "1")})
    columns = rows_to_columns(FS, rows=rows)
    frame = rows_to_frame(FS, rows=rows)
    assert len(columns) == len(rows)
    np.testing.assert_array_equal(model_matrix(model, columns), model_matrix(model, frame))
    scores = predict_scores(models, columns)
    pd.testing.assert_frame_equal(scores, predict_scores(models, frame))
    np.testing.assert_array_equal(scores["churn_risk"], model.predict_proba(frame))


def test_models_with_the_same_columns_and_categories_share_one_matrix(fitted):
    narrow = WinbackClassifier(FeatureSet("narrow_v1", (("orders", "float64"),)), n_estimators=5)
    X, y = _training_frame(300, 2)
    narrow.fit(X[["orders"]], y)
    posted = {"recency_days": [10.0, None], "channel": ["app", None], "orders": [1.0, 4.0]}
    columns = rows_to_columns(FS, columns=posted)
    first = model_matrix(fitted, columns)
    assert model_matrix(fitted, columns) is first  # built once per request
    assert model_matrix(narrow, columns) is not first
    np.testing.assert_array_equal(model_matrix(narrow, columns), first[:, [2]])


def test_typed_columns_name_what_a_model_lacks_or_gets_mistyped(fitted):
    models = ServedModels({"churn": ServedModel("churn", fitted, "winback-churn", "4")})
    narrow = FeatureSet("narrow_v1", (("orders", "float64"), ("recency_days", "category")))
    columns = rows_to_columns(narrow, columns={"orders": [1.0, 2.0], "recency_days": ["a", None]})
    with pytest.raises(FeatureSetMismatch) as caught:
        predict_scores(models, columns)
    assert caught.value.missing == ["channel"]
    assert caught.value.wrong_dtypes == {"recency_days": ("float64", "category")}


def test_merged_requests_keep_their_rows_in_order():
    first = [{"recency_days": 1.0, "channel": "app", "orders": None}]
    second = [
        {"recency_days": None, "channel": None, "orders": 3},
        {"recency_days": 7.5, "channel": "fax", "orders": 0},
    ]
    merged = FeatureColumns.concat(
        [rows_to_columns(FS, rows=first), rows_to_columns(FS, rows=second)]
    )
    pd.testing.assert_frame_equal(merged.frame, rows_to_frame(FS, rows=first + second))
    other = rows_to_columns(FeatureSet("other_v1", (("orders", "float64"),)), rows=[{"orders": 1}])
    with pytest.raises(ValueError, match="different columns"):
        FeatureColumns.concat([rows_to_columns(FS, rows=first), other])


# ------------------------------------------------------------------ config


def test_predict_threads_from_the_environment():
    assert ServingConfig().predict_threads == 1
    config = ServingConfig.from_env({"WINBACK_PREDICT_THREADS": "2"})
    assert config.predict_threads == 2
    with pytest.raises(ValueError, match="WINBACK_PREDICT_THREADS='two'"):
        ServingConfig.from_env({"WINBACK_PREDICT_THREADS": "two"})


def test_request_limits_from_the_environment():
    config = ServingConfig.from_env(
        {"WINBACK_MAX_EXPLAIN_ROWS": "30", "WINBACK_MAX_BODY_BYTES": "1048576"}
    )
    assert (config.max_explain_rows, config.max_body_bytes) == (30, 1_048_576)
    for bad in ("0", "-5", "1e3", "thirty"):
        with pytest.raises(ValueError, match=f"WINBACK_MAX_EXPLAIN_ROWS='{bad}'"):
            ServingConfig.from_env({"WINBACK_MAX_EXPLAIN_ROWS": bad})


@pytest.mark.parametrize(("rows", "row_chunks"), [(5, 2), (700, 2), (700, 3), (1000, 1)])
def test_predict_scores_on_a_pool_in_chunks_equals_one_call_per_model(fitted, rows, row_chunks):
    from concurrent.futures import ThreadPoolExecutor

    X, _ = _training_frame(rows, 3)
    X.index = pd.Index([f"C{i}" for i in range(rows)], name="customer_id")
    models = ServedModels(
        {
            "churn": ServedModel("churn", fitted, "winback-churn", "4"),
            "vip": ServedModel("vip", _OnlyPredictProba(), "winback-vip", "1"),
        }
    )
    alone = predict_scores(models, X, num_threads=1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pooled = predict_scores(
            models, X, num_threads=1, pool=pool, row_chunks=row_chunks, min_chunk_rows=100
        )
    pd.testing.assert_frame_equal(pooled, alone)
    assert list(pooled.columns) == ["churn_risk", "vip_potential"]


@pytest.mark.parametrize("kind", ["string", "category"])
def test_row_subsets_give_the_rows_of_the_whole_frames_matrix(fitted, kind):
    """Batch scoring's route: columns converted once, each model given its population's rows."""
    frame = _posted().astype({"channel": kind})
    rows = np.array([4, 0, 2])
    subset = FeatureColumns(frame).subset(rows)
    assert len(subset) == 3
    expected = model_matrix(fitted, _posted().iloc[rows].reset_index(drop=True))
    np.testing.assert_array_equal(model_matrix(fitted, subset), expected)
    np.testing.assert_array_equal(
        predict_probability(fitted, subset), fitted.predict_proba(frame.iloc[rows][FS.names])
    )


def test_a_categorical_with_unseen_and_missing_values_gets_the_fitted_codes(fitted):
    frame = pd.DataFrame(
        {
            "recency_days": [1.0, 2.0, 3.0, 4.0],
            "orders": [1.0, 1.0, 1.0, 1.0],
            "channel": pd.Categorical(
                ["web", None, "fax", "app"], categories=["web", "fax", "app"]
            ),
        }
    )
    matrix = model_matrix(fitted, frame)
    np.testing.assert_array_equal(matrix[:, 1], [2.0, np.nan, np.nan, 0.0])
