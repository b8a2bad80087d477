"""Columns in canonical dtypes: Arrow-backed strings, ids, UTC timestamps from days.

The simulator works in float days since ``start``; these helpers turn its arrays
into the contract's dtypes (and back, for the oracle) without a Python loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.simulation.config import DAY_US, SimulationConfig


def string_array(values: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """Arrow strings as a pandas string array (no copy)."""
    return pd.arrays.ArrowStringArray(values)


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Zero-padded string ids such as ``C0000042`` (vectorised in Arrow)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def take(labels: pa.Array, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    """The label of each code, as a pandas string array."""
    return string_array(labels.take(pa.array(codes)))


def timestamps(config: SimulationConfig, t_days: np.ndarray) -> pd.Series:
    """UTC timestamps (microseconds) of times in days since start; inf -> NaT."""
    base = int(np.datetime64(config.start, "us").astype(np.int64))
    finite = np.isfinite(t_days)
    if finite.all():
        us = (t_days * DAY_US).astype(np.int64)  # truncation = floor for t >= 0
        us += base
    else:
        us = np.where(finite, np.floor(np.where(finite, t_days, 0.0) * DAY_US), 0).astype(np.int64)
        us = np.where(finite, us + base, np.iinfo(np.int64).min)
    return pd.Series(us.view("datetime64[us]")).dt.tz_localize("UTC")


def days_since_start(config: SimulationConfig, stamps: pd.Series) -> np.ndarray:
    """Inverse of :func:`timestamps`: days since start, NaT -> inf."""
    base = int(np.datetime64(config.start, "us").astype(np.int64))
    values = stamps.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    us = values.to_numpy().view(np.int64)
    out = (us - base) / DAY_US
    return np.where(values.isna().to_numpy(), np.inf, out)


def interleave(
    first: np.ndarray, second: np.ndarray, pos_first: np.ndarray, pos_second: np.ndarray, n: int
) -> np.ndarray:
    """One array of length ``n`` with ``first`` at ``pos_first`` and ``second`` at ``pos_second``."""
    out = np.empty(n, dtype=first.dtype)
    out[pos_first] = first
    out[pos_second] = second
    return out
