"""Plots draw the numbers they claim to and leave no pyplot state behind."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn import metrics as skm

from training.evaluation.metrics import ProfitModel, profit_curve, reliability_table
from training.evaluation.plots import (
    figure_to_png,
    gains_curve,
    plot_feature_importance,
    plot_gains,
    plot_model_vs_baselines,
    plot_profit_curve,
    plot_reliability,
    plot_roc_pr,
    plot_shap_summary,
)

RNG = np.random.default_rng(0)
P = RNG.uniform(0.02, 0.98, 300)
Y = (RNG.uniform(size=300) < P).astype(int)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def test_reliability_plots_the_table():
    ax = plot_reliability(Y, P)
    table = reliability_table(Y, P)
    model_line = [line for line in ax.get_lines() if line.get_label() == "model"][0]
    np.testing.assert_allclose(model_line.get_xdata(), table["mean_predicted"])
    np.testing.assert_allclose(model_line.get_ydata(), table["observed_rate"])
    assert figure_to_png(ax).startswith(PNG_MAGIC)


def test_roc_pr_lines_match_sklearn():
    fig = plot_roc_pr(Y, {"model": P, "noise": RNG.uniform(size=300)})
    roc_ax, pr_ax = fig.axes
    fpr, tpr, _ = skm.roc_curve(Y, P)
    line = roc_ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), fpr)
    np.testing.assert_allclose(line.get_ydata(), tpr)
    assert line.get_label().startswith("model (AUC ")
    assert f"{skm.roc_auc_score(Y, P):.3f}" in line.get_label()
    pr_labels = [line.get_label().split(" (")[0] for line in pr_ax.get_lines()]
    assert pr_labels[:2] == ["model", "noise"]
    assert figure_to_png(fig).startswith(PNG_MAGIC)


def test_gains_curve_ends_at_one_and_draws_each_score():
    curve = gains_curve(Y, P)
    assert curve["capture"].iloc[0] == 0 and curve["capture"].iloc[-1] == pytest.approx(1)
    assert curve["capture"].is_monotonic_increasing
    # a perfect score reaches every positive after contacting base-rate share of customers
    perfect = gains_curve(Y, Y.astype(float), points=1001)
    at_base = perfect.loc[perfect["fraction_contacted"] >= Y.mean(), "capture"].iloc[0]
    assert at_base == pytest.approx(1.0)
    ax = plot_gains(Y, {"model": P, "recency": -P})
    assert [line.get_label() for line in ax.get_lines()] == ["model", "recency", "random"]


def test_profit_curve_marks_the_maximum():
    curve = profit_curve(Y, P, ProfitModel(contact_cost=1.0, offer_value=5.0))
    ax = plot_profit_curve({"model": curve})
    best = ax.collections[0].get_offsets()[0]
    assert best[1] == pytest.approx(curve["profit_per_customer"].max())
    assert isinstance(ax, Axes)


def test_feature_importance_top_n_largest_first():
    importance = pd.Series({"a": 1.0, "b": 5.0, "c": 3.0, "d": 0.5})
    ax = plot_feature_importance(importance, top=3)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a", "c", "b"]  # barh draws bottom-up: largest at the top


def test_shap_summary_orders_features_by_mean_abs_contribution():
    features = pd.DataFrame(
        {
            "days_since_last_order": RNG.uniform(0, 300, 300),
            "region": pd.Categorical(RNG.choice(["n", "s"], 300)),
            "return_rate": RNG.uniform(0, 1, 300),
        }
    )
    contributions = pd.DataFrame(
        {
            "days_since_last_order": features["days_since_last_order"] / 100 - 1.5,
            "region": RNG.normal(0, 0.1, 300),
            "return_rate": RNG.normal(0, 0.5, 300),
            "bias": -1.0,
        }
    )
    ax = plot_shap_summary(contributions, features, max_points=100)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["region", "return_rate", "days_since_last_order"]
    assert figure_to_png(ax, dpi=50).startswith(PNG_MAGIC)


def test_model_vs_baselines_bars():
    table = pd.DataFrame(
        {"roc_auc": [0.81, 0.7, 0.74, 0.83]}, index=["model", "recency", "rfm", "oracle"]
    )
    ax = plot_model_vs_baselines(table)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([0.81, 0.7, 0.74, 0.83])
    with pytest.raises(ValueError, match="'pr_auc' is not a column"):
        plot_model_vs_baselines(table, metric="pr_auc")


def test_draws_on_a_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_reliability(Y, P, ax=ax) is ax
