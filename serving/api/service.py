"""The BentoML service CRM systems call: scores by customer id, scores of posted rows, models.

Start it with ``winback serve`` (or ``bentoml serve serving.api.service:WinbackService``).
At start it loads, once, the champion model of each target (or the versions
pinned in ``WINBACK_MODEL_VERSIONS``) from the MLflow registry and the newest
score table; if either is missing it refuses to start and says which command
creates it. Every path except ``/healthz``, ``/livez`` and ``/readyz`` needs an
API key (see ``serving.api.auth``).

Endpoints are thin: each delegates to a plain function of this module taking the
:class:`ServingState`, so further endpoints (the retention lists of issue #6) are
a method plus a function.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import bentoml
import pandas as pd
from starlette.responses import JSONResponse, Response

from features.erasure import ErasureRegistry
from serving.api.auth import ApiKeyMiddleware, load_api_keys
from serving.api.batching import FrameBatcher, Overloaded
from serving.api.console import console_public_paths, mount_console
from serving.api.drift import DriftRequest, drift_endpoint
from serving.api.lists import ListRequest, SavedListRequest, list_endpoint, saved_list_endpoint
from serving.api.measurement import measurement_endpoint
from serving.api.schemas import (
    MeasurementRequest,
    ModelInfo,
    ModelsResponse,
    ScoreRowsRequest,
    ScoreRowsResponse,
    ScoresRequest,
    ScoresResponse,
    ScoreTableInfo,
    scores_response_json,
)
from serving.config import HEALTH_PATHS, SCORE_COLUMNS, TARGETS, ServingConfig
from serving.scoring.baselines import run_comparison
from serving.scoring.lookup import ScoreLookup, stale_targets
from serving.scoring.models import ServedModels, load_served_models
from serving.scoring.predict import FeatureColumns, predict_scores
from serving.scoring.reasons import reason_texts
from serving.scoring.rows import ARROW_STREAM, RowsInvalid, arrow_to_columns, rows_to_columns

logger = logging.getLogger("winback.serving.service")


@dataclass
class ServingState:
    """Everything the endpoints read: config, models, the score table, the row batcher."""

    config: ServingConfig
    models: ServedModels
    lookup: ScoreLookup
    batcher: FrameBatcher
    erasure_mark: tuple[int, int] | None = None

    def erasure_log_mark(self) -> tuple[int, int] | None:
        """``(mtime, size)`` of the erasure log under the service's home (None: no erasure yet)."""
        registry = ErasureRegistry.default()
        log = registry.log_path
        path = log if log.is_absolute() else self.config.home / log
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def refresh_after_erasure(self) -> None:
        """Reload the score table when ``winback forget`` has run since it was loaded.

        A stat per request (microseconds); the reload itself runs off the event
        loop. ``winback forget`` rewrites the stores before it logs, so the
        reloaded table no longer holds the forgotten customers.
        """
        mark = self.erasure_log_mark()
        if mark == self.erasure_mark:
            return
        self.lookup = await anyio.to_thread.run_sync(
            lambda: ScoreLookup.load(
                self.config.score_path, with_features=self.config.explain_on_request
            )
        )
        self.erasure_mark = mark
        logger.info("score table reloaded after an erasure (%s rows)", len(self.lookup.table))

    @classmethod
    def load(cls, config: ServingConfig, models: ServedModels | None = None) -> ServingState:
        """Load models and the newest score table; raise ``ServingSetupError`` if missing."""
        models = models if models is not None else load_served_models(config)
        lookup = ScoreLookup.load(config.score_path, with_features=config.explain_on_request)
        stale = stale_targets(lookup, models)
        for target, (stored, served) in stale.items():
            logger.warning(
                "score table %s has %s scores from model version %s but version %s is served: "
                "rerun `winback score --as-of %s` to refresh it",
                lookup.as_of,
                target,
                stored,
                served,
                lookup.as_of,
            )

        pool = ThreadPoolExecutor(
            max_workers=config.max_parallel_predictions, thread_name_prefix="winback-predict"
        )

        def predict(key: tuple[str, ...], columns: FeatureColumns) -> pd.DataFrame:
            return predict_scores(
                models,
                columns,
                key,
                num_threads=config.predict_threads,
                pool=pool,
                row_chunks=config.max_parallel_predictions,
            )

        batcher = FrameBatcher(
            predict,
            max_batch_rows=config.max_batch_rows,
            max_queued=config.max_queued_requests,
            direct_rows=config.direct_rows,
            max_parallel=config.max_parallel_predictions,
            concat=FeatureColumns.concat,
        )
        state = cls(config=config, models=models, lookup=lookup, batcher=batcher)
        state.erasure_mark = state.erasure_log_mark()
        return state


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
    explain = (
        request.explain
        and state.config.explain_on_request
        and state.lookup.needs_reasons(found, state.models)
    )

    def build() -> list[dict[str, Any]]:
        return state.lookup.records(
            found, models=state.models, explain=explain, top_reasons=state.config.top_reasons
        )

    records = await anyio.to_thread.run_sync(build) if explain else build()
    return Response(scores_response_json(records, unknown), media_type="application/json")


