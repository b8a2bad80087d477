"""``POST /scores`` and ``POST /score_rows``: stored scores by id, scores of posted rows (JSON or Arrow)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import bentoml
from starlette.responses import JSONResponse, Response

from features.feature_sets import FeatureSet
from serving.api.batching import Overloaded
from serving.api.limits import media_type
from serving.api.schemas import (
    ScoreRowsRequest,
    ScoreRowsResponse,
    ScoresRequest,
    scores_response_json,
    stored_scores_json,
)
from serving.api.state import ServingState
from serving.scoring.predict import FeatureColumns
from serving.scoring.reasons import reason_texts
from serving.scoring.rows import ARROW_STREAM, RowsInvalid, arrow_to_columns, rows_to_columns
from serving.scoring.value import posted_value, value_input_set

logger = logging.getLogger("winback.serving.service")


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error body ``{"error": message, ...}`` with ``status``."""
    return JSONResponse({"error": message, **extra}, status_code=status)


async def lookup_scores(state: ServingState, request: ScoresRequest) -> Response:
    """Stored scores for the requested ids (a ``ScoresResponse`` body); 404 when none is known."""
    await state.refresh_after_erasure()
    found, unknown = state.lookup.find(request.customer_ids)
    if not found:
        return error_response(
            404,
            f"none of the {len(unknown)} customer ids is in the score table of "
            f"{state.lookup.as_of}",
            not_found=unknown,
        )
    lookup = state.lookup
    explain = request.explain and state.config.explain_on_request and lookup.features is not None
    stored = lookup.stored_json(found)  # the records as JSON, when the version has them
    if stored is not None and not explain:
        return Response(stored_scores_json(stored, unknown), media_type="application/json")
    if stored is None:
        records = lookup.records(found, explain=False)
    else:
        records = [json.loads(record) for record in stored]
    if explain and lookup.missing_reasons(records, state.models):
        # SHAP off the event loop: other lookups go on meanwhile
        top = state.config.top_reasons
        await anyio.to_thread.run_sync(
            lambda: lookup.explain_records(records, state.models, top_reasons=top)
        )
    elif stored is not None:
        return Response(stored_scores_json(stored, unknown), media_type="application/json")
    return Response(scores_response_json(records, unknown), media_type="application/json")


async def score_posted_rows(
    state: ServingState, request: ScoreRowsRequest
) -> ScoreRowsResponse | JSONResponse:
    """Scores of posted feature rows; 400 naming the columns when they do not fit."""
    targets = tuple(dict.fromkeys(request.targets)) if request.targets else state.models.targets
    feature_set = state.models.feature_set(targets)

    def build() -> FeatureColumns:
        return rows_to_columns(
            feature_set,
            rows=request.rows,
            columns=request.columns,
            tolerated=tolerated_columns(state),
        )

    def build_value(value_set: FeatureSet) -> FeatureColumns:
        return rows_to_columns(
            value_set,
            rows=request.rows,
            columns=request.columns,
            tolerated=tolerated_columns(state),
        )

    # a large body is typed off the event loop, so lookups are not held up meanwhile
    large = _posted_rows(request) >= state.config.direct_rows
    return await score_typed_rows(
        state, targets, build, in_thread=large, explain=request.explain, build_value=build_value
    )


def tolerated_columns(state: ServingState) -> list[str]:
    """Columns a posted row may carry: every served model's, the value champion's included."""
    names = list(state.models.feature_set().names)
    if state.models.value is not None:
        names += [n for n in value_input_set(state.models.value).names if n not in names]
    return names


def _posted_value(
    state: ServingState, build_value: Callable[[FeatureSet], FeatureColumns] | None
) -> list[float | None] | None:
    """The value champion's predictions of the posted rows; None without one or its columns."""
    value = state.models.value
    if value is None or build_value is None:
        return None
    try:
        columns = build_value(value_input_set(value))
    except RowsInvalid:
        return None  # the rows carry the scoring models' columns only
    return posted_value(value, columns.frame)


