"""The feature query's result as the canonical frame: indexed by ``(cutoff, customer_id)``, sorted.

``features.build`` fetches the result of its query through Arrow on DuckDB
(:func:`frame_from_arrow`: no Python string objects, one column converted at
a time) and as a pandas frame from other engines (:func:`canonical_frame`).
Either way the frame has a ``datetime64[s]`` cutoff level, a ``string``
customer level, ``float64`` numbers and categoricals with sorted categories.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.definitions import FeatureDefinition
from features.engines.duckdb_engine import MEMORY_LIMIT_VARIABLE
from features.inputs.keys import CUSTOMER_KEY, KEYS_TABLE
from features.relations import KEYS

#: Threads converting the result's columns (:func:`frame_from_arrow`), from this many rows.
_CONVERTING_THREADS = 2
_THREADED_ROWS = 50_000


def _categorical(column: pa.ChunkedArray, order: np.ndarray | None = None) -> pd.Categorical:
    """A string column as a categorical with sorted categories, by dictionary encoding.

    With ``order`` its rows are taken in that order (their codes are).
    """
    encoded = column.dictionary_encode().combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    if order is not None:
        codes = codes.take(order)
    values = pd.Categorical.from_codes(codes, categories=pd.Index(encoded.dictionary.to_pylist()))
    return values.set_categories(sorted(values.categories))


def _index(cutoff_level: pa.Array, customer_level: object, codes: list) -> pd.MultiIndex:
    """The ``(cutoff, customer_id)`` index from its levels (Arrow) and codes (NumPy)."""
    levels = [
        pd.DatetimeIndex(cutoff_level.to_numpy(zero_copy_only=False)).astype("datetime64[s]"),
        pd.Index(pd.array(customer_level, dtype="string")),
    ]
    return pd.MultiIndex(levels=levels, codes=codes, names=list(KEYS), verify_integrity=False)


def _cutoff_level(cutoffs: pa.ChunkedArray) -> pa.Array:
    """The sorted distinct cutoffs of the result rows."""
    return pc.unique(cutoffs).sort() if len(cutoffs) else pa.array([], cutoffs.type)


def _key_index(keys: pa.Table) -> pd.MultiIndex:
    """The ``(cutoff, customer_id)`` index of sorted key rows, built from levels and codes.

    Faster than ``set_index`` on a million rows (which factorises the strings):
    with one cutoff the sorted, distinct ``customer_id`` column is its own
    level; with several, the levels are the sorted distinct keys and the codes
    their positions (an Arrow hash lookup).
    """
    cutoffs = keys.column("cutoff")
    customers = keys.column("customer_id")
    cutoff_level = _cutoff_level(cutoffs)
    if len(cutoff_level) <= 1:
        customer_level: pa.Array | pa.ChunkedArray = customers
        codes = [np.zeros(len(keys), dtype="int8"), np.arange(len(keys))]
    else:
        customer_level = pc.unique(customers).sort()
        codes = [
            pc.index_in(cutoffs, value_set=cutoff_level).to_numpy(),
            pc.index_in(customers, value_set=customer_level).to_numpy(),
        ]
    return _index(cutoff_level, customer_level, codes)


def release_cached_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Make DuckDB hand back the memory its finished query kept, where winback set its limit.

    After a query DuckDB's allocator keeps much of the memory the query used
    (about 0.7 GB after the 1M-customer feature query at a 1 GB limit). Setting
    ``memory_limit`` flushes the allocator, even to the same value, so the build
    sets it again once the result is fetched, before converting the result to a
    frame: the frame's arrays then do not stack on top of that memory. The value
    set is the one winback's connection recorded
    (``features.engines.duckdb_engine.MEMORY_LIMIT_VARIABLE``): ``current_setting``
    gives it rounded. On a connection without it nothing is done.
    """
    limit = con.execute(f"SELECT getvariable('{MEMORY_LIMIT_VARIABLE}')").fetchall()[0][0]
    if limit is not None:
        con.execute("SET memory_limit = ?", [limit])


def ids_by_key(con: duckdb.DuckDBPyConnection) -> pa.ChunkedArray:
    """Every ``customer_id`` at the position of its ``customer_key`` (``customer_keys`` read whole)."""
    table = con.sql(f"SELECT {CUSTOMER_KEY}, customer_id FROM {KEYS_TABLE}").to_arrow_table()
    keys = table.column(CUSTOMER_KEY).to_numpy()
    dense = np.arange(len(keys))
    if np.array_equal(keys, dense):
        return table.column("customer_id")
    order = np.argsort(keys, kind="stable")
    if not np.array_equal(keys[order], dense):
        raise ValueError(
            f"{KEYS_TABLE} does not hold each key 0..{len(keys) - 1} once: write the shop's"
            " tables again (features.inputs.keys.with_keys assigns the keys)"
        )
    return table.column("customer_id").take(order)


