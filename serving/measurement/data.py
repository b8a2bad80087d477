"""The shop data the service measures lists against (``WINBACK_MEASUREMENT_DATA``), loaded once."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from features.inputs.schema import ShopTables
from serving.config import ENV_MEASUREMENT_DATA, ENV_MEASUREMENT_MAPPING, SIMULATED_DATA


class MeasurementUnavailable(RuntimeError):
    """The service has no (readable) transactions to measure lists against."""


@functools.lru_cache(maxsize=2)
def _load_tables(source: str, mapping: str | None, stamp: int) -> ShopTables:
    """The validated tables of ``source`` (cached while the file's mtime ``stamp`` holds)."""
    if source == SIMULATED_DATA:
        from features.simulation import SimulationConfig, simulate_shop

        return simulate_shop(SimulationConfig()).tables
    path = Path(source)
    if path.is_dir() and (path / "simulation.json").exists() and mapping is None:
        from features.simulation import read_shop

        return read_shop(path).tables
    from features.inputs.sources import load_shop

    return load_shop(path, mapping).tables


def measurement_tables(config: Any) -> ShopTables:
    """The shop tables measurement reads, from ``config.measurement_data`` (loaded once).

    Raises
    ------
    MeasurementUnavailable
        When no source is configured, the path does not exist or cannot be read,
        naming the setting to fix.
    """
    if config.measurement_data is None:
        raise MeasurementUnavailable(
            f"this service has no transactions to measure lists against: start it with "
            f"{ENV_MEASUREMENT_DATA}=<the shop data `winback measure --data` reads> (a file, "
            f"folder or DuckDB, plus {ENV_MEASUREMENT_MAPPING} for a column mapping), or "
            f"{ENV_MEASUREMENT_DATA}={SIMULATED_DATA} for the built-in simulated shop"
        )
    if config.measurement_data == SIMULATED_DATA:
        return _load_tables(SIMULATED_DATA, None, 0)
    path = config.measurement_path
    if not path.exists():
        raise MeasurementUnavailable(
            f"{ENV_MEASUREMENT_DATA} names {str(path)!r}, which does not exist: point it at the "
            f"shop data (file, folder or DuckDB) and restart the service"
        )
    try:
        return _load_tables(str(path), config.measurement_mapping, path.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError) as exc:
        raise MeasurementUnavailable(
            f"cannot read the measurement data {str(path)!r} ({type(exc).__name__}: {exc}): "
            f"check {ENV_MEASUREMENT_DATA} and {ENV_MEASUREMENT_MAPPING}"
        ) from exc
