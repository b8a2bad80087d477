"""``POST /lists`` reads its rules and defaults from the service's ``winback.toml``."""

from __future__ import annotations

import textwrap

from tests.serving.api import test_service_http as shared

AUTH = shared.AUTH

CUSTOM = textwrap.dedent(
    """
    [lists]
    control_share = 0.2
    default_action = "newsletter"

    [[lists.rules]]
    name = "ranked"
    action = "vip_breakfast"
    conditions = [["tier", "!=", "no-such-tier"]]
    """
)


def _at_risk(client) -> dict:
    response = client.post(
        "/lists", json={"kind": "at-risk", "top": 50, "log_to_mlflow": False}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_custom_rule_in_the_config_changes_the_served_list(client, tmp_path, monkeypatch):
    before = _at_risk(client)["rows"]
    assert "vip_breakfast" not in {r["action"] for r in before}

    config = tmp_path / "winback.toml"
    config.write_text(CUSTOM)
    monkeypatch.setenv("WINBACK_CONFIG", str(config))
    body = _at_risk(client)
    rows = body["rows"]
    assert rows
    for row in rows:
        expected = "vip_breakfast" if row["tier"] is not None else "newsletter"
        assert row["action"] == expected, row
    assert sum(r["group"] == "control" for r in rows) == 10  # control_share 0.2 of 50
    assert body["manifest"]["parameters"]["list"]["actions"]["rules"][0]["name"] == "ranked"
    # the request still overrides the file
    response = client.post(
        "/lists",
        json={"kind": "at-risk", "top": 50, "control_share": 0.0, "log_to_mlflow": False},
        headers=AUTH,
    )
    assert all(r["group"] == "treatment" for r in response.json()["rows"])


def test_a_broken_rule_in_the_config_names_its_key(client, tmp_path, monkeypatch):
    config = tmp_path / "winback.toml"
    config.write_text(CUSTOM.replace('"!="', '"unlike"'))
    monkeypatch.setenv("WINBACK_CONFIG", str(config))
    response = client.post(
        "/lists", json={"kind": "at-risk", "top": 5, "log_to_mlflow": False}, headers=AUTH
    )
    assert response.status_code == 500
    assert "lists.rules.0.conditions.0.1" in response.json()["error"]
    assert str(config) in response.json()["error"]