async def score_typed_rows(
    state: ServingState,
    targets: tuple[str, ...],
    build: Callable[[], FeatureColumns],
    *,
    in_thread: bool,
    explain: bool = False,
    build_value: Callable[[FeatureSet], FeatureColumns] | None = None,
) -> ScoreRowsResponse | JSONResponse:
    """Type the rows with ``build`` (in a worker thread if ``in_thread``), score them, answer.

    Shared by the JSON body (:func:`score_posted_rows`) and the Arrow body
    (:func:`score_arrow_rows`): 400 naming the columns when they do not fit the
    targets' feature sets, 503 when too many requests wait. With a value champion
    and rows that carry its columns (``build_value`` types them), the answer also
    has each row's ``predicted_value``.
    """
    try:
        columns = await anyio.to_thread.run_sync(build) if in_thread else build()
    except RowsInvalid as exc:
        logger.info("rejected posted rows: %s", exc)
        return JSONResponse(exc.to_dict(), status_code=400)
    if explain and len(columns) > state.config.max_explain_rows:
        return error_response(
            400,
            f"explain=true for {len(columns)} rows: reasons are given for at most "
            f"{state.config.max_explain_rows} rows a request (~2 ms each); send fewer rows "
            f"or explain=false",
        )
    try:
        scores = await state.batcher.submit(targets, columns)
    except Overloaded as exc:
        return error_response(503, str(exc))
    reasons = None
    if explain:

        def explain_rows() -> dict[str, list[list[str]]]:
            return {
                t: reason_texts(
                    state.models[t].model,
                    columns.frame,
                    top=state.config.top_reasons,
                    reference=state.lookup.reference,
                )
                for t in targets
            }

        reasons = await anyio.to_thread.run_sync(explain_rows)
    predicted = None
    if state.models.value is not None and build_value is not None:
        predicted = await anyio.to_thread.run_sync(lambda: _posted_value(state, build_value))
    return ScoreRowsResponse(
        rows=len(columns),
        scores={c: scores[c].tolist() for c in scores.columns},
        reasons=reasons,
        model_versions={t: state.models[t].version for t in targets},
        feature_sets={t: state.models[t].feature_set.name for t in targets},
        predicted_value=predicted,
        value_horizon_days=None if predicted is None else state.models.value.horizon_days,
    )


#: Arrow bodies from this size on are read in a worker thread (~500 rows of 60 floats).
ARROW_THREAD_BYTES = 256 * 1024


async def score_arrow_rows(
    state: ServingState, body: bytes, query: Mapping[str, list[str]]
) -> Response:
    """Scores of an Arrow IPC stream of feature columns; the same JSON answer as ``/score_rows``.

    ``query`` holds the URL's ``targets`` (repeated or comma-separated; default
    all) and ``explain`` (``true``/``false``). 400 for an unknown target or a
    bad ``explain``, and for columns that do not fit, naming them.
    """
    wanted = [t.strip() for value in query.get("targets", []) for t in value.split(",")]
    wanted = [t for t in wanted if t]
    unknown = sorted(set(wanted) - set(state.models.targets))
    if unknown:
        return error_response(
            400, f"unknown targets {unknown} in the query: use {list(state.models.targets)}"
        )
    flags = query.get("explain", ["false"])
    if len(flags) != 1 or flags[0].lower() not in {"true", "false", "1", "0"}:
        return error_response(400, f"explain={flags} in the query: use explain=true or false")
    targets = tuple(dict.fromkeys(wanted)) if wanted else state.models.targets
    feature_set = state.models.feature_set(targets)

    def build() -> FeatureColumns:
        return arrow_to_columns(
            feature_set,
            body,
            max_rows=state.config.max_rows,
            tolerated=tolerated_columns(state),
        )

    def build_value(value_set: FeatureSet) -> FeatureColumns:
        return arrow_to_columns(
            value_set, body, max_rows=state.config.max_rows, tolerated=tolerated_columns(state)
        )

    result = await score_typed_rows(
        state,
        targets,
        build,
        in_thread=len(body) >= ARROW_THREAD_BYTES,
        explain=flags[0].lower() in {"true", "1"},
        build_value=build_value,
    )
    if isinstance(result, Response):
        return result
    return Response(result.model_dump_json(), media_type="application/json")


class ArrowRowsMiddleware:
    """``POST /score_rows`` with an Arrow IPC stream body, answered without BentoML's JSON input.

    BentoML parses every body as JSON into the endpoint's pydantic model; an
    Arrow body (``Content-Type: application/vnd.apache.arrow.stream``) carries
    typed buffers instead, so a 1,000-row request skips ~3 ms of JSON parsing
    and ~4 ms of per-value type checks. Added after the API-key middleware, so
    it only ever sees requests with a valid key; every other request passes on.
    """

    def __init__(self, app: Any, path: str = "/score_rows") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") != self.path
            or media_type(scope) != ARROW_STREAM
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        response = await score_arrow_rows(bentoml.get_current_service().state, body, query)
        await response(scope, receive, send)


def _posted_rows(request: ScoreRowsRequest) -> int:
    if request.rows is not None:
        return len(request.rows)
    if request.columns:
        return max(len(values) for values in request.columns.values())
    return 0


async def _read_body(receive: Any) -> bytes:
    """The whole request body (already size-checked by ``RequestLimitsMiddleware``)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
