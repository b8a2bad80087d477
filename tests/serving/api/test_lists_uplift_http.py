"""``POST /lists`` ranks win-back lists by the ``winback-uplift`` champion when there is one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.scoring import store
from tests.serving.api import test_service_http as shared
from training.tracking.runs import TrackingConfig, configure_tracking
from training.uplift.fit import fit_uplift
from training.uplift.record import UpliftRows, register_uplift, save_uplift_model

AUTH = shared.AUTH
COLUMNS = ["days_since_last_order", "order_count_365d"]


def _winback(client) -> dict:
    response = client.post(
        "/lists", json={"kind": "winback", "top": 60, "log_to_mlflow": False}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_served_winback_list_uses_the_uplift_champion(client, serving_home, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("WINBACK_UPLIFT_MODEL", raising=False)
    assert "uplift" not in _winback(client)["manifest"]["model_versions"]

    features = store.read_features(serving_home / "winback_output/scores", shared.AS_OF)
    rng = np.random.default_rng(3)
    n = 3_000
    X = pd.DataFrame({c: rng.choice(features[c].astype("float64").to_numpy(), n) for c in COLUMNS})
    t = rng.random(n) < 0.7
    y = rng.random(n) < 0.1 + t * np.where(
        X["order_count_365d"] >= X["order_count_365d"].median(), 0.3, 0
    )
    result = fit_uplift(X, t, y, pd.Series(range(n)).astype(str))
    tracking = TrackingConfig(root=str(serving_home / "mlruns"))
    trained = register_uplift(
        result, UpliftRows(X, t, y), test_cutoff="2025-01-01", tracking=tracking
    )
    try:
        body = _winback(client)
        assert body["manifest"]["model_versions"]["uplift"] == f"winback-uplift/{trained.version}"
        rows = pd.DataFrame(body["rows"])
        assert rows["uplift"].notna().all()
        assert rows["expected_incremental_margin"].is_monotonic_decreasing

        # WINBACK_UPLIFT_MODEL still overrides the champion
        path = save_uplift_model(result.model, tmp_path / "uplift.pkl")
        monkeypatch.setenv("WINBACK_UPLIFT_MODEL", str(path))
        assert _winback(client)["manifest"]["model_versions"]["uplift"] == str(path)
    finally:  # the served home is shared by the session: leave it without an uplift champion
        configure_tracking(tracking)
        mlflow.MlflowClient().delete_registered_model_alias("winback-uplift", "champion")
