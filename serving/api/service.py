"""The BentoML service CRM systems call: scores by customer id, scores of posted rows, models.

Start it with ``winback serve`` (or ``bentoml serve serving.api.service:WinbackService``).
At start it loads, once, the champion model of each target (or the versions
pinned in ``WINBACK_MODEL_VERSIONS``) from the MLflow registry and the newest
score table; if either is missing it refuses to start and says which command
creates it. Every path except ``/healthz``, ``/livez`` and ``/readyz`` needs an
API key (see ``serving.api.auth``).

Endpoints are thin: each delegates to a plain function (``serving.api.scores``,
``lists``, ``measurement``, ``drift``) taking the :class:`ServingState`. Around
them, from the outside in: the API-key check, the request limits (413/415), the
OpenAPI document at ``/docs.json`` and the Arrow body of ``/score_rows``.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import bentoml

from serving.api.auth import ApiKeyMiddleware, load_api_keys
from serving.api.console import console_public_paths, mount_console
from serving.api.drift import DriftRequest, DriftResponse, drift_endpoint
from serving.api.limits import RequestLimitsMiddleware
from serving.api.lists import (
    ListRequest,
    ListResponse,
    SavedListRequest,
    list_endpoint,
    saved_list_endpoint,
)
from serving.api.logs import quiet_client_errors
from serving.api.measurement import measurement_endpoint
from serving.api.openapi import OpenApiMiddleware
from serving.api.schemas import (
    MeasurementRequest,
    MeasurementResponse,
    ModelInfo,
    ModelsResponse,
    RequestLimits,
    ScoreRowsRequest,
    ScoreRowsResponse,
    ScoresRequest,
    ScoresResponse,
    ScoreTableInfo,
)
from serving.api.scores import ArrowRowsMiddleware, lookup_scores, score_posted_rows
from serving.api.state import ServingState
from serving.config import HEALTH_PATHS, ServingConfig
from serving.scoring.baselines import run_comparison
from serving.scoring.lookup import stale_targets

logger = logging.getLogger("winback.serving.service")


def describe_models(state: ServingState) -> ModelsResponse:
    """The served models, the value model included (versions, feature sets, test metrics vs
    baselines, verdicts), and the score table."""
    models = [
        ModelInfo(
            target=m.target,
            name=m.name,
            version=m.version,
            feature_set=m.feature_set.name,
            feature_columns=m.feature_set.names,
            trained_at=m.trained_at,
            metrics=dict(m.metrics),
            **run_comparison(m.run_metrics, m.run_id, m.run_tags).to_fields(),
        )
        for m in (state.models[t] for t in state.models.targets)
    ]
    value = state.models.value
    if value is not None:
        comparison = run_comparison(value.run_metrics, value.run_id, value.run_tags)
        models.append(
            ModelInfo(
                target="value",
                name=value.name,
                version=value.version,
                feature_set=value.feature_set().name,
                feature_columns=value.feature_set().names,
                trained_at=value.trained_at,
                metrics=dict(comparison.test_metrics),
                **comparison.to_fields(),
            )
        )
    table = ScoreTableInfo(
        as_of=state.lookup.as_of,
        rows=state.lookup.rows,
        model_versions=state.lookup.model_versions(),
        stale_targets=sorted(stale_targets(state.lookup, state.models)),
    )
    config = state.config
    limits = RequestLimits(
        max_body_bytes=config.max_body_bytes,
        max_rows=config.max_rows,
        max_explain_rows=config.max_explain_rows,
    )
    return ModelsResponse(models=models, score_table=table, limits=limits)


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
        quiet_client_errors()  # a 4xx is one log line, a 5xx keeps its traceback
        config = ServingConfig.from_env()
        load_api_keys(config)  # fail fast: never start a service nobody may call
        self.state = ServingState.load(config)
        freeze_loaded_objects()
        logger.info(
            "winback service ready: score table %s (%d customers), models %s",
            self.state.lookup.as_of,
            self.state.lookup.rows,
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
    async def lists(self, **kwargs: Any) -> ListResponse:
        """Build a retention list (at-risk, winback, vip-potential, near-vip) with a control group, save it under a new id; JSON or CSV."""
        return await list_endpoint(self.state, ListRequest.model_construct(**kwargs))

    @bentoml.api(route="/lists/saved", input_spec=SavedListRequest)
    def saved_list(self, **kwargs: Any) -> ListResponse:
        """A saved list by id (JSON or CSV); 404 when the id is unknown."""
        return saved_list_endpoint(self.state, SavedListRequest.model_construct(**kwargs))

    @bentoml.api(route="/lists/measurement", input_spec=MeasurementRequest)
    async def measurement(self, **kwargs: Any) -> MeasurementResponse:
        """Treated vs control of a saved list after its date (rates, revenue and margin per customer, with CIs); 404 unknown list, 400 bad date, 409 when the service has no measurement data."""
        return await measurement_endpoint(self.state, MeasurementRequest(**kwargs))

    @bentoml.api(route="/drift", input_spec=DriftRequest)
    def drift(self, **kwargs: Any) -> DriftResponse:
        """PSI of each feature and score of a stored score table vs the served models' training data."""
        return drift_endpoint(self.state, DriftRequest.model_construct(**kwargs))


mount_console(WinbackService)  # the retention console at /console (static, no data)
WinbackService.add_asgi_middleware(
    ApiKeyMiddleware, exempt_paths=HEALTH_PATHS | console_public_paths()
)
WinbackService.add_asgi_middleware(RequestLimitsMiddleware)  # inside the key check
WinbackService.add_asgi_middleware(
    OpenApiMiddleware, spec=lambda: WinbackService.openapi_spec.asdict()
)
WinbackService.add_asgi_middleware(ArrowRowsMiddleware)
