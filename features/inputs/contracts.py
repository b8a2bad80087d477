"""Validation at the boundary: bring raw tables into the contract, quarantine bad rows.

Every table winback reads passes through :func:`validate_table` (or
:func:`validate_shop` for a whole shop) before features see it. Table-level
problems (a missing required column, no rows, a column none of whose values
parse) raise :class:`ContractError`. Row-level problems never drop a row
silently: the row goes to the quarantine with a ``reason``, a human-readable
``detail`` and its ``source_row`` (0-based input row number), and the
:class:`ValidationReport` counts it, so that ``rows_in == rows_accepted +
rows_quarantined`` always holds.

Order of reasons
----------------
A row failing several checks is counted once, under the first reason in this
order (columns within a step in schema order):

0. ``erased`` -- the customer was forgotten (``winback forget``): counted in the
   report, kept neither in the table nor in the quarantine file.
1. ``missing_<column>`` -- a required value is null, empty or a null token
   (``""``, ``"nan"``, ``"null"``, ``"none"``, ``"n/a"``, ...); also a gap in an
   optional ``quantity`` column (int64 cannot hold one). A gap in an optional
   ``is_return`` column reads as ``False`` (and is counted in the notes).
2. ``unparseable_<column>`` -- a value is present but is not an id, timestamp,
   number, integer or boolean (``inf`` is not a number; ``2.5`` is not an id).
3. ``future_<column>`` -- a timestamp after ``now``.
4. reasons from a column mapping's exclusions (e.g. ``non_product_line``), in
   the order the mapping lists them (see ``features.inputs.mappings``).
5. value rules: ``negative_amount`` (a negative line that is not a return, see
   :class:`ContractOptions`), ``zero_amount``, ``negative_discount_amount``,
   ``non_positive_quantity`` (a purchase line with quantity <= 0),
   ``rating_out_of_range`` (outside 1-5), ``invalid_group`` (not
   treatment/control), ``self_referral``, ``invalid_event_type`` (an
   engagement event that is not one of ``features.inputs.schema.EVENT_TYPES``; case
   is ignored).
6. ``duplicate_row`` -- the same canonical values as an earlier accepted row;
   then key duplicates of an earlier accepted row: ``duplicate_customer_id``
   (customers), ``duplicate_ticket_id`` (support tickets),
   ``duplicate_campaign_contact`` (same customer twice in one campaign).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.inputs.schema import EVENT_TYPES, GROUPS, SCHEMAS, Column, ShopTables, TableSchema
from features.publish import publish_file, publish_text
from features.redaction import redact_credentials

#: Hidden input column with each row's 0-based row number in the original source.
SOURCE_ROW_COLUMN = "__source_row__"
#: Hidden input column with a reason set by a column mapping's exclusions (or null).
EXCLUDE_REASON_COLUMN = "__exclude_reason__"
HIDDEN_COLUMNS = (SOURCE_ROW_COLUMN, EXCLUDE_REASON_COLUMN)
#: Quarantine reason of the rows of a forgotten customer (counted, never kept).
ERASED = "erased"
#: Tells which of the given customer ids are erased (``ErasureRegistry.mask``).
ErasedIds = Callable[[pd.Series], np.ndarray]

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

#: Key duplicates checked per table after exact duplicates: reason -> key columns.
KEY_DUPLICATES: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {"duplicate_customer_id": ("customer_id",)},
    "support_tickets": {"duplicate_ticket_id": ("ticket_id",)},
    "campaign_contacts": {"duplicate_campaign_contact": ("campaign_id", "customer_id")},
}


class ContractError(ValueError):
    """A table cannot be brought into the contract at all (not a row-level problem)."""


@dataclass(frozen=True)
class ContractOptions:
    """How to read values the contract cannot decide alone (set by a column mapping).

    Parameters
    ----------
    negative_amount_is_return
        A negative ``amount`` marks a returned line: it becomes ``is_return =
        True`` with the positive amount. Otherwise a negative amount on a line
        not flagged as a return is quarantined as ``negative_amount``.
    allow_zero_amount
        Accept zero-value lines (free items); quarantined as ``zero_amount`` by default.
    timestamp_formats
        ``strftime`` formats tried in order for text timestamps; ISO 8601 when empty.
    timezone
        IANA zone of timestamps that carry none (shop local time); converted to UTC.
    keep_unmapped
        Keep the input's columns outside the contract in the quarantine file (a
        mapping's ``keep_unmapped``). Off by default: they may be personal data
        (names, e-mails) that nothing downstream needs.
    """

    negative_amount_is_return: bool = False
    allow_zero_amount: bool = False
    timestamp_formats: tuple[str, ...] = ()
    timezone: str = "UTC"
    keep_unmapped: bool = False


@dataclass(frozen=True)
class ValidationReport:
    """What validation did to one table: counts per quarantine reason and notes."""

    table: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    by_reason: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rows_in != self.rows_accepted + self.rows_quarantined:
            raise AssertionError(
                f"{self.table}: rows_in {self.rows_in} != accepted {self.rows_accepted}"
                f" + quarantined {self.rows_quarantined}"
            )
        if sum(self.by_reason.values()) != self.rows_quarantined:
            raise AssertionError(f"{self.table}: reason counts do not add up to the quarantine")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class ValidatedTable:
    """A table in contract shape, its quarantined input rows, and the report."""

    table: pd.DataFrame
    quarantine: pd.DataFrame
    report: ValidationReport


@dataclass(frozen=True)
class ShopValidation:
    """A validated shop: the contract tables and, per table, the validation result."""

    tables: ShopTables
    results: dict[str, ValidatedTable]

    def summary(self) -> pd.DataFrame:
        """One row per table and quarantine reason (``reason`` empty for a clean table).

        Columns: ``table, rows_in, rows_accepted, rows_quarantined, reason, rows``.
        """
        rows = []
        for name, result in self.results.items():
            r = result.report
            base = {
                "table": name,
                "rows_in": r.rows_in,
                "rows_accepted": r.rows_accepted,
                "rows_quarantined": r.rows_quarantined,
            }
            if not r.by_reason:
                rows.append({**base, "reason": "", "rows": 0})
            for reason, count in r.by_reason.items():
                rows.append({**base, "reason": reason, "rows": count})
        columns = ["table", "rows_in", "rows_accepted", "rows_quarantined", "reason", "rows"]
        return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- coercion


@dataclass
class _Coerced:
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


def _example(series: pd.Series, mask: np.ndarray, n: int = 3) -> str:
    values = series[mask].head(n).tolist()
    return ", ".join(repr(v) for v in values)


def _coerce_id(series: pd.Series, name: str) -> _Coerced:
    notes: list[str] = []
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return _Coerced(
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
        return _Coerced(out, missing, bad, notes)
    if pd.api.types.is_integer_dtype(series.dtype):
        missing = series.isna().to_numpy()
        return _Coerced(series.astype("string"), missing, np.zeros(n, bool), notes)
    raw = series.astype("string")
    text, missing = _text(series)
    stripped = (raw.fillna("") != text.fillna("")).to_numpy(dtype=bool) & ~missing
    if stripped.any():
        notes.append(
            f"{name}: {int(stripped.sum()):,} values had surrounding whitespace, stripped"
            f" (e.g. {_example(raw, stripped, 1)})"
        )
    floaty = text.str.fullmatch(_FLOAT_ID).fillna(False).to_numpy(dtype=bool)
    if floaty.any():
        notes.append(
            f"{name}: {int(floaty.sum()):,} float-formatted ids (e.g. {_example(text, floaty, 1)})"
            f" written without the '.0'"
        )
        text = text.where(~floaty, text.str.replace(r"\.0+$", "", regex=True))
    return _Coerced(text, missing, np.zeros(n, bool), notes)


def _coerce_float(series: pd.Series, name: str) -> _Coerced:
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return _Coerced(
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
                f" separators, removed (e.g. {_example(text, changed, 1)})"
            )
        values = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~missing & ~np.isfinite(values)
    values = np.where(bad, np.nan, values)
    return _Coerced(pd.Series(values, index=series.index), missing, bad, notes)


def _coerce_int(series: pd.Series, name: str) -> _Coerced:
    c = _coerce_float(series, name)
    values = c.values.to_numpy()
    ok = ~c.missing & ~c.bad
    integral = ok & (np.floor(np.where(ok, values, 0)) == values)
    c.bad = c.bad | (ok & ~integral)
    c.values = pd.Series(np.where(integral, values, 0).astype("int64"), index=series.index)
    return c


def _coerce_bool(series: pd.Series, name: str) -> _Coerced:
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return _Coerced(series.astype(bool), np.zeros(n, bool), np.zeros(n, bool))
    text, missing = _text(series)
    lowered = text.str.lower()
    is_true = lowered.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
    is_false = lowered.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
    bad = ~missing & ~is_true & ~is_false
    return _Coerced(pd.Series(is_true, index=series.index), missing, bad)


def _coerce_category(series: pd.Series, name: str) -> _Coerced:
    text, missing = _text(series)
    return _Coerced(text, missing, np.zeros(len(series), bool))


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


def _coerce_timestamp(series: pd.Series, name: str, options: ContractOptions) -> _Coerced:
    notes: list[str] = []
    n = len(series)
    zone = options.timezone
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        missing = series.isna().to_numpy()
        return _Coerced(series.dt.tz_convert("UTC"), missing, np.zeros(n, bool), notes)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        missing = series.isna().to_numpy()
        notes.append(f"{name} had no time zone: assumed {zone}")
        return _Coerced(_localize(series, zone, name, notes), missing, np.zeros(n, bool), notes)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        codes, uniques = pd.factorize(series)
        if 0 < len(uniques) < n // 2:
            # Exports repeat timestamps (one per order, many lines): parse each text once.
            once = _coerce_timestamp(pd.Series(uniques, dtype=series.dtype), name, options)
            taken = np.where(codes >= 0, codes, 0)
            values = once.values.dt.tz_localize(None).to_numpy("datetime64[us]")[taken]
            values[codes < 0] = np.datetime64("NaT")
            missing = once.missing[taken] | (codes < 0)
            bad = once.bad[taken] & (codes >= 0)
            notes = [_recount_naive(note, missing, bad, n) for note in once.notes]
            return _Coerced(_utc_series(values, series.index), missing, bad, notes)
    text, missing = _text(series)
    # UTC instants as naive datetime64[us]: cheap to assign into, localized at the end.
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    if pd.api.types.is_numeric_dtype(series.dtype) or missing.all():
        return _Coerced(_utc_series(out, series.index), missing, ~missing, notes)
    aware = text.str.contains(_TZ_SUFFIX.pattern, regex=True).fillna(False).to_numpy(dtype=bool)
    todo = ~missing
    naive_parsed = np.zeros(n, bool)
    for fmt in options.timestamp_formats or ("ISO8601",):
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
    return _Coerced(_utc_series(out, series.index), missing, todo, notes)


def _recount_naive(note: str, missing: np.ndarray, bad: np.ndarray, n: int) -> str:
    """A note counted over distinct values, recounted over rows where it has a count."""
    head, sep, tail = note.partition(" had no time zone on ")
    if not sep:
        return note
    count = int((~missing & ~bad).sum())
    return f"{head}{sep}{count:,} values:{tail.split(' values:', 1)[1]}"


def _utc_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index).dt.tz_localize("UTC").astype("datetime64[us, UTC]")


def _coerce(series: pd.Series, column: Column, options: ContractOptions) -> _Coerced:
    if column.kind == "id":
        return _coerce_id(series, column.name)
    if column.kind == "timestamp":
        return _coerce_timestamp(series, column.name, options)
    if column.kind == "float":
        return _coerce_float(series, column.name)
    if column.kind == "int":
        return _coerce_int(series, column.name)
    if column.kind == "bool":
        return _coerce_bool(series, column.name)
    return _coerce_category(series, column.name)


# --------------------------------------------------------------------------- validation


class _Reasons:
    """First-reason-wins bookkeeping of quarantine reasons and details per row."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)
        self.detail = np.full(n, None, dtype=object)

    @property
    def open(self) -> np.ndarray:
        return pd.isna(self.reason)

    def flag(self, mask: np.ndarray, reason: str, detail: str | Callable) -> None:
        """Give ``reason`` to the rows in ``mask`` that have none yet.

        ``detail`` is a text, or a function of the newly flagged row mask that
        returns their details (so that text is only built for flagged rows).
        """
        new = np.asarray(mask, dtype=bool) & self.open
        if not new.any():
            return
        self.reason[new] = reason
        if isinstance(detail, str):
            self.detail[new] = detail
        else:
            self.detail[new] = np.asarray(detail(new), dtype=object)


