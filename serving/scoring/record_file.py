"""Each customer's stored record as JSON, so a by-id lookup answers without decoding Arrow.

Beside the lookup files (:mod:`serving.scoring.lookup_files`) a version folder
holds ``records.jsonl``, one JSON object per customer in the id index's order
(what ``POST /scores`` returns for the customer when its reasons are stored),
and ``record_offsets.npy``, where each object starts. A lookup reads its bytes
with one positional read (the OS page cache keeps one copy for every worker)
and the service sends them as they are: turning a row of the Arrow file into
Python objects cost ~60-90 us a customer, more than the rest of the endpoint.
DuckDB writes the objects from the score table in one vectorised pass.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.config import TARGETS

RECORDS_FILE = "records.jsonl"
OFFSETS_FILE = "record_offsets.npy"
RECORD_FILES = (RECORDS_FILE, OFFSETS_FILE)
#: Columns of a looked-up customer that are returned as they are stored.
RECORD_COLUMNS = (
    "churn_risk",
    "vip_potential",
    "reactivation_probability",
    "expected_value",
    "predicted_value",
    "value_horizon_days",
    "tier",
    "is_active",
    "is_lapsed",
    "is_vip",
)
_CHUNK_ROWS = 65_536


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value(schema: pa.Schema, name: str) -> str:
    """The SQL giving ``name``'s JSON value: NULL when absent, NaN as null (as the API says)."""
    if name not in schema.names:
        return "NULL"
    column = _quoted(name)
    if pa.types.is_floating(schema.field(name).type):
        return f"CASE WHEN isnan({column}) THEN NULL ELSE {column} END"
    return column


def _timestamp(schema: pa.Schema, name: str) -> str:
    """ISO 8601 as the API writes datetimes: UTC as ``Z``, no fraction when it is zero."""
    if name not in schema.names:
        return "NULL"
    field_type = schema.field(name).type
    column = _quoted(name)
    zone = "Z" if getattr(field_type, "tz", None) else ""
    plain = f"strftime({column}, '%Y-%m-%dT%H:%M:%S{zone}')"
    fraction = f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%f{zone}')"
    return f"CASE WHEN microsecond({column}) % 1000000 = 0 THEN {plain} ELSE {fraction} END"


def _by_target(schema: pa.Schema, suffix: str) -> str:
    parts = ", ".join(f"{t} := {_value(schema, t + suffix)}" for t in TARGETS)
    return f"struct_pack({parts})"


def record_sql(schema: pa.Schema, as_of: dt.date) -> str:
    """The query turning the score table ``scores`` into one JSON object per row, in its order."""
    fields = [
        f"customer_id := CAST({_quoted('customer_id')} AS VARCHAR)",
        f"as_of := DATE '{as_of.isoformat()}'",
        *(f"{c} := {_value(schema, c)}" for c in RECORD_COLUMNS),
        f"reasons := {_by_target(schema, '_reasons')}",
        f"model_versions := {_by_target(schema, '_model_version')}",
        f"feature_sets := {_by_target(schema, '_feature_set')}",
        f"scored_at := {_timestamp(schema, 'scored_at')}",
    ]
    return f"SELECT to_json(struct_pack({', '.join(fields)})) AS record FROM scores"


def write_record_file(folder: Path, scores: pa.Table, as_of: dt.date) -> int:
    """``records.jsonl`` and ``record_offsets.npy`` of ``scores`` (already in the ids' order).

    Streams in chunks, so the JSON of a large table is never held whole.
    Returns the rows written.
    """
    folder = Path(folder)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("scores", scores)
        relation = con.sql(record_sql(scores.schema, as_of))
        lengths = []
        with (
            relation.to_arrow_reader(batch_size=_CHUNK_ROWS) as reader,
            (folder / RECORDS_FILE).open("wb") as out,
        ):
            for batch in reader:
                records = batch.column(0)
                lengths.append(pc.binary_length(records).to_numpy(zero_copy_only=False) + 1)
                out.write(("\n".join(records.to_pylist()) + "\n").encode("utf-8"))
    finally:
        con.close()
    sizes = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    np.save(folder / OFFSETS_FILE, offsets)
    return len(sizes)


def has_record_file(folder: Path) -> bool:
    return all((Path(folder) / name).is_file() for name in RECORD_FILES)


class RecordFile:
    """The stored JSON record of the customer at a row position, by one positional read."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        self._offsets = np.load(folder / OFFSETS_FILE, mmap_mode="r")
        self._fd = os.open(folder / RECORDS_FILE, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def get(self, position: int) -> bytes:
        """The JSON object of row ``position`` (without its newline)."""
        start, end = int(self._offsets[position]), int(self._offsets[position + 1])
        return os.pread(self._fd, end - start - 1, start)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
