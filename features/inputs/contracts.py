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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.inputs.coercion import Coerced, coerce_column, examples
from features.inputs.keys import KEY_COLUMNS
from features.inputs.quarantine import (
    ErasedIds,
    Reasons,
    apply_value_rules,
    blank_erased_references,
    flag_duplicates,
    flag_erased,
    flag_excluded,
    flag_unreadable,
    quarantine_frame,
    reason_counts,
)
from features.inputs.schema import SCHEMAS, ShopTables, TableSchema
from features.publish import publish_file, publish_text
from features.redaction import redact_credentials

#: Hidden input column with each row's 0-based row number in the original source.
SOURCE_ROW_COLUMN = "__source_row__"
#: Hidden input column with a reason set by a column mapping's exclusions (or null).
EXCLUDE_REASON_COLUMN = "__exclude_reason__"
HIDDEN_COLUMNS = (SOURCE_ROW_COLUMN, EXCLUDE_REASON_COLUMN)


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


def _schema(table: str) -> TableSchema:
    if table not in SCHEMAS:
        raise ContractError(
            f"unknown table {table!r}: the contract has {sorted(SCHEMAS)}; rename the table"
            " or use a column mapping"
        )
    return SCHEMAS[table]


def _utc_now(now: pd.Timestamp | None) -> pd.Timestamp:
    """``now`` in UTC (naive values read as UTC); the current time when ``None``."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")


def _check_columns(frame: pd.DataFrame, table: str, schema: TableSchema) -> list[str]:
    """Raise on a table with no rows, missing required or repeated columns; note unknown ones."""
    if len(frame) == 0:
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
    derived = (*HIDDEN_COLUMNS, *KEY_COLUMNS)  # ours, e.g. keys `winback data simulate` writes
    unknown = [c for c in columns if c not in schema.names and c not in derived]
    return [f"dropped unknown columns {unknown}"] if unknown else []


def _coerce_columns(
    frame: pd.DataFrame, schema: TableSchema, options: ContractOptions, notes: list[str]
) -> dict[str, Coerced]:
    """The schema's columns present in ``frame``, coerced; optional columns with no values dropped.

    Raises :class:`ContractError` for a column none of whose values can be read
    and for a required column with no values at all.
    """
    n, table = len(frame), schema.name
    coerced: dict[str, Coerced] = {}
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        raw = frame[column.name].reset_index(drop=True)
        c = coerce_column(
            raw,
            column,
            timestamp_formats=options.timestamp_formats,
            timezone=options.timezone,
        )
        notes.extend(c.notes)
        present = ~c.missing
        if present.any() and c.bad[present].all():
            hint = (
                " Set timestamp_formats in the column mapping."
                if column.kind == "timestamp"
                else " Fix the source or map another column."
            )
            raise ContractError(
                f"table {table!r}: no value of column {column.name!r} can be read as"
                f" {column.kind} ({int(present.sum()):,} values, e.g."
                f" {examples(raw, present)}).{hint}"
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
    return coerced


def _canonical_values(
    coerced: dict[str, Coerced], erased: ErasedIds | None, table: str, notes: list[str]
) -> dict[str, pd.Series]:
    """The coerced values, erased references blanked and missing return flags read as False."""
    values = {name: c.values for name, c in coerced.items()}
    blank_erased_references(table, values, erased, notes)
    if c := coerced.get("is_return"):
        values["is_return"] = c.values.where(~pd.Series(c.missing), False).astype(bool)
        if c.missing.any():
            notes.append(f"is_return: {int(c.missing.sum()):,} missing flags read as False")
    return values


def _accepted(canonical: pd.DataFrame, reasons: Reasons, schema: TableSchema) -> pd.DataFrame:
    """The rows no reason was given to, in schema column order and dtypes, a fresh index."""
    out = canonical[reasons.open].reset_index(drop=True)
    return out[[c for c in schema.names if c in out.columns]].astype(
        schema.dtypes(list(out.columns))
    )


def _quarantined_rows(
    frame: pd.DataFrame,
    reasons: Reasons,
    erased_rows: np.ndarray,
    schema: TableSchema,
    options: ContractOptions,
) -> pd.DataFrame:
    """The quarantine file's rows: every flagged input row except erased ones, as text."""
    source_row = (
        frame[SOURCE_ROW_COLUMN].to_numpy(dtype="int64")
        if SOURCE_ROW_COLUMN in frame.columns
        else np.arange(len(frame), dtype="int64")
    )
    visible = [
        c
        for c in frame.columns
        if c not in HIDDEN_COLUMNS and (options.keep_unmapped or str(c) in schema.names)
    ]
    kept = np.flatnonzero(~reasons.open & ~erased_rows)  # erased rows are counted, never kept
    return quarantine_frame(frame, kept, reasons, source_row, visible)


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
    now = _utc_now(now)
    notes = _check_columns(frame, table, schema)
    coerced = _coerce_columns(frame, schema, options, notes)

    reasons = Reasons(len(frame))
    erased_rows = flag_erased(coerced, erased, reasons)
    flag_unreadable(schema, coerced, frame, now, reasons)
    if EXCLUDE_REASON_COLUMN in frame.columns:
        flag_excluded(frame[EXCLUDE_REASON_COLUMN], reasons)
    values = _canonical_values(coerced, erased, table, notes)
    apply_value_rules(
        table,
        values,
        reasons,
        notes,
        negative_amount_is_return=options.negative_amount_is_return,
        allow_zero_amount=options.allow_zero_amount,
    )
    canonical = pd.DataFrame({k: v for k, v in values.items()})
    flag_duplicates(table, canonical, reasons)

    out = _accepted(canonical, reasons, schema)
    quarantine = _quarantined_rows(frame, reasons, erased_rows, schema, options)
    report = ValidationReport(
        table=table,
        rows_in=len(frame),
        rows_accepted=len(out),
        rows_quarantined=int((~reasons.open).sum()),
        by_reason=reason_counts(reasons, schema),
        notes=tuple(dict.fromkeys(notes)),
    )
    return ValidatedTable(out, quarantine, report)


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
    now = _utc_now(now)
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
