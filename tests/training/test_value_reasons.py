"""Value reason codes: sentences against the shop's yardsticks, from contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.model.value_reasons import value_reason_codes, value_reference

TRAINING = pd.DataFrame(
    {
        "order_value_mean_amount": [10.0, 20.0, 30.0, 40.0, 50.0],
        "spend_amount": [100.0, 100.0, 100.0, 100.0, 600.0],
        "total_margin_amount": [10.0, 20.0, 30.0, 40.0, 150.0],  # shop rate 250 / 1000
        "margin_rate": [0.1, 0.2, 0.3, 0.4, 0.25],
        "region": pd.Categorical(["n", "s", "n", "s", "n"]),
    }
)


def test_reference_holds_medians_and_the_shop_margin_rate():
    reference = value_reference(TRAINING)
    assert reference["order_value_mean_amount"] == 30.0
    assert reference["margin_rate"] == pytest.approx(
        0.25
    )  # the shop's, not the median 0.25 by luck
    assert "region" not in reference
    reference = value_reference(
        TRAINING.assign(total_margin_amount=TRAINING["total_margin_amount"] * 2)
    )
    assert reference["margin_rate"] == pytest.approx(0.5)


def test_sentences_follow_the_largest_contributions():
    reference = value_reference(TRAINING)
    customers = pd.DataFrame(
        {
            "order_value_mean_amount": [72.0, 15.0],
            "spend_amount": [500.0, 50.0],
            "total_margin_amount": [200.0, 5.0],
            "margin_rate": [0.41, 0.1],
            "region": pd.Categorical(["n", "s"]),
        },
        index=pd.Index(["a", "b"], name="customer_id"),
    )
    contributions = pd.DataFrame(
        {
            "order_value_mean_amount": [0.9, -0.4],
            "spend_amount": [0.0, -0.1],
            "total_margin_amount": [0.0, -0.2],
            "margin_rate": [0.5, 0.3],
            "region": [0.0, 0.0],
            "bias": [1.0, 1.0],
        },
        index=customers.index,
    )
    codes = value_reason_codes(contributions, customers, reference=reference, horizon_days=365)
    assert codes.loc["a", "reason_1"] == "spends 2.4x the median per order"
    assert codes.loc["a", "reason_2"] == "margin rate above the shop's (41% vs 25%)"
    assert codes.loc["a", "reason_code_1"] == "order_value_mean_amount"
    # only features pushing value up are reasons
    assert codes.loc["b", "reason_1"] == "margin rate below the shop's (10% vs 25%)"
    assert codes.loc["b", ["reason_2", "reason_3"]].isna().all()


def test_model_contributions_give_value_reasons():
    from features.feature_sets import FeatureSet
    from training.model.value_model import WinbackValueRegressor

    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame(
        {
            "order_value_mean_amount": rng.gamma(2.0, 30.0, n),
            "margin_rate": rng.uniform(0.1, 0.5, n),
        }
    )
    y = X["order_value_mean_amount"] * rng.poisson(2.0, n)  # value follows order value only
    features = FeatureSet(
        "reasons_test", (("order_value_mean_amount", "float64"), ("margin_rate", "float64"))
    )
    model = WinbackValueRegressor(
        features, lightgbm={"n_estimators": 60, "learning_rate": 0.1}, num_threads=1
    ).fit(X, y)
    top = np.argsort(-model.predict(X))[:20]
    codes = value_reason_codes(
        model.contributions(X.iloc[top]),
        X.iloc[top],
        reference=value_reference(X),
        horizon_days=365,
    )
    assert (codes["reason_code_1"] == "order_value_mean_amount").all()
    assert codes["reason_1"].str.match(r"spends \d+\.\dx the median per order").all()
