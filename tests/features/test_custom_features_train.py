"""A user-defined feature from winback.toml through ``winback train`` into the model and scoring."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.training import test_tracking as shared

# An empty MLflow store (schema migrated once per session): migrating a new one takes seconds.
empty_tracking_db = shared.empty_tracking_db

CONFIG = """
[train]
horizon_days = 60
cutoff_count = 7
early_stopping_rounds = 10
num_threads = 1
report = false
bgnbd_feature_experiment = false

[train.lightgbm]
n_estimators = 40
learning_rate = 0.1

[[features.custom]]
name = "large_line_count_180d"
expression = "count(*) filter (where not is_return and amount > 50)"
window_days = 180
description = "Purchased lines above 50 in the last 180 days"
fill = 0
"""


@pytest.mark.slow
def test_winback_train_picks_up_a_custom_feature_and_scoring_rebuilds_it(
    small_shop, small_shop_dir, tmp_path, monkeypatch, empty_tracking_db
):
    import mlflow

    from features.build import build_features
    from features.custom.active import use_custom_features
    from features.training_table import build_scoring_frame
    from training.tracking import model_registry
    from winback.cli import app
    from winback.config import load_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_tracking_db, tmp_path / "mlruns" / "mlflow.db")
    (tmp_path / "winback.toml").write_text(CONFIG)
    result = CliRunner().invoke(app, ["train", "--target", "churn", "--data", str(small_shop_dir)])
    assert result.exit_code == 0, result.output

    champion = model_registry.load_champion("churn")
    feature_set = champion.feature_set_
    assert feature_set.name.startswith("churn_features_v3_custom_")
    assert "large_line_count_180d" in feature_set.names
    assert [d.name for d in feature_set.custom] == ["large_line_count_180d"]
    assert champion.feature_importance().get("large_line_count_180d") is not None

    run = mlflow.search_runs(experiment_names=["winback-churn"], output_format="list")[0]
    assert run.data.params["feature_set"] == feature_set.name
    logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/feature_set.json")
    assert json.loads(logged)["custom"][0]["expression"].startswith("COUNT(*) FILTER")

    # scoring needs no config: the model's feature set carries the definition
    as_of = small_shop.tables.last_event_at().date()
    frame = build_scoring_frame(small_shop.tables, as_of, feature_set)
    configured = load_config(tmp_path / "winback.toml").features.definitions()
    with use_custom_features(configured):
        expected = build_features(small_shop.tables, as_of)["large_line_count_180d"]
    pd.testing.assert_series_equal(
        frame["large_line_count_180d"], expected.reindex(frame.index), check_names=False
    )
    assert frame["large_line_count_180d"].gt(0).any()
