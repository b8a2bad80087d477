"""Baselines: hand-computed rules, train-only fitting, and a run on a simulated shop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.simulation import SimulationConfig, simulate_shop
from features.training_table import build_training_table, monthly_cutoffs
from training.evaluation.baselines import (
    BgNbdBaseline,
    LogisticBaseline,
    RecencyBaseline,
    RfmBaseline,
    evaluate_baselines,
    feature_columns,
    fit_baselines,
    label_values,
    quintile_score,
)
from training.evaluation.bgnbd import rfm_summary_at_cutoffs


def _table(cutoff: str, rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "days_since_last_order",
            "order_count_365d",
            "spend_365d_amount",
            "region",
            "churned",
        ],
    )
    frame["cutoff"] = pd.Timestamp(cutoff)
    frame["region"] = frame["region"].astype("category")
    frame["churned"] = frame["churned"].astype(bool)
    frame["future_margin"] = 0.0
    frame["future_revenue"] = 0.0
    table = frame.set_index(["cutoff", "customer_id"])
    table.attrs = {"label": "churned", "horizon_days": 90}
    return table


TRAIN = _table(
    "2024-01-01",
    [
        (
            f"c{i}",
            float(10 * i),
            float(10 - i),
            float(100 * (10 - i)),
            "north" if i % 2 else None,
            i >= 5,
        )
        for i in range(10)
    ],
)


def test_recency_rule_hand_computed():
    score = RecencyBaseline("churn").fit(TRAIN).score(TRAIN)
    np.testing.assert_array_equal(score, TRAIN["days_since_last_order"].to_numpy())
    react = RecencyBaseline("reactivation").fit(TRAIN).score(TRAIN)
    np.testing.assert_array_equal(react, -TRAIN["days_since_last_order"].to_numpy())
    vip = RecencyBaseline("vip").fit(TRAIN).score(TRAIN)
    np.testing.assert_array_equal(vip, TRAIN["spend_365d_amount"].to_numpy())
    # a missing value scores as the training median, neither best nor worst
    test = TRAIN.copy()
    test.iloc[0, 0] = np.nan
    assert RecencyBaseline().fit(TRAIN).score(test)[0] == 45.0


def test_quintile_score_hand_computed():
    edges = np.array([2.0, 4.0, 6.0, 8.0])
    values = np.array([1.0, 3.0, 5.0, 7.0, 9.0, np.nan])
    assert quintile_score(values, edges, higher_is_better=True).tolist() == [1, 2, 3, 4, 5, 1]
    assert quintile_score(values, edges, higher_is_better=False).tolist() == [5, 4, 3, 2, 1, 1]


def test_rfm_rule_uses_train_quantiles_only():
    model = RfmBaseline("churn").fit(TRAIN)
    # customer c0: most recent, most frequent, highest spend -> 15, lowest churn score
    rfm = model.rfm_score(TRAIN)
    assert rfm[0] == 15 and rfm[-1] == 3
    np.testing.assert_array_equal(model.score(TRAIN), -rfm)
    assert np.all(np.diff(rfm) <= 0)
    # a later table is scored on the train edges, not its own: every R score drops to 1
    later = TRAIN.copy()
    later["days_since_last_order"] += 1000
    r_train = quintile_score(
        TRAIN["days_since_last_order"].to_numpy(),
        model.edges_["days_since_last_order"],
        higher_is_better=False,
    )
    np.testing.assert_array_equal(model.rfm_score(later), rfm - r_train + 1)
    assert RfmBaseline("vip").fit(TRAIN).score(TRAIN)[0] == 15


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="order_count_365d"):
        RfmBaseline().fit(TRAIN.drop(columns="order_count_365d"))
    with pytest.raises(ValueError, match="unknown target 'ltv'"):
        RecencyBaseline("ltv").fit(TRAIN)


def test_feature_columns_exclude_labels_and_outcomes():
    assert feature_columns(TRAIN) == [
        "days_since_last_order",
        "order_count_365d",
        "spend_365d_amount",
        "region",
    ]
    np.testing.assert_array_equal(label_values(TRAIN), TRAIN["churned"].astype(int))


def test_logistic_handles_missing_and_unseen_categories():
    rng = np.random.default_rng(0)
    n = 400
    days = rng.uniform(0, 365, n)
    churn = rng.uniform(size=n) < days / 365
    rows = [
        (
            f"c{i}",
            days[i],
            float(rng.poisson(3)),
            float(rng.gamma(2, 50)),
            ["a", "b", None][i % 3],
            churn[i],
        )
        for i in range(n)
    ]
    train = _table("2024-01-01", rows)
    train.iloc[:20, 1] = np.nan
    model = LogisticBaseline().fit(train)
    test = train.copy()
    test["region"] = pd.Categorical(["zzz"] * n)  # never seen in training
    p = model.score(test)
    assert p.shape == (n,) and np.all((p > 0) & (p < 1))
    # the signal is in days_since_last_order: higher days, higher probability
    assert np.corrcoef(p, days)[0, 1] > 0.9


@pytest.fixture(scope="module")
def simulated():
    shop = simulate_shop(SimulationConfig(customers=2500, seed=5))
    cutoffs = monthly_cutoffs(shop.tables, 90, every_days=90, count=3)
    table = build_training_table(shop.tables, "churn", cutoffs)
    rfm = rfm_summary_at_cutoffs(shop.tables, cutoffs)
    return shop, cutoffs, table, rfm


def test_evaluate_baselines_on_simulated_shop(simulated):
    _shop, cutoffs, table, rfm = simulated
    level = table.index.get_level_values("cutoff")
    train = table[level < pd.Timestamp(cutoffs[-1])]
    test = table[level == pd.Timestamp(cutoffs[-1])]
    result = evaluate_baselines("churn", train, test, rfm=rfm)
    assert list(result.index) == ["recency", "rfm", "logistic", "bgnbd"]
    # every baseline ranks churners above stayers better than chance on this shop
    assert (result["roc_auc"] > 0.6).all(), result["roc_auc"]
    assert math.isnan(result.loc["recency", "log_loss"])
    assert 0 < result.loc["logistic", "log_loss"] < 1
    # BG/NBD gives P(no order in the horizon) in closed form: a probability with a log loss
    assert 0 < result.loc["bgnbd", "log_loss"] < 1 and result.loc["bgnbd", "ece"] < 0.2
    assert result["n"].eq(len(test)).all()


def test_bgnbd_baseline_ignores_later_cutoffs(simulated):
    _shop, cutoffs, table, rfm = simulated
    level = table.index.get_level_values("cutoff")
    train = table[level == pd.Timestamp(cutoffs[0])]
    base = BgNbdBaseline("churn", 90, rfm).fit(train)
    scrambled = rfm.copy()
    later = scrambled.index.get_level_values("cutoff") > pd.Timestamp(cutoffs[0])
    scrambled.loc[later, "frequency"] = 0.0
    scrambled.loc[later, "recency"] = 0.0
    other = BgNbdBaseline("churn", 90, scrambled).fit(train)
    assert base.fitter_.params_ == other.fitter_.params_
    # churn scores P(no order in the horizon): it falls as expected purchases rise
    p, expected = base.score(train), base.expected_purchases(train)
    assert ((p > 0) & (p < 1)).all()
    order = np.argsort(expected)
    assert np.corrcoef(p[order], expected[order])[0, 1] < -0.8
    np.testing.assert_allclose(
        BgNbdBaseline("reactivation", 90, rfm).fit(train).score(train), 1 - p
    )
    with pytest.raises(ValueError, match="no rows at the train cutoffs"):
        BgNbdBaseline("churn", 90, rfm.iloc[:0]).fit(train)


def test_fit_baselines_needs_horizon_for_bgnbd(simulated):
    _shop, _cutoffs, table, rfm = simulated
    table = table.copy()
    table.attrs = {"label": "churned"}
    with pytest.raises(ValueError, match="horizon_days"):
        fit_baselines("churn", table, rfm=rfm)