async def score_posted_rows(
    state: ServingState, request: ScoreRowsRequest
) -> ScoreRowsResponse | JSONResponse:
    """Scores of posted feature rows; 400 naming the columns when they do not fit."""
    targets = tuple(dict.fromkeys(request.targets)) if request.targets else state.models.targets
    feature_set = state.models.feature_set(targets)

    def build() -> FeatureColumns:
        return rows_to_columns(feature_set, rows=request.rows, columns=request.columns)

    # a large body is typed off the event loop, so lookups are not held up meanwhile
    large = _posted_rows(request) >= state.config.direct_rows
    return await score_typed_rows(state, targets, build, in_thread=large, explain=request.explain)


async def score_typed_rows(
    state: ServingState,
    targets: tuple[str, ...],
    build: Callable[[], FeatureColumns],
    *,
    in_thread: bool,
    explain: bool = False,
) -> ScoreRowsResponse | JSONResponse:
    """Type the rows with ``build`` (in a worker thread if ``in_thread``), score them, answer.

    Shared by the JSON body (:func:`score_posted_rows`) and the Arrow body
    (:func:`score_arrow_rows`): 400 naming the columns when they do not fit the
    targets' feature sets, 503 when too many requests wait.
    """
    try:
        columns = await anyio.to_thread.run_sync(build) if in_thread else build()
    except RowsInvalid as exc:
        logger.info("rejected posted rows: %s", exc)
        return JSONResponse(exc.to_dict(), status_code=400)
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
    return ScoreRowsResponse(
        rows=len(columns),
        scores={c: scores[c].tolist() for c in scores.columns},
        reasons=reasons,
        model_versions={t: state.models[t].version for t in targets},
        feature_sets={t: state.models[t].feature_set.name for t in targets},
    )


#: Rows one Arrow body may hold (the JSON body's ``rows`` limit).
MAX_ARROW_ROWS = 100_000
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
        return arrow_to_columns(feature_set, body, max_rows=MAX_ARROW_ROWS)

    result = await score_typed_rows(
        state,
        targets,
        build,
        in_thread=len(body) >= ARROW_THREAD_BYTES,
        explain=flags[0].lower() in {"true", "1"},
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
            or _media_type(scope) != ARROW_STREAM
        ):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        request = Request(scope, receive)
        body = await request.body()
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        response = await score_arrow_rows(bentoml.get_current_service().state, body, query)
        await response(scope, receive, send)


def _media_type(scope: dict) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _posted_rows(request: ScoreRowsRequest) -> int:
    if request.rows is not None:
        return len(request.rows)
    if request.columns:
        return max(len(values) for values in request.columns.values())
    return 0


def describe_models(state: ServingState) -> ModelsResponse:
    """The served models (versions, feature sets, test metrics vs baselines) and the score table."""
    models = [
        ModelInfo(
            target=m.target,
            name=m.name,
            version=m.version,
            feature_set=m.feature_set.name,
            feature_columns=m.feature_set.names,
            trained_at=m.trained_at,
            metrics=dict(m.metrics),
            **run_comparison(m.run_metrics, m.run_id).to_fields(),
        )
        for m in (state.models[t] for t in state.models.targets)
    ]
    table = ScoreTableInfo(
        as_of=state.lookup.as_of,
        rows=len(state.lookup.table),
        model_versions=state.lookup.model_versions(),
        stale_targets=sorted(stale_targets(state.lookup, state.models)),
    )
    return ModelsResponse(models=models, score_table=table)


def freeze_loaded_objects() -> None:
    """Move everything loaded so far out of the garbage collector's sight (``gc.freeze``).

    The score table, models and lookup columns are hundreds of thousands of
    long-lived objects; every full collection walked them all (a 100,000-customer
    table: ~0.57 s measured on two busy cores), stalling every request in flight
    and showing up as rare, very slow lookups (the by-id p99). Frozen objects are
    never freed or scanned, which is right for state held for the life of the
    process.
    """
    gc.collect()
    gc.freeze()


