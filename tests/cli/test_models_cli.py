"""``winback models list|promote|rollback`` through Typer's test runner, in a tmp ./mlruns."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from tests.training import test_tracking as shared
from tests.training.test_tracking import LinearStandIn, feature_frame
from training.tracking.model_io import log_model
from training.tracking.model_registry import champion, promote_if_better, register
from training.tracking.runs import start_training_run
from winback.commands.models import app

# Each test gets an empty store under its own tmp_path/mlruns (the working dir).
empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking

runner = CliRunner()


def add_version(config, target: str, roc_auc: float) -> str:
    with start_training_run(target, config) as run:
        log_model(LinearStandIn(), input_example=feature_frame(8))
    return register(
        run.info.run_id, target, "model", test_cutoff="2024-06-30", metrics={"roc_auc": roc_auc}
    )


@pytest.fixture
def two_versions(tracking):
    """winback-churn v1 (champion, AUC 0.71) and v2 (challenger, AUC 0.65)."""
    v1 = add_version(tracking, "churn", 0.71)
    promote_if_better("churn", v1, {"roc_auc": 0.71}, None)
    v2 = add_version(tracking, "churn", 0.65)
    promote_if_better("churn", v2, {"roc_auc": 0.65}, {"roc_auc": 0.71})
    return tracking


def test_list_with_no_models_says_how_to_train_one(tracking):
    result = runner.invoke(app, ["list", "--target", "vip"])
    assert result.exit_code == 0, result.output
    assert "No registered winback-vip models" in result.output
    assert "winback train --target vip" in result.output


def test_list_shows_versions_roles_and_metrics(two_versions):
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "winback-churn" in line]
    assert len(lines) == 2
    assert " 2 " in lines[0] and "challenger" in lines[0] and "0.6500" in lines[0]
    assert " 1 " in lines[1] and "champion" in lines[1] and "0.7100" in lines[1]
    assert "2024-06-30" in lines[0]
    assert "mlruns" in result.output


def test_promote_then_rollback_moves_the_champion(two_versions):
    result = runner.invoke(app, ["promote", "churn", "2", "--reason", "checked by hand"])
    assert result.exit_code == 0, result.output
    assert "version 2 is now champion" in result.output and "was version 1" in result.output
    assert champion("churn").version == 2
    assert champion("churn").tags["gate_reason"] == "manual: checked by hand"

    result = runner.invoke(app, ["rollback", "churn"])
    assert result.exit_code == 0, result.output
    assert "from version 2 to version 1" in result.output
    assert champion("churn").version == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "churn", "9"], "no version 9"),
        (["promote", "churn", "two"], "not a version number"),
        (["promote", "churm", "1"], "unknown target 'churm'"),
        (["rollback", "churn"], "no earlier champion"),
        (["rollback", "vip"], "no champion model for target 'vip'"),
        (["list", "--target", "vipp"], "unknown target 'vipp'"),
    ],
)
def test_errors_exit_2_with_a_message(two_versions, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert champion("churn").version == 1


def test_missing_store_is_not_created_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for args in (["list"], ["rollback", "churn"], ["promote", "vip", "1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert "no MLflow store at" in result.output and "mlruns" in result.output
    assert not (tmp_path / "mlruns").exists()


def test_broken_config_file_exits_2_naming_the_key(tracking, tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('target = "churn"\n[tracking]\ntracking_url = "sqlite:///x.db"\n')
    result = runner.invoke(app, ["list", "--config", str(config)])
    assert result.exit_code == 2
    assert "tracking.tracking_url" in result.output


def test_tracking_uri_option_points_at_another_store(two_versions, tmp_path, empty_tracking_db):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(empty_tracking_db, other / "mlflow.db")
    uri = f"sqlite:///{other}/mlflow.db"
    result = runner.invoke(app, ["list", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "No registered winback models" in result.output
