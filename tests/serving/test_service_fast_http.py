"""The service's fast paths through HTTP: large posted bodies, target selection, frozen state.

Uses the session ``client`` (conftest) over the three tiny models of
``test_service_http``. A body of ``direct_rows`` rows or more is typed in a
worker thread and skips the micro-batcher; its answer must not differ from the
models' own ``predict_proba``.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from serving.config import ServingConfig
from tests.serving.test_service_http import AUTH, FEATURES, VIP_FEATURES, synthetic_features

LARGE = ServingConfig().direct_rows + 44


@pytest.fixture(scope="module")
def served(serving_home):
    from serving.scoring import load_served_models
    from training.tracking import TrackingConfig

    uri = TrackingConfig(root=str(serving_home / "mlruns")).resolved_tracking_uri()
    return load_served_models(ServingConfig(home=serving_home), tracking_uri=uri)


def _columns(n: int, seed: int, names: list[str]) -> tuple[dict, object]:
    frame = synthetic_features(n, seed).reset_index(drop=True)[names]
    plain = frame.astype(object).where(frame.notna(), None)
    return plain.to_dict("list"), frame


@pytest.mark.parametrize("form", ["columns", "rows"])
def test_a_large_body_scores_like_predict_proba(client, served, form):
    columns, frame = _columns(LARGE, 11, FEATURES.names)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    payload = {"columns": columns} if form == "columns" else {"rows": rows}
    response = client.post("/score_rows", json=payload, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"] == LARGE
    assert body["reasons"] is None
    for target, score in (
        ("churn", "churn_risk"),
        ("vip", "vip_potential"),
        ("reactivation", "reactivation_probability"),
    ):
        model = served[target].model
        expected = model.predict_proba(frame[model.feature_set_.names])
        np.testing.assert_allclose(body["scores"][score], expected, rtol=0, atol=1e-12)


def test_targets_select_the_models_and_the_columns_they_need(client, served):
    columns, frame = _columns(LARGE, 12, VIP_FEATURES.names)
    response = client.post(
        "/score_rows", json={"columns": columns, "targets": ["vip"]}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["scores"]) == ["vip_potential"]
    assert body["model_versions"] == {"vip": "1"}
    assert body["feature_sets"] == {"vip": VIP_FEATURES.name}
    expected = served["vip"].model.predict_proba(frame)
    np.testing.assert_allclose(body["scores"]["vip_potential"], expected, rtol=0, atol=1e-12)
    # churn needs more columns than vip's: the same body for churn names them
    churn = client.post(
        "/score_rows", json={"columns": columns, "targets": ["churn"]}, headers=AUTH
    )
    assert churn.status_code == 400
    assert set(churn.json()["missing"]) == {"days_since_last_order", "region"}


def test_a_large_body_with_a_bad_column_is_a_400_naming_it(client):
    columns, _ = _columns(LARGE, 13, FEATURES.names)
    columns["margin_365d_amount"][LARGE - 1] = "lots"
    response = client.post("/score_rows", json={"columns": columns}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["wrong_dtypes"] == {
        "margin_365d_amount": {"expected": "float64", "got": "str"}
    }


def test_the_loaded_state_is_frozen_out_of_the_garbage_collector(client):
    # a full collection would otherwise walk the whole score table on every pass
    assert client.get("/readyz").status_code == 200
    assert gc.get_freeze_count() > 0
