"""The score table's lookup files: what a served instance reads, one copy for every worker.

Beside ``scores.parquet`` and ``features.parquet`` each version folder holds

* ``scores.arrow`` and ``features.arrow``: the same rows as Arrow IPC files,
  sorted by ``customer_id`` (features aligned row for row with scores), in record
  batches of :data:`BATCH_ROWS` rows, repeated strings (tier, model versions,
  feature sets) dictionary-encoded; the feature medians reasons compare against
  are in the features file's schema metadata;
* ``customer_ids.npy``: the sorted ids as fixed-width UTF-8 bytes, the index a
  lookup binary-searches (memory-mapped: ~24 probes, the top ones shared by every
  lookup);
* ``records.jsonl`` and ``record_offsets.npy``: each customer's by-id answer as
  JSON, in the same order (:mod:`serving.scoring.record_file`).

A lookup reads the one batch holding the customer with a positional read
(``pread``): the OS page cache keeps one copy of the files for every worker and
no worker holds the table. Measured on 2M customers x 40 columns (2 cores):
a memory-mapped Arrow file answered in the same ~0.25 ms but every touched page
counted in the worker's RSS (589 MiB after 3,000 random lookups, growing with
the table); DuckDB point queries took ~1.5 ms with an index (91 ms on Parquet);
Parquet read with ``memory_map`` still decodes into each worker's own memory.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from serving.scoring.record_file import RECORD_FILES, write_record_file

SCORES_ARROW = "scores.arrow"
FEATURES_ARROW = "features.arrow"
IDS_FILE = "customer_ids.npy"
LOOKUP_FILES = (SCORES_ARROW, FEATURES_ARROW, IDS_FILE, *RECORD_FILES)
#: Rows per record batch: a lookup reads one batch (~150 KB of scores at 1,024 rows).
BATCH_ROWS = 1024
_BATCH_KEY = b"winback.batch_rows"
_REFERENCE_KEY = b"winback.feature_reference"
#: String columns of the score table stored dictionary-encoded (few distinct values each).
DICTIONARY_SUFFIXES = ("_model_version", "_feature_set")
REASON_SUFFIX = "_reasons"


class IdIndex:
    """Sorted customer ids (fixed-width UTF-8 bytes): row position of an id by binary search."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.width = ids.dtype.itemsize

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> tuple[IdIndex, np.ndarray | None]:
        """The index of ``ids`` and the order that sorts them (rows are stored in it).

        The order is ``None`` when ``ids`` are sorted already (the scoring frame
        comes sorted by ``customer_id``): no row then needs to move.
        """
        encoded = utf8_fixed_width(ids)
        if len(encoded) < 2 or bool(np.all(encoded[1:] >= encoded[:-1])):
            return cls(encoded), None
        order = np.argsort(encoded, kind="stable")
        return cls(encoded[order]), order

    @classmethod
    def open(cls, path: Path) -> IdIndex:
        return cls(np.load(path, mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, customer_ids: Sequence[str]) -> np.ndarray:
        """Row of each id, -1 when unknown."""
        out = np.full(len(customer_ids), -1, dtype=np.int64)
        if not len(self.ids):
            return out
        for i, customer_id in enumerate(customer_ids):
            key = str(customer_id).encode("utf-8")
            if len(key) > self.width or key.endswith(b"\0"):
                continue
            p = int(np.searchsorted(self.ids, key))
            if p < len(self.ids) and self.ids[p] == key:
                out[i] = p
        return out

    def head(self, n: int) -> list[str]:
        return [bytes(v).decode("utf-8") for v in self.ids[:n]]


def utf8_fixed_width(ids: Iterable[str]) -> np.ndarray:
    """``ids`` as text, UTF-8 encoded into one fixed-width bytes array (``S<longest>``, at least 1).

    Built from the ids' Arrow buffers in a few vectorised steps (a Python
    ``encode`` per id took about a second for a million customers); anything
    Arrow does not hold as non-null text goes through ``str`` one by one.
    """
    array = text_array(ids)
    if array is None:
        encoded = np.array([str(c).encode("utf-8") for c in ids], dtype=bytes)
        return encoded.astype("S1") if encoded.dtype.itemsize == 0 else encoded
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    data = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), 1)
    out = np.zeros((len(array), width), dtype=np.uint8)
    out[np.arange(width) < lengths[:, None]] = data[offsets[0] : offsets[-1]]
    return out.view(f"S{width}").reshape(len(array))


