"""``winback monitor backtest``: realised ROC-AUC against the trained one, exit 1 on decay."""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from features.labels import LabelConfig, build_labels
from serving.scoring import store
from tests.training import test_tracking as shared
from tests.training.test_tracking import LinearStandIn, feature_frame
from training.tracking.model_io import log_model
from training.tracking.model_registry import register
from training.tracking.runs import start_training_run
from winback.commands.monitor import app

empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking

runner = CliRunner()
AS_OF = dt.date(2025, 3, 31)


def add_churn_version(config, test_roc_auc: float) -> str:
    """A registered churn version whose training run recorded ``test_roc_auc``."""
    with start_training_run("churn", config) as run:
        log_model(LinearStandIn(), input_example=feature_frame(8))
        mlflow.log_metric("test_roc_auc", test_roc_auc)
    return register(
        run.info.run_id, "churn", "model", test_cutoff="2024-12-31", metrics={"roc_auc": 0.5}
    )


def write_weak_scores(shop, score_dir, version: str) -> None:
    """Scores of the active customers that rank the realised churn only a little."""
    labels = build_labels(shop.tables, [AS_OF], LabelConfig(horizon_days=90)).droplevel("cutoff")
    rng = np.random.default_rng(0)
    churned = labels["churned"].astype("float64").fillna(0.5)
    scores = pd.DataFrame(
        {
            "customer_id": labels.index.astype("string"),
            "as_of": AS_OF,
            "churn_risk": np.where(
                labels["is_active"], (0.1 * churned + rng.random(len(labels))) / 1.1, np.nan
            ),
            "churn_model_version": version,
        }
    )
    features = pd.DataFrame({"x": np.zeros(len(labels))}, index=labels.index)
    store.write_score_table(scores, features, score_dir, AS_OF)


def invoke(shop_dir, score_dir, *extra: str):
    args = ["backtest", "--data", str(shop_dir), "--score-dir", str(score_dir), "-t", "churn"]
    return runner.invoke(app, [*args, "--no-log", *extra])


def test_backtest_flags_a_fall_below_the_trained_auc(
    tracking, small_shop, small_shop_dir, tmp_path
):
    version = add_churn_version(tracking, test_roc_auc=0.80)
    write_weak_scores(small_shop, tmp_path / "scores", version)
    result = invoke(small_shop_dir, tmp_path / "scores")
    assert result.exit_code == 1, result.output
    assert "trained_roc_auc" in result.output and "0.8000" in result.output
    assert "alert" in result.output and "winback retrain" in result.output


def test_backtest_passes_when_the_auc_holds(tracking, small_shop, small_shop_dir, tmp_path):
    version = add_churn_version(tracking, test_roc_auc=0.50)
    write_weak_scores(small_shop, tmp_path / "scores", version)
    result = invoke(small_shop_dir, tmp_path / "scores")
    assert result.exit_code == 0, result.output
    assert " ok" in result.output and "alert" not in result.output


def test_backtest_refuses_inconsistent_thresholds(tracking, small_shop_dir, tmp_path):
    result = invoke(small_shop_dir, tmp_path, "--warn-auc-drop", "0.1", "--alert-auc-drop", "0.05")
    assert result.exit_code == 2
    assert "warn_auc_drop" in result.output
