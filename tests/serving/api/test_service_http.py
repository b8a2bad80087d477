"""The BentoML service through HTTP, in process (ASGI test client): every endpoint, auth, bad input.

A session fixture trains three tiny LightGBM models, registers them as
champions in a temporary MLflow registry and writes a score table, exactly as
``winback train`` and ``winback score`` leave a working directory.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import FeatureSet
from serving.config import ServingConfig
from serving.scoring.store import read_scores
from tests.training.test_tracking import migrated_tracking_db

API_KEY = "test-key-0123456789"
AS_OF = dt.date(2024, 3, 31)
FEATURES = FeatureSet(
    "http_test_v1",
    (
        ("days_since_last_order", "float64"),
        ("order_count_365d", "float64"),
        ("margin_365d_amount", "float64"),
        ("region", "category"),
    ),
)
VIP_FEATURES = FeatureSet(
    "http_test_vip_v1",
    (("order_count_365d", "float64"), ("margin_365d_amount", "float64")),
)
#: Which feature drives each tiny model, and in which direction.
DRIVERS = {
    "churn": ("days_since_last_order", 1.0),
    "vip": ("margin_365d_amount", 1.0),
    "reactivation": ("days_since_last_order", -1.0),
}


def synthetic_features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "days_since_last_order": rng.uniform(0, 400, n),
            "order_count_365d": rng.poisson(4, n).astype("float64"),
            "margin_365d_amount": rng.gamma(2.0, 50.0, n),
            "region": pd.array(rng.choice(["north", "south", "east"], n), dtype="string"),
        },
        index=pd.Index([f"C{i:05d}" for i in range(n)], dtype="string", name="customer_id"),
    )
    frame.loc[frame.index[::17], "days_since_last_order"] = np.nan
    return frame


def _labels(frame: pd.DataFrame, target: str, seed: int) -> np.ndarray:
    column, sign = DRIVERS[target]
    x = frame[column].fillna(frame[column].median())
    z = sign * (x - x.mean()) / x.std()
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=len(frame)) < 1 / (1 + np.exp(-2 * z))).astype(int)


def training_run_metrics(i: int) -> dict[str, float]:
    """Test, baseline and oracle metrics of the ``i``-th fixture model's run, as ``winback train``
    names them (``/models`` and the console's model panel show them)."""
    return {
        "test_roc_auc": 0.80 + i / 100,
        "test_pr_auc": 0.40,
        "baseline_rfm_recency_roc_auc": 0.70,
        "baseline_logistic_roc_auc": 0.75,
        "oracle_roc_auc": 0.90,
    }


def training_run_verdict(i: int) -> dict[str, str]:
    """The ``verdict``/``loses_to`` tags ``winback train`` sets; the second model loses."""
    if i == 1:
        return {"verdict": "loses to logistic (Δ ROC AUC -0.02)", "loses_to": "logistic"}
    return {"verdict": "beats every baseline", "loses_to": ""}


def make_serving_home(home: Path, customers: int = 300) -> Path:
    """A working directory with three champion models in ``mlruns/`` and a score table."""
    import mlflow

    from serving.scoring.models import load_served_models
    from serving.scoring.store import write_score_table
    from serving.scoring.table import score_table
    from training.model.classifier import WinbackClassifier
    from training.tracking import model_io, model_registry, runs

    config = runs.TrackingConfig(root=str(home / "mlruns"))
    for i, target in enumerate(("churn", "vip", "reactivation")):
        fs = VIP_FEATURES if target == "vip" else FEATURES
        train, valid = synthetic_features(1500, 10 + i), synthetic_features(500, 20 + i)
        model = WinbackClassifier(
            fs, n_estimators=30, num_leaves=7, min_child_samples=20, calibration="sigmoid"
        )
        model.fit(
            train[fs.names],
            _labels(train, target, 1),
            eval_set=(valid[fs.names], _labels(valid, target, 2)),
        )
        with runs.start_training_run(target, config) as run:
            model_io.log_model(model, input_example=train[fs.names])
            mlflow.log_metrics(training_run_metrics(i))
            mlflow.set_tags(training_run_verdict(i))
            version = model_registry.register(
                run.info.run_id, target, test_cutoff="2024-01-01", metrics={"roc_auc": 0.8}
            )
        model_registry.promote(target, version, reason="test fixture")
    mlflow.set_tracking_uri(None)

    serving_config = ServingConfig(home=home)
    models = load_served_models(serving_config, tracking_uri=config.resolved_tracking_uri())
    frame = synthetic_features(customers, 99)
    rng = np.random.default_rng(5)
    frame["is_active"] = frame["days_since_last_order"].fillna(0) <= 180
    frame["is_lapsed"] = ~frame["is_active"]
    frame["is_vip"] = frame["is_active"] & (rng.uniform(size=customers) < 0.05)
    frame["tier"] = np.where(frame["is_vip"], "gold", "standard")
    frame["trailing_margin"] = frame["margin_365d_amount"]
    table = score_table(frame, models, as_of=AS_OF, explain_top=5)
    write_score_table(table, frame[models.feature_set().names], serving_config.score_path, AS_OF)
    return home


def shared_serving_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One serving home per test session, shared by the HTTP and the smoke tests."""
    home = tmp_path_factory.getbasetemp() / "winback-serving-home"
    if not (home / ".ready").exists():
        (home / "mlruns").mkdir(parents=True, exist_ok=True)
        # an empty store whose schema is migrated already: migrating one takes seconds
        shutil.copy(migrated_tracking_db(tmp_path_factory), home / "mlruns" / "mlflow.db")
        make_serving_home(home)
        (home / ".ready").touch()
    return home


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _ids(serving_home: Path, n: int) -> list[str]:
    scores = read_scores(serving_home / "winback_output/scores", AS_OF)
    return scores["customer_id"].head(n).tolist()


# ------------------------------------------------------------------ health


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_needs_no_key(client, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/scores"),
        ("post", "/score_rows"),
        ("post", "/models"),
        ("get", "/metrics"),
        ("get", "/docs.json"),
    ],
)
def test_every_other_path_needs_a_key(client, method, path):
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert "API key" in response.json()["error"]
    wrong = client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_openapi_with_a_key(client):
    # /metrics with a key is checked against a real server (test_serve_smoke.py):
    # in process, BentoML's Prometheus client has no multiprocess directory.
    spec = client.get("/docs.json", headers={"X-API-Key": API_KEY}).json()
    assert {"/scores", "/score_rows", "/models"} <= set(spec["paths"])


# ------------------------------------------------------------------ lookups


def test_scores_by_id_with_reasons_and_not_found(client, serving_home):
    ids = _ids(serving_home, 3)
    response = client.post("/scores", json={"customer_ids": [*ids, "NOPE-1"]}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert [s["customer_id"] for s in body["scores"]] == ids
    assert body["not_found"] == ["NOPE-1"]
    table = read_scores(serving_home / "winback_output/scores", AS_OF)
    table = table.set_index("customer_id")
    for record in body["scores"]:
        stored = table.loc[record["customer_id"]]
        assert record["as_of"] == AS_OF.isoformat()
        assert set(record["model_versions"].values()) == {"1"}
        assert record["feature_sets"]["vip"] == "http_test_vip_v1"
        for score, target in (
            ("churn_risk", "churn"),
            ("reactivation_probability", "reactivation"),
        ):
            if pd.isna(stored[score]):
                assert record[score] is None
                assert record["reasons"][target] is None
            else:
                assert record[score] == pytest.approx(stored[score])
                # explained on demand when not stored (a list, possibly empty when
                # nothing pushes the score up)
                assert isinstance(record["reasons"][target], list)
                assert all(isinstance(r, str) and r for r in record["reasons"][target])


def test_all_unknown_ids_get_404(client):
    response = client.post("/scores", json={"customer_ids": ["X1", "X2"]}, headers=AUTH)
    assert response.status_code == 404
    body = response.json()
    assert body["not_found"] == ["X1", "X2"]
    assert "none of the 2 customer ids" in body["error"]


@pytest.mark.parametrize(
    "payload",
    [{}, {"customer_ids": []}, {"customer_ids": "C00001"}, {"customer_ids": ["a"], "x": 1}],
)
def test_malformed_lookup_is_a_400(client, payload):
    response = client.post("/scores", json=payload, headers=AUTH)
    assert response.status_code == 400


# ------------------------------------------------------------- posted rows


def _rows(n: int) -> list[dict]:
    frame = synthetic_features(n, 7).reset_index(drop=True)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return rows


def test_score_rows_matches_the_models_in_process(client, serving_home):
    from serving.scoring.models import load_served_models
    from serving.scoring.predict import predict_scores
    from training.tracking.runs import TrackingConfig

    rows = _rows(40)
    response = client.post("/score_rows", json={"rows": rows}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"] == 40
    assert body["model_versions"] == {"churn": "1", "vip": "1", "reactivation": "1"}
    uri = TrackingConfig(root=str(serving_home / "mlruns")).resolved_tracking_uri()
    models = load_served_models(ServingConfig(home=serving_home), tracking_uri=uri)
    expected = predict_scores(models, synthetic_features(40, 7).reset_index(drop=True))
    for column in ("churn_risk", "vip_potential", "reactivation_probability"):
        np.testing.assert_allclose(body["scores"][column], expected[column].to_numpy())


def test_score_rows_columnar_one_target_with_reasons(client):
    frame = synthetic_features(5, 3)
    columns = {
        "order_count_365d": frame["order_count_365d"].tolist(),
        "margin_365d_amount": frame["margin_365d_amount"].tolist(),
    }
    response = client.post(
        "/score_rows",
        json={"columns": columns, "targets": ["vip"], "explain": True},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["scores"]) == ["vip_potential"]
    assert len(body["scores"]["vip_potential"]) == 5
    assert len(body["reasons"]["vip"]) == 5


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.pop("order_count_365d"), ["order_count_365d"]),
        (lambda r: r.update(postcode="AB1"), ["postcode"]),
        (lambda r: r.update(margin_365d_amount="lots"), ["margin_365d_amount"]),
        (lambda r: r.update(region=3), ["region"]),
    ],
)
def test_bad_rows_get_a_400_naming_the_columns(client, change, named):
    rows = _rows(3)
    for row in rows:
        change(row)
    response = client.post("/score_rows", json={"rows": rows}, headers=AUTH)
    assert response.status_code == 400
    body = response.json()
    for column in named:
        assert column in body["error"]


def test_a_column_missing_from_one_row_is_not_nan_filled(client):
    rows = _rows(3)
    del rows[1]["days_since_last_order"]
    response = client.post("/score_rows", json={"rows": rows}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["incomplete_rows"] == {"days_since_last_order": [1]}


@pytest.mark.parametrize(
    "payload",
    [{"rows": []}, {"rows": [{"a": 1}], "columns": {"a": [1]}}, {"targets": ["upsell"]}, []],
)
def test_malformed_row_requests_are_4xx(client, payload):
    response = client.post("/score_rows", json=payload, headers=AUTH)
    assert 400 <= response.status_code < 500


# ------------------------------------------------------------------ models


def test_models_lists_versions_feature_sets_and_metrics(client):
    response = client.post("/models", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    by_target = {m["target"]: m for m in body["models"]}
    assert set(by_target) == {"churn", "vip", "reactivation"}
    assert by_target["vip"]["feature_columns"] == VIP_FEATURES.names
    assert by_target["churn"]["version"] == "1"
    assert by_target["churn"]["metrics"] == {"roc_auc": 0.8}
    assert body["score_table"]["as_of"] == AS_OF.isoformat()
    assert body["score_table"]["rows"] == 300
    assert body["score_table"]["stale_targets"] == []
    config = ServingConfig()  # the served process runs with the defaults
    assert body["limits"] == {
        "max_body_bytes": config.max_body_bytes,
        "max_rows": config.max_rows,
        "max_explain_rows": config.max_explain_rows,
        "max_customer_ids": 1000,
    }


# ------------------------------------------------------------------ start-up
# (The service instance is built directly: BentoML's metrics allow one ASGI app per process.)


def test_start_fails_fast_naming_the_missing_score_table(serving_home, tmp_path, monkeypatch):
    from serving.api.service import WinbackService
    from serving.scoring.models import ServingSetupError

    monkeypatch.setenv("WINBACK_HOME", str(serving_home))
    monkeypatch.setenv("WINBACK_SCORE_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("WINBACK_API_KEYS", API_KEY)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ServingSetupError, match="winback score --as-of"):
        WinbackService()


def test_start_fails_fast_naming_the_missing_registry(tmp_path, monkeypatch):
    from serving.api.service import WinbackService
    from serving.scoring.models import ServingSetupError

    monkeypatch.setenv("WINBACK_HOME", str(tmp_path))
    monkeypatch.setenv("WINBACK_API_KEYS", API_KEY)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ServingSetupError, match="winback train --target churn"):
        WinbackService()
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


def test_start_fails_without_api_keys(serving_home, monkeypatch):
    from serving.api.auth import ApiKeysMissing
    from serving.api.service import WinbackService

    monkeypatch.setenv("WINBACK_HOME", str(serving_home))
    monkeypatch.delenv("WINBACK_API_KEYS", raising=False)
    monkeypatch.delenv("WINBACK_API_KEY_FILE", raising=False)
    with pytest.raises(ApiKeysMissing, match="WINBACK_API_KEYS"):
        WinbackService()


def test_pinned_version_that_does_not_exist_is_named(serving_home, monkeypatch):
    from serving.api.service import WinbackService
    from serving.scoring.models import ServingSetupError

    monkeypatch.setenv("WINBACK_HOME", str(serving_home))
    monkeypatch.setenv("WINBACK_API_KEYS", API_KEY)
    monkeypatch.setenv("WINBACK_MODEL_VERSIONS", "churn=7")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ServingSetupError, match="winback-churn v7"):
        WinbackService()


def test_no_customer_data_in_logs(client, serving_home, caplog):
    rows = _rows(2)
    rows[0]["margin_365d_amount"] = "secret-value-123"
    with caplog.at_level("DEBUG"):
        client.post("/score_rows", json={"rows": rows}, headers=AUTH)
        client.post("/scores", json={"customer_ids": "not-a-list-secret"}, headers=AUTH)
    text = caplog.text + os.linesep.join(str(r.args) for r in caplog.records)
    assert "secret-value-123" not in text
    assert "not-a-list-secret" not in text
