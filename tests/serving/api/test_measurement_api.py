"""``POST /lists/measurement`` and the baselines of ``/models``.

A hand-built list (4 treated, 3 control) and a hand-built transaction file give
numbers computed by hand; the errors (unknown list, bad dates, no data) are
checked on the function and through the shared in-process HTTP app.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import anyio
import numpy as np
import pandas as pd
import pytest

from serving.api.measurement import measurement_endpoint, parse_as_of
from serving.api.schemas import MeasurementRequest, MeasurementResponse
from serving.config import ServingConfig
from serving.lists.store import SERVICE_LIST_DIR, ListManifest, save_list
from serving.measurement.campaign import newcombe_interval, welch_interval
from serving.measurement.data import MeasurementUnavailable, measurement_tables
from serving.scoring.baselines import run_comparison, split_baseline_metric
from tests.serving.api.test_service_http import AUTH

LIST_ID = "winback-20240331T090000Z-a1b2c3"
LIST_DATE = dt.date(2024, 3, 31)
GROUPS = {
    "T1": "treatment",
    "T2": "treatment",
    "T3": "treatment",
    "T4": "treatment",
    "C1": "control",
    "C2": "control",
    "C3": "control",
}
#: (customer, day, order, amount, margin, is_return)
LINES = [
    ("T1", "2024-03-31 23:59:00", "o0", 500.0, 200.0, False),  # on the list day: before
    ("T1", "2024-04-01 00:00:00", "o1", 100.0, 30.0, False),
    ("T1", "2024-04-20 10:00:00", "o2", 50.0, 10.0, False),
    ("T2", "2024-05-02 10:00:00", "o3", 80.0, 20.0, False),
    ("T2", "2024-05-10 10:00:00", "o3r", 30.0, -5.0, True),  # a return lowers revenue
    ("T4", "2024-06-30 10:00:00", "o4", 70.0, 7.0, False),  # after as_of 2024-05-31
    ("C1", "2024-04-15 10:00:00", "o5", 40.0, 8.0, False),
    ("X9", "2024-04-15 10:00:00", "o6", 999.0, 99.0, False),  # not on the list
]


def _home(tmp_path: Path) -> Path:
    frame = pd.DataFrame({"customer_id": list(GROUPS), "group": list(GROUPS.values())})
    frame["rank"] = np.arange(1, len(frame) + 1)
    draft = ListManifest(list_id=LIST_ID, kind="winback", as_of=str(LIST_DATE))
    save_list(frame, tmp_path / SERVICE_LIST_DIR, draft)
    tx = pd.DataFrame(
        LINES,
        columns=["customer_id", "ordered_at", "order_id", "amount", "margin_amount", "is_return"],
    )
    tx["ordered_at"] = tx["ordered_at"] + "+00:00"
    tx.to_csv(tmp_path / "transactions.csv", index=False)
    return tmp_path


def _state(home: Path, data: str | None = "transactions.csv") -> SimpleNamespace:
    return SimpleNamespace(config=ServingConfig(home=home, measurement_data=data))


def _call(state, **body):
    import json

    response = anyio.run(measurement_endpoint, state, MeasurementRequest(**body))
    return response.status_code, json.loads(response.body)


def test_measures_a_saved_list_by_hand(tmp_path) -> None:
    status, body = _call(_state(_home(tmp_path)), list_id=LIST_ID, as_of="2024-05-31")
    assert status == 200, body
    MeasurementResponse.model_validate(body)
    assert (body["list_date"], body["as_of"], body["data_until"]) == (
        "2024-03-31",
        "2024-05-31",
        "2024-06-30",
    )
    metrics = {m["metric"]: m for m in body["metrics"]}
    assert list(metrics) == [
        "reactivation_rate",
        "revenue_per_customer",
        "margin_per_customer",
    ]
    rate = metrics["reactivation_rate"]
    assert (rate["n_treatment"], rate["n_control"]) == (4, 3)
    assert rate["treatment"] == pytest.approx(2 / 4)  # T1, T2 ordered; T4 after as_of
    assert rate["control"] == pytest.approx(1 / 3)
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx(newcombe_interval(2, 4, 1, 3))
    revenue_t = [150.0, 50.0, 0.0, 0.0]  # T2: 80 bought - 30 returned
    revenue_c = [40.0, 0.0, 0.0]
    revenue = metrics["revenue_per_customer"]
    assert revenue["treatment"] == pytest.approx(np.mean(revenue_t))
    assert revenue["control"] == pytest.approx(np.mean(revenue_c))
    low, high, p = welch_interval(np.array(revenue_t), np.array(revenue_c))
    assert (revenue["ci_low"], revenue["ci_high"], revenue["p_value"]) == pytest.approx(
        (low, high, p)
    )
    assert metrics["margin_per_customer"]["treatment"] == pytest.approx((40.0 + 15.0) / 4)
    groups = {(g["group"], g["metric"]): g for g in body["groups"]}
    treated = groups[("treatment", "reactivation_rate")]
    assert treated["n"] == 4 and treated["ci_low"] < 0.5 < treated["ci_high"]


def test_as_of_defaults_to_the_end_of_the_data(tmp_path) -> None:
    status, body = _call(_state(_home(tmp_path)), list_id=LIST_ID)
    assert status == 200
    assert body["as_of"] == body["data_until"] == "2024-06-30"
    rate = next(m for m in body["metrics"] if m["metric"] == "reactivation_rate")
    assert rate["treatment"] == pytest.approx(3 / 4)  # T4's June order now counts


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"list_id": "winback-20990101T000000Z-ffffff"}, 404, "no saved list"),
        ({"list_id": LIST_ID, "as_of": "31/05/2024"}, 400, "use YYYY-MM-DD"),
        ({"list_id": LIST_ID, "as_of": "2024-03-31"}, 400, "must be after the list date"),
        ({"list_id": LIST_ID, "as_of": "2024-01-01"}, 400, "must be after the list date"),
        ({"list_id": LIST_ID, "as_of": "2024-07-01"}, 400, "after the last day of the"),
    ],
)
def test_bad_requests_are_named(tmp_path, body, status, words) -> None:
    got, answer = _call(_state(_home(tmp_path)), **body)
    assert got == status
    assert words in answer["error"]


def test_a_malformed_list_id_is_refused_by_the_request_model() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="should match pattern"):
        MeasurementRequest(list_id="../etc/passwd")  # BentoML answers this with a 400


def test_without_data_the_service_says_what_to_configure(tmp_path) -> None:
    home = _home(tmp_path)
    status, body = _call(_state(home, data=None), list_id=LIST_ID, as_of="2024-05-31")
    assert status == 409
    assert "WINBACK_MEASUREMENT_DATA" in body["error"]
    status, body = _call(_state(home, data="nowhere.csv"), list_id=LIST_ID)
    assert status == 409
    assert "nowhere.csv" in body["error"] and "does not exist" in body["error"]
    with pytest.raises(MeasurementUnavailable, match="simulated"):
        measurement_tables(ServingConfig(home=home))


def test_data_ending_on_the_list_date_has_nothing_to_measure(tmp_path) -> None:
    home = _home(tmp_path)
    tx = pd.read_csv(home / "transactions.csv")
    tx[tx["ordered_at"] < "2024-04"].to_csv(home / "early.csv", index=False)
    status, body = _call(_state(home, data="early.csv"), list_id=LIST_ID)
    assert status == 400
    assert "ends on 2024-03-31" in body["error"]


def test_a_list_without_control_group_cannot_be_compared(tmp_path) -> None:
    home = _home(tmp_path)
    frame = pd.DataFrame({"customer_id": ["T1", "T2"], "group": ["treatment", "treatment"]})
    other = "winback-20240331T090000Z-000000"
    save_list(frame, home / SERVICE_LIST_DIR, ListManifest(other, "winback", str(LIST_DATE)))
    status, body = _call(_state(home), list_id=other, as_of="2024-05-31")
    assert status == 422
    assert "0 'control'" in body["error"]


def test_environment_names_the_measurement_data() -> None:
    config = ServingConfig.from_env(
        {"WINBACK_MEASUREMENT_DATA": "shop.duckdb", "WINBACK_MEASUREMENT_MAPPING": "m.toml"},
        home=Path("/srv/winback"),
    )
    assert config.measurement_path == Path("/srv/winback/shop.duckdb")
    assert config.measurement_mapping == "m.toml"
    assert ServingConfig(measurement_data="simulated").measurement_path is None
    assert parse_as_of(" 2024-05-31 ") == dt.date(2024, 5, 31)


# ------------------------------------------------------------------ baselines


def test_baseline_metrics_are_split_by_known_metric_names() -> None:
    names = ["roc_auc", "pr_auc", "lift_at_10", "expected_maximum_profit"]
    assert split_baseline_metric("baseline_rfm_recency_roc_auc", names) == (
        "rfm_recency",
        "roc_auc",
    )
    assert split_baseline_metric("baseline_logistic_pr_auc", names) == ("logistic", "pr_auc")
    assert split_baseline_metric("baseline_bgnbd_lift_at_10", names) == ("bgnbd", "lift_at_10")
    assert split_baseline_metric("baseline_rfm_unknown_thing", names) is None
    assert split_baseline_metric("baseline_roc_auc", names) is None  # no baseline name
    assert split_baseline_metric("test_roc_auc", names) is None


def test_run_comparison_from_hand_built_run_metrics() -> None:
    metrics = {
        "test_roc_auc": 0.81,
        "test_pr_auc": 0.42,
        "validation_roc_auc": 0.83,
        "baseline_rfm_recency_roc_auc": 0.70,
        "baseline_rfm_recency_pr_auc": 0.30,
        "baseline_logistic_roc_auc": 0.78,
        "baseline_logistic_brier": 0.2,  # the model has no test_brier: left out
        "test_log_loss": 0.5,
        "baseline_rfm_recency_log_loss": float("nan"),  # rank-only baseline: no log loss
        "oracle_roc_auc": 0.86,
        "bgnbd_feature_roc_auc": 0.8,
        "tuning_best_validation_roc_auc": 0.84,
    }
    got = run_comparison(metrics, "run-1")
    assert got.test_metrics == {"roc_auc": 0.81, "pr_auc": 0.42, "log_loss": 0.5}
    assert got.baselines == {
        "logistic": {"roc_auc": 0.78},
        "rfm_recency": {"roc_auc": 0.70, "pr_auc": 0.30},
    }
    assert got.oracle == {"roc_auc": 0.86}
    assert got.ceiling is None and got.verdict is None and got.loses_to == ()
    assert run_comparison({"test_roc_auc": 0.8}).oracle is None  # real data: no oracle
    rich = run_comparison(
        {"test_roc_auc": 0.8, "ceiling_roc_auc": 0.88, "ceiling_brier": 0.1},
        tags={"verdict": "loses to logistic", "loses_to": "logistic,rfm"},
    )
    assert rich.ceiling == {"roc_auc": 0.88}  # only metrics the model has
    assert rich.to_fields()["loses_to"] == ["logistic", "rfm"]
    assert rich.to_fields()["verdict"] == "loses to logistic"


def test_models_list_the_value_model_with_its_gini_and_verdict() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from features.feature_sets import FeatureSet
    from serving.api.service import describe_models
    from serving.scoring.models import ServedModels
    from serving.scoring.value import ServedValueModel

    regressor = SimpleNamespace(feature_set_=FeatureSet("value_v1", (("orders_365d", "float64"),)))
    value = ServedValueModel(
        SimpleNamespace(regressor=regressor, horizon_days=365),
        "winback-value",
        "4",
        run_id="run-v",
        run_metrics={
            "test_normalized_gini": 0.61,
            "baseline_btyd_normalized_gini": 0.52,
            "ceiling_normalized_gini": 0.7,
        },
        run_tags={"verdict": "beats every baseline", "loses_to": ""},
    )
    lookup = SimpleNamespace(as_of=dt.date(2025, 1, 31), rows=3, model_versions=lambda: {})
    state = SimpleNamespace(
        models=ServedModels({}, value=value), lookup=lookup, config=ServingConfig()
    )
    (info,) = describe_models(state).models
    assert (info.target, info.name, info.version) == ("value", "winback-value", "4")
    assert info.test_metrics == {"normalized_gini": 0.61}
    assert info.baselines == {"btyd": {"normalized_gini": 0.52}}
    assert info.ceiling == {"normalized_gini": 0.7}
    assert info.verdict == "beats every baseline" and info.loses_to == []


# ------------------------------------------------------------------ through HTTP


def champion_runs(home: Path) -> dict[str, str]:
    """The MLflow run id of each target's champion in the shared home."""
    from mlflow.tracking import MlflowClient

    from training.tracking import model_registry
    from training.tracking.runs import TrackingConfig

    track = TrackingConfig(root=str(home / "mlruns"))
    client = MlflowClient(
        tracking_uri=track.resolved_tracking_uri(), registry_uri=track.resolved_registry_uri()
    )
    return {
        target: model_registry.champion(target, client=client).run_id
        for target in ("churn", "vip", "reactivation")
    }


