"""Value metrics on hand-computed tables, ties, the bootstrap and the decile plot."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from training.evaluation.value_metrics import (
    decile_calibration,
    decile_calibration_error,
    gini,
    normalized_gini,
    paired_bootstrap_delta,
    spearman,
    top_share,
    value_metrics,
)
from training.evaluation.value_plots import plot_value_deciles

Y = np.array([0.0, 10.0, 0.0, 30.0, 60.0])  # total 100


def test_gini_by_hand():
    perfect = np.array([1.0, 2.0, 0.0, 3.0, 4.0])
    # Lorenz points (0, .2, .4, .6, .8, 1) x (0, .6, .9, 1, 1, 1): area 0.8, Gini 0.6
    assert gini(Y, perfect) == pytest.approx(0.6)
    assert normalized_gini(Y, perfect) == pytest.approx(1.0)
    assert normalized_gini(Y, np.zeros(5)) == pytest.approx(0.0)  # one tie: the diagonal
    assert np.isnan(normalized_gini(np.zeros(5), perfect))


def test_reversed_order_is_the_negative_gini():
    reverse = -np.array([1.0, 2.0, 0.0, 3.0, 4.0])
    # Lorenz points (0,.2,.4,.6,.8,1) x (0,0,0,.1,.4,1): area .2*(0+0+.05+.25+.7)=0.2
    assert gini(Y, reverse) == pytest.approx(-0.6)
    assert normalized_gini(Y, reverse) == pytest.approx(-1.0)


def test_ties_count_as_the_mean_over_orders():
    tied = np.array([1.0, 1.0, 0.0, 0.0, 0.0])  # the top block holds 10 of 100 over 2 customers
    assert top_share(Y, tied, 0.2) == pytest.approx(0.05)
    assert top_share(Y, tied, 0.4) == pytest.approx(0.10)
    rng = np.random.default_rng(0)
    shuffles = []
    for _ in range(2000):
        jitter = tied + rng.uniform(0, 1e-6, 5)
        shuffles.append(gini(Y, jitter))
    assert gini(Y, tied) == pytest.approx(np.mean(shuffles), abs=0.01)


def test_spearman_and_errors():
    prediction = np.array([5.0, 12.0, 1.0, 25.0, 70.0])
    metrics = value_metrics(Y, prediction)
    assert metrics["spearman"] == pytest.approx(spearman(Y, prediction))
    assert metrics["mae"] == pytest.approx(np.mean([5, 2, 1, 5, 10]))
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean([25, 4, 1, 25, 100])))
    assert metrics["calibration_ratio"] == pytest.approx(113 / 100)
    assert metrics["top_decile_capture"] == pytest.approx(0.3)  # half of the 60 customer
    assert np.isnan(spearman(Y, np.ones(5)))


def test_decile_calibration_by_hand():
    prediction = np.array([5.0, 12.0, 1.0, 25.0, 70.0])
    table = decile_calibration(Y, prediction, n_bins=5)
    assert table["predicted_total"].tolist() == [70.0, 25.0, 12.0, 5.0, 1.0]
    assert table["realised_total"].tolist() == [60.0, 30.0, 10.0, 0.0, 0.0]
    assert table["customers"].tolist() == [1] * 5
    assert decile_calibration_error(Y, prediction, n_bins=5) == pytest.approx(
        (10 + 5 + 2 + 5 + 1) / 100
    )
    ten = decile_calibration(np.arange(100.0), np.arange(100.0))
    assert ten["customers"].tolist() == [10] * 10
    assert ten["realised_mean"].is_monotonic_decreasing


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="prediction has 1 NaN"):
        value_metrics(Y, np.array([1.0, np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match="equal length"):
        normalized_gini(Y, np.zeros(4))


def test_paired_bootstrap_sees_a_real_difference_and_no_fake_one():
    rng = np.random.default_rng(3)
    y = rng.gamma(0.5, 100.0, 3000) * (rng.uniform(size=3000) < 0.4)
    good = y + rng.normal(0, 30, 3000)
    noisy = y + rng.normal(0, 300, 3000)
    groups = np.repeat([0, 1, 2], 1000)
    result = paired_bootstrap_delta(y, good, noisy, groups=groups, n_boot=100)
    assert result["ci_low"] > 0 and result["ci_low"] <= result["delta"] <= result["ci_high"]
    per_group = np.mean(
        [normalized_gini(y[groups == g], good[groups == g])
         - normalized_gini(y[groups == g], noisy[groups == g]) for g in range(3)]
    )  # fmt: skip
    assert result["delta"] == pytest.approx(per_group)
    same = paired_bootstrap_delta(y, good, good.copy(), groups=groups, n_boot=20)
    assert same["delta"] == same["ci_low"] == same["ci_high"] == 0.0


def test_decile_plot_draws_the_table():
    before = plt.get_fignums()
    y = np.arange(100.0)
    ax = plot_value_deciles(y, {"model": y, "baseline": y[::-1]})
    heights = [p.get_height() for p in ax.patches[:10]]
    assert heights == pytest.approx(decile_calibration(y, y)["realised_mean"].tolist())
    assert plt.get_fignums() == before
