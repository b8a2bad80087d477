"""Integer keys for customers and orders, assigned once when a shop's validated tables are written.

The feature build groups and joins millions of lines by customer and by order.
Reading and hashing two integer columns costs about a quarter less CPU time than
decoding and hashing the ``customer_id`` and ``order_id`` strings (10M lines), and
computing integers inside the query does not pay (a 10M-row join). So the keys are
assigned once, when the tables are written as Parquet, and every later build reads
them; the string ids stay in the tables for output.

* ``customer_key``: the position of a ``customer_id`` among the sorted distinct ids
  of all the shop's tables, so ordering by the key orders by the id. A column of
  every table with a ``customer_id``, and the table ``customer_keys``
  (``customer_key``, ``customer_id``) maps it back.
* ``order_key``: one integer per distinct ``order_id`` of ``transactions``.

Written files are also clustered: each keyed table's rows sorted by
``customer_key``, then by the table's time column (:func:`clustered`), so the
build's groupings by customer and by order meet a customer's rows side by side.

Every file written with keys carries, in its Parquet metadata, the digest of the
key set (:data:`DIGEST_METADATA`). A reader uses the keys only when every table
and ``customer_keys`` carry the same digest (:func:`shared_digest`); files written
apart, or rewritten by another tool, fall back to the string ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CUSTOMER_KEY = "customer_key"
ORDER_KEY = "order_key"
#: The table mapping ``customer_key`` back to ``customer_id`` (and its Parquet file).
KEYS_TABLE = "customer_keys"
KEYS_FILE = f"{KEYS_TABLE}.parquet"
#: Parquet metadata entry holding the key set's digest.
DIGEST_METADATA = b"winback.customer_keys"
#: Columns the key assignment adds; never part of a contract table.
KEY_COLUMNS = (CUSTOMER_KEY, ORDER_KEY)
#: The derived table of purchase orders written beside the keyed tables
#: (``features.inputs.order_table``), and its Parquet file. Not a contract table.
ORDERS_TABLE = "purchase_orders"
ORDERS_FILE = f"{ORDERS_TABLE}.parquet"
#: Parquet metadata entry of the order table: the row count of the ``transactions`` it
#: was made from, so transactions rewritten with their metadata kept are not read with it.
LINES_METADATA = b"winback.transactions_rows"


def _distinct_sorted_ids(tables: Mapping[str, pa.Table]) -> pa.Array:
    """Every non-null ``customer_id`` of ``tables``, distinct and sorted (byte order)."""
    columns = [
        chunk.cast(pa.string())
        for table in tables.values()
        if "customer_id" in table.column_names
        for chunk in table.column("customer_id").chunks
    ]
    if not columns:
        return pa.array([], pa.string())
    distinct = pc.unique(pa.chunked_array(columns, pa.string())).drop_null()
    return distinct.take(pc.sort_indices(distinct))


def key_set_digest(ids: pa.Array) -> bytes:
    """SHA-256 of the ids in key order: equal for equal key sets, whoever wrote them."""
    large = ids.cast(pa.large_string())
    sha = hashlib.sha256(pc.binary_length(large).to_numpy(zero_copy_only=False).tobytes())
    if len(large):
        offsets = np.frombuffer(large.buffers()[1], dtype=np.int64)[large.offset :]
        data = large.buffers()[2]
        if data is not None:
            sha.update(memoryview(data)[offsets[0] : offsets[len(large)]])
    return sha.hexdigest().encode()


def with_digest(table: pa.Table, digest: bytes) -> pa.Table:
    """``table`` with the key set's digest in its schema metadata (:data:`DIGEST_METADATA`)."""
    metadata = dict(table.schema.metadata or {})
    metadata[DIGEST_METADATA] = digest
    return table.replace_schema_metadata(metadata)


def _keys_of(values: pa.ChunkedArray, value_set: pa.Array) -> pa.ChunkedArray:
    """The position of each value in ``value_set`` as ``int64`` (null when absent or null)."""
    return pc.index_in(values.cast(pa.string()), value_set=value_set).cast(pa.int64())


def with_keys(tables: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    """``tables`` with ``customer_key`` (and ``order_key`` in ``transactions``) added.

    Parameters
    ----------
    tables
        A shop's validated tables as Arrow, by contract name (``transactions`` at least).

    Returns
    -------
    dict[str, pyarrow.Table]
        Every table with the key columns appended and the key set's digest in its
        schema metadata, plus :data:`KEYS_TABLE` (``customer_key``, ``customer_id``,
        sorted by both). The same tables always give the same keys.
    """
    for name, table in tables.items():
        clash = [c for c in KEY_COLUMNS if c in table.column_names]
        if clash:
            raise ValueError(
                f"table {name!r} already has column(s) {clash}: they are reserved for the"
                " keys winback assigns; rename them before writing the shop"
            )
    ids = _distinct_sorted_ids(tables)
    digest = key_set_digest(ids)
    out: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if "customer_id" in table.column_names:
            table = table.append_column(CUSTOMER_KEY, _keys_of(table.column("customer_id"), ids))
        if name == "transactions" and "order_id" in table.column_names:
            orders = table.column("order_id").cast(pa.string())
            distinct_orders = pc.unique(orders).drop_null()
            table = table.append_column(ORDER_KEY, _keys_of(orders, distinct_orders))
        out[name] = with_digest(table, digest)
    keys = pa.table({CUSTOMER_KEY: pa.array(range(len(ids)), pa.int64()), "customer_id": ids})
    out[KEYS_TABLE] = with_digest(keys, digest)
    return out


def clustered(table: pa.Table, time_column: str | None = None) -> pa.Table:
    """``table``'s rows sorted by ``customer_key``, then ``time_column`` (stable, nulls last).

    The feature build hashes millions of lines into groups by customer and by
    order. With one customer's rows side by side those groups stay in cache:
    on 1M customers / 10M lines the whole feature query takes about a tenth
    less CPU time (20.4 against 23.1 CPU s, two interleaved runs each). The
    sort costs 2.6 s for those 10M lines, once, when the files are written.
    A table without ``customer_key`` is returned as it is.
    """
    if CUSTOMER_KEY not in table.column_names:
        return table
    keys = [(CUSTOMER_KEY, "ascending")]
    if time_column is not None and time_column in table.column_names:
        keys.append((time_column, "ascending"))
    order = pc.sort_indices(table, sort_keys=keys)  # nulls last
    return table.take(order)


def file_digest(path: str | Path) -> bytes | None:
    """The key-set digest in a Parquet file's metadata (its footer only), or ``None``."""
    metadata = pq.read_schema(path).metadata or {}
    return metadata.get(DIGEST_METADATA)


def shared_digest(files: Iterable[str | Path]) -> bytes | None:
    """The digest every file carries, or ``None`` if one has none or they differ."""
    digests = {file_digest(path) for path in files}
    if len(digests) != 1:
        return None
    return digests.pop()
