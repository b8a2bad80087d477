"""Retraining: the lock, exit codes, idempotence and two runs started at once."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import shutil
from pathlib import Path

import pytest

from tests.training import test_tracking as shared
from training.retrain import (
    EXIT_BAD_INPUT,
    EXIT_LOCKED,
    EXIT_OK,
    RetrainConfig,
    RetrainLocked,
    retrain_lock,
    run_retrain,
)

SHOP_DAYS = (dt.date(2024, 6, 1), dt.date(2025, 12, 31))

# An empty MLflow store (schema migrated once per session): migrating a new one takes seconds.
empty_tracking_db = shared.empty_tracking_db


def tiny_config(root: Path, **overrides) -> RetrainConfig:
    from training.config import LightGBMParams, TrainConfig
    from training.tracking.runs import TrackingConfig

    train = TrainConfig(
        horizon_days=60,
        cutoff_count=5,  # test c4, validation c2, train c0 (60-day gaps)
        lightgbm=LightGBMParams(n_estimators=20, learning_rate=0.2, min_child_samples=10),
        early_stopping_rounds=5,
        num_threads=1,
        bgnbd_feature_experiment=False,
        report=False,
        tracking=TrackingConfig(root=str(root)),
    )
    return RetrainConfig(train=train, targets=("churn",), **overrides)


def tiny_shop_dir(folder: Path) -> Path:
    from features.simulation import SimulationConfig, simulate_shop, write_shop

    config = SimulationConfig(
        customers=400, seed=3, start=SHOP_DAYS[0], end=SHOP_DAYS[1], campaign_dates=()
    )
    write_shop(simulate_shop(config), folder)
    return folder


def _load(shop_dir: str):
    from features.simulation import read_shop

    shop = read_shop(Path(shop_dir))
    return shop.tables, None


def _child(shop_dir: str, root: str, barrier, results) -> None:
    """One retrain process: wait for the other, then run the job; report the exit code."""
    import os

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    config = tiny_config(Path(root))
    barrier.wait(timeout=300)
    code, _, message = run_retrain(lambda: _load(shop_dir), config)
    results.put((code, message))


def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "mlruns" / "retrain.lock"
    with retrain_lock(path):
        assert "pid" in path.read_text()
        with pytest.raises(RetrainLocked, match="another retrain is running"), retrain_lock(path):
            pass
    with retrain_lock(path):  # released on exit
        pass


def test_a_held_lock_exits_3_without_loading(tmp_path):
    config = tiny_config(tmp_path / "mlruns")
    loaded = []
    with retrain_lock(config.lock_path()):
        code, report, message = run_retrain(lambda: loaded.append(1), config)
    assert (code, report, loaded) == (EXIT_LOCKED, None, [])
    assert "another retrain is running" in message


def test_bad_config_and_bad_input_exit_2(tmp_path):
    def broken():
        raise ValueError("targets must be known")

    assert run_retrain(lambda: None, broken)[0] == EXIT_BAD_INPUT
    with pytest.raises(ValueError, match="subset"):
        RetrainConfig(targets=("upsell",))

    def missing():
        raise FileNotFoundError("--data shop.parquet does not exist")

    code, _, message = run_retrain(missing, tiny_config(tmp_path / "mlruns"))
    assert code == EXIT_BAD_INPUT and "does not exist" in message


def test_cli_maps_a_held_lock_to_exit_3(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from winback.commands.monitor import retrain

    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    app.command("retrain")(retrain)
    app.callback()(lambda: None)
    with retrain_lock(tmp_path / "mlruns" / "retrain.lock"):
        result = CliRunner().invoke(app, ["retrain", "--target", "churn"])
    assert result.exit_code == EXIT_LOCKED, result.output
    result = CliRunner().invoke(app, ["retrain", "--target", "upsell"])
    assert result.exit_code == EXIT_BAD_INPUT


@pytest.mark.slow
def test_two_retrains_at_once_one_runs_the_other_exits_3(tmp_path, monkeypatch, empty_tracking_db):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shop_dir = tiny_shop_dir(tmp_path / "shop")
    root = tmp_path / "mlruns"
    root.mkdir()
    shutil.copy(empty_tracking_db, root / "mlflow.db")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_child, args=(str(shop_dir), str(root), barrier, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = sorted(results.get(timeout=600) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    codes = [code for code, _ in outcomes]
    assert codes == [EXIT_OK, EXIT_LOCKED], outcomes

    # the registry is intact: one version, the champion, with its reference bins
    from training.tracking import model_list, model_registry
    from training.tracking.reference import load_reference_bins
    from training.tracking.runs import TrackingConfig, configure_tracking

    configure_tracking(TrackingConfig(root=str(root)))
    versions = model_list.list_models("churn")
    assert [v.version for v in versions] == ["1"] and versions[0].is_champion
    champion = model_registry.load_champion("churn")
    reference = load_reference_bins(model_registry.champion("churn").run_id)
    assert reference.score is not None and set(reference.features) == set(
        champion.feature_set_.names
    )

    # idempotent: the same data again does nothing and exits 0
    code, report, _ = run_retrain(lambda: _load(str(shop_dir)), tiny_config(root))
    assert code == EXIT_OK and report.outcomes[0].status == "skipped"
    assert "up to date" in report.outcomes[0].message
    assert [v.version for v in model_list.list_models("churn")] == ["1"]
