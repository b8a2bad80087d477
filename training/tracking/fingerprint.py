"""A stable fingerprint of a shop's tables and cutoffs: the same data gives the same hex, whatever its row order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.erasure_files import erase_rows
from features.inputs.keys import KEY_COLUMNS
from features.inputs.schema import SCHEMAS, ShopTables
from features.inputs.table_files import table_file

_ROW_MIX = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: mixes column hashes per row


_SECOND_KEY = "winback-fp-key-2"  # a second, independent 64-bit hash of each row


_P = np.uint64(0x100000001B3)  # multiplier of the per-string polynomial hash


_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)  # hash of a missing value


_STRING_CHUNK_ROWS = 1_000_000  # strings hashed per numpy pass (bounds memory)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole 64-bit word."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _string_hash(series: pd.Series) -> np.ndarray:
    """uint64 hash of each string's UTF-8 bytes, vectorised over Arrow's buffers.

    Hashing 10M strings through Python objects takes tens of seconds; this reads
    the Arrow offsets and bytes directly: a polynomial over the bytes (segmented
    sums), xor the length, then a bit mixer. Missing values share one hash.
    """
    import pyarrow as pa

    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = pd.Series(series.cat.categories.astype(str), dtype=object)
        codes = series.cat.codes.to_numpy()
        category_hashes = np.append(_string_hash(categories), _NULL_HASH)
        return category_hashes[np.where(codes < 0, len(categories), codes)]
    if isinstance(series.array, pd.arrays.ArrowStringArray):
        array = pa.array(series.array)
    else:
        array = pa.array(series.to_numpy(dtype=object), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    n = len(array)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + n + 1]
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.empty(0, dtype=np.uint8)
    )
    for first in range(0, n, _STRING_CHUNK_ROWS):
        last = min(first + _STRING_CHUNK_ROWS, n)
        starts = offsets[first : last + 1] - offsets[first]
        lengths = np.diff(starts)
        raw = data[offsets[first] : offsets[last]]
        longest = int(lengths.max()) if len(lengths) else 0
        powers = np.ones(max(longest, 1), dtype=np.uint64)  # P**0, P**1, ... (wrapping)
        powers[1:] = np.cumprod(np.full(len(powers) - 1, _P, dtype=np.uint64))
        position = np.arange(len(raw), dtype=np.int64) - np.repeat(starts[:-1], lengths)
        weighted = (raw.astype(np.uint64) + np.uint64(1)) * powers[position]
        weighted = np.append(weighted, np.uint64(0))  # keeps reduceat's indices in range
        sums = np.add.reduceat(weighted, starts[:-1])
        sums[lengths == 0] = 0
        out[first:last] = _mix64(sums ^ (lengths.astype(np.uint64) * _NULL_HASH))
    if array.null_count:
        out[np.asarray(array.is_null())] = _NULL_HASH
    return out


def _column_hash(series: pd.Series) -> np.ndarray:
    """Deterministic uint64 hash of each value of one column (by value, not by dtype quirks)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        values = series.dt.tz_localize(None) if isinstance(dtype, pd.DatetimeTZDtype) else series
        ints = values.dt.as_unit("us").to_numpy(dtype="datetime64[us]").view("int64")
        return pd.util.hash_array(ints)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return _string_hash(series)
    return pd.util.hash_pandas_object(series, index=False).to_numpy()


def _frame_digest(frame: pd.DataFrame) -> tuple[int, int]:
    """Two order-independent 64-bit sums over the rows' hashes (a multiset hash)."""
    row = np.zeros(len(frame), dtype=np.uint64)
    for column in sorted(frame.columns):
        row = row * _ROW_MIX ^ _column_hash(frame[column])
    first = int(row.sum(dtype=np.uint64))
    second = int(pd.util.hash_array(row, hash_key=_SECOND_KEY).sum(dtype=np.uint64))
    return first, second


@dataclass(frozen=True)
class ParquetFolder:
    """A folder of canonical Parquet tables as ``winback.shop.load_tables`` reads it.

    Its ``<table>.parquet`` files without the integer key columns, less the rows of
    the ``erased`` customers (references to them blanked). :func:`data_fingerprint`
    hashes it a row group at a time, so the tables are never all in memory.
    """

    directory: Path
    erased: tuple[str, ...] = ()


