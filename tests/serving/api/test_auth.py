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


def test_keys_from_env_and_file(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("# CRM keys\nfile-key-1\n\n  file-key-2  # rotated 2024\n")
    config = ServingConfig(api_key_file=key_file)
    keys = load_api_keys(config, {"WINBACK_API_KEYS": " env-1, ,env-2 "})
    assert keys == {"env-1", "env-2", "file-key-1", "file-key-2"}
    assert read_key_file(key_file) == ["file-key-1", "file-key-2"]


def test_keys_from_env_only_via_from_env(tmp_path):
    key_file = tmp_path / "k"
    key_file.write_text("from-file\n")
    env = {"WINBACK_API_KEY_FILE": str(key_file)}
    assert load_api_keys(None, env) == {"from-file"}


def test_no_keys_at_all_is_an_error_that_says_what_to_set():
    with pytest.raises(ApiKeysMissing, match="WINBACK_API_KEYS"):
        load_api_keys(ServingConfig(), {})


def test_missing_key_file_is_named(tmp_path):
    config = ServingConfig(api_key_file=tmp_path / "nope")
    with pytest.raises(ApiKeysMissing, match="nope"):
        load_api_keys(config, {"WINBACK_API_KEYS": "a"})


def test_middleware_refuses_to_start_without_keys():
    with pytest.raises(ApiKeysMissing):
        ApiKeyMiddleware(app=None, keys=[])
