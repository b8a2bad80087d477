"""One cutoff's sums of the lines, taken from keyed Parquet lines with NumPy in one pass.

Two relations start from the lines themselves, and a pass over a row group at a time
gives both without SQL: the category sums and the returned lines.

The ``customer_categories`` relation (``features.relations.category_sql``) starts from
two groupings of the purchase lines with a category: by (customer, category)
(``rel_category_spend``: about 6M groups at a million customers, the largest hash
table of the feature query and a third of its CPU time) and by category
(``rel_category_totals``, for the shop-wide margin rates). Files written with keys are
clustered by customer (``features.inputs.keys.clustered``), so a row group's
(customer, category) pairs index a small dense array: the sums are ``bincount``\\ s,
one row group at a time, and a customer whose lines run into the next row group is
carried over to it. The two tables are registered on the connection under the
relations' names and the rest of ``category_sql`` (rates, flags, decimals) reads them
as before.

Same values as the SQL, to the bit: money becomes the integer of ten-thousandths the
contract view's ``DECIMAL(18, 4)`` holds (half away from zero, as DuckDB casts) and
is summed as ``DOUBLE`` like :func:`features.relations.money_e4` sums (exact below
2^53), the category totals as exact integers like its ``BIGINT`` sums. Anything this
reader does not handle the way the view does (files not clustered, not keyed or with
rows left out, unusual column types, nulls where the contract has none, money beyond
2^51 ten-thousandths) gives ``None``, and the build groups in SQL.

The pass also keeps the returned lines on or before the cutoff (the ``returned_lines``
relation's rows, ``features.relations.returned_lines_sql``): a table of their customer,
time and money in ten-thousandths that the feature query reads in place of a second
scan of every line.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.definitions import FeatureDefinition, dependency
from features.engines.base import Engine
from features.engines.duckdb_engine import LINES_FILES_VARIABLE
from features.inputs.keys import CUSTOMER_KEY
from features.relations import CATEGORY_SPEND_TABLE as SPEND_TABLE
from features.relations import CATEGORY_TOTALS_TABLE as TOTALS_TABLE
from features.relations import RETURNED_LINES_TABLE as RETURNED_TABLE

#: Largest dense (customer, category) array of a row group; beyond it the pairs are sorted.
_DENSE_CELLS = 1 << 24
#: Money beyond this many ten-thousandths is left to SQL (``money_e4`` is exact below 2^51).
_MONEY_LIMIT = 2.0**51
#: Split of a ten-thousandths integer into high and low parts whose ``bincount`` is exact.
_LOW = 2.0**26
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True)
class _GroupSums:
    """One row group's sums, with category codes into its own ``dictionary``.

    ``key``, ``code``, ``amount``: one row per (customer, category) pair, sorted by
    key. ``lines``, ``amount_total``, ``margin_total``, ``margins``: by code, the kept
    lines, their exact amount and margin sums, and the lines with a margin.
    ``returned``: the returned lines' rows (when the lines have an ``is_return`` column).
    """

    first: int
    last: int
    dictionary: list[str]
    key: np.ndarray
    code: np.ndarray
    amount: np.ndarray
    lines: np.ndarray
    amount_total: list[int]
    margin_total: list[int]
    margins: np.ndarray
    returned: pa.RecordBatch | None


@dataclass(frozen=True)
class LineSums:
    """One cutoff's tables from the lines: the two groupings of ``customer_categories``
    (``spend``; ``totals`` with margins) and the ``returned_lines`` rows (``returned``,
    when the lines say which are returns)."""

    spend: pa.Table
    totals: pa.Table | None
    returned: pa.Table | None


class _Unsupported(Exception):
    """The lines hold something only the SQL path reads as the view does."""


def transactions_files(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """The files of the keyed ``transactions`` view, or none (not keyed, rows left out)."""
    files = con.execute(f"SELECT getvariable('{LINES_FILES_VARIABLE}')").fetchall()[0][0]
    return [Path(f) for f in files or []]


def register_line_sums_for(
    con: Engine,
    definitions: Sequence[FeatureDefinition],
    cutoff: date | None,
    columns: Mapping[str, Collection[str]],
) -> tuple[bool, bool]:
    """Take and register the line sums of ``cutoff`` for one query of ``definitions`` on a
    keyed DuckDB ``con``: whether the category sums were, and whether the returned lines.

    Only for one cutoff, when a definition (or one it depends on) reads
    ``customer_categories``, and when the files can be read as the view reads them.
    """
    if cutoff is None or not isinstance(con, duckdb.DuckDBPyConnection):
        return False, False
    relations = {d.relation for d in definitions}
    relations |= {dependency(n).relation for d in definitions for n in d.depends_on}
    files = transactions_files(con)
    tx = columns.get("transactions", ())
    if "customer_categories" not in relations or not files or "category" not in tx:
        return False, False
    sums = line_sums_on(con, files, cutoff, tx)
    if sums is None:
        return False, False
    return True, register_line_sums(con, sums)


def line_sums_on(
    con: duckdb.DuckDBPyConnection, files: Sequence[Path], cutoff: date, tx: Collection[str]
) -> LineSums | None:
    """:func:`line_sums` of the ``transactions`` columns ``tx``, on as many threads as ``con``'s."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    return line_sums(
        files, cutoff, margin="margin_amount" in tx, returns="is_return" in tx, threads=threads
    )