def _sorting(values: np.ndarray) -> np.ndarray | None:
    """The positions that sort ``values`` (stably); ``None`` when they are sorted already."""
    if len(values) < 2 or bool(np.all(values[:-1] <= values[1:])):
        return None
    return np.argsort(values, kind="stable")


def _keyed_rows(keys: pa.Table, ids: pa.ChunkedArray) -> tuple[pd.MultiIndex, np.ndarray | None]:
    """The ``(cutoff, customer_id)`` index of key rows, and the order that sorts the rows.

    The rows come in any order; sorted by ``(cutoff, customer_key)`` they are
    sorted by id too, as the keys are the positions of the ids in their sorted
    order (``features.inputs.keys``), and a row's ``customer_id`` is
    ``ids[key]``: integer lookups, no string hashed or compared. The order is
    ``None`` when the rows are sorted already.
    """
    cutoffs, key_column = keys.column("cutoff"), keys.column(CUSTOMER_KEY)
    if key_column.null_count:
        raise ValueError(f"{key_column.null_count} result rows have no {CUSTOMER_KEY}")
    key = key_column.to_numpy().astype("int64", copy=False)
    cutoff_level = _cutoff_level(cutoffs)
    if len(cutoff_level) <= 1:
        order = _sorting(key)
        customer_keys = key if order is None else key.take(order)
        codes = [np.zeros(len(key), dtype="int8"), np.arange(len(key))]
    else:
        cutoff_codes = pc.index_in(cutoffs, value_set=cutoff_level).to_numpy()
        order = _sorting(cutoff_codes.astype("int64") * (int(key.max()) + 1) + key)
        if order is not None:
            key, cutoff_codes = key.take(order), cutoff_codes.take(order)
        customer_keys = np.unique(key)
        codes = [cutoff_codes, np.searchsorted(customer_keys, key)]
    return _index(cutoff_level, ids.take(customer_keys), codes), order


def frame_from_arrow(
    table: pa.Table,
    definitions: Sequence[FeatureDefinition],
    ids: pa.ChunkedArray | None = None,
) -> pd.DataFrame:
    """The canonical frame (as :func:`canonical_frame` makes) from the Arrow result.

    Rows sorted by ``(cutoff, customer_id)``; or, given ``ids`` (from
    :func:`ids_by_key`), in any order with ``customer_key`` in place of
    ``customer_id``, and sorted here by ``(cutoff, customer_key)``. Column by
    column on two threads, each Arrow column released once converted (``float64``
    NumPy, or a categorical with sorted categories) and taken in the sorted
    order: at a million rows the page faults of the new arrays and the takes
    made this a second of one thread, which the other core halves (the GIL is
    released in both).
    """
    customer = "customer_id" if ids is None else CUSTOMER_KEY
    keys = table.select(["cutoff", customer])
    index, order = (_key_index(keys), None) if ids is None else _keyed_rows(keys, ids)
    columns: list[pa.ChunkedArray | None] = [table.column(d.name) for d in definitions]
    del keys, table

    def convert(at: int) -> object:
        column, columns[at] = columns[at], None  # its buffers go once converted
        assert column is not None
        if definitions[at].dtype == "category":
            return _categorical(column.cast(pa.string()), order)
        values = column.cast(pa.float64()).to_numpy()
        return values if order is None else values.take(order)

    if len(index) < _THREADED_ROWS:  # a request's few rows: no threads to start
        converted = [convert(at) for at in range(len(definitions))]
    else:
        with ThreadPoolExecutor(_CONVERTING_THREADS) as pool:
            converted = list(pool.map(convert, range(len(definitions))))
    data = {d.name: values for d, values in zip(definitions, converted, strict=True)}
    return pd.DataFrame(data, index=index, copy=False)


def canonical_frame(frame: pd.DataFrame, definitions: Sequence[FeatureDefinition]) -> pd.DataFrame:
    """Canonical dtypes and index, in place on the (freshly fetched) result frame."""
    frame["cutoff"] = pd.to_datetime(frame["cutoff"]).astype("datetime64[s]")
    frame["customer_id"] = frame["customer_id"].astype("string")
    for d in definitions:
        if d.dtype == "category":
            values = frame[d.name].astype("string")
            categories = sorted(values.dropna().unique())
            frame[d.name] = pd.Categorical(values, categories=categories)
        elif frame[d.name].dtype != "float64":
            frame[d.name] = pd.to_numeric(frame[d.name]).astype("float64")
    return frame.set_index(list(KEYS))  # copy-on-write: the columns are not copied
