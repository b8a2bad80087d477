"""Reading raw cells as contract values: ids, timestamps, numbers, integers, booleans.

Each column is coerced into its contract dtype along with two row masks: the
cells that are missing (nulls and null tokens such as ``"n/a"``) and the cells
that are present but cannot be read. Nothing is dropped here; the masks feed the
quarantine reasons of ``features.inputs.contracts.validate_table``. Repairs that
keep the value (stripped whitespace, float-formatted ids, currency symbols,
thousands separators, naive local times) are reported as notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.inputs.schema import Column

#: Cell values read as missing, compared after stripping and lower-casing.
NULL_TOKENS = frozenset({"", "nan", "nat", "none", "null", "na", "n/a", "<na>", "#n/a", "-"})

_TZ_SUFFIX = re.compile(
    r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
)
_FLOAT_ID = re.compile(r"^[+-]?\d+\.0+$")
_GROUPED_NUMBER = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_CURRENCY = re.compile(r"^([+-]?)\s*[$£€¥]\s*")
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


@dataclass
class Coerced:
    """One column after coercion: values plus masks of missing and unparseable cells."""

    values: pd.Series
    missing: np.ndarray
    bad: np.ndarray
    notes: list[str] = field(default_factory=list)


def _text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Cells as stripped strings and the mask of missing cells (nulls and null tokens)."""
    isna = series.isna().to_numpy()
    text = series.astype("string").str.strip()
    lowered = text.str.lower()
    missing = isna | lowered.isin(NULL_TOKENS).fillna(True).to_numpy(dtype=bool)
    return text.where(~missing, pd.NA), missing


def examples(series: pd.Series, mask: np.ndarray, n: int = 3) -> str:
    """The first ``n`` values under ``mask``, quoted, for a note or an error message."""
    values = series[mask].head(n).tolist()
    return ", ".join(repr(v) for v in values)


def _coerce_id(series: pd.Series, name: str) -> Coerced:
    notes: list[str] = []
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return Coerced(
            pd.Series(pd.NA, index=series.index, dtype="string"),
            np.zeros(n, bool),
            np.ones(n, bool),
        )
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
        finite = np.isfinite(values)
        integral = finite & (np.floor(np.where(finite, values, 0)) == values)
        bad = ~missing & ~integral
        out = pd.Series(pd.NA, index=series.index, dtype="string")
        out[integral] = pd.Series(values[integral].astype("int64")).astype("string").to_numpy()
        if integral.any():
            notes.append(
                f"{name} was stored as floats (e.g. {float(values[integral][0])!r}):"
                f" written as integer strings"
            )
        return Coerced(out, missing, bad, notes)
    if pd.api.types.is_integer_dtype(series.dtype):
        missing = series.isna().to_numpy()
        return Coerced(series.astype("string"), missing, np.zeros(n, bool), notes)
    raw = series.astype("string")
    text, missing = _text(series)
    stripped = (raw.fillna("") != text.fillna("")).to_numpy(dtype=bool) & ~missing
    if stripped.any():
        notes.append(
            f"{name}: {int(stripped.sum()):,} values had surrounding whitespace, stripped"
            f" (e.g. {examples(raw, stripped, 1)})"
        )
    floaty = text.str.fullmatch(_FLOAT_ID).fillna(False).to_numpy(dtype=bool)
    if floaty.any():
        notes.append(
            f"{name}: {int(floaty.sum()):,} float-formatted ids (e.g. {examples(text, floaty, 1)})"
            f" written without the '.0'"
        )
        text = text.where(~floaty, text.str.replace(r"\.0+$", "", regex=True))
    return Coerced(text, missing, np.zeros(n, bool), notes)


def _coerce_float(series: pd.Series, name: str) -> Coerced:
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return Coerced(
            pd.Series(np.nan, index=series.index), series.isna().to_numpy(), np.ones(n, bool)
        )
    notes: list[str] = []
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
    else:
        text, missing = _text(series)
        cleaned = text.str.replace(_CURRENCY, r"\1", regex=True)
        grouped = cleaned.str.fullmatch(_GROUPED_NUMBER).fillna(False).to_numpy(dtype=bool)
        cleaned = cleaned.where(~grouped, cleaned.str.replace(",", "", regex=False))
        changed = (cleaned.fillna("") != text.fillna("")).to_numpy(dtype=bool)
        if changed.any():
            notes.append(
                f"{name}: {int(changed.sum()):,} values had currency symbols or thousands"
                f" separators, removed (e.g. {examples(text, changed, 1)})"
            )
        values = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~missing & ~np.isfinite(values)
    values = np.where(bad, np.nan, values)
    return Coerced(pd.Series(values, index=series.index), missing, bad, notes)


def _coerce_int(series: pd.Series, name: str) -> Coerced:
    c = _coerce_float(series, name)
    values = c.values.to_numpy()
    ok = ~c.missing & ~c.bad
    integral = ok & (np.floor(np.where(ok, values, 0)) == values)
    c.bad = c.bad | (ok & ~integral)
    c.values = pd.Series(np.where(integral, values, 0).astype("int64"), index=series.index)
    return c


