"""The service holds its OpenAPI contract: a valid document, declared statuses, fuzzed by schemathesis.

The document at ``/docs.json`` must validate as OpenAPI 3.0, declare every
status each operation answers with the body sent, and carry examples the
service accepts. Schemathesis then generates requests from it (examples,
boundary values, random valid and invalid bodies) and runs every check on the
answers: no 5xx, only declared statuses, bodies and content types as declared,
valid data accepted, invalid data rejected.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import schemathesis
from openapi_spec_validator import validate

from tests.serving.api.test_service_http import API_KEY, AUTH

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Examples per operation in the suite (benchmarks/api_fuzz.py runs many more).
EXAMPLES = 15


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


def test_a_body_is_required_where_the_request_has_required_fields(client, document) -> None:
    for path in ("/scores", "/lists", "/drift"):
        body = document["paths"][path]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        assert body["required"] == bool(schema.get("required")), path
    assert not document["paths"]["/drift"]["post"]["requestBody"]["required"]
    # no body: /drift checks the newest table with the defaults, /lists names what it needs
    assert client.post("/drift", headers=AUTH).status_code in (200, 404)
    assert client.post("/lists", headers=AUTH).status_code == 400


def schemathesis_config(
    examples: int, *, key: str = API_KEY, extra: str = ""
) -> schemathesis.config.SchemathesisConfig:
    """The settings of ``schemathesis.toml`` with the API ``key``, ``examples`` cases and ``extra``."""
    return schemathesis.config.SchemathesisConfig.from_str(
        f'headers = {{ Authorization = "Bearer {key}" }}\n'
        + CONFIG.read_text()
        + extra
        + f"\n[generation]\nmax-examples = {examples}\ndeterministic = true\n",
        base_dir=str(CONFIG.parent),
    )


def fuzz(schema) -> tuple[collections.Counter, list[str]]:
    """Every schemathesis phase and check on ``schema``: (operation, status) counts and failures."""
    from schemathesis.engine import Status, events, from_schema

    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            label = event.recorder.label
            for interaction in event.recorder.interactions.values():
                status = interaction.response.status_code if interaction.response else "no answer"
                counts[(label, status)] += 1
            failures.extend(
                f"{label}: {check.name}: {check.failure_info.failure.title}: "
                f"{check.failure_info.code_sample}"
                for checks in event.recorder.checks.values()
                for check in checks
                if check.status == Status.FAILURE and check.failure_info is not None
            )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {getattr(event, 'label', '')}: {event}")
    return counts, sorted(set(failures))


def test_the_service_holds_its_contract_under_fuzzing(served) -> None:
    # ``served`` is a real ``bentoml serve`` (tests/serving/conftest.py): schemathesis' own
    # ASGI client would start a second lifespan of the in-process app the other tests share.
    # The stateful phase (chains of calls) runs in benchmarks/api_fuzz.py, not in the suite.
    config = schemathesis_config(EXAMPLES, extra="\n[phases.stateful]\nenabled = false\n")
    schema = schemathesis.openapi.from_url(f"{served}/docs.json", config=config, headers=AUTH)
    counts, failures = fuzz(schema)
    assert not failures, "\n".join(failures)
    operations = {operation for operation, _ in counts}
    assert len(operations) >= 11  # every operation
    assert sum(n for (op, status), n in counts.items() if status == 200) > EXAMPLES * 4
