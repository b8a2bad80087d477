"""``POST /lists`` and ``POST /lists/saved``: build a list from the served score table, or fetch a saved one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, PlainTextResponse, Response

from serving.lists.build import list_csv, list_records, mark_suppressed
from serving.lists.settings import list_settings_from_file, service_config_file
from serving.lists.store import SERVICE_LIST_DIR, ListManifest, create_list, read_list
from serving.lists.targeting import TargetingConfig
from serving.lists.uplift import list_uplift
from serving.scoring.models import tracking_config


class ListRequest(BaseModel):
    """Build a list now from the served score table (``POST /lists``)."""

    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    list_id: str = Field(description="The id returned when the list was made.")
    format: Literal["json", "csv"] = Field(default="json", description="json or csv.")


def _list_body(frame: pd.DataFrame, manifest: ListManifest, output_format: str) -> Response:

    if output_format == "csv":
        return PlainTextResponse(
            list_csv(frame),
            media_type="text/csv",
            headers={"X-List-Id": manifest.list_id},
        )
    body = {"manifest": manifest.to_dict(), "rows": list_records(frame)}
    return Response(json.dumps(body, default=str), media_type="application/json")


async def list_endpoint(state: Any, request: ListRequest) -> Response:
    """Build, save (and log) a list from the service's score table; JSON or CSV.

    ``state`` is ``serving.service.ServingState``. Rules and defaults come from
    the service's ``winback.toml`` (:func:`service_config_file`), read on every
    request. Winback lists use the uplift model named by ``WINBACK_UPLIFT_MODEL``
    (a file, ``runs:/<run_id>`` or ``models:/...``) when set, else the
    ``winback-uplift`` champion of the service's registry (:func:`list_uplift`).
    """

    try:
        settings, config = list_settings_from_file(service_config_file(state.config.home))
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=500)
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
    await state.refresh_after_erasure()
    lookup = state.lookup
    list_dir = Path(state.config.home) / SERVICE_LIST_DIR

    tracking = tracking_config(state.config)

    def build() -> tuple[pd.DataFrame, ListManifest]:
        uplift = list_uplift(request.kind, lookup.table, lookup.features, tracking=tracking)
        versions = dict(lookup.model_versions())
        if uplift.model_version is not None:
            versions["uplift"] = uplift.model_version
        return create_list(
            request.kind,
            mark_suppressed(lookup.table, lookup.suppressions),
            list_dir,
            as_of=lookup.as_of,
            features=lookup.features,
            uplift=uplift.estimates,
            config=config,
            targeting=targeting,
            model_versions=versions,
            log_to_mlflow=request.log_to_mlflow,
            tracking=tracking,
            notes={"uplift_note": uplift.note} if uplift.note else None,
            log_rows=request.log_rows,
        )

    frame, manifest = await anyio.to_thread.run_sync(build)
    return _list_body(frame, manifest, request.format)


def saved_list_endpoint(state: Any, request: SavedListRequest) -> Response:
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