def _describe(prefix: str, series: pd.Series, suffix: str = "") -> Callable:
    """A detail builder: ``prefix + value + suffix`` for the flagged rows only."""

    def build(mask: np.ndarray) -> list[str]:
        return [f"{prefix}{v}{suffix}" for v in series[mask].tolist()]

    return build


def _schema(table: str) -> TableSchema:
    if table not in SCHEMAS:
        raise ContractError(
            f"unknown table {table!r}: the contract has {sorted(SCHEMAS)}; rename the table"
            " or use a column mapping"
        )
    return SCHEMAS[table]


def _quarantine_frame(
    frame: pd.DataFrame, rows: np.ndarray, reasons: _Reasons, source_row, visible: list
):
    """The offending input rows as text (columns ``visible``), plus reason, detail, source_row."""
    taken = frame.iloc[rows][visible].astype("string").reset_index(drop=True)
    taken.columns = [
        f"input_{c}" if c in ("reason", "detail", "source_row") else str(c) for c in visible
    ]
    taken["reason"] = pd.array(reasons.reason[rows], dtype="string")
    taken["detail"] = pd.array(reasons.detail[rows], dtype="string")
    taken["source_row"] = np.asarray(source_row)[rows].astype("int64")
    return taken


def _flag_erased(coerced: dict[str, _Coerced], erased: ErasedIds | None, reasons: _Reasons):
    """Step 0: rows of forgotten customers get reason ``erased``; returns their mask."""
    c = coerced.get("customer_id")
    if erased is None or c is None:
        return np.zeros(len(reasons.reason), dtype=bool)
    rows = np.asarray(erased(c.values), dtype=bool) & ~c.missing
    reasons.flag(rows, ERASED, "customer erased (winback forget)")
    return rows


