"""Decay: the realised ROC-AUC of served scores against the one their model was trained with."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from serving.monitoring.backtest import BACKTEST_COLUMNS
from serving.monitoring.decay import (
    DECAY_COLUMNS,
    NO_REFERENCE,
    DecayConfig,
    auc_standard_error,
    decay_table,
    trained_roc_auc,
)


@pytest.mark.parametrize(("positives", "negatives", "shift"), [(60, 240, 1.0), (400, 400, 0.5)])
def test_standard_error_is_near_the_spread_of_auc_over_samples(positives, negatives, shift):
    rng = np.random.default_rng(3)
    scores = np.c_[rng.normal(shift, 1, (2000, positives)), rng.normal(0, 1, (2000, negatives))]
    ranks = scores.argsort(axis=1).argsort(axis=1) + 1  # continuous scores: no ties
    aucs = (ranks[:, :positives].sum(axis=1) - positives * (positives + 1) / 2) / (
        positives * negatives
    )
    labels = np.r_[np.ones(positives), np.zeros(negatives)]
    assert aucs[0] == pytest.approx(roc_auc_score(labels, scores[0]))
    se = auc_standard_error(float(np.mean(aucs)), positives, negatives)
    # Hanley & McNeil assume exponential scores: for normal ones a little conservative
    assert 0.95 * np.std(aucs) <= se <= 1.25 * np.std(aucs)


def test_standard_error_needs_both_classes():
    assert math.isnan(auc_standard_error(0.7, 0, 10))
    assert math.isnan(auc_standard_error(float("nan"), 10, 10))


def test_status_needs_a_large_drop_beyond_noise():
    config = DecayConfig(warn_auc_drop=0.02, alert_auc_drop=0.05, z=2.0)
    assert config.status(0.06, 0.01) == "alert"
    assert config.status(0.03, 0.01) == "warn"
    assert config.status(0.01, 0.001) == "ok"  # small, though beyond noise
    assert config.status(0.06, 0.04) == "ok"  # large, but within noise
    assert config.status(-0.05, 0.01) == "ok"  # better than at training
    assert config.status(float("nan"), 0.01) == NO_REFERENCE


@pytest.mark.parametrize("kwargs", [{"warn_auc_drop": 0.1, "alert_auc_drop": 0.05}, {"z": -1}])
def test_config_refuses_inconsistent_thresholds(kwargs):
    with pytest.raises(ValueError, match="DecayConfig"):
        DecayConfig(**kwargs)


def backtest_rows() -> pd.DataFrame:
    rows = [
        (dt.date(2025, 1, 1), "churn", "3", 4000, 0.4, 0.41, 0.78),
        (dt.date(2025, 2, 1), "churn", "3", 4000, 0.4, 0.41, 0.71),
        (dt.date(2025, 2, 1), "vip", "1", 4000, 0.02, 0.03, 0.90),
        (dt.date(2025, 2, 1), "reactivation", None, 900, 0.1, 0.1, 0.70),
    ]
    frame = pd.DataFrame(
        [
            {"as_of": a, "target": t, "model_version": v, "n": n, "base_rate": b}
            | {"mean_predicted": m, "roc_auc": auc}
            for a, t, v, n, b, m, auc in rows
        ]
    )
    return frame.reindex(columns=list(BACKTEST_COLUMNS))


def test_decay_table_flags_the_fallen_table_only():
    frame = backtest_rows()
    out = decay_table(frame, {("churn", "3"): 0.78, ("vip", "1"): 0.91})
    assert list(out.columns) == [*BACKTEST_COLUMNS, *DECAY_COLUMNS]
    assert out["status"].tolist() == ["ok", "alert", "ok", NO_REFERENCE]
    assert out["auc_drop"].iloc[1] == pytest.approx(0.07)
    se = auc_standard_error(0.71, 1600, 2400)
    assert out["auc_se"].iloc[1] == pytest.approx(se)
    pd.testing.assert_frame_equal(out[list(BACKTEST_COLUMNS)], frame)


def test_trained_roc_auc_reads_the_registered_versions_runs(serving_home):
    from mlflow.tracking import MlflowClient

    from training.tracking.runs import TrackingConfig

    uri = TrackingConfig(root=str(serving_home / "mlruns")).resolved_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = trained_roc_auc([("churn", "1"), ("vip", "1"), ("churn", "99")], client=client)
    # the fixture's runs record test_roc_auc 0.80 + i / 100 (churn, vip, reactivation)
    assert found == {("churn", "1"): pytest.approx(0.80), ("vip", "1"): pytest.approx(0.81)}