def test_models_show_baselines_next_to_the_test_metrics(client, serving_home) -> None:
    runs = champion_runs(serving_home)
    body = client.post("/models", headers=AUTH).json()
    for model in body["models"]:
        assert model["run_id"] == runs[model["target"]]
        assert model["test_metrics"]["roc_auc"] == pytest.approx(
            {"churn": 0.80, "vip": 0.81, "reactivation": 0.82}[model["target"]]
        )
        assert model["baselines"] == {
            "logistic": {"roc_auc": 0.75},
            "rfm_recency": {"roc_auc": 0.70},
        }
        assert model["oracle"] == {"roc_auc": 0.90}
        assert model["metrics"]  # the registry's metrics are still there
        losing = model["target"] == "vip"
        assert model["loses_to"] == (["logistic"] if losing else [])
        assert model["verdict"].startswith("loses to" if losing else "beats every")


def test_measurement_endpoint_over_http(client) -> None:
    assert client.post("/lists/measurement", json={"list_id": LIST_ID}).status_code == 401
    unknown = client.post(
        "/lists/measurement", json={"list_id": "winback-20990101T000000Z-ffffff"}, headers=AUTH
    )
    assert unknown.status_code == 404
    made = client.post(
        "/lists", json={"kind": "winback", "top": 20, "log_to_mlflow": False}, headers=AUTH
    ).json()
    list_id = made["manifest"]["list_id"]
    before = client.post(
        "/lists/measurement",
        json={"list_id": list_id, "as_of": made["manifest"]["as_of"]},
        headers=AUTH,
    )
    assert before.status_code == 400 and "after the list date" in before.json()["error"]
    # the shared test service has no measurement data configured: 409 saying what to set
    answer = client.post("/lists/measurement", json={"list_id": list_id}, headers=AUTH)
    assert answer.status_code == 409
    assert "WINBACK_MEASUREMENT_DATA" in answer.json()["error"]
    bad = client.post("/lists/measurement", json={"list_id": list_id, "extra": 1}, headers=AUTH)
    assert bad.status_code == 400
