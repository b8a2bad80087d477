"""``winback train --target value`` end to end on the small simulated shop, in a tmp ./mlruns."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from tests.training import test_tracking as shared
from winback.cli import app

# An empty MLflow store (schema migrated once per session): migrating a new one takes seconds.
empty_tracking_db = shared.empty_tracking_db

runner = CliRunner()


@pytest.mark.slow
def test_value_training_registers_a_champion(
    small_shop_dir, tmp_path, monkeypatch, empty_tracking_db
):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_tracking_db, tmp_path / "mlruns" / "mlflow.db")
    config = tmp_path / "winback.toml"
    config.write_text("[train]\nnum_threads = 1\n[value]\ntest_origins = 2\ntrain_cutoffs = 6\n")
    args = ["train", "--target", "value", "--data", str(small_shop_dir), "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "beats every baseline" in result.output
    assert "winback-value version 1 is champion: first value model" in result.output
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("winback-value", "champion")
    assert str(version.version) == "1"
    assert version.tags["test_origins"] == '["2024-12-01", "2024-12-31"]'
    run = client.get_run(version.run_id)
    assert {"test_normalized_gini", "baseline_btyd_normalized_gini", "origin_2_rmse",
            "delta_normalized_gini_trailing_ci_low"} <= set(run.data.metrics)  # fmt: skip
    assert "plots/value_deciles.png" in [
        a.path for a in client.list_artifacts(run.info.run_id, "plots")
    ]

    listed = runner.invoke(app, ["models", "list", "--target", "value"])
    assert listed.exit_code == 0, listed.output
    assert "winback-value" in listed.output and "champion" in listed.output
    assert "normalized_gini" in listed.output
    gini = run.data.metrics["test_normalized_gini"]
    assert f"{gini:.4f}" in listed.output