def _coerce_bool(series: pd.Series, name: str) -> Coerced:
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return Coerced(series.astype(bool), np.zeros(n, bool), np.zeros(n, bool))
    text, missing = _text(series)
    lowered = text.str.lower()
    is_true = lowered.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
    is_false = lowered.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
    bad = ~missing & ~is_true & ~is_false
    return Coerced(pd.Series(is_true, index=series.index), missing, bad)


def _coerce_category(series: pd.Series, name: str) -> Coerced:
    text, missing = _text(series)
    return Coerced(text, missing, np.zeros(len(series), bool))


def _localize(naive: pd.Series, zone: str, name: str, notes: list[str]) -> pd.Series:
    """Naive local times in ``zone`` as UTC; DST gaps shifted forward, overlaps read as DST."""
    if zone in ("UTC", "Etc/UTC"):
        return naive.dt.tz_localize("UTC")
    ambiguous = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(zone, ambiguous=ambiguous, nonexistent="NaT")
    gap = local.isna() & naive.notna()
    if gap.any():
        notes.append(
            f"{name}: {int(gap.sum()):,} local times fell in a daylight-saving gap of {zone}:"
            " shifted forward"
        )
        local = naive.dt.tz_localize(zone, ambiguous=ambiguous, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC")


def _coerce_timestamp(series: pd.Series, name: str, formats: tuple[str, ...], zone: str) -> Coerced:
    notes: list[str] = []
    n = len(series)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        missing = series.isna().to_numpy()
        return Coerced(series.dt.tz_convert("UTC"), missing, np.zeros(n, bool), notes)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        missing = series.isna().to_numpy()
        notes.append(f"{name} had no time zone: assumed {zone}")
        return Coerced(_localize(series, zone, name, notes), missing, np.zeros(n, bool), notes)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        codes, uniques = pd.factorize(series)
        if 0 < len(uniques) < n // 2:
            # Exports repeat timestamps (one per order, many lines): parse each text once.
            once = _coerce_timestamp(pd.Series(uniques, dtype=series.dtype), name, formats, zone)
            taken = np.where(codes >= 0, codes, 0)
            values = once.values.dt.tz_localize(None).to_numpy("datetime64[us]")[taken]
            values[codes < 0] = np.datetime64("NaT")
            missing = once.missing[taken] | (codes < 0)
            bad = once.bad[taken] & (codes >= 0)
            notes = [_recount_naive(note, missing, bad, n) for note in once.notes]
            return Coerced(_utc_series(values, series.index), missing, bad, notes)
    text, missing = _text(series)
    # UTC instants as naive datetime64[us]: cheap to assign into, localized at the end.
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    if pd.api.types.is_numeric_dtype(series.dtype) or missing.all():
        return Coerced(_utc_series(out, series.index), missing, ~missing, notes)
    aware = text.str.contains(_TZ_SUFFIX.pattern, regex=True).fillna(False).to_numpy(dtype=bool)
    todo = ~missing
    naive_parsed = np.zeros(n, bool)
    for fmt in formats or ("ISO8601",):
        if not todo.any():
            break
        tz_format = fmt == "ISO8601" or "%z" in fmt or "%Z" in fmt
        parts = ((todo & aware, True), (todo & ~aware, False)) if tz_format else ((todo, False),)
        for part, utc in parts:
            if not part.any():
                continue
            parsed = pd.to_datetime(text[part], format=fmt, errors="coerce", utc=utc)
            ok = parsed.notna().to_numpy()
            if not ok.any():
                continue
            idx = np.flatnonzero(part)[ok]
            parsed = parsed[ok]
            if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
                parsed = _localize(parsed, zone, name, notes)
                naive_parsed[idx] = True
            out[idx] = parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
            todo[idx] = False
    if naive_parsed.any():
        mixed = " (the column mixes naive and tz-aware values)" if (aware & ~missing).any() else ""
        notes.append(
            f"{name} had no time zone on {int(naive_parsed.sum()):,} values: assumed {zone}{mixed}"
        )
    return Coerced(_utc_series(out, series.index), missing, todo, notes)


def _recount_naive(note: str, missing: np.ndarray, bad: np.ndarray, n: int) -> str:
    """A note counted over distinct values, recounted over rows where it has a count."""
    head, sep, tail = note.partition(" had no time zone on ")
    if not sep:
        return note
    count = int((~missing & ~bad).sum())
    return f"{head}{sep}{count:,} values:{tail.split(' values:', 1)[1]}"


def _utc_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index).dt.tz_localize("UTC").astype("datetime64[us, UTC]")


def coerce_column(
    series: pd.Series, column: Column, *, timestamp_formats: tuple[str, ...], timezone: str
) -> Coerced:
    """One raw column as its contract kind, with its missing and unparseable cells.

    ``timestamp_formats`` are ``strftime`` formats tried in order (ISO 8601 when
    empty); ``timezone`` is the zone of timestamps that carry none.
    """
    if column.kind == "id":
        return _coerce_id(series, column.name)
    if column.kind == "timestamp":
        return _coerce_timestamp(series, column.name, timestamp_formats, timezone)
    if column.kind == "float":
        return _coerce_float(series, column.name)
    if column.kind == "int":
        return _coerce_int(series, column.name)
    if column.kind == "bool":
        return _coerce_bool(series, column.name)
    return _coerce_category(series, column.name)
