"""``POST /lists/measurement``: treated versus control of a saved list, from the service.

The service measures a list exactly as ``winback measure LIST_ID --as-of DATE``
does (:func:`serving.measurement.campaign.measure_list`), reading the same kind of source:
the shop data named by ``ServingConfig.measurement_data`` (``WINBACK_MEASUREMENT_DATA``:
a file, folder or DuckDB as ``--data`` takes, with ``WINBACK_MEASUREMENT_MAPPING``
as ``--mapping``; or ``simulated`` for the built-in simulated shop ``winback
measure`` falls back to). A service without a source answers 409 saying what to
set; it never guesses. Answers: 404 for an unknown list id, 400 for a malformed
id, a bad date, a date not after the list date or past the end of the data, 422
when the list cannot be compared (e.g. no control group).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.responses import JSONResponse

from serving.api.schemas import MeasurementRequest
from serving.lists.store import SERVICE_LIST_DIR, read_list
from serving.measurement.data import MeasurementUnavailable, measurement_tables


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def parse_as_of(text: str) -> dt.date:
    """``YYYY-MM-DD`` as a date; ``ValueError`` saying the expected form otherwise."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"as_of {text!r} is not a date: use YYYY-MM-DD") from None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def measurement_body(report: Any, *, data_until: dt.date, confidence: float) -> dict[str, Any]:
    """The JSON of ``MeasurementResponse``: the comparison and each group's interval per metric."""
    return {
        "list_id": report.list_id,
        "kind": report.kind,
        "list_date": report.list_date.isoformat(),
        "as_of": report.as_of.isoformat(),
        "data_until": data_until.isoformat(),
        "confidence": confidence,
        "metrics": [
            {k: _clean(v) for k, v in row.items()}
            for row in report.comparison.to_dict(orient="records")
        ],
        "groups": [
            {k: _clean(v) for k, v in row.items()}
            for row in report.groups.to_dict(orient="records")
        ],
    }


async def measurement_endpoint(state: Any, request: MeasurementRequest) -> JSONResponse:
    """Measure a saved list of the service against its measurement data.

    ``state`` is ``serving.api.service.ServingState`` (its ``config`` names the home
    and the data). The list and the date are checked before any data is read.
    """
    from serving.measurement.campaign import measure_list

    list_dir = Path(state.config.home) / SERVICE_LIST_DIR
    try:
        frame, manifest = read_list(list_dir, request.list_id)
    except ValueError as exc:
        return _error(400, str(exc), list_id=request.list_id)
    except FileNotFoundError:
        return _error(
            404,
            f"no saved list {request.list_id!r} on this service: check the id (lists made "
            f"with `winback lists` elsewhere must be in {str(list_dir)!r})",
            list_id=request.list_id,
        )
    list_date = manifest.list_date
    as_of = None
    if request.as_of:
        try:
            as_of = parse_as_of(request.as_of)
        except ValueError as exc:
            return _error(400, str(exc))
        if as_of <= list_date:
            return _error(
                400,
                f"as_of {as_of} must be after the list date {list_date}: measurement reads "
                f"what the customers did after the list was made",
            )
    try:
        tables = await anyio.to_thread.run_sync(measurement_tables, state.config)
    except MeasurementUnavailable as exc:
        return _error(409, str(exc))
    data_until = tables.last_event_at().date()
    if as_of is not None and as_of > data_until:
        return _error(
            400,
            f"as_of {as_of} is after the last day of the measurement data ({data_until}): "
            f"days without data would count as days without orders; measure up to "
            f"{data_until} or load newer data",
        )
    if as_of is None:
        as_of = data_until
        if as_of <= list_date:
            return _error(
                400,
                f"the measurement data ends on {data_until}, not after the list date "
                f"{list_date}: nothing has happened since the list was made (load newer data)",
            )

    def measure() -> Any:
        return measure_list(
            tables,
            frame,
            list_id=manifest.list_id,
            kind=manifest.kind,
            list_date=list_date,
            as_of=as_of,
            confidence=request.confidence,
        )

    try:
        report = await anyio.to_thread.run_sync(measure)
    except ValueError as exc:
        return _error(422, f"cannot measure list {manifest.list_id!r}: {exc}")
    return JSONResponse(
        measurement_body(report, data_until=data_until, confidence=request.confidence)
    )