def text_array(ids: Iterable[str]) -> pa.LargeStringArray | None:
    """``ids`` as one Arrow ``large_string`` array without nulls, or None when they are not text."""
    if not isinstance(ids, pa.Array | pa.ChunkedArray | pd.Series | pd.Index | np.ndarray):
        return None
    try:
        array = ids if isinstance(ids, pa.Array | pa.ChunkedArray) else pa.array(ids)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count or not (
        pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    ):
        return None
    return array.cast(pa.large_string())


class BatchedRows:
    """Rows of an Arrow IPC file read batch by batch (positional reads), or of a table in memory."""

    def __init__(self, table: pa.Table | None = None, path: Path | None = None) -> None:
        self._table = table
        self._path = path
        self._lock = threading.Lock()
        if path is not None:
            self._reader = ipc.open_file(pa.OSFile(str(path)))
            metadata = self._reader.schema.metadata or {}
            self.batch_rows = int(metadata.get(_BATCH_KEY, BATCH_ROWS))
            self.schema = self._reader.schema
        else:
            assert table is not None
            self.batch_rows = 0
            self.schema = table.schema
        self._positions = {name: i for i, name in enumerate(self.schema.names)}

    @property
    def metadata(self) -> dict[bytes, bytes]:
        return self.schema.metadata or {}

    def take(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows at ``rows`` (in that order), all columns or ``columns``."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._table is not None:
            table = self._table if columns is None else self._table.select(list(columns))
            return table.take(pa.array(rows))
        batches: dict[int, pa.RecordBatch] = {}
        slices = []
        picked = None if columns is None else [self._positions[c] for c in columns]
        for row in rows.tolist():
            batch, local = divmod(row, self.batch_rows)
            record = batches.get(batch)
            if record is None:
                with self._lock:
                    record = self._reader.get_batch(batch)
                if picked is not None:
                    record = record.select(picked)  # by position: ~3x cheaper than by name
                batches[batch] = record
            slices.append(record.slice(local, 1))  # zero-copy: a take costs ~4x more
        if not slices:
            schema = (
                self.schema
                if columns is None
                else pa.schema([self.schema.field(c) for c in columns])
            )
            return schema.empty_table()
        return pa.Table.from_batches(slices)

    def read_all(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Every row (a whole-table read: what a list build needs, for as long as it runs)."""
        if self._table is not None:
            return self._table if columns is None else self._table.select(list(columns))
        with pa.memory_map(str(self._path)) as source:
            table = ipc.open_file(source).read_all()
            return table if columns is None else table.select(list(columns))


def arrow_scores(
    scores: pd.DataFrame, order: np.ndarray | None = None, table: pa.Table | None = None
) -> pa.Table:
    """The score table as Arrow, with fixed types for columns that may be all-missing.

    ``order``: the rows at these positions (what ``scores.iloc[order]`` gives),
    taken from the Arrow table rather than copying the frame first. ``table``:
    ``scores`` converted already (``serving.scoring.arrow_tables.without_index``).
    """
    table = _from_pandas(scores.reset_index(drop=True)) if table is None else table
    if order is not None:
        table = table.take(pa.array(order))
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if name.endswith(REASON_SUFFIX):
            if column.type != _REASONS_TYPE:  # all missing: Arrow typed the column as null
                typed = pa.array(
                    scores[name].iloc[_rows(order, len(scores))].tolist(), _REASONS_TYPE
                )
                table = table.set_column(i, name, typed)
        elif name == "tier" or name.endswith(DICTIONARY_SUFFIXES):
            table = table.set_column(i, name, dictionary_column(column.cast(pa.string())))
    return table


_REASONS_TYPE = pa.list_(pa.string())


def _rows(order: np.ndarray | None, n: int) -> np.ndarray | slice:
    return slice(0, n) if order is None else order


def dictionary_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` dictionary-encoded with the narrowest index type its distinct values fit.

    A column holding one value in every row (or none), as a scoring run's model
    versions and feature sets do, is encoded without hashing each row: the same array.
    """
    values = column.combine_chunks()
    constant = _constant_dictionary(values)
    if constant is not None:
        return pa.chunked_array([constant])
    encoded = pc.dictionary_encode(values)
    size = len(encoded.dictionary)
    index = pa.int8() if size < 2**7 else pa.int16() if size < 2**15 else pa.int32()
    return pa.chunked_array([encoded.cast(pa.dictionary(index, pa.string()))])


def _constant_dictionary(values: pa.Array) -> pa.DictionaryArray | None:
    """``values`` (strings) dictionary-encoded when every row holds one value or is missing.

    What :func:`dictionary_column` would make (``int8`` indices, zero in missing rows),
    or None for any other column.
    """
    n = len(values)
    if n == 0 or 0 < values.null_count < n:
        return None
    if values.null_count == n:
        indices = pa.array(np.zeros(n, np.int8), mask=np.ones(n, bool))
        return pa.DictionaryArray.from_arrays(indices, pa.array([], pa.string()))
    bounds = pc.min_max(values)
    if bounds["min"] != bounds["max"]:
        return None
    dictionary = pa.array([bounds["min"].as_py()], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), dictionary)


def arrow_features(features: pd.DataFrame) -> pa.Table:
    """Feature values as Arrow (categories as plain strings), without the index."""
    frame = features.reset_index(drop=True)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype("string")
    return _from_pandas(frame)


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Arrow, without pyarrow's deprecation noise about pandas' time zones."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return pa.Table.from_pandas(frame, preserve_index=False)


def _write_batches(path: Path, tables: Iterable[pa.Table], metadata: dict[bytes, bytes]) -> int:
    """Write ``tables`` (one schema) as one IPC file of :data:`BATCH_ROWS`-row batches."""
    writer = None
    schema = None
    rows = 0
    pending: list[pa.Table] = []
    try:
        for table in tables:
            if schema is None:
                schema = table.schema.with_metadata({**(table.schema.metadata or {}), **metadata})
                writer = ipc.new_file(str(path), schema)
            pending.append(table.replace_schema_metadata(schema.metadata))
            buffered = pa.concat_tables(pending).combine_chunks()
            full = len(buffered) // BATCH_ROWS * BATCH_ROWS
            if full:  # one chunk per column: batches of exactly BATCH_ROWS, in one call
                writer.write_table(buffered.slice(0, full), max_chunksize=BATCH_ROWS)
            rows += full
            pending = [buffered.slice(full)]
        if writer is None:
            raise ValueError(f"no rows to write to {path}")
        rest = pa.concat_tables(pending).combine_chunks()
        if len(rest):
            writer.write_batch(rest.to_batches()[0])
            rows += len(rest)
    finally:
        if writer is not None:
            writer.close()
    return rows


@dataclass(frozen=True)
class LookupTables:
    """The score table and its features converted to Arrow already (in the frames' order).

    What ``arrow_features`` and the conversion in :func:`arrow_scores` would give
    (``serving.scoring.arrow_tables.without_index``): the writer converts each frame
    once for its Parquet file and its lookup file.
    """

    scores: pa.Table
    features: pa.Table | None = None


def write_lookup_files(
    folder: Path,
    scores: pd.DataFrame,
    features: pd.DataFrame | None,
    as_of: dt.date,
    reference: dict[str, float] | None = None,
    *,
    tables: LookupTables | None = None,
) -> None:
    """Write the lookup files of one version into ``folder`` (being filled, not yet published).

    ``scores`` has a ``customer_id`` column; ``features`` is indexed by
    ``customer_id`` (customers it lacks get missing values). ``reference``
    defaults to the medians of ``features``. The customers' JSON records
    (:mod:`serving.scoring.record_file`) are written from the same rows. Rows
    already in id order (as the scoring frame comes) and features listing the
    same customers in the same order are written without copying or re-indexing
    either frame. ``tables``: the frames converted to Arrow already.
    """
    from serving.scoring.reasons import feature_reference

    folder = Path(folder)
    index, order = IdIndex.from_ids(scores["customer_id"])
    np.save(folder / IDS_FILE, index.ids)
    # The record file (DuckDB) and the feature file (Arrow IPC) release the GIL: each is
    # written on a thread while this one writes the score file.
    with ThreadPoolExecutor(2) as pool:
        jobs = []
        if features is not None:
            reference = feature_reference(features) if reference is None else reference
            converted = None if tables is None else tables.features
            aligned = aligned_features(features, scores["customer_id"], order, converted)
            jobs.append(pool.submit(write_feature_file, folder, [aligned], reference))
            del aligned
        table = arrow_scores(scores, order, None if tables is None else tables.scores)
        jobs.append(pool.submit(write_record_file, folder, table, as_of))
        write_score_file(folder, table)
        del table
        for job in jobs:
            job.result()


def aligned_features(
    features: pd.DataFrame,
    customer_ids: pd.Series,
    order: np.ndarray | None,
    table: pa.Table | None = None,
) -> pa.Table:
    """``features`` as Arrow, one row per score row in id order (missing customers: nulls).

    ``table``: :func:`arrow_features` of ``features``, when the caller has it.
    """
    ids = text_array(customer_ids)
    own = text_array(features.index)
    if ids is not None and own is not None and ids.equals(own):
        table = arrow_features(features) if table is None else table
        return table if order is None else table.take(pa.array(order))
    aligned = features.copy()
    aligned.index = aligned.index.astype(str)
    ordered = customer_ids.iloc[_rows(order, len(customer_ids))]
    return arrow_features(aligned.reindex(ordered.astype(str).to_numpy()))


def write_feature_file(
    folder: Path, tables: Iterable[pa.Table], reference: dict[str, float]
) -> int:
    """``features.arrow`` from feature tables already in the ids' order; returns its rows."""
    metadata = {_BATCH_KEY: b"%d" % BATCH_ROWS, _REFERENCE_KEY: json.dumps(reference).encode()}
    return _write_batches(Path(folder) / FEATURES_ARROW, tables, metadata)


def write_score_file(folder: Path, scores: pa.Table) -> int:
    """``scores.arrow`` from a score table already in the ids' order (see :func:`arrow_scores`)."""
    return _write_batches(Path(folder) / SCORES_ARROW, [scores], {_BATCH_KEY: b"%d" % BATCH_ROWS})


def has_lookup_files(folder: Path) -> bool:
    return (Path(folder) / SCORES_ARROW).is_file() and (Path(folder) / IDS_FILE).is_file()


def feature_reference_of(rows: BatchedRows) -> dict[str, float] | None:
    """The feature medians stored with a features file (None when it has none)."""
    raw = rows.metadata.get(_REFERENCE_KEY)
    return None if raw is None else {k: float(v) for k, v in json.loads(raw).items()}


def open_lookup_files(
    folder: Path, *, with_features: bool
) -> tuple[IdIndex, BatchedRows, BatchedRows | None]:
    """The id index, the scores and (when asked for and written) the features of a version folder."""
    folder = Path(folder)
    index = IdIndex.open(folder / IDS_FILE)
    scores = BatchedRows(path=folder / SCORES_ARROW)
    features = None
    if with_features and (folder / FEATURES_ARROW).is_file():
        features = BatchedRows(path=folder / FEATURES_ARROW)
    return index, scores, features