def _telemetry_off() -> None:
    for key in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "BENTOML_DO_NOT_TRACK"):
        os.environ.setdefault(key, "true")


#: Paths OpenTelemetry does not trace (regexes on the request URL): the two hot scoring
#: paths. BentoML samples no trace unless ``tracing.sample_rate`` is set, yet it still
#: built four unsampled spans per request: 0.33 of the 0.75 ms a lookup spent in the
#: app (measured in-process). To trace them, override
#: ``services.winback.tracing.excluded_urls`` in the BentoML configuration.
UNTRACED_PATHS: tuple[str, ...] = ("/scores$", "/score_rows$")


@bentoml.service(
    name="winback",
    workers=1,
    traffic={"timeout": 60, "max_concurrency": 512},
    tracing={"excluded_urls": list(UNTRACED_PATHS)},
)
class WinbackService:
    """Churn risk, VIP potential and reactivation probability with reasons, for CRM systems."""

    def __init__(self) -> None:
        _telemetry_off()
        config = ServingConfig.from_env()
        load_api_keys(config)  # fail fast: never start a service nobody may call
        self.state = ServingState.load(config)
        freeze_loaded_objects()
        logger.info(
            "winback service ready: score table %s (%d customers), models %s",
            self.state.lookup.as_of,
            len(self.state.lookup.table),
            self.state.models.versions(),
        )

    def __is_ready__(self) -> bool:
        return self.state is not None

    @bentoml.api(route="/scores", input_spec=ScoresRequest)
    async def scores(self, **kwargs: Any) -> ScoresResponse:
        """Stored scores (with reasons) of customers by id; unknown ids listed in `not_found`, 404 if all are unknown."""
        return await lookup_scores(self.state, ScoresRequest.model_construct(**kwargs))

    @bentoml.api(route="/score_rows", input_spec=ScoreRowsRequest)
    async def score_rows(self, **kwargs: Any) -> ScoreRowsResponse:
        """Score posted feature rows with the served models; 400 naming the columns if they do not match the feature sets. Large posts may instead send an Arrow IPC stream (Content-Type application/vnd.apache.arrow.stream; targets and explain as query parameters) for the same answer."""
        return await score_posted_rows(self.state, ScoreRowsRequest.model_construct(**kwargs))

    @bentoml.api(route="/models")
    def models(self) -> ModelsResponse:
        """The served model versions per target, their feature sets, training time, test metrics and baselines."""
        return describe_models(self.state)

    @bentoml.api(route="/lists", input_spec=ListRequest)
    async def lists(self, **kwargs: Any) -> dict[str, Any]:
        """Build a retention list (at-risk, winback, vip-potential, near-vip) with a control group, save it under a new id; JSON or CSV."""
        return await list_endpoint(self.state, ListRequest.model_construct(**kwargs))

    @bentoml.api(route="/lists/saved", input_spec=SavedListRequest)
    def saved_list(self, **kwargs: Any) -> dict[str, Any]:
        """A saved list by id (JSON or CSV); 404 when the id is unknown."""
        return saved_list_endpoint(self.state, SavedListRequest.model_construct(**kwargs))

    @bentoml.api(route="/lists/measurement", input_spec=MeasurementRequest)
    async def measurement(self, **kwargs: Any) -> dict[str, Any]:
        """Treated vs control of a saved list after its date (rates, revenue and margin per customer, with CIs); 404 unknown list, 400 bad date, 409 when the service has no measurement data."""
        return await measurement_endpoint(self.state, MeasurementRequest(**kwargs))

    @bentoml.api(route="/drift", input_spec=DriftRequest)
    def drift(self, **kwargs: Any) -> dict[str, Any]:
        """PSI of each feature and score of a stored score table vs the served models' training data."""
        return drift_endpoint(self.state, DriftRequest.model_construct(**kwargs))


mount_console(WinbackService)  # the retention console at /console (static, no data)
WinbackService.add_asgi_middleware(
    ApiKeyMiddleware, exempt_paths=HEALTH_PATHS | console_public_paths()
)
WinbackService.add_asgi_middleware(ArrowRowsMiddleware)  # inside the key check

__all__ = [
    "ARROW_STREAM",
    "SCORE_COLUMNS",
    "TARGETS",
    "ServingState",
    "WinbackService",
    "describe_models",
    "lookup_scores",
    "score_arrow_rows",
    "score_posted_rows",
]
