"""Metrics against hand-computed tables, sklearn and brute-force loops."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from training.evaluation.metrics import (
    ProfitModel,
    capture_at,
    classification_metrics,
    expected_calibration_error,
    expected_maximum_profit,
    expected_positives_in_top,
    lift_at,
    lift_table,
    profit_curve,
    profit_maximizing_fraction,
    reliability_table,
)

# Ten customers, distinct scores, positives at ranks 1, 3 and 7.
Y = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0])
SCORE = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])


def brute_force_top(y, score, k):
    """Mean positives in the top k over every order of the rows (ties broken all ways)."""
    totals = []
    for perm in itertools.permutations(range(len(y))):
        order = sorted(perm, key=lambda i: -score[i])  # sorted() is stable: perm breaks ties
        totals.append(sum(y[i] for i in order[:k]))
    return float(np.mean(totals))


def test_hand_computed_lift_and_capture():
    # top 20 % = 2 customers, 1 positive: capture 1/3, lift (1/2) / 0.3
    assert capture_at(Y, SCORE, 0.2) == pytest.approx(1 / 3)
    assert lift_at(Y, SCORE, 0.2) == pytest.approx((1 / 2) / 0.3)
    # top 10 % = 1 customer, a positive
    assert lift_at(Y, SCORE, 0.1) == pytest.approx(1 / 0.3)
    m = classification_metrics(Y, SCORE)
    assert m["capture_at_10"] == pytest.approx(1 / 3)
    assert m["capture_at_5"] == pytest.approx(1 / 3)  # ceil(0.5) = 1 customer
    assert m["base_rate"] == pytest.approx(0.3)
    assert m["n"] == 10


def test_ties_are_shared_proportionally():
    y = np.array([1, 0, 0, 1])
    score = np.array([1.0, 1.0, 1.0, 0.0])  # the first three tie
    # top 1: a third of the tie group's one positive
    assert expected_positives_in_top(y, score, [1])[0] == pytest.approx(1 / 3)
    assert expected_positives_in_top(y, score, [0, 2, 3, 4]).tolist() == pytest.approx(
        [0, 2 / 3, 1, 2]
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3)), min_size=1, max_size=6),
    st.data(),
)
def test_expected_positives_matches_all_orderings(rows, data):
    y = np.array([r[0] for r in rows])
    score = np.array([float(r[1]) for r in rows])
    k = data.draw(st.integers(0, len(rows)))
    assert expected_positives_in_top(y, score, [k])[0] == pytest.approx(
        brute_force_top(y, score, k)
    )


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 500)
    y = (rng.uniform(size=500) < p).astype(int)
    m = classification_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert set(m) >= {
        "ece",
        "lift_at_5",
        "lift_at_10",
        "lift_at_20",
        "capture_at_5",
        "capture_at_20",
    }


def test_ranking_score_leaves_calibration_metrics_nan():
    days = np.array([300.0, 20.0, 150.0, 10.0])
    y = np.array([1, 0, 1, 0])
    m = classification_metrics(y, days, probabilities=False)
    assert m["roc_auc"] == 1.0
    assert math.isnan(m["log_loss"]) and math.isnan(m["brier"]) and math.isnan(m["ece"])
    with pytest.raises(ValueError, match="probabilities=False"):
        classification_metrics(y, days)


def test_single_class_gives_nan_auc():
    m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["lift_at_10"])


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.1], "equal length"),
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([0, None], [0.1, 0.2], "missing labels"),
        ([], [], "0 rows"),
    ],
)
def test_bad_inputs_name_the_problem(y, p, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(np.array(y, dtype=object) if None in y else y, p)


def test_ece_hand_computed():
    # bin [0.1,0.2): p .1,.15 -> mean .125, observed .5 ; bin .8: |1-.8| ; bin .9: |1-.9|
    p = [0.1, 0.15, 0.8, 0.9]
    y = [0, 1, 1, 1]
    expected = 0.375 * 2 / 4 + 0.2 / 4 + 0.1 / 4
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    table = reliability_table(y, p)
    assert table["count"].tolist() == [2, 1, 1]
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 1, allow_nan=False)), min_size=1, max_size=40
    ),
    st.integers(1, 12),
)
def test_ece_matches_loop(rows, n_bins):
    y = [r[0] for r in rows]
    p = [r[1] for r in rows]
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i, v in enumerate(p) if (lo <= v < hi) or (b == n_bins - 1 and v == 1.0)]
        members = [i for i in members if min(int(p[i] * n_bins), n_bins - 1) == b]
        if members:
            obs = np.mean([y[i] for i in members])
            pred = np.mean([p[i] for i in members])
            total += len(members) / len(p) * abs(obs - pred)
    assert expected_calibration_error(y, p, n_bins) == pytest.approx(total, abs=1e-12)


def test_lift_table_hand_computed():
    table = lift_table(Y, SCORE, n_bins=5)
    assert table["customers"].tolist() == [2] * 5
    assert table["positives"].tolist() == pytest.approx([1, 1, 0, 1, 0])
    assert table["cumulative_capture"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert table["lift"].iloc[0] == pytest.approx(0.5 / 0.3)
    assert table["cumulative_lift"].iloc[-1] == pytest.approx(1.0)


def profit_loop(y, score, contact_cost, offer_value, gamma, offer_cost):
    """Profit of contacting the top k, by a plain loop (distinct scores only)."""
    order = np.argsort(-score)
    out = [0.0]
    total = 0.0
    for i in order:
        if y[i]:
            total += gamma * (offer_value - offer_cost) - contact_cost
        else:
            total += -contact_cost - offer_cost
        out.append(total)
    return np.array(out)


def test_profit_curve_matches_loop_and_hand_values():
    curve = profit_curve(Y, SCORE, ProfitModel(contact_cost=1.0, offer_value=10.0))
    # top 1: 10 - 1 = 9; top 3: 2*10 - 3 = 17; top 7: 3*10 - 7 = 23; all: 30 - 10 = 20
    assert curve["profit"].iloc[[0, 1, 3, 7, 10]].tolist() == pytest.approx([0, 9, 17, 23, 20])
    loop = profit_loop(Y, SCORE, 2.0, 12.0, 0.4, 3.0)
    curve = profit_curve(
        Y,
        SCORE,
        ProfitModel(contact_cost=2.0, offer_value=12.0, acceptance_rate=0.4, offer_cost=3.0),
    )
    assert curve["profit"].to_numpy() == pytest.approx(loop)
    assert curve["profit_per_customer"].to_numpy() == pytest.approx(loop / 10)


def test_expected_maximum_profit_fixed_acceptance():
    emp = expected_maximum_profit(Y, SCORE, ProfitModel(contact_cost=1.0, offer_value=10.0))
    assert emp == pytest.approx(2.3)  # 23 at the top 7, per customer
    assert (
        profit_maximizing_fraction(Y, SCORE, ProfitModel(contact_cost=1.0, offer_value=10.0)) == 0.7
    )
    # an offer worth less than a contact: contact nobody
    assert expected_maximum_profit(Y, SCORE, ProfitModel(contact_cost=5.0, offer_value=1.0)) == 0.0


def test_expected_maximum_profit_uncertain_acceptance():
    kwargs = dict(contact_cost=1.0, offer_value=20.0, offer_cost=2.0)
    fixed = expected_maximum_profit(Y, SCORE, ProfitModel(acceptance_rate=0.3, **kwargs))
    # a Beta concentrated at 0.3 gives the fixed-rate value
    sharp = expected_maximum_profit(Y, SCORE, ProfitModel(acceptance_beta=(3e5, 7e5), **kwargs))
    assert sharp == pytest.approx(fixed, rel=1e-3)
    # E[max] >= max(E): uncertainty about gamma never lowers EMP below the mean-gamma value
    wide = expected_maximum_profit(Y, SCORE, ProfitModel(acceptance_beta=(6, 14), **kwargs))
    assert wide >= fixed - 1e-12
    with pytest.raises(ValueError, match="acceptance_rate"):
        profit_curve(Y, SCORE, ProfitModel(contact_cost=1, offer_value=2, acceptance_rate=1.5))


def test_better_ranking_has_higher_profit():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=2000) < 0.2
    good = y + rng.normal(0, 0.5, 2000)
    noise = rng.normal(0, 1, 2000)
    kwargs = dict(contact_cost=1.0, offer_value=8.0)
    assert expected_maximum_profit(y, good, ProfitModel(**kwargs)) > expected_maximum_profit(
        y, noise, ProfitModel(**kwargs)
    )
