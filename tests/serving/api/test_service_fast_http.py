"""The service's fast paths through HTTP: large posted bodies, target selection, frozen state.

Uses the session ``client`` (conftest) over the three tiny models of
``test_service_http``. A body of ``direct_rows`` rows or more is typed in a
worker thread and skips the micro-batcher; its answer must not differ from the
models' own ``predict_proba``.
"""

from __future__ import annotations

import datetime as dt
import gc
import json

import numpy as np
import pytest

from serving.config import ServingConfig
from tests.serving.api.test_service_http import AUTH, FEATURES, VIP_FEATURES, synthetic_features

LARGE = ServingConfig().direct_rows + 44


@pytest.fixture(scope="module")
def served(serving_home):
    from serving.scoring.models import load_served_models
    from training.tracking.runs import TrackingConfig

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
    assert_scores_are_predict_proba(body, served, frame)


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


def test_the_lookup_body_is_what_the_response_model_writes(serving_home, served):
    from serving.api.schemas import ScoresResponse, scores_response_json
    from serving.scoring.lookup import ScoreLookup

    lookup = ScoreLookup.load(ServingConfig(home=serving_home).score_path)
    ids = lookup.head_ids(40)
    records = lookup.records(ids, models=served, explain=True)
    assert any(r["churn_risk"] is None for r in records)  # missing scores are covered
    assert any(r["reasons"]["churn"] for r in records)  # and reasons
    fast = json.loads(scores_response_json(records, ["NOPE-1"]))
    model = ScoresResponse(scores=records, not_found=["NOPE-1"])
    assert fast == json.loads(model.model_dump_json())


@pytest.mark.parametrize(
    "scored_at",
    [
        dt.datetime(2024, 4, 1, 2, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 4, 1, 2, 0, 0, 123456, tzinfo=dt.UTC),
        dt.datetime(2024, 4, 1, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2024, 4, 1, 2, 0),
    ],
)
def test_timestamps_are_written_as_pydantic_writes_them(scored_at):
    from serving.api.schemas import ScoresResponse, scores_response_json

    record = {
        "customer_id": "C1",
        "as_of": dt.date(2024, 3, 31),
        "churn_risk": 1e-05,
        "vip_potential": None,
        "reactivation_probability": None,
        "expected_value": 12.5,
        "predicted_value": None,
        "value_horizon_days": None,
        "tier": "silver — ünïcode",
        "is_active": True,
        "is_lapsed": False,
        "is_vip": False,
        "reasons": {"churn": ["no order for 140 days"], "vip": None, "reactivation": None},
        "model_versions": {"churn": "3", "vip": None, "reactivation": None},
        "feature_sets": {"churn": "churn_v1", "vip": None, "reactivation": None},
        "scored_at": scored_at,
    }
    fast = json.loads(scores_response_json([record], []))
    slow = json.loads(ScoresResponse(scores=[record], not_found=[]).model_dump_json())
    assert fast == slow  # numbers may be spelled differently (1e-05 / 0.00001), never valued
    assert fast["scores"][0]["scored_at"] == slow["scores"][0]["scored_at"]


def test_only_the_two_scoring_paths_skip_tracing(client):
    # BentoML builds four unsampled spans per request even with tracing off: the hot
    # paths skip them; the configuration must have reached the running app
    from bentoml._internal.configuration.containers import BentoMLContainer

    assert client.get("/readyz").status_code == 200
    excluded = BentoMLContainer.tracing_excluded_urls.get()
    for path in ("/scores", "/score_rows"):
        assert excluded.url_disabled(f"http://127.0.0.1:3000{path}")
    for path in ("/models", "/lists", "/lists/saved", "/drift", "/scores/other"):
        assert not excluded.url_disabled(f"http://127.0.0.1:3000{path}")


def test_the_server_parses_http_with_httptools():
    # uvicorn's "auto" protocol (what `bentoml serve` uses) falls back to pure-Python h11
    # without it: 15-20% more server CPU per lookup and ~40% fewer lookups/s on 2 cores
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    assert AutoHTTPProtocol.__name__ == "HttpToolsProtocol"


def assert_scores_are_predict_proba(body: dict, served, frame) -> None:
    """Each target's posted-row scores equal its model's ``predict_proba`` on ``frame``."""
    for target, score in (
        ("churn", "churn_risk"),
        ("vip", "vip_potential"),
        ("reactivation", "reactivation_probability"),
    ):
        model = served[target].model
        expected = model.predict_proba(frame[model.feature_set_.names])
        np.testing.assert_allclose(body["scores"][score], expected, rtol=0, atol=1e-12)
