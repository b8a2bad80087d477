"""The service's OpenAPI 3.0 document: valid, complete about errors, and true to the served models.

BentoML writes the document from the pydantic models in JSON Schema 2020-12
style (``anyOf`` with ``null``, numeric ``exclusiveMinimum``), which OpenAPI
3.0 validators and generators reject, and declares 400/404/500 bodies it does
not send. :func:`openapi_document` rewrites it into OpenAPI 3.0.3: nullable
fields, boolean exclusive bounds, every status each operation answers with the
body actually sent (:class:`~serving.api.schemas.ErrorResponse`), the API-key
security schemes, and posted rows described by the served feature sets with an
example row that scores. ``GET /docs.json`` answers it (:class:`OpenApiMiddleware`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from serving.api.drift import DriftRequest, DriftResponse
from serving.api.limits import send_json
from serving.api.lists import ListRequest, ListResponse, SavedListRequest
from serving.api.schemas import (
    ErrorResponse,
    MeasurementRequest,
    MeasurementResponse,
    ModelsResponse,
    ScoreRowsRequest,
    ScoreRowsResponse,
    ScoresRequest,
    ScoresResponse,
)
from serving.api.state import ServingState
from serving.config import MAX_POSTED_ROWS
from serving.scoring.rows import ARROW_STREAM

DOCS_PATH = "/docs.json"
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

#: What each status means, as the document says it.
STATUS_TEXT = {
    400: "Bad request: malformed JSON, a value out of range, rows that do not fit the models",
    401: "Missing or invalid API key",
    404: "Unknown customer ids, list id or score table",
    409: "The service lacks what this needs (measurement data, a valid winback.toml)",
    413: "Body over the size limit (WINBACK_MAX_BODY_BYTES, default 32 MiB)",
    415: "Content-Type not accepted by this operation",
    422: "The list cannot be measured (e.g. no control group)",
    503: "Busy: too many requests waiting; retry after the Retry-After seconds",
}
#: The statuses besides 200 each operation answers.
ERROR_STATUSES: dict[str, tuple[int, ...]] = {
    "/scores": (400, 401, 404, 413, 415),
    "/score_rows": (400, 401, 413, 415, 503),
    "/models": (400, 401, 413, 415),
    "/lists": (400, 401, 409, 413, 415, 503),
    "/lists/saved": (400, 401, 404, 413, 415),
    "/lists/measurement": (400, 401, 404, 409, 413, 415, 422),
    "/drift": (400, 401, 404, 413, 415),
}
#: The request and answer models of each operation (``/models`` takes an empty body).
MODELS: dict[str, tuple[type[BaseModel] | None, type[BaseModel]]] = {
    "/scores": (ScoresRequest, ScoresResponse),
    "/score_rows": (ScoreRowsRequest, ScoreRowsResponse),
    "/models": (None, ModelsResponse),
    "/lists": (ListRequest, ListResponse),
    "/lists/saved": (SavedListRequest, ListResponse),
    "/lists/measurement": (MeasurementRequest, MeasurementResponse),
    "/drift": (DriftRequest, DriftResponse),
}
#: Operations that may answer ``text/csv`` (``format: csv``) as well as JSON.
CSV_PATHS = frozenset({"/lists", "/lists/saved"})
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


def to_openapi30(node: Any) -> Any:
    """A JSON Schema 2020-12 fragment (what pydantic writes) as an OpenAPI 3.0 schema."""
    if isinstance(node, list):
        return [to_openapi30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_openapi30(v) for k, v in node.items()}
    for variants in ("anyOf", "oneOf"):
        options = out.get(variants)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[variants]
            if len(rest) == 1:
                only = rest[0]
                out.update({"allOf": [only]} if "$ref" in only else only)
            else:
                out[variants] = rest
            out["nullable"] = True
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[inclusive] = value
            out[bound] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    if out.get("default", 0) is None and not out.get("nullable"):
        del out["default"]
    return out


def _feature_value_schema(dtype: str) -> dict[str, Any]:
    if dtype == "category":
        return {"type": "string", "nullable": True}
    return {"type": "number", "nullable": True}


def _rows_schemas(state: ServingState) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ``rows`` item schema, the ``columns`` schema and one example row of the served models."""
    union = state.models.feature_set()
    names = list(union.names)
    row = {
        "type": "object",
        "properties": {n: _feature_value_schema(union.dtypes[n]) for n in names},
        "required": names,
        "additionalProperties": False,
    }
    columns = {
        "type": "object",
        "properties": {
            n: {
                "type": "array",
                "items": _feature_value_schema(union.dtypes[n]),
                "minItems": 1,
                "maxItems": MAX_POSTED_ROWS,
            }
            for n in names
        },
        "required": names,
        "additionalProperties": False,
    }
    stored = state.lookup.feature_example()
    example = {n: stored.get(n) for n in names}
    return row, columns, example