def _blank_erased_references(
    table: str, values: dict[str, pd.Series], erased: ErasedIds | None, notes: list[str]
) -> None:
    """A forgotten customer named in someone else's row (a referral) is blanked there."""
    if erased is None or table != "referrals" or "referred_customer_id" not in values:
        return
    refs = np.asarray(erased(values["referred_customer_id"]), dtype=bool)
    if refs.any():
        values["referred_customer_id"] = values["referred_customer_id"].mask(refs, pd.NA)
        notes.append(f"referred_customer_id: {int(refs.sum()):,} erased customers blanked")


def validate_table(
    frame: pd.DataFrame,
    table: str,
    *,
    now: pd.Timestamp | None = None,
    options: ContractOptions | None = None,
    erased: ErasedIds | None = None,
) -> ValidatedTable:
    """Bring one raw table into its contract shape and quarantine the rows that cannot be.

    Parameters
    ----------
    frame
        The raw table, columns already named as in ``features.inputs.schema`` (apply a
        column mapping first if they are not). Unknown columns are dropped and
        listed in the report. The input is not modified.
    table
        Contract table name, a key of ``features.inputs.schema.SCHEMAS``.
    now
        Timestamps after it are quarantined as ``future_<column>``; the current
        time by default. Naive values are read as UTC.
    options
        How to read returns, zero amounts and timestamps (see :class:`ContractOptions`).
    erased
        Tells which customer ids were forgotten (``features.erasure.ErasureRegistry.mask``):
        their rows are counted under ``erased`` and kept nowhere, not even in the quarantine.

    Returns
    -------
    ValidatedTable
        ``table`` with canonical dtypes and a fresh ``RangeIndex``; ``quarantine``
        with the offending input rows as text plus ``reason``, ``detail`` and
        ``source_row``; ``report`` with the counts (see the module docstring for
        the order of reasons).

    Raises
    ------
    ContractError
        A required column is missing, the table has no rows, or a column has
        values none of which can be read.
    """
    schema = _schema(table)
    options = options or ContractOptions()
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    n = len(frame)
    if n == 0:
        raise ContractError(
            f"table {table!r} has no rows; remove it from the input or check its source"
            " (file, query or mapping)"
        )
    columns = [str(c) for c in frame.columns]
    missing_columns = [c for c in schema.required if c not in columns]
    if missing_columns:
        raise ContractError(
            f"table {table!r} is missing required column(s) {missing_columns};"
            f" found {[c for c in columns if c not in HIDDEN_COLUMNS]}."
            " Rename the columns or use a column mapping (--mapping NAME|FILE)."
        )
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise ContractError(f"table {table!r} has repeated column names {dupes}; rename them")
    notes: list[str] = []
    unknown = [c for c in columns if c not in schema.names and c not in HIDDEN_COLUMNS]
    if unknown:
        notes.append(f"dropped unknown columns {unknown}")
    source_row = (
        frame[SOURCE_ROW_COLUMN].to_numpy(dtype="int64")
        if SOURCE_ROW_COLUMN in frame.columns
        else np.arange(n, dtype="int64")
    )

    coerced: dict[str, _Coerced] = {}
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        c = _coerce(frame[column.name].reset_index(drop=True), column, options)
        notes.extend(c.notes)
        present = ~c.missing
        if present.any() and c.bad[present].all():
            raw = frame[column.name].reset_index(drop=True)
            hint = (
                " Set timestamp_formats in the column mapping."
                if column.kind == "timestamp"
                else " Fix the source or map another column."
            )
            raise ContractError(
                f"table {table!r}: no value of column {column.name!r} can be read as"
                f" {column.kind} ({int(present.sum()):,} values, e.g."
                f" {_example(raw, present)}).{hint}"
            )
        if c.missing.all():
            if column.required:
                raise ContractError(
                    f"table {table!r}: required column {column.name!r} has no values in"
                    f" {n:,} rows; map the right source column to it"
                )
            notes.append(f"dropped optional column {column.name!r}: no values in {n:,} rows")
            continue
        coerced[column.name] = c

    reasons = _Reasons(n)
    erased_rows = _flag_erased(coerced, erased, reasons)
    raw_of = {name: frame[name].reset_index(drop=True) for name in coerced}
    # 1. missing required values (and gaps an int64 column cannot hold)
    for column in schema.columns:
        c = coerced.get(column.name)
        if c is not None and (column.required or column.kind == "int"):
            reasons.flag(c.missing, f"missing_{column.name}", f"{column.name} is missing")
    # 2. unparseable values
    for column in schema.columns:
        c = coerced.get(column.name)
        if c is not None:
            detail = _describe(f"{column.name}=", raw_of[column.name], f" is not {column.kind}")
            reasons.flag(c.bad, f"unparseable_{column.name}", detail)
    # 3. future timestamps (a do-not-contact dated ahead still applies: never quarantined)
    for column in schema.columns:
        c = coerced.get(column.name)
        if c is not None and column.kind == "timestamp" and table != "suppressions":
            future = (c.values > now).fillna(False).to_numpy(dtype=bool)
            detail = _describe(f"{column.name}=", c.values, f" is after now={now}")
            reasons.flag(future, f"future_{column.name}", detail)
    # 4. exclusions declared by a column mapping
    if EXCLUDE_REASON_COLUMN in frame.columns:
        excluded = frame[EXCLUDE_REASON_COLUMN].reset_index(drop=True).astype("string")
        for reason in pd.unique(excluded.dropna()):
            mask = (excluded == reason).fillna(False).to_numpy(dtype=bool)
            reasons.flag(mask, str(reason), f"excluded by the column mapping: {reason}")

    values = {name: c.values for name, c in coerced.items()}
    _blank_erased_references(table, values, erased, notes)
    if c := coerced.get("is_return"):
        values["is_return"] = c.values.where(~pd.Series(c.missing), False).astype(bool)
        if c.missing.any():
            notes.append(f"is_return: {int(c.missing.sum()):,} missing flags read as False")
    _value_rules(table, values, reasons, options, notes)

    # 6. duplicates among rows still accepted
    canonical = pd.DataFrame({k: v for k, v in values.items()})
    open_rows = reasons.open
    dup = np.zeros(n, bool)
    dup[open_rows] = canonical[open_rows].duplicated(keep="first").to_numpy()
    reasons.flag(dup, "duplicate_row", "same values as an earlier row")
    for reason, key in KEY_DUPLICATES.get(table, {}).items():
        if all(k in canonical for k in key):
            open_rows = reasons.open
            dup = np.zeros(n, bool)
            dup[open_rows] = canonical[open_rows].duplicated(subset=list(key)).to_numpy()
            detail = _describe(
                f"{key[0]}=",
                canonical[key[0]],
                f" already seen in an earlier row (key {list(key)})",
            )
            reasons.flag(dup, reason, detail)

    accepted = reasons.open
    out = canonical[accepted].reset_index(drop=True)
    dtypes = schema.dtypes(list(out.columns))
    out = out[[c for c in schema.names if c in out.columns]].astype(dtypes)
    quarantined = np.flatnonzero(~accepted)
    visible = [
        c
        for c in frame.columns
        if c not in HIDDEN_COLUMNS and (options.keep_unmapped or str(c) in schema.names)
    ]
    kept = np.flatnonzero(~accepted & ~erased_rows)  # erased rows are counted, never kept
    quarantine = _quarantine_frame(frame, kept, reasons, source_row, visible)
    by_reason = (
        pd.Series(reasons.reason[quarantined]).value_counts(sort=False).to_dict()
        if len(quarantined)
        else {}
    )
    by_reason = {str(k): int(v) for k, v in by_reason.items()}
    report = ValidationReport(
        table=table,
        rows_in=n,
        rows_accepted=len(out),
        rows_quarantined=len(quarantined),
        by_reason=_ordered_reasons(by_reason, schema),
        notes=tuple(dict.fromkeys(notes)),
    )
    return ValidatedTable(out, quarantine, report)


