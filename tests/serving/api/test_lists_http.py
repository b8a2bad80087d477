"""The list endpoints of the service, through HTTP (in-process ASGI client)."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.serving.api import test_service_http as shared

# the served working directory (three champion models and a score table) of test_service_http
AUTH = shared.AUTH


def test_lists_need_a_key(client) -> None:
    assert client.post("/lists", json={"kind": "winback"}).status_code == 401
    assert client.post("/lists/saved", json={"list_id": "x"}).status_code == 401


def test_winback_list_as_json_then_fetched_by_id_as_csv(client) -> None:
    response = client.post(
        "/lists",
        json={"kind": "winback", "top": 50, "log_to_mlflow": False},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    manifest, rows = body["manifest"], body["rows"]
    assert manifest["kind"] == "winback" and manifest["rows"] == len(rows) == 50
    assert sum(r["group"] == "control" for r in rows) == manifest["control_rows"] == 5
    assert [r["rank"] for r in rows] == list(range(1, 51))
    assert all(r["reactivation_probability"] is not None for r in rows)
    assert manifest["model_versions"]["reactivation"] == "1"

    saved = client.post(
        "/lists/saved", json={"list_id": manifest["list_id"], "format": "csv"}, headers=AUTH
    )
    assert saved.status_code == 200
    assert saved.headers["content-type"].startswith("text/csv")
    assert saved.headers["x-list-id"] == manifest["list_id"]
    table = pd.read_csv(io.StringIO(saved.text))
    assert table["customer_id"].tolist() == [r["customer_id"] for r in rows]
    assert table["group"].tolist() == [r["group"] for r in rows]


def test_at_risk_list_as_csv_logged_to_mlflow(client) -> None:
    response = client.post(
        "/lists",
        json={"kind": "at-risk", "budget": 100.0, "contact_cost": 2.5, "format": "csv"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    table = pd.read_csv(io.StringIO(response.text))
    assert len(table) == 40  # what the budget pays for
    assert table["value_at_risk"].is_monotonic_decreasing
    saved = client.post(
        "/lists/saved", json={"list_id": response.headers["x-list-id"]}, headers=AUTH
    ).json()
    assert saved["manifest"]["mlflow_run_id"]


@pytest.mark.parametrize(
    ("payload", "status", "text"),
    [
        ({"kind": "everyone"}, 400, "kind"),
        ({"kind": "at-risk", "budget": 10.0}, 400, "contact-cost"),
        ({"kind": "at-risk", "control_share": 1.5}, 400, "control_share"),
    ],
)
def test_bad_list_requests_say_why(client, payload, status, text) -> None:
    response = client.post("/lists", json={**payload, "log_to_mlflow": False}, headers=AUTH)
    assert response.status_code == status
    assert text in response.text


def test_unknown_or_malformed_saved_list_ids(client) -> None:
    missing = client.post(
        "/lists/saved", json={"list_id": "winback-20250101T000000Z-abcdef"}, headers=AUTH
    )
    assert missing.status_code == 404
    assert client.post("/lists/saved", json={"list_id": "../x"}, headers=AUTH).status_code == 400
