"""Each customer's stored record as JSON, so a by-id lookup answers without decoding Arrow.

Beside the lookup files (:mod:`serving.scoring.lookup_files`) a version folder
holds ``records.jsonl``, one JSON object per customer in the id index's order
(what ``POST /scores`` returns for the customer when its reasons are stored),
and ``record_offsets.npy``, where each object starts. A lookup reads its bytes
with one positional read (the OS page cache keeps one copy for every worker)
and the service sends them as they are: turning a row of the Arrow file into
Python objects cost ~60-90 us a customer, more than the rest of the endpoint.
DuckDB writes the objects from the score table in one vectorised pass.

What every record of a version shares (``as_of``, and the model versions,
feature sets and ``scored_at`` of a scoring run: about a third of each
record) is stored once in ``record_parts.json``; a line holds the rest, and
:class:`RecordFile` splices the parts back in, so a lookup returns exactly the
bytes of the whole record (:func:`record_sql`). Folders written before the
parts file hold whole records and are read as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.config import TARGETS

RECORDS_FILE = "records.jsonl"
OFFSETS_FILE = "record_offsets.npy"
#: What every record of a version shares, stored once (absent in folders of earlier versions).
PARTS_FILE = "record_parts.json"
RECORD_FILES = (RECORDS_FILE, OFFSETS_FILE, PARTS_FILE)
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


#: Fields of every record after its reasons: the version's provenance.
_TAIL_FIELDS = ("model_versions", "feature_sets", "scored_at")


def _fields(schema: pa.Schema) -> dict[str, str]:
    """Each record field (in the API's order, ``as_of`` aside) and the SQL giving its value."""
    return {
        "customer_id": f"CAST({_quoted('customer_id')} AS VARCHAR)",
        **{c: _value(schema, c) for c in RECORD_COLUMNS},
        "reasons": _by_target(schema, "_reasons"),
        "model_versions": _by_target(schema, "_model_version"),
        "feature_sets": _by_target(schema, "_feature_set"),
        "scored_at": _timestamp(schema, "scored_at"),
    }


def _json_sql(fields: dict[str, str]) -> str:
    return "to_json(struct_pack(" + ", ".join(f"{k} := {v}" for k, v in fields.items()) + "))"


def record_sql(schema: pa.Schema, as_of: dt.date) -> str:
    """The query turning the score table ``scores`` into one JSON object per row, in its order."""
    fields = _fields(schema)
    ordered = {"customer_id": fields.pop("customer_id"), "as_of": f"DATE '{as_of.isoformat()}'"}
    return f"SELECT {_json_sql(ordered | fields)} AS record FROM scores"


def _constant(table: pa.Table, name: str) -> bool:
    """Whether column ``name`` holds one value in every row (all missing, or absent, counts)."""
    if name not in table.column_names:
        return True
    column = table.column(name)
    if column.null_count == len(column):
        return True
    return column.null_count == 0 and len(pc.unique(column)) == 1


def _record_parts(
    con: duckdb.DuckDBPyConnection, table: pa.Table, as_of: dt.date
) -> tuple[dict[str, str], dict[str, str]]:
    """What each stored line leaves out, and the SQL of what it keeps.

    Returns ``(fields, parts)``: the fields written per row and the JSON text
    a reader splices in after the ``customer_id`` (``as_of``) and at the end
    (the provenance fields when they are the same in every row, which a
    scoring run's are: a third of each record otherwise).
    """
    fields = _fields(table.schema)
    columns = [f"{t}{s}" for t in TARGETS for s in ("_model_version", "_feature_set")]
    constant = len(table) > 0 and all(_constant(table, c) for c in (*columns, "scored_at"))
    dated = {"as_of": f"DATE '{as_of.isoformat()}'"}
    after_id = con.sql(f"SELECT {_json_sql(dated)}").fetchall()[0][0]
    tail = "}"
    if constant:
        shared = {k: fields.pop(k) for k in _TAIL_FIELDS}
        con.register("first_row", table.slice(0, 1))
        tail = "," + con.sql(f"SELECT {_json_sql(shared)} FROM first_row").fetchall()[0][0][1:]
        con.unregister("first_row")
    parts = {
        "marker": f',"{RECORD_COLUMNS[0]}":',
        "after_id": "," + after_id[1:-1],
        "tail": tail,
    }
    return fields, parts


def write_record_file(folder: Path, scores: pa.Table, as_of: dt.date) -> int:
    """``records.jsonl``, ``record_offsets.npy`` and ``record_parts.json`` of ``scores``.

    ``scores`` is already in the ids' order. Each line holds a record's own
    fields; the parts every record shares are stored once
    (:func:`_record_parts`) and :class:`RecordFile` puts them back. Streams in
    chunks, so the JSON of a large table is never held whole, and writes
    DuckDB's text buffers as they are (no Python string per row). Returns the
    rows written.
    """
    folder = Path(folder)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        fields, parts = _record_parts(con, scores, as_of)
        con.register("scores", scores)
        relation = con.sql(f"SELECT {_json_sql(fields)} || chr(10) AS record FROM scores")
        lengths = []
        with (
            relation.to_arrow_reader(batch_size=_CHUNK_ROWS) as reader,
            (folder / RECORDS_FILE).open("wb") as out,
        ):
            for batch in reader:
                lengths.append(_write_text(out, batch.column(0)))
    finally:
        con.close()
    sizes = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    np.save(folder / OFFSETS_FILE, offsets)
    (folder / PARTS_FILE).write_text(json.dumps(parts, ensure_ascii=False), encoding="utf-8")
    return len(sizes)


def _write_text(out: BinaryIO, texts: pa.Array) -> np.ndarray:
    """Write the bytes of ``texts`` (no nulls) one after the other; returns each one's length."""
    values = texts.cast(pa.large_binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    offsets = offsets[values.offset : values.offset + len(values) + 1]
    data = values.buffers()[2]
    if data is not None and len(values):
        out.write(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    return np.diff(offsets)


def has_record_file(folder: Path) -> bool:
    """Whether ``folder`` holds a record file (``record_parts.json`` only since it was added)."""
    return all((Path(folder) / name).is_file() for name in (RECORDS_FILE, OFFSETS_FILE))


class RecordFile:
    """The stored JSON record of the customer at a row position, by one positional read."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        self._offsets = np.load(folder / OFFSETS_FILE, mmap_mode="r")
        self._parts: tuple[bytes, bytes, bytes] | None = None
        if (folder / PARTS_FILE).is_file():
            parts = json.loads((folder / PARTS_FILE).read_text(encoding="utf-8"))
            self._parts = tuple(parts[k].encode("utf-8") for k in ("marker", "after_id", "tail"))
        self._fd = os.open(folder / RECORDS_FILE, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def get(self, position: int) -> bytes:
        """The JSON object of row ``position``, the shared parts put back in their places.

        The stored line ends its ``customer_id`` right before the marker (a quote
        inside a JSON string is escaped, so the marker's ``,"`` cannot be in it).
        """
        start, end = int(self._offsets[position]), int(self._offsets[position + 1])
        line = os.pread(self._fd, end - start - 1, start)
        if self._parts is None:  # a version written whole, line by line
            return line
        marker, after_id, tail = self._parts
        cut = line.index(marker)
        return b"".join((line[:cut], after_id, line[cut:-1], tail))

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
