"""Fixtures shared by the serving tests.

BentoML registers its Prometheus metrics once per process, so one in-process
ASGI app must serve every HTTP test module: the ``client`` fixture is defined
here, once, not re-exported from a test module (which would make a second app).
Likewise one real ``bentoml serve`` of the shared home (``served``) answers the
smoke and the contract tests: starting one takes 20-25 s on a loaded machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.serving.api.test_service_http import API_KEY, shared_serving_home


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory) -> Path:
    return shared_serving_home(tmp_path_factory)


@pytest.fixture(scope="session")
def served(serving_home):
    """The URL of a real ``bentoml serve`` of the shared home, for the whole session."""
    from tests.serving.api.test_serve_smoke import running_service

    with running_service(serving_home, "serve") as url:
        yield url


@pytest.fixture(scope="session")
def client(serving_home):
    from serving.api.service import WinbackService

    mp = pytest.MonkeyPatch()
    mp.setenv("WINBACK_HOME", str(serving_home))
    mp.setenv("WINBACK_API_KEYS", f"other-key-0123456789,{API_KEY}")
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("WINBACK_API_KEY_FILE", raising=False)
    mp.delenv("WINBACK_MODEL_VERSIONS", raising=False)
    try:
        with TestClient(WinbackService.to_asgi()) as test_client:
            yield test_client
    finally:
        mp.undo()
