"""WinbackClassifier: the scikit-learn contract, determinism and behaviour."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from features.feature_sets import FeatureSet, FeatureSetMismatch
from training.model.classifier import BIAS_COLUMN, WinbackClassifier, infer_feature_set

FEATURES = FeatureSet(
    "test_v1",
    (
        ("days_since_last_order", "float64"),
        ("orders_90d", "float64"),
        ("region", "category"),
        ("irrelevant", "float64"),
    ),
)


def churn_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic customers whose churn odds rise with recency and fall with orders."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "days_since_last_order": rng.exponential(60, n),
            "orders_90d": rng.poisson(2, n).astype("float64"),
            "region": pd.Categorical(rng.choice(["north", "south", "west"], n)),
            "irrelevant": rng.normal(size=n),
            "customer_note": rng.normal(size=n),  # not in the feature set
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    X.loc[X.sample(frac=0.05, random_state=seed).index, "orders_90d"] = np.nan
    logit = 0.03 * X["days_since_last_order"] - 0.6 * X["orders_90d"].fillna(2) - 0.5
    logit += np.where(X["region"] == "north", 0.7, 0.0)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return X, y


@pytest.fixture(scope="module")
def data():
    X, y = churn_frame(6000, seed=0)
    return (X[:4000], y[:4000]), (X[4000:5000], y[4000:5000]), (X[5000:], y[5000:])


def small_model(**kw) -> WinbackClassifier:
    params = {
        "n_estimators": 150,
        "learning_rate": 0.1,
        "early_stopping_rounds": 20,
        "num_threads": 1,
    }
    return WinbackClassifier(FEATURES, **{**params, **kw})


@pytest.fixture(scope="module")
def fitted(data):
    (X, y), val, _ = data
    return small_model(random_state=1).fit(X, y, eval_set=val)


def test_fit_returns_self_with_learned_attributes(data):
    (X, y), val, _ = data
    model = small_model()
    assert model.fit(X, y, eval_set=val) is model
    assert model.feature_set_ == FEATURES
    assert list(model.feature_names_in_) == FEATURES.names
    assert model.categories_ == {"region": ["north", "south", "west"]}
    assert 1 <= model.best_iteration_ <= 150
    assert model.calibration_method_ in ("isotonic", "sigmoid")
    assert model.calibrator_ is not None


def test_predictions_are_probabilities_that_rank(fitted, data):
    *_, (X_test, y_test) = data
    p = fitted.predict_proba(X_test)
    assert p.shape == (len(X_test),) and np.all((p > 0) & (p < 1))
    assert roc_auc_score(y_test, p) > 0.75
    # calibration is monotone: it keeps LightGBM's ranking
    raw = fitted.predict_raw(X_test)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(p[order]) >= -1e-12)
    assert set(np.unique(fitted.predict(X_test))) <= {0, 1}


def test_contributions_sum_to_the_raw_score(fitted, data):
    *_, (X_test, _) = data
    contributions = fitted.contributions(X_test[:50])
    assert list(contributions.columns) == [*FEATURES.names, BIAS_COLUMN]
    assert contributions.index.equals(X_test.index[:50])
    np.testing.assert_allclose(
        contributions.sum(axis=1), fitted.predict_raw(X_test[:50]), atol=1e-9
    )
    # recency drives churn here: its contribution grows with days since the last order
    rho = np.corrcoef(X_test["days_since_last_order"][:50], contributions["days_since_last_order"])
    assert rho[0, 1] > 0.5


def test_same_seed_gives_bitwise_identical_predictions(data):
    (X, y), val, (X_test, _) = data
    a = small_model(random_state=7).fit(X, y, eval_set=val)
    b = small_model(random_state=7).fit(X, y, eval_set=val)
    assert a.best_iteration_ == b.best_iteration_
    assert np.array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    assert a.contributions(X_test).equals(b.contributions(X_test))


def test_different_seed_changes_the_bagged_model(data):
    (X, y), val, (X_test, _) = data
    a = small_model(random_state=7).fit(X, y, eval_set=val)
    b = small_model(random_state=8).fit(X, y, eval_set=val)
    assert not np.array_equal(a.predict_raw(X_test), b.predict_raw(X_test))


def test_pickle_round_trip_is_exact(fitted, data):
    *_, (X_test, _) = data
    clone_ = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(clone_.predict_proba(X_test), fitted.predict_proba(X_test))
    assert clone_.contributions(X_test[:5]).equals(fitted.contributions(X_test[:5]))


def test_sklearn_clone_keeps_parameters(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "booster_")


def test_unseen_category_is_treated_as_missing(fitted, data):
    *_, (X_test, _) = data
    unseen = X_test[:20].copy()
    unseen["region"] = unseen["region"].astype("string")
    unseen["region"] = "mars"
    missing = X_test[:20].copy()
    missing["region"] = pd.Categorical([None] * 20, categories=["north", "south", "west"])
    np.testing.assert_array_equal(fitted.predict_proba(unseen), fitted.predict_proba(missing))


def test_string_categoricals_and_column_order_do_not_matter(fitted, data):
    *_, (X_test, _) = data
    as_strings = X_test.copy()
    as_strings["region"] = as_strings["region"].astype("string")
    shuffled_columns = as_strings[list(reversed(as_strings.columns))]
    np.testing.assert_array_equal(
        fitted.predict_proba(shuffled_columns), fitted.predict_proba(X_test)
    )


def test_a_shuffled_column_outside_the_feature_set_does_not_move_scores(fitted, data):
    *_, (X_test, _) = data
    shuffled = X_test.copy()
    shuffled["customer_note"] = np.random.default_rng(0).permutation(
        shuffled["customer_note"].values
    )
    np.testing.assert_array_equal(fitted.predict_proba(shuffled), fitted.predict_proba(X_test))


def test_a_shuffled_irrelevant_feature_barely_moves_scores(fitted, data):
    *_, (X_test, y_test) = data
    before = fitted.predict_proba(X_test)

    def shuffled(column: str) -> np.ndarray:
        frame = X_test.copy()
        frame[column] = np.random.default_rng(1).permutation(frame[column].values)
        return fitted.predict_proba(frame)

    noise, recency = shuffled("irrelevant"), shuffled("days_since_last_order")
    assert np.mean(np.abs(noise - before)) < 0.25 * np.mean(np.abs(recency - before))
    assert abs(roc_auc_score(y_test, noise) - roc_auc_score(y_test, before)) < 0.01
    assert roc_auc_score(y_test, recency) < roc_auc_score(y_test, before) - 0.05


def test_longer_since_last_order_never_lowers_churn_risk_on_average(fitted, data):
    *_, (X_test, _) = data
    base = fitted.predict_proba(X_test).mean()
    for extra_days in (15, 30, 60, 120):
        later = X_test.assign(days_since_last_order=X_test["days_since_last_order"] + extra_days)
        assert fitted.predict_proba(later).mean() >= base


def test_missing_feature_column_is_named(fitted, data):
    *_, (X_test, _) = data
    with pytest.raises(FeatureSetMismatch, match="orders_90d"):
        fitted.predict_proba(X_test.drop(columns="orders_90d"))


def test_errors_on_bad_inputs(data):
    (X, y), *_ = data
    with pytest.raises(NotFittedError):
        small_model().predict_proba(X)
    with pytest.raises(ValueError, match="single class"):
        small_model().fit(X, np.zeros(len(X), dtype=bool))
    with pytest.raises(ValueError, match="rows"):
        small_model().fit(X, y[:10])
    with pytest.raises(TypeError, match="DataFrame"):
        small_model().fit(X.to_numpy(), y)


def test_without_a_held_out_period_probabilities_are_uncalibrated(data):
    (X, y), *_ = data
    model = small_model(n_estimators=30).fit(X, y)
    assert model.calibrator_ is None and model.calibration_method_ == "none"
    np.testing.assert_allclose(model.predict_proba(X[:10]), model.predict_uncalibrated(X[:10]))


def test_feature_set_is_inferred_when_not_given(data):
    (X, y), val, _ = data
    model = WinbackClassifier(n_estimators=20, num_threads=1).fit(X, y, eval_set=val)
    assert model.feature_set_ == infer_feature_set(X)
    assert model.feature_set_.categorical == ["region"]
    assert model.feature_importance().index[0] == "days_since_last_order"


# ---------------------------------------------------------------- on the simulator


@pytest.fixture(scope="module")
def simulated():
    """A churn model fitted on a small simulated shop, and its test period."""
    from features.labels import LabelConfig
    from features.simulation import SimulationConfig, simulate_shop
    from features.training_table import build_training_table, monthly_cutoffs
    from training.split import time_split

    shop = simulate_shop(SimulationConfig(customers=1500, seed=11))
    cutoffs = monthly_cutoffs(shop.tables, 60, 30, count=7)
    table = build_training_table(
        shop.tables, "churn", cutoffs, label_config=LabelConfig(horizon_days=60)
    )
    split = time_split(table, gap_days=60)
    names = [c for c in table.columns if c not in ("churned", "future_margin", "future_revenue")]
    model = small_model(n_estimators=100, min_child_samples=40)
    model.set_params(feature_set=infer_feature_set(table[names]))
    model.fit(
        split.train[names],
        split.train["churned"],
        eval_set=(split.validation[names], split.validation["churned"]),
    )
    return model, split.test[names], split.test["churned"].to_numpy()


def test_simulated_churn_model_ranks_customers(simulated):
    model, X_test, y_test = simulated
    assert roc_auc_score(y_test, model.predict_proba(X_test)) > 0.65


@pytest.mark.parametrize("extra_days", [30, 90, 180])
def test_simulated_longer_since_last_order_never_lowers_churn_risk_on_average(
    simulated, extra_days
):
    model, X_test, _ = simulated
    later = X_test.copy()
    later["days_since_last_order"] += extra_days
    # the overdue ratio is days since the last order over the usual gap: it grows too
    gap = X_test["purchase_gap_mean_days"].where(X_test["purchase_gap_mean_days"] > 0)
    later["overdue_ratio"] = later["days_since_last_order"] / gap
    assert model.predict_proba(later).mean() >= model.predict_proba(X_test).mean()


def test_monotone_increasing_features_never_lower_the_score(data):
    (X, y), val, (X_test, _) = data
    # a bump: churn is likelier near irrelevant == 0 than on either side
    bump = np.abs(X["irrelevant"].to_numpy()) < 0.5
    y_bump = np.where(bump, True, y)
    grid = X_test.iloc[:50].loc[X_test.index[:50].repeat(21)].copy()
    grid["irrelevant"] = np.tile(np.linspace(-3, 3, 21), 50)

    def steps(model) -> np.ndarray:
        return np.diff(model.predict_raw(grid).reshape(50, 21), axis=1)

    free = small_model().fit(X, y_bump, eval_set=val)
    assert (steps(free) < -1e-9).any()  # unconstrained, the bump's far side goes down
    constrained = small_model(monotone_increasing=("irrelevant", "not_a_feature"))
    constrained.fit(X, y_bump, eval_set=val)
    assert (steps(constrained) >= -1e-9).all()


def test_the_vip_model_is_monotone_in_trailing_spend():
    from training.config import TrainConfig
    from training.model.classifier import classifier_from_config

    vip = classifier_from_config(TrainConfig(target="vip"))
    assert "spend_365d_amount" in vip.monotone_increasing
    assert classifier_from_config(TrainConfig(target="churn")).monotone_increasing == ()


def test_every_monotone_vip_feature_is_in_the_vip_feature_set():
    # a misspelt name would be ignored silently by the classifier (it skips absent names)
    from features.feature_sets import latest_feature_set
    from training.model.classifier import MONOTONE_INCREASING

    names = set(latest_feature_set("vip").names)
    assert set(MONOTONE_INCREASING["vip"]) <= names
    assert {"net_spend_275d_amount", "net_spend_275d_mean_share"} <= set(MONOTONE_INCREASING["vip"])
