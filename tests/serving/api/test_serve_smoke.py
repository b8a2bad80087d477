"""Smoke test: a real ``bentoml serve`` process on a free loopback port answers with a key."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.api.test_service_http import API_KEY

STARTUP_TIMEOUT_S = 180  # generous: 8 processes may share 2 cores in CI


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bentoml() -> str:
    path = Path(sys.executable).parent / "bentoml"
    return str(path) if path.exists() else "bentoml"


@contextlib.contextmanager
def running_service(
    home: Path, log_name: str, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real ``bentoml serve`` of ``home`` on a free loopback port until the block ends.

    Yields the base URL once ``/readyz`` answers 200; fails the test (naming the
    log file) when the process exits or is not ready in time.
    """
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "WINBACK_HOME": str(home),
        "WINBACK_API_KEYS": API_KEY,
    }
    for key in (
        "MLFLOW_TRACKING_URI",
        "WINBACK_SCORE_DIR",
        "WINBACK_MEASUREMENT_DATA",
        "WINBACK_MEASUREMENT_MAPPING",
    ):
        env.pop(key, None)
    env.update(extra_env or {})
    log = (home / f"{log_name}-{port}.log").open("w")
    process = subprocess.Popen(
        [_bentoml(), "serve", "serving.api.service:WinbackService"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited with {process.returncode}: see {log.name}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"service not ready after {STARTUP_TIMEOUT_S} s: see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def test_real_server_answers_with_a_key_and_refuses_without(served, serving_home):
    """``served``: the session's real ``bentoml serve`` of ``serving_home`` (conftest)."""
    import pandas as pd

    home = serving_home
    scores = next((home / "winback_output" / "scores").glob("v-*/scores.parquet"))
    customer_id = pd.read_parquet(scores)["customer_id"].iloc[0]
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=served, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/scores", json={"customer_ids": [customer_id]}).status_code == 401
        ok = client.post("/scores", json={"customer_ids": [customer_id, "NOPE"]}, headers=auth)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["scores"][0]["customer_id"] == customer_id
        assert body["not_found"] == ["NOPE"]
        metrics = client.get("/metrics", headers=auth)
        assert metrics.status_code == 200
        assert "bentoml_service_request" in metrics.text
