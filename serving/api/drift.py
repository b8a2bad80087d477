"""``POST /drift``: PSI of a stored score table's features and scores against the training data."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from features.targets import TargetName
from serving.api.schemas import REQUEST_CONFIG
from serving.api.state import ServingState
from serving.config import TARGETS
from serving.monitoring.drift import DriftConfig, drift_report


class DriftRequest(BaseModel):
    """Body of ``POST /drift``: which stored score table and targets to check."""

    model_config = REQUEST_CONFIG

    as_of: dt.date | None = Field(None, description="Score table date; the newest when omitted.")
    targets: list[TargetName] | None = Field(None, description="Targets to check; all scored ones.")
    warn_psi: float = Field(0.1, gt=0)
    alert_psi: float = Field(0.25, gt=0)


class DriftResponse(BaseModel):
    """PSI of each feature and score of a score table against the models' training data."""

    as_of: str
    model_versions: dict[str, str | None]
    warn_psi: float
    alert_psi: float
    flagged: bool = Field(description="Whether any column reached the alert threshold.")
    summary: list[dict[str, Any]] = Field(description="Per target: columns checked, worst PSI.")
    columns: list[dict[str, Any]] = Field(description="Per target and column: PSI and status.")


def drift_endpoint(state: ServingState, request: DriftRequest) -> JSONResponse:
    """The service's drift check of a stored score table (``state`` is ``ServingState``).

    200 with :meth:`DriftReport.to_dict`; 404 when there is no such score table
    or its model has no reference bins; 400 for bad thresholds or targets.
    """
    unknown = sorted(set(request.targets or ()) - set(TARGETS))
    if unknown:
        return JSONResponse({"error": f"unknown targets {unknown}; use {list(TARGETS)}"}, 400)
    try:
        config = DriftConfig(warn_psi=request.warn_psi, alert_psi=request.alert_psi)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        report = drift_report(
            state.config.score_path, request.as_of, targets=request.targets, config=config
        )
    except FileNotFoundError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(report.to_dict())