def register_line_sums(con: duckdb.DuckDBPyConnection, sums: LineSums) -> bool:
    """Register what :func:`line_sums` took under the relations' table names; whether that
    includes the returned lines."""
    con.register(SPEND_TABLE, sums.spend)
    if sums.totals is not None:
        con.register(TOTALS_TABLE, sums.totals)
    if sums.returned is not None:
        con.register(RETURNED_TABLE, sums.returned)
    return sums.returned is not None


def unregister_line_sums(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the tables :func:`register_line_sums` registered (their memory with them)."""
    for name in (SPEND_TABLE, TOTALS_TABLE, RETURNED_TABLE):
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)


def line_sums(
    files: Sequence[Path], cutoff: date, *, margin: bool, returns: bool, threads: int = 1
) -> LineSums | None:
    """``rel_category_spend``, (with ``margin``) ``rel_category_totals`` and (with
    ``returns``) the returned lines of ``cutoff``.

    Spend: ``customer_key``, ``category``, ``category_amount_e4`` (``DOUBLE``), one row
    per (customer, category) with a purchase line on or before the cutoff. Totals:
    ``category``, ``category_amount_e4``, ``category_margin_e4`` (``BIGINT``; null when
    no line of the category has a margin). Returned lines: ``customer_key``,
    ``ordered_at`` (the view's naive UTC timestamp), ``amount_e4`` and with ``margin``
    ``margin_e4`` (``DOUBLE``, :func:`features.relations.money_e4`'s values, null for a
    missing margin). Row groups are read on ``threads`` threads; the result does not
    depend on it. ``None`` when the lines cannot be read so.
    """
    columns = [CUSTOMER_KEY, "category", "ordered_at", "amount"]
    columns += ["margin_amount"] if margin else []
    columns += ["is_return"] if returns else []
    groups = [(f, g) for f in files for g in range(pq.ParquetFile(f).metadata.num_row_groups)]

    def read(group: tuple[Path, int]) -> _GroupSums:
        return _row_group_sums(group[0], group[1], columns, cutoff)

    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            parts = [p for p in pool.map(read, groups) if p.first >= 0]
        _check_clustered(parts)
        dictionary = list(dict.fromkeys(v for p in parts for v in p.dictionary))
        totals = _totals_table(parts, dictionary) if margin else None
    except _Unsupported:
        return None
    returned = _returned_table(parts, margin) if returns else None
    spend = _spend_table(parts, dictionary)  # empties parts
    _release_freed_memory()
    return LineSums(spend, totals, returned)


def _release_freed_memory() -> None:
    """Hand the memory the row groups used back to the system before the feature query runs.

    pyarrow's allocator keeps freed buffers, and so do the C library's per-thread heaps
    (NumPy's arrays of a row group): about 300 MB at a million customers that the
    query's own memory would come on top of.
    """
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL(None).malloc_trim(0)


def _check_clustered(parts: Sequence[_GroupSums]) -> None:
    """Each row group starts at or after the customer the one before ends with."""
    for before, after in zip(parts, parts[1:], strict=False):
        if after.first < before.last:
            raise _Unsupported("lines not clustered by customer")


def _row_group_sums(path: Path, group: int, columns: list[str], cutoff: date) -> _GroupSums:
    """One row group's sums of its purchase lines with a category on or before ``cutoff``,
    and its returned lines on or before it."""
    table = pq.ParquetFile(path, read_dictionary=["category"]).read_row_group(group, columns)
    key = table.column(CUSTOMER_KEY)
    if not pa.types.is_integer(key.type) or key.null_count:
        raise _Unsupported("customer keys that are not integers")
    keys = key.to_numpy().astype(np.int64, copy=False)
    if len(keys) > 1 and np.any(keys[1:] < keys[:-1]):
        raise _Unsupported("lines not clustered by customer")
    keep, returned = _kept(table, cutoff)
    category = table.column("category").combine_chunks()
    dictionary = category.dictionary.to_pylist()
    code = category.indices.fill_null(0).to_numpy(zero_copy_only=False)[keep].astype(np.int64)
    mask = pa.array(keep)
    amount = _e4(table.column("amount").filter(mask))
    n = len(dictionary)
    margin_total, margins = [0] * n, np.zeros(n, np.int64)
    if "margin_amount" in table.column_names:
        margin = _e4(table.column("margin_amount").filter(mask), nulls=True)
        present = ~np.isnan(margin)
        margins = np.bincount(code[present], minlength=n)
        margin_total = _exact_sums(code[present], margin[present], n)
    pairs = _pair_sums(keys[keep], code, amount, n)
    ends = (int(keys[0]), int(keys[-1])) if len(keys) else (-1, -1)
    lines = np.bincount(code, minlength=n)
    totals = (lines, _exact_sums(code, amount, n), margin_total, margins)
    back = None if returned is None else _returned_rows(table, keys, returned)
    return _GroupSums(*ends, dictionary, *pairs, *totals, back)


def _kept(table: pa.Table, cutoff: date) -> tuple[np.ndarray, np.ndarray | None]:
    """Which lines the relations keep: purchases with a category on or before the cutoff
    (``customer_categories``) and, with an ``is_return`` column, the returns on or before
    it (``returned_lines``)."""
    at = table.column("ordered_at")
    if not pa.types.is_timestamp(at.type):
        raise _Unsupported("ordered_at that is not a timestamp")
    ticks = at.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    before = ticks < _limit(cutoff, at.type.unit)
    if at.null_count:
        before &= at.is_valid().to_numpy(zero_copy_only=False)
    category = table.column("category")
    if not pa.types.is_dictionary(category.type) or not pa.types.is_string(
        category.type.value_type
    ):
        raise _Unsupported("category that is not a string")
    keep = before & category.is_valid().to_numpy(zero_copy_only=False)
    if "is_return" not in table.column_names:
        return keep, None
    is_return = table.column("is_return").fill_null(False).to_numpy(zero_copy_only=False)
    return keep & ~is_return, before & is_return


def _returned_rows(table: pa.Table, keys: np.ndarray, returned: np.ndarray) -> pa.RecordBatch:
    """The ``returned`` lines of a row group as the ``returned_lines`` relation reads them."""
    rows = np.flatnonzero(returned)
    chosen = pa.array(rows)
    at = table.column("ordered_at").take(chosen)
    unit = at.type.unit
    ticks = at.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if unit == "ns":  # the view keeps microseconds: only whole ones are read the same
        if np.any(ticks % 1_000):
            raise _Unsupported("returns timed to the nanosecond")
        micros = ticks // 1_000
    else:
        micros = ticks * (1_000_000 // _UNITS[unit])
    columns = {
        CUSTOMER_KEY: pa.array(keys[rows]),
        "ordered_at": pa.array(micros, pa.timestamp("us")),
        "amount_e4": pa.array(_e4(table.column("amount").take(chosen))),
    }
    if "margin_amount" in table.column_names:
        margin = _e4(table.column("margin_amount").take(chosen), nulls=True)
        columns["margin_e4"] = pa.array(margin, mask=np.isnan(margin))
    return pa.record_batch(columns)


def _returned_table(parts: Sequence[_GroupSums], margin: bool) -> pa.Table:
    """The returned lines of every row group, in one table (empty when there are none)."""
    batches = [p.returned for p in parts if p.returned is not None]
    fields = [(CUSTOMER_KEY, pa.int64()), ("ordered_at", pa.timestamp("us"))]
    fields += [("amount_e4", pa.float64())] + ([("margin_e4", pa.float64())] if margin else [])
    return pa.Table.from_batches(batches, schema=pa.schema(fields))


def _exact_sums(code: np.ndarray, value: np.ndarray, n: int) -> list[int]:
    """Exact integer sums of ``value`` (integers below 2^51) by ``code``.

    ``bincount`` adds doubles: exact while every partial sum stays below 2^53. When the
    values could pass it, they are split into a high part (multiples of 2^26) and a
    low one whose sums stay below it (row groups of fewer than 2^26 lines).
    """
    if not len(value):
        return [0] * n
    if float(np.abs(value).max()) * len(value) < 2.0**53:
        return [int(v) for v in np.bincount(code, weights=value, minlength=n)]
    if len(code) >= 2**26:
        raise _Unsupported("a row group of 2^26 lines or more")
    high = np.floor(value / _LOW)
    low = value - high * _LOW
    high_sums = np.bincount(code, weights=high, minlength=n)
    low_sums = np.bincount(code, weights=low, minlength=n)
    return [int(h) * int(_LOW) + int(lo) for h, lo in zip(high_sums, low_sums, strict=True)]


def _e4(values: pa.ChunkedArray | pa.Array, *, nulls: bool = False) -> np.ndarray:
    """Money as the integer of ten-thousandths the view's ``DECIMAL(18, 4)`` holds, as doubles.

    DuckDB casts a double to a decimal by scaling it and rounding half away from
    zero; ``nulls`` allows missing values (NaN here; a stored NaN the view refuses).
    """
    if not pa.types.is_floating(values.type) or (values.null_count and not nulls):
        raise _Unsupported("money that is not a double, or missing")
    scaled = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False) * 10_000.0
    out = np.rint(scaled)  # to even; only exact halves differ from DuckDB's rounding
    with np.errstate(invalid="ignore"):  # infinite money: refused below
        halves = np.flatnonzero(np.abs(scaled - out) == 0.5)
    out[halves] = np.trunc(scaled[halves]) + np.sign(scaled[halves])
    if values.null_count:
        missing = np.isnan(out)
        if int(missing.sum()) != values.null_count:
            raise _Unsupported("money that is NaN or infinite")
        largest = np.abs(out[~missing]).max(initial=0.0)
    else:
        largest = np.abs(out).max(initial=0.0)  # NaN or infinite: not below the limit
    if not largest < _MONEY_LIMIT:
        raise _Unsupported("money beyond 2^51 ten-thousandths, NaN or infinite")
    return out


def _limit(cutoff: date, unit: str) -> int:
    """The first instant after the cutoff day, in ``unit`` since the epoch (UTC)."""
    start = datetime.combine(cutoff, time(), tzinfo=UTC)
    return (int(start.timestamp()) + 86_400) * _UNITS[unit]


def _pair_sums(
    key: np.ndarray, code: np.ndarray, amount: np.ndarray, categories: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(customer_key, code, sum)`` of each (customer, category) pair of lines sorted by key."""
    if not len(key):
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0, np.float64)
    first = int(key[0])
    cell = (key - first) * categories + code
    cells = (int(key[-1]) - first + 1) * categories
    if cells <= _DENSE_CELLS:
        present = np.flatnonzero(np.bincount(cell, minlength=cells))
        sums = np.bincount(cell, weights=amount, minlength=cells)[present]
    else:
        present, inverse = np.unique(cell, return_inverse=True)
        sums = np.bincount(inverse, weights=amount, minlength=len(present))
    return present // categories + first, present % categories, sums


def _spend_table(parts: list[_GroupSums], dictionary: list[str]) -> pa.Table:
    """``rel_category_spend`` as an Arrow table, one batch per row group (categories
    dictionary-encoded); ``parts`` is emptied as its row groups are taken.

    A customer whose lines run from one row group into the next has rows in both: they
    are summed into one row per category. No array of all the pairs is made: the
    batches are slices of the row groups' own arrays.
    """
    values = pa.array(dictionary, pa.string())
    codes = {v: i for i, v in enumerate(dictionary)}
    shared = {b.first for a, b in zip(parts, parts[1:], strict=False) if b.first == a.last}
    held: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    batches = []
    parts.reverse()
    while parts:
        part = parts.pop()
        code = np.array([codes[v] for v in part.dictionary], np.int32)[part.code]
        lo, hi = 0, len(part.key)
        if part.first in shared:
            lo = int(np.searchsorted(part.key, part.first, "right"))
            held.setdefault(part.first, []).append((code[:lo], part.amount[:lo]))
        if part.last in shared and part.last != part.first:
            hi = max(lo, int(np.searchsorted(part.key, part.last, "left")))
            held.setdefault(part.last, []).append((code[hi:], part.amount[hi:]))
        if hi > lo:
            batches.append(_batch(part.key[lo:hi], code[lo:hi], part.amount[lo:hi], values))
    for customer, pieces in held.items():
        merged, inverse = np.unique(np.concatenate([c for c, _ in pieces]), return_inverse=True)
        amounts = np.concatenate([a for _, a in pieces])
        sums = np.bincount(inverse, weights=amounts, minlength=len(merged))
        batches.append(_batch(np.full(len(merged), customer, np.int64), merged, sums, values))
    return pa.Table.from_batches(batches, schema=_SPEND_SCHEMA)


#: The columns of ``rel_category_spend`` as :func:`_spend_table` makes them.
_SPEND_SCHEMA = pa.schema(
    [
        (CUSTOMER_KEY, pa.int64()),
        ("category", pa.dictionary(pa.int32(), pa.string())),
        ("category_amount_e4", pa.float64()),
    ]
)


def _batch(
    key: np.ndarray, code: np.ndarray, amount: np.ndarray, values: pa.Array
) -> pa.RecordBatch:
    category = pa.DictionaryArray.from_arrays(pa.array(code.astype(np.int32, copy=False)), values)
    return pa.record_batch([pa.array(key), category, pa.array(amount)], schema=_SPEND_SCHEMA)


def _totals_table(parts: Sequence[_GroupSums], dictionary: list[str]) -> pa.Table:
    """``rel_category_totals``: exact sums of every category with a kept line."""
    n = len(dictionary)
    lines, margins = np.zeros(n, np.int64), np.zeros(n, np.int64)
    amount, margin = [0] * n, [0] * n
    codes = {v: i for i, v in enumerate(dictionary)}
    for p in parts:
        for local, value in enumerate(p.dictionary):
            c = codes[value]
            lines[c] += p.lines[local]
            margins[c] += p.margins[local]
            amount[c] += p.amount_total[local]
            margin[c] += p.margin_total[local]
    used = [c for c in range(n) if lines[c]]
    if any(abs(amount[c]) >= 2**63 or abs(margin[c]) >= 2**63 for c in used):
        raise _Unsupported("a category total beyond BIGINT")
    return pa.table(
        {
            "category": pa.array([dictionary[c] for c in used], pa.string()),
            "category_amount_e4": pa.array([amount[c] for c in used], pa.int64()),
            "category_margin_e4": pa.array(
                [margin[c] if margins[c] else None for c in used], pa.int64()
            ),
        }
    )