_VALUE_RULES = (
    "negative_amount",
    "zero_amount",
    "negative_discount_amount",
    "non_positive_quantity",
    "rating_out_of_range",
    "invalid_group",
    "self_referral",
    "invalid_event_type",
)


def _ordered_reasons(by_reason: dict[str, int], schema: TableSchema) -> dict[str, int]:
    """Reason counts in the documented order (step, then schema column order)."""
    names = schema.names
    steps = [
        [f"missing_{c}" for c in names],
        [f"unparseable_{c}" for c in names],
        [f"future_{c}" for c in names],
    ]
    fixed = [r for step in steps for r in step]
    tail = (
        list(_VALUE_RULES)
        + ["duplicate_row"]
        + [r for rules in KEY_DUPLICATES.values() for r in rules]
    )
    first = [r for r in [ERASED, *fixed] if r in by_reason]
    mapping = [r for r in by_reason if r not in fixed and r not in tail and r != ERASED]
    last = [r for r in tail if r in by_reason]
    return {r: by_reason[r] for r in first + mapping + last}


def _value_rules(
    table: str,
    values: dict[str, pd.Series],
    reasons: _Reasons,
    options: ContractOptions,
    notes: list[str],
) -> None:
    """Step 5: per-table value rules; fixes return signs in ``values`` in place."""
    if table == "transactions":
        amount = values["amount"]
        given = "is_return" in values
        is_return = values["is_return"] if given else pd.Series(False, index=amount.index)
        negative = (amount < 0).to_numpy()
        flagged = negative & is_return.to_numpy()
        as_return = negative & ~is_return.to_numpy() & options.negative_amount_is_return
        if flagged.any():
            notes.append(
                f"amount: {int(flagged.sum()):,} negative amounts on lines flagged is_return:"
                " made positive"
            )
        if as_return.any():
            notes.append(
                f"amount: {int(as_return.sum()):,} negative lines read as returns"
                " (is_return = True, positive amount)"
            )
        if not given:
            notes.append("is_return absent: lines are purchases unless read as returns")
        is_return = pd.Series(is_return.to_numpy() | as_return, index=amount.index)
        values["is_return"] = is_return
        values["amount"] = amount.abs().where(flagged | as_return, amount)
        if "quantity" in values:
            q = values["quantity"]
            values["quantity"] = q.abs().where(is_return.to_numpy(), q)
        reasons.flag(
            negative & ~flagged & ~as_return,
            "negative_amount",
            _describe(
                "amount=",
                amount,
                " is negative and the line is not a return; use a mapping with"
                " returns = 'negative_lines' if negative lines are returns",
            ),
        )
        if not options.allow_zero_amount:
            reasons.flag((amount == 0).to_numpy(), "zero_amount", "amount is 0 (zero-price line)")
        if "discount_amount" in values:
            d = values["discount_amount"]
            reasons.flag(
                (d < 0).to_numpy(),
                "negative_discount_amount",
                _describe("discount_amount=", d, " is negative"),
            )
        if "quantity" in values:
            q = values["quantity"]
            reasons.flag(
                ((q <= 0) & ~is_return).to_numpy(),
                "non_positive_quantity",
                _describe("quantity=", q, " on a purchase line"),
            )
    elif table == "reviews":
        rating = values["rating"]
        reasons.flag(
            ((rating < 1) | (rating > 5)).to_numpy(),
            "rating_out_of_range",
            _describe("rating=", rating, " is outside 1-5"),
        )
    elif table == "campaign_contacts":
        group = values["group"].str.lower()
        values["group"] = group
        reasons.flag(
            ~group.isin(GROUPS).fillna(False).to_numpy(dtype=bool),
            "invalid_group",
            _describe("group=", group, f" is not one of {list(GROUPS)}"),
        )
    elif table == "referrals" and "referred_customer_id" in values:
        same = (values["referred_customer_id"] == values["customer_id"]).fillna(False)
        reasons.flag(same.to_numpy(dtype=bool), "self_referral", "customer referred themself")
    elif table == "engagement_events":
        event_type = values["event_type"].str.lower()
        values["event_type"] = event_type
        reasons.flag(
            ~event_type.isin(EVENT_TYPES).fillna(False).to_numpy(dtype=bool),
            "invalid_event_type",
            _describe(
                "event_type=",
                event_type,
                f" is not one of {list(EVENT_TYPES)}; map the source's types to these",
            ),
        )


