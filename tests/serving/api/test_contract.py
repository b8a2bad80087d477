"""The service holds its OpenAPI contract: a valid document, declared statuses, fuzzed by schemathesis.

The document at ``/docs.json`` must validate as OpenAPI 3.0, declare every
status each operation answers with the body sent, and carry examples the
service accepts. Schemathesis then generates requests from it (examples,
boundary values, random valid and invalid bodies) and runs every check on the
answers: no 5xx, only declared statuses, bodies and content types as declared,
valid data accepted, invalid data rejected.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from tests.serving.api.test_service_http import AUTH

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Examples per operation in the suite (benchmarks/api_fuzz.py runs many more).
EXAMPLES = 25


@pytest.fixture(scope="module")
def document(client) -> dict:
    response = client.get("/docs.json", headers=AUTH)
    assert response.status_code == 200
    return response.json()


def test_the_document_is_valid_openapi_3(document) -> None:
    validate(document)  # raises naming the first error
    assert document["openapi"].startswith("3.0")


def test_every_operation_declares_its_error_statuses_with_the_error_body(document) -> None:
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            assert "500" not in responses, path
            if path in {"/healthz", "/livez", "/readyz"}:
                continue
            assert "401" in responses, path
            if "requestBody" in operation:
                for status in ("400", "413", "415"):
                    schema = responses[status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)


def test_the_examples_are_accepted(client, document) -> None:
    for path in ("/scores", "/score_rows", "/lists", "/drift"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        response = client.post(path, json=body["schema"]["example"], headers=AUTH)
        assert response.status_code in (200, 404), (path, response.text)
        if path in ("/scores", "/score_rows"):
            assert response.status_code == 200, (path, response.text)


@pytest.fixture(scope="module")
def api_schema(client):
    config = schemathesis.config.SchemathesisConfig.from_path(CONFIG)
    return schemathesis.openapi.from_asgi("/docs.json", client.app, config=config, headers=AUTH)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_service_holds_its_contract_under_fuzzing(case) -> None:
    case.call_and_validate(headers=AUTH)