def _row_groups(path: Path, erased: tuple[str, ...]) -> Iterator[pd.DataFrame]:
    """The file's rows as ``pd.read_parquet`` gives them, one frame per row group."""
    try:  # read_parquet's own Arrow -> pandas conversion (dtypes, time zones)
        from pandas.io._util import arrow_table_to_pandas
    except ImportError:  # pragma: no cover - another pandas: the file at once
        parts = [pd.read_parquet(path)]
    else:
        file = pq.ParquetFile(path)
        groups = range(file.num_row_groups) if file.num_row_groups > 1 else ()
        parts = (arrow_table_to_pandas(file.read_row_group(i)) for i in groups)
        parts = parts if groups else [arrow_table_to_pandas(file.read())]
    for frame in parts:
        frame = frame.drop(columns=list(KEY_COLUMNS), errors="ignore")
        yield erase_rows(frame, erased)[0] if erased else frame


def _file_header(path: Path, erased: tuple[str, ...]) -> dict[str, Any]:
    """:func:`data_fingerprint`'s header of one table file, summed over its row groups.

    The sums of the row hashes add up (mod 2**64) over any split of the rows; a
    file whose row groups convert to different dtypes (an integer column with
    nulls in some) is read whole, as the loaded frame is.
    """
    rows, first, second, columns = 0, 0, 0, None
    for frame in _row_groups(path, erased):
        dtypes = sorted((str(c), str(frame[c].dtype)) for c in frame.columns)
        if columns is not None and dtypes != columns:
            frame = pd.read_parquet(path).drop(columns=list(KEY_COLUMNS), errors="ignore")
            frame = erase_rows(frame, erased)[0] if erased else frame
            return _header(frame)
        columns = dtypes
        a, b = _frame_digest(frame)
        rows, first, second = rows + len(frame), (first + a) % 2**64, (second + b) % 2**64
    return {"rows": rows, "columns": columns, "sums": [first, second]}


def _header(frame: pd.DataFrame) -> dict[str, Any]:
    """Row count, sorted (column, dtype) pairs and the two row-hash sums of one table."""
    columns = sorted((str(c), str(frame[c].dtype)) for c in frame.columns)
    first, second = _frame_digest(frame)
    return {"rows": len(frame), "columns": columns, "sums": [first, second]}


def _cutoff_text(cutoff: Any) -> str:
    return pd.Timestamp(cutoff).strftime("%Y-%m-%d")


def data_fingerprint(
    tables: ShopTables | Mapping[str, pd.DataFrame] | pd.DataFrame | ParquetFolder,
    cutoffs: Iterable[date | datetime | str | pd.Timestamp] = (),
) -> str:
    """A stable hex hash of the input tables' content and the cutoffs.

    Two runs with the same fingerprint saw the same data: the same rows (in any
    order), the same columns (in any order, with the same dtypes) and the same
    set of cutoff dates. Each row is hashed by value with pandas' deterministic
    hashing and the row hashes are summed, twice with independent keys, which
    is linear in the number of rows (no sort) and independent of row order.

    Parameters
    ----------
    tables
        The canonical shop tables, a mapping of name to frame, one frame, or a
        :class:`ParquetFolder` (the same fingerprint as its tables loaded).
    cutoffs
        The cutoff dates the training table is built at.

    Returns
    -------
    str
        32 hex characters.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, header in _headers(tables):
        digest.update(json.dumps({"table": name, **header}, sort_keys=True).encode())
    cutoff_texts = sorted({_cutoff_text(c) for c in cutoffs})
    digest.update(json.dumps({"cutoffs": cutoff_texts}).encode())
    return digest.hexdigest()


def _headers(tables: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each table's name and header, by name."""
    if isinstance(tables, ParquetFolder):
        directory = Path(tables.directory)
        names = [n for n in SCHEMAS if (directory / table_file(n)).exists()]
        for name in sorted(names):
            yield name, _file_header(directory / table_file(name), tuple(tables.erased))
        return
    if isinstance(tables, ShopTables):
        frames = tables.present()
    elif isinstance(tables, pd.DataFrame):
        frames = {"table": tables}
    else:
        frames = dict(tables)
    for name in sorted(frames):
        yield name, _header(frames[name])
