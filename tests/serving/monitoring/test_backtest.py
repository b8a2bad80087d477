"""Backtest: realised metrics of stored score tables equal a direct computation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.labels import LabelConfig, build_labels
from serving.monitoring.backtest import (
    BACKTEST_COLUMNS,
    BacktestConfig,
    backtest,
    joined_outcomes,
    matured_versions,
    plot_backtest,
)
from serving.scoring import store

HORIZON = 90


def test_matured_versions_need_the_whole_horizon_in_the_data():
    versions = [dt.date(2025, 1, 1), dt.date(2025, 10, 2), dt.date(2025, 10, 3)]
    assert matured_versions(versions, dt.date(2025, 12, 31), 90) == versions[:2]


def test_joined_outcomes_keep_scored_customers_with_a_label():
    scores = pd.DataFrame(
        {"customer_id": ["C3", "C1", "C2", "C4"], "churn_risk": [0.9, 0.2, np.nan, 0.5]}
    )
    labels = pd.DataFrame(
        {"churned": pd.array([False, True, True, pd.NA], dtype="boolean")},
        index=pd.Index(["C1", "C2", "C3", "C4"], dtype="string"),
    )
    joined = joined_outcomes(scores, labels, "churn")
    assert list(joined.index) == ["C1", "C3"]  # C2 has no score, C4 no label
    assert joined["score"].tolist() == [0.2, 0.9] and joined["label"].tolist() == [False, True]
    with pytest.raises(ValueError, match="vip_potential"):
        joined_outcomes(scores, labels, "vip")


def write_scores(shop, score_dir, as_of: dt.date, seed: int) -> pd.DataFrame:
    """A score table of every customer known at ``as_of`` with made-up but informative scores."""
    labels = build_labels(shop.tables, [as_of], LabelConfig(horizon_days=HORIZON))
    labels = labels.droplevel("cutoff")
    rng = np.random.default_rng(seed)
    churned = labels["churned"].astype("float64")
    noisy = np.clip(0.3 * churned.fillna(0.5) + rng.random(len(labels)) * 0.7, 0, 1)
    scores = pd.DataFrame(
        {
            "customer_id": labels.index.astype("string"),
            "as_of": as_of,
            "churn_risk": np.where(labels["is_active"], noisy, np.nan),
            "churn_model_version": "7",
        }
    )
    features = pd.DataFrame({"x": np.arange(len(labels), dtype="float64")}, index=labels.index)
    store.write_score_table(scores, features, score_dir, as_of)
    return scores


def test_backtest_auc_equals_sklearn_on_the_same_join(small_shop, tmp_path):
    matured = [dt.date(2025, 3, 31), dt.date(2025, 6, 30)]
    too_recent = dt.date(2025, 11, 30)  # horizon runs past the last data day
    written = {d: write_scores(small_shop, tmp_path, d, i) for i, d in enumerate(matured)}
    write_scores(small_shop, tmp_path, too_recent, 9)

    frame = backtest(small_shop.tables, tmp_path, BacktestConfig(targets=("churn",)))
    assert list(frame.columns) == list(BACKTEST_COLUMNS)
    assert list(frame["as_of"]) == matured and set(frame["model_version"]) == {"7"}

    for as_of, scores in written.items():
        # the direct computation: labels at as_of, merge, sklearn
        labels = build_labels(small_shop.tables, [as_of], LabelConfig(horizon_days=HORIZON))
        labels = labels.droplevel("cutoff").reset_index()
        labels["customer_id"] = labels["customer_id"].astype(str)
        direct = scores.assign(customer_id=scores["customer_id"].astype(str)).merge(
            labels[["customer_id", "churned"]], on="customer_id"
        )
        direct = direct[direct["churn_risk"].notna() & direct["churned"].notna()]
        y = direct["churned"].astype(bool).to_numpy()
        p = direct["churn_risk"].to_numpy()
        row = frame[frame["as_of"] == as_of].iloc[0]
        assert row["n"] == len(direct)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert row["base_rate"] == pytest.approx(y.mean())
        assert row["mean_predicted"] == pytest.approx(p.mean())
        assert row["brier"] == pytest.approx(np.mean((p - y) ** 2))
        assert 0.6 < row["roc_auc"] < 1.0  # the made-up scores carry signal

    ax = plot_backtest(frame, reference={"roc_auc": 0.75})
    assert len(ax.get_lines()) == 2 + 1  # roc_auc and ece of one model + the reference line


def test_backtest_without_matured_tables_is_empty(small_shop, tmp_path):
    write_scores(small_shop, tmp_path, dt.date(2025, 12, 1), 0)
    frame = backtest(small_shop.tables, tmp_path, BacktestConfig(targets=("churn",)))
    assert frame.empty and list(frame.columns) == list(BACKTEST_COLUMNS)
    with pytest.raises(ValueError, match="unknown targets"):
        BacktestConfig(targets=("upsell",))