def model_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """``model``'s OpenAPI 3.0 schema; the models it uses go into ``schemas`` (components)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = to_openapi30(definition)
    return to_openapi30(schema)


def _responses(schemas: dict[str, Any], path: str) -> dict[str, Any]:
    answer = model_schema(MODELS[path][1], schemas)
    ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": answer}}}
    if path in CSV_PATHS:
        ok.setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
    out: dict[str, Any] = {"200": ok}
    for status in ERROR_STATUSES[path]:
        response: dict[str, Any] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": ERROR_REF}},
        }
        if status == 503:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        out[str(status)] = response
    return out


def _request_examples(state: ServingState, path: str) -> dict[str, Any] | None:
    """An example body the served service accepts (real ids, real feature columns)."""
    if path == "/scores":
        ids = state.lookup.head_ids(2)
        return {"customer_ids": ids or ["C000123"]}
    if path == "/lists":
        return {"kind": "winback", "top": 100, "log_to_mlflow": False}
    if path == "/drift":
        return {"targets": list(state.models.targets)}
    return None


def openapi_document(spec: dict[str, Any], state: ServingState) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of the service (see the module docstring).

    ``spec`` is BentoML's document as a JSON-ready dict; ``state`` gives the
    served feature sets, a real row for the ``/score_rows`` example and real
    customer ids for ``/scores``.
    """
    doc = to_openapi30(json.loads(json.dumps(spec, default=str)))
    doc["openapi"] = "3.0.3"
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorResponse"] = to_openapi30(ErrorResponse.model_json_schema())
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    doc["security"] = [{"bearer": []}, {"apiKey": []}]
    row, columns, example_row = _rows_schemas(state)
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            if path not in ERROR_STATUSES:
                operation["responses"]["401"] = {
                    "description": STATUS_TEXT[401],
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
                continue
            operation["responses"] = _responses(schemas, path)
            request = MODELS[path][0]
            if request is None:
                continue
            schema = model_schema(request, schemas)
            operation["requestBody"] = {
                # a model without required fields (``/drift``) takes no body as all defaults
                "required": bool(schema.get("required")),
                "content": {"application/json": {"schema": schema}},
            }
            if path == "/score_rows":
                schema["properties"]["rows"] = {**schema["properties"]["rows"], "items": row}
                schema["properties"]["columns"] = {
                    **columns,
                    "nullable": True,
                    "description": schema["properties"]["columns"].get("description", ""),
                }
                schema["example"] = {"rows": [example_row], "explain": True}
                operation["requestBody"]["content"][ARROW_STREAM] = {
                    "schema": {"type": "string", "format": "binary"}
                }
            example = _request_examples(state, path)
            if example is not None:
                schema["example"] = example
    return doc


class OpenApiMiddleware:
    """Answers ``GET /docs.json`` with :func:`openapi_document` (built once per process).

    ``spec`` returns BentoML's own document (a dict); the served state comes
    from the running service.
    """

    def __init__(self, app: Any, spec: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.spec = spec
        self._document: dict[str, Any] | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != DOCS_PATH:
            await self.app(scope, receive, send)
            return
        if self._document is None:
            import bentoml

            self._document = openapi_document(self.spec(), bentoml.get_current_service().state)
        await send_json(send, 200, self._document)
