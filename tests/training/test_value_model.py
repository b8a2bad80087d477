"""The value regressor: behaviour on data with a known answer, both losses, the offset, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from features.feature_sets import FeatureSet
from training.evaluation.value_metrics import normalized_gini
from training.model.value_model import WinbackValueRegressor

FEATURES = FeatureSet(
    "value_test", (("order_count", "float64"), ("noise", "float64"), ("region", "category"))
)
FAST = {"n_estimators": 200, "learning_rate": 0.1, "min_child_samples": 20}


def world(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Customers buy Poisson(order_count / 4) times, each purchase worth Gamma(2, 25) x region."""
    rng = np.random.default_rng(seed)
    orders = rng.integers(0, 12, n).astype(float)
    region = rng.choice(["north", "south"], n)
    factor = np.where(region == "north", 2.0, 1.0)
    mean = orders / 4 * 50.0 * factor
    purchases = rng.poisson(orders / 4)
    y = np.array([rng.gamma(2.0, 25.0, k).sum() for k in purchases]) * factor
    X = pd.DataFrame(
        {"order_count": orders, "noise": rng.normal(size=n), "region": pd.Categorical(region)}
    )
    return X, y, mean


@pytest.mark.parametrize("loss", ["tweedie", "hurdle"])
def test_learns_the_expected_value(loss):
    X, y, _ = world(4000, seed=0)
    X_test, y_test, mean = world(2000, seed=1)
    model = WinbackValueRegressor(FEATURES, loss=loss, lightgbm=FAST, num_threads=1).fit(
        X, y, eval_set=world(1000, seed=2)[:2]
    )
    predicted = model.predict(X_test)
    assert (predicted >= 0).all()
    # close to the true conditional mean, and ranking realised value nearly as well as it
    assert np.mean(np.abs(predicted - mean)) < 0.15 * mean.mean()
    assert normalized_gini(y_test, predicted) > normalized_gini(y_test, mean) - 0.03
    # behaviour: more past orders never lowers the value, other things equal
    more = X_test.assign(order_count=X_test["order_count"] + 4)
    assert (model.predict(more) >= predicted - 1e-9).mean() > 0.95


def test_hurdle_is_the_product_of_its_parts_and_clips_negative_targets():
    X, y, _ = world(3000, seed=3)
    y = y.copy()
    y[:50] = -10.0  # net returns: fitted as 0
    model = WinbackValueRegressor(FEATURES, loss="hurdle", lightgbm=FAST, num_threads=1).fit(X, y)
    parts = model.predict_parts(X.head(20))
    np.testing.assert_allclose(model.predict(X.head(20)), parts["p_buys"] * parts["value_if_buys"])
    assert parts["p_buys"].between(0, 1).all()


def test_offset_starts_from_the_prior_and_contributions_sum_to_the_log_value():
    X, y, mean = world(3000, seed=4)
    features = FeatureSet("value_offset", (*FEATURES.columns, ("prior_value", "float64")))
    X = X.assign(prior_value=np.maximum(mean, 1.0))
    model = WinbackValueRegressor(
        features,
        loss="tweedie",
        offset="prior_value",
        lightgbm={**FAST, "n_estimators": 3},
        num_threads=1,
    ).fit(X, y)
    predicted = model.predict(X)
    # three shallow rounds move the prior only a little: the prior carries the ranking
    assert np.corrcoef(np.log(predicted), np.log(X["prior_value"]))[0, 1] > 0.95
    contributions = model.contributions(X.head(30))
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(predicted[:30]), rtol=1e-6)
    with pytest.raises(ValueError, match="needs loss='tweedie'"):
        WinbackValueRegressor(features, loss="hurdle", offset="prior_value").fit(X, y)


def test_bad_input_is_named():
    X, y, _ = world(200, seed=5)
    with pytest.raises(ValueError, match="loss='squared'"):
        WinbackValueRegressor(FEATURES, loss="squared").fit(X, y)
    with pytest.raises(ValueError, match="no positive value"):
        WinbackValueRegressor(FEATURES).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="y has 1 missing"):
        WinbackValueRegressor(FEATURES).fit(X, np.r_[np.nan, y[1:]])
    with pytest.raises(NotFittedError, match="call fit"):
        WinbackValueRegressor(FEATURES).predict(X)
