"""``POST /lists`` and ``POST /lists/saved``: build a list from the served score table, or fetch a saved one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import pandas as pd
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, PlainTextResponse, Response

from serving.api.schemas import REQUEST_CONFIG
from serving.api.state import ServingState
from serving.lists.build import list_columns_needed, mark_suppressed, ranking_target
from serving.lists.export import list_csv, list_records
from serving.lists.settings import list_settings_from_file, service_config_file
from serving.lists.store import (
    LIST_ID_PATTERN,
    SERVICE_LIST_DIR,
    ListManifest,
    ListOptions,
    ListSource,
    ListUnavailable,
    create_list,
    read_list,
)
from serving.lists.targeting import TargetingConfig
from serving.lists.uplift import list_uplift
from serving.scoring.models import tracking_config
from serving.scoring.reasons import NO_STANDOUT_REASON


class ListRequest(BaseModel):
    """Build a list now from the served score table (``POST /lists``)."""

    model_config = REQUEST_CONFIG

    kind: Literal["at-risk", "winback", "vip-potential", "near-vip"] = Field(
        description="Which list: at-risk, winback, vip-potential or near-vip."
    )
    top: int | None = Field(default=None, ge=0, description="Keep the best N customers.")
    budget: float | None = Field(default=None, ge=0, description="Money for contacts.")
    contact_cost: float | None = Field(
        default=None, ge=0, description="Cost of one contact (default: [lists] contact_cost)."
    )
    profit_optimal: bool = Field(
        default=False, description="Contact while expected incremental margin exceeds the cost."
    )
    control_share: float | None = Field(
        default=None, ge=0, lt=1, description="Random hold-out share (default: [lists])."
    )
    format: Literal["json", "csv"] = Field(default="json", description="json or csv.")
    log_to_mlflow: bool = Field(
        default=True,
        description="Log the list's manifest and aggregates to 'winback-lists' (no rows).",
    )
    log_rows: bool = Field(
        default=False, description="Also log the rows (ids, scores, reasons) to MLflow."
    )


class SavedListRequest(BaseModel):
    """Fetch a saved list by id (``POST /lists/saved``)."""

    model_config = REQUEST_CONFIG

    list_id: str = Field(
        description="The id returned when the list was made.", pattern=LIST_ID_PATTERN
    )
    format: Literal["json", "csv"] = Field(default="json", description="json or csv.")


class ListManifestBody(BaseModel):
    """How, when and from what a saved list was made (``manifest.json``)."""

    list_id: str
    kind: str
    as_of: str = Field(description="Date of the scores the list was built from (YYYY-MM-DD).")
    generated_at: str
    parameters: dict[str, Any]
    model_versions: dict[str, str | None]
    rows: int
    treatment_rows: int
    control_rows: int
    files: dict[str, str]
    mlflow_run_id: str | None = None


class ListResponse(BaseModel):
    """A list as JSON: its manifest and one object per row (``format: csv`` sends text/csv)."""

    manifest: ListManifestBody
    rows: list[dict[str, Any]] = Field(
        description="Rank, customer, tier, scores, values (money in the shop's currency), "
        "reasons, suggested action and group of each listed customer."
    )


#: Seconds a client is told to wait (``Retry-After``) when all list builds are busy.
LIST_RETRY_AFTER_SECONDS = 5


def _list_body(frame: pd.DataFrame, manifest: ListManifest, output_format: str) -> Response:

    if output_format == "csv":
        return PlainTextResponse(
            list_csv(frame),
            media_type="text/csv",
            headers={"X-List-Id": manifest.list_id},
        )
    body = {"manifest": manifest.to_dict(), "rows": list_records(frame)}
    return Response(json.dumps(body, default=str), media_type="application/json")


def _busy(state: ServingState) -> JSONResponse | None:
    """503 with ``Retry-After`` when the service already builds its most lists at once."""
    if state.lists_running < state.config.max_concurrent_lists:
        return None
    return JSONResponse(
        {
            "error": f"{state.lists_running} lists are being built, at most "
            f"{state.config.max_concurrent_lists} at once: retry in "
            f"{LIST_RETRY_AFTER_SECONDS} s"
        },
        status_code=503,
        headers={"Retry-After": str(LIST_RETRY_AFTER_SECONDS)},
    )


def list_options(state: ServingState, request: ListRequest) -> ListOptions | JSONResponse:
    """The list's rules, targeting and record from the request and the service's ``winback.toml``.

    The file is read on every request (an edited rule applies to the next
    list); a broken file is 409 (fix the service, not the request), a bad
    combination of request values 400.
    """
    try:
        settings, config = list_settings_from_file(service_config_file(state.config.home))
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    try:
        targeting = TargetingConfig(
            top=request.top,
            budget=request.budget,
            contact_cost=(
                settings.contact_cost if request.contact_cost is None else request.contact_cost
            ),
            profit_optimal=request.profit_optimal,
        )
        if request.control_share is not None:
            config = dataclasses.replace(config, control_share=request.control_share)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return ListOptions(
        config=config,
        targeting=targeting,
        explain_rows=state.config.max_explain_rows,
        log_to_mlflow=request.log_to_mlflow,
        tracking=tracking_config(state.config),
        log_rows=request.log_rows,
    )


def build_service_list(
    state: ServingState, kind: str, options: ListOptions
) -> tuple[pd.DataFrame, ListManifest]:
    """Build and save a ``kind`` list from the served score table (blocking: run it in a thread).

    Reads only the columns the list needs; reasons the table lacks are computed
    for the best ``options.explain_rows`` rows (``ServingConfig.max_explain_rows``).
    """
    lookup = state.lookup
    score_columns, feature_columns = list_columns_needed(kind, options.config)
    table = lookup.frame(score_columns)
    features = lookup.feature_frame(feature_columns)
    uplift = list_uplift(kind, table, features, tracking=options.tracking)
    versions = dict(lookup.model_versions())
    if uplift.model_version is not None:
        versions["uplift"] = uplift.model_version
    source = ListSource(
        mark_suppressed(table, lookup.suppressions),
        lookup.as_of,
        features=features,
        uplift=uplift.estimates,
        model_versions=versions,
        notes={"uplift_note": uplift.note} if uplift.note else {},
    )
    target = ranking_target(kind)
    top = state.config.top_reasons

    def explain(customer_ids: pd.Index) -> list[list[str]]:
        known, _ = lookup.find([str(c) for c in customer_ids])
        texts = lookup.reasons(known, target, state.models, top_reasons=top)
        found = dict(zip(known, texts, strict=True))
        return [found.get(str(c)) or [NO_STANDOUT_REASON] for c in customer_ids]

    list_dir = Path(state.config.home) / SERVICE_LIST_DIR
    on_request = explain if state.config.explain_on_request else None
    return create_list(kind, source, list_dir, options, explain=on_request)


async def list_endpoint(state: ServingState, request: ListRequest) -> Response:
    """Build, save (and log) a list from the service's score table; JSON or CSV.

    ``state`` is ``serving.service.ServingState``. Rules and defaults come from
    the service's ``winback.toml`` (:func:`service_config_file`), read on every
    request. Winback lists use the uplift model named by ``WINBACK_UPLIFT_MODEL``
    (a file, ``runs:/<run_id>`` or ``models:/...``) when set, else the
    ``winback-uplift`` champion of the service's registry (:func:`list_uplift`).
    At most ``max_concurrent_lists`` build at once (503 with ``Retry-After``).
    """
    busy = _busy(state)
    if busy is not None:
        return busy
    options = list_options(state, request)
    if isinstance(options, JSONResponse):
        return options
    await state.refresh_after_erasure()
    state.lists_running += 1
    try:
        frame, manifest = await anyio.to_thread.run_sync(
            build_service_list, state, request.kind, options
        )
    except ListUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    finally:
        state.lists_running -= 1
    return _list_body(frame, manifest, request.format)


def saved_list_endpoint(state: ServingState, request: SavedListRequest) -> Response:
    """A saved list by id (404 naming the id when unknown, 400 for a malformed id)."""
    list_dir = Path(state.config.home) / SERVICE_LIST_DIR
    try:
        frame, manifest = read_list(list_dir, request.list_id)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except FileNotFoundError:
        return JSONResponse(
            {"error": f"no saved list {request.list_id!r}", "list_id": request.list_id},
            status_code=404,
        )
    return _list_body(frame, manifest, request.format)
