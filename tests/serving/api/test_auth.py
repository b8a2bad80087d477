"""API-key middleware: which requests pass, what a rejected one gets, where keys come from."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.api.auth import (
    ApiKeyMiddleware,
    ApiKeysMissing,
    key_is_valid,
    load_api_keys,
    presented_key,
    read_key_file,
)
from serving.config import ServingConfig


def _app(keys=("k-one", "k-two")) -> TestClient:
    async def ok(request):
        return PlainTextResponse("ok")

    routes = [Route(p, ok) for p in ("/healthz", "/livez", "/readyz", "/scores", "/metrics")]
    app = Starlette(routes=routes)
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    return TestClient(app)


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_paths_need_no_key(path):
    assert _app().get(path).status_code == 200


@pytest.mark.parametrize("path", ["/scores", "/metrics"])
def test_other_paths_reject_a_missing_key_with_json_401(path):
    response = _app().get(path)
    assert response.status_code == 401
    assert "API key" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer k-one"},
        {"authorization": "bearer k-two"},
        {"X-API-Key": "k-two"},
    ],
)
def test_valid_keys_pass_in_either_header(headers):
    assert _app().get("/scores", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer k-on"},
        {"Authorization": "Bearer k-one-more"},
        {"Authorization": "Basic k-one"},
        {"Authorization": "Bearer "},
        {"X-API-Key": ""},
        {"X-API-Key": "K-ONE"},
    ],
)
def test_wrong_keys_are_rejected(headers):
    assert _app().get("/scores", headers=headers).status_code == 401


def test_presented_key_prefers_bearer_over_header():
    headers = [(b"x-api-key", b"b"), (b"authorization", b"Bearer a")]
    assert presented_key(headers) == "a"
    assert presented_key([(b"x-api-key", b"b")]) == "b"
    assert presented_key([]) is None


def test_key_is_valid_checks_every_key():
    keys = [b"alpha", b"beta"]
    assert key_is_valid("beta", keys)
    assert not key_is_valid("bet", keys)
    assert not key_is_valid("", keys)
    assert not key_is_valid("beta", [])


LONG = "0123456789abcdef"  # 16 characters, the shortest key accepted


def test_keys_from_env_and_file(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(f"# CRM keys\nfile-key-1-{LONG}\n\n  file-key-2-{LONG}  \n")
    config = ServingConfig(api_key_file=key_file)
    keys = load_api_keys(config, {"WINBACK_API_KEYS": f" env-1-{LONG}, ,env-2-{LONG} "})
    assert keys == {f"env-1-{LONG}", f"env-2-{LONG}", f"file-key-1-{LONG}", f"file-key-2-{LONG}"}
    assert read_key_file(key_file) == [f"file-key-1-{LONG}", f"file-key-2-{LONG}"]


def test_only_lines_starting_with_a_hash_are_comments(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(f"  # a comment\nk3#x-{LONG}\n#k4-{LONG}\n")
    assert read_key_file(key_file) == [f"k3#x-{LONG}"]  # not silently cut to 'k3'


@pytest.mark.parametrize("short", ["change-me", LONG[:-1]])
def test_keys_shorter_than_16_characters_are_refused_without_printing_them(tmp_path, short):
    key_file = tmp_path / "keys"
    key_file.write_text(f"{LONG}\n{short}\n")
    config = ServingConfig(api_key_file=key_file)
    with pytest.raises(ApiKeysMissing, match="at least 16 characters") as error:
        load_api_keys(config, {"WINBACK_API_KEYS": LONG})
    assert f"key 2 of {key_file}" in str(error.value)
    assert short not in str(error.value)
    assert load_api_keys(ServingConfig(), {"WINBACK_API_KEYS": LONG}) == {LONG}


def test_keys_from_env_only_via_from_env(tmp_path):
    key_file = tmp_path / "k"
    key_file.write_text(f"from-file-{LONG}\n")
    env = {"WINBACK_API_KEY_FILE": str(key_file)}
    assert load_api_keys(None, env) == {f"from-file-{LONG}"}


def test_a_401_is_logged_with_the_client_address_and_counted(caplog):
    from prometheus_client import REGISTRY

    def count(reason: str) -> float:
        value = REGISTRY.get_sample_value("winback_unauthorized_requests_total", {"reason": reason})
        return value or 0.0

    before = count("invalid"), count("missing")
    with caplog.at_level("WARNING", logger="winback.serving.auth"):
        _app().get("/scores", headers={"X-API-Key": "wrong"})
        _app().get("/scores")
    assert (count("invalid"), count("missing")) == (before[0] + 1, before[1] + 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("401 GET /scores from testclient" in m and "invalid" in m for m in warnings)
    assert all("wrong" not in m for m in warnings)  # the presented key is never logged


def test_no_keys_at_all_is_an_error_that_says_what_to_set():
    with pytest.raises(ApiKeysMissing, match="WINBACK_API_KEYS"):
        load_api_keys(ServingConfig(), {})


def test_missing_key_file_is_named(tmp_path):
    config = ServingConfig(api_key_file=tmp_path / "nope")
    with pytest.raises(ApiKeysMissing, match="nope"):
        load_api_keys(config, {"WINBACK_API_KEYS": LONG})


def test_middleware_refuses_to_start_without_keys():
    with pytest.raises(ApiKeysMissing):
        ApiKeyMiddleware(app=None, keys=[])
