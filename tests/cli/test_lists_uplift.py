"""``winback train --target uplift``, ``winback models list`` and win-back lists using the champion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from serving.lists.store import read_manifest
from tests.cli.test_lists_config import _score_table
from tests.training import test_tracking as shared
from training.tracking.runs import TrackingConfig
from training.uplift.fit import fit_uplift
from training.uplift.record import UpliftRows, register_uplift, save_uplift_model
from winback.cli import app

empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking

runner = CliRunner()


def _fit_on(features: pd.DataFrame, columns: list[str], seed: int):
    """An uplift model on ``columns``: contacts help customers with a long tenure."""
    rng = np.random.default_rng(seed)
    n = 3_000
    X = pd.DataFrame({c: rng.choice(features[c].to_numpy(), n) for c in columns})
    t = rng.random(n) < 0.7
    effect = np.where(X[columns[0]].to_numpy() >= X[columns[0]].median(), 0.3, 0.0)
    y = rng.random(n) < 0.1 + t * effect
    result = fit_uplift(X, t, y, pd.Series(range(n)).astype(str))
    return result, X, t, y


def _winback_list(tmp_path, *extra: str) -> dict:
    args = ["--score-dir", str(tmp_path / "scores"), "--list-dir", str(tmp_path / "lists")]
    result = runner.invoke(
        app, ["lists", "winback", *args, "--format", "json", "--no-mlflow", *extra]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    return {"rows": body["rows"], "manifest": read_manifest(tmp_path / "lists", body["list_id"])}


def test_winback_list_uses_the_uplift_champion_unless_told_otherwise(tracking, tmp_path):
    _score_table(tmp_path / "scores")
    from serving.scoring import store

    features = store.read_features(tmp_path / "scores", pd.Timestamp("2025-06-30").date())

    # no champion yet: ranked by reactivation probability x value
    plain = _winback_list(tmp_path)
    assert "uplift" not in plain["manifest"].model_versions
    assert all(r["uplift"] is None for r in plain["rows"])

    result, X, t, y = _fit_on(features, ["tenure_days", "total_margin_amount"], seed=1)
    first = register_uplift(
        result, UpliftRows(X, t, y), test_cutoff="2025-06-01", tracking=TrackingConfig()
    )
    assert first.promoted
    listed = runner.invoke(app, ["models", "list", "--target", "uplift"])
    assert listed.exit_code == 0, listed.output
    assert "winback-uplift" in listed.output and "champion" in listed.output
    assert "qini_test" in listed.output

    ranked = _winback_list(tmp_path)
    assert ranked["manifest"].model_versions["uplift"] == f"winback-uplift/{first.version}"
    assert ranked["manifest"].parameters["uplift"] is True
    rows = pd.DataFrame(ranked["rows"])
    assert rows["uplift"].notna().all()
    assert rows["expected_incremental_margin"].is_monotonic_decreasing
    # the long-tenure customers (the ones contacts help) come first
    assert rows["customer_id"].head(40).map(lambda c: int(c[1:]) % 2 == 0).mean() > 0.9

    # an explicit model wins over the champion
    other = save_uplift_model(result.model, tmp_path / "uplift.pkl")
    explicit = _winback_list(tmp_path, "--uplift-model", str(other))
    assert explicit["manifest"].model_versions["uplift"] == str(other)

    # a champion that cannot score this score table: the list says so and falls back
    unusable, X2, t2, y2 = _fit_on(features.assign(spend=1.0), ["tenure_days", "spend"], seed=2)
    second = register_uplift(
        unusable, UpliftRows(X2, t2, y2), test_cutoff="2025-06-01", tracking=TrackingConfig()
    )
    promoted = runner.invoke(app, ["models", "promote", "uplift", second.version])
    assert promoted.exit_code == 0, promoted.output
    fallback = _winback_list(tmp_path)
    assert "uplift" not in fallback["manifest"].model_versions
    assert "spend" in fallback["manifest"].parameters["uplift_note"]
    assert all(r["uplift"] is None for r in fallback["rows"])


def test_train_uplift_registers_and_gates(tracking, small_shop_dir):
    first = runner.invoke(app, ["train", "--target", "uplift", "--data", str(small_shop_dir)])
    assert first.exit_code == 0, first.output
    assert "held-out Qini" in first.output
    assert "winback-uplift version 1 is champion" in first.output
    again = runner.invoke(app, ["train", "--target", "uplift", "--data", str(small_shop_dir)])
    assert again.exit_code == 0, again.output
    assert "winback-uplift version 2" in again.output and "champion version 1" in again.output