def validate_shop(
    raw: Mapping[str, pd.DataFrame],
    *,
    now: pd.Timestamp | None = None,
    options: Mapping[str, ContractOptions] | None = None,
    source: str = "",
    erased: ErasedIds | None = None,
) -> ShopValidation:
    """Validate every table of a shop; ``transactions`` is required, the rest optional.

    Parameters
    ----------
    raw
        Raw tables by contract name.
    now
        See :func:`validate_table`; one ``now`` for all tables.
    options
        :class:`ContractOptions` per table name (defaults otherwise).
    source
        Where the data came from, kept on the :class:`ShopTables` (credentials masked).
    erased
        See :func:`validate_table`.
    """
    unknown = [name for name in raw if name not in SCHEMAS]
    if unknown:
        raise ContractError(
            f"unknown table(s) {unknown}; the contract has {sorted(SCHEMAS)}."
            " Rename them or use a column mapping."
        )
    if "transactions" not in raw:
        raise ContractError(
            f"no 'transactions' table among {sorted(raw)}; winback needs the order lines"
        )
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    options = options or {}
    results = {
        name: validate_table(frame, name, now=now, options=options.get(name), erased=erased)
        for name, frame in raw.items()
    }
    tables = ShopTables(
        **{name: r.table for name, r in results.items()}, source=redact_credentials(source)
    )
    return ShopValidation(tables=tables, results=results)


def write_quarantine(validation: ShopValidation, out_dir: Path) -> dict[str, Path]:
    """Write ``<table>.quarantine.parquet`` per table and ``validation_report.json``.

    Each file is written atomically (temporary file, then rename), so a reader
    never sees half a file. Returns the written paths by table name, plus
    ``"report"`` for the JSON report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, result in validation.results.items():
        path = out_dir / f"{name}.quarantine.parquet"
        publish_file(path, lambda p, q=result.quarantine: q.to_parquet(p, index=False))
        written[name] = path
    report = {
        "source": redact_credentials(validation.tables.source),
        "tables": {name: r.report.to_dict() for name, r in validation.results.items()},
        "dtypes": {
            name: {c: str(d) for c, d in r.table.dtypes.items()}
            for name, r in validation.results.items()
        },
    }
    path = out_dir / "validation_report.json"
    publish_text(path, json.dumps(report, indent=2) + "\n")
    written["report"] = path
    return written


__all__ = [
    "EXCLUDE_REASON_COLUMN",
    "SOURCE_ROW_COLUMN",
    "ContractError",
    "ContractOptions",
    "ShopValidation",
    "ValidatedTable",
    "ValidationReport",
    "validate_shop",
    "validate_table",
    "write_quarantine",
]
