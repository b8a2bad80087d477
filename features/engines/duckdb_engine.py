"""Run SQL definitions over a shop's tables in DuckDB.

The tables are registered as DuckDB views named after their contract table
(``transactions``, ``customers``, ...), with every ``*_at`` column turned into a
naive UTC ``TIMESTAMP`` so that SQL stays portable (DuckDB and Spark SQL agree
on naive timestamps; time-zone arithmetic they do not).

Money columns are read as ``DECIMAL(18, 4)``: DuckDB sums in parallel and adds
its threads' partial sums in whatever order they finish, so floating-point sums
move in their last bits from run to run, equal spends stop being equal and a
model trained on them splits elsewhere. Decimal sums are exact, so the same data
gives the same features whatever the thread count (amounts are kept to 1/10,000
of the currency unit). The feature relations read them back as integers of
ten-thousandths in ``DOUBLE`` (``features.relations.money_e4``), whose sums are
just as exact and cheaper than 16-byte decimal sums.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.engines.base import Engine
from features.erasure import REFERENCE_COLUMNS
from features.inputs.keys import (
    CUSTOMER_KEY,
    DIGEST_METADATA,
    KEY_COLUMNS,
    KEYS_FILE,
    KEYS_TABLE,
    LINES_METADATA,
    ORDER_KEY,
    ORDERS_FILE,
    ORDERS_TABLE,
    shared_digest,
    with_keys,
)
from features.inputs.schema import SCHEMAS, ShopTables
from features.relations import order_table_columns

#: Money columns read as exact decimals, by table.
MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("amount", "margin_amount", "discount_amount", "cost_amount"),
}
#: The decimal type of money in SQL (18 digits, 4 after the point).
MONEY_TYPE = "DECIMAL(18, 4)"


def _column_sql(table: str, column: str, kind: str) -> str:
    """The view's expression of one column: money as decimal, aware timestamps as naive UTC."""
    if column in MONEY_COLUMNS.get(table, ()) and "CHAR" not in kind.upper():
        return f'CAST("{column}" AS {MONEY_TYPE}) AS "{column}"'
    if kind.upper().startswith("TIMESTAMP WITH TIME ZONE"):
        return f'make_timestamp(epoch_us("{column}")) AS "{column}"'
    return f'"{column}"'


#: The temporary table of customer ids :func:`connect_parquet` leaves out (``exclude``).
EXCLUDED_TABLE = "_winback_excluded"


def _kept_sql(column: str) -> str:
    """A predicate: ``column`` holds no excluded customer (missing ids are never excluded)."""
    return f'("{column}" IS NULL OR "{column}" NOT IN (SELECT customer_id FROM {EXCLUDED_TABLE}))'


def _create_view(
    con: duckdb.DuckDBPyConnection, name: str, source: str, *, excluding: bool = False
) -> None:
    """``CREATE TEMP VIEW name`` over ``source`` (a relation's SQL) with the column rules above.

    ``excluding``: rows of the customers in :data:`EXCLUDED_TABLE` are left out, and
    references to them in other customers' rows (``features.erasure.REFERENCE_COLUMNS``)
    blanked, as ``features.erasure.drop_erased`` does to frames.
    """
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    references = REFERENCE_COLUMNS.get(name, ()) if excluding else ()
    select = ", ".join(
        f'CASE WHEN {_kept_sql(column)} THEN "{column}" END AS "{column}"'
        if column in references
        else _column_sql(name, column, str(kind))
        for column, kind, *_ in described
    )
    where = ""
    if excluding and any(column == "customer_id" for column, *_ in described):
        where = f" WHERE {_kept_sql('customer_id')}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {select} FROM {source}{where}")


def register_arrow(con: duckdb.DuckDBPyConnection, name: str, table: object) -> None:
    """Register ``table`` (Arrow or pandas) as the view ``name``, with the column rules above."""
    con.register(f"_winback_{name}", table)
    _create_view(con, name, f"_winback_{name}")


def _as_naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy with tz-aware timestamp columns as naive UTC."""
    out = frame.copy(deep=False)
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


#: DuckDB variable holding the ``memory_limit`` winback set on a connection, as given.
MEMORY_LIMIT_VARIABLE = "winback_memory_limit"
#: DuckDB variable holding the ``transactions`` files of a keyed Parquet connection whose
#: views leave no rows out (``features.engines.line_sums`` reads them); else empty.
LINES_FILES_VARIABLE = "winback_transactions_files"


def _configured(
    con: duckdb.DuckDBPyConnection | None, *, threads: int | None, memory_limit: str | None
) -> duckdb.DuckDBPyConnection:
    """``con`` (a new in-memory connection by default) with winback's DuckDB settings.

    ``allocator_background_threads`` lets DuckDB's allocator hand freed memory
    back to the system while and after a query runs; without it the memory of
    a finished feature query stays resident, and the frame built from its
    result comes on top (peak 1.9 GiB against 1.4 GiB on 1M customers).
    """
    con = con if con is not None else duckdb.connect()
    con.execute("SET allocator_background_threads = true")
    con.execute(f"SET VARIABLE {LINES_FILES_VARIABLE} = []::VARCHAR[]")  # set by connect_parquet
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit is not None:
        con.execute("SET memory_limit = ?", [memory_limit])
        # kept exactly as given: current_setting() rounds it (1280MB reads "1.1 GiB")
        con.execute(f"SET VARIABLE {MEMORY_LIMIT_VARIABLE} = ?", [memory_limit])
    return con


def _keyed_arrow(frames: dict[str, pd.DataFrame]) -> dict[str, pa.Table]:
    """The frames as Arrow tables with the integer keys of ``features.inputs.keys``."""
    with warnings.catch_warnings():
        # pyarrow 25 reads Series.values of tz-aware columns, deprecated in pandas 3.1
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        arrow = {
            name: pa.Table.from_pandas(_as_naive_utc(frame), preserve_index=False)
            for name, frame in frames.items()
        }
    return with_keys(arrow)


def connect(
    tables: ShopTables,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    customer_keys: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with each present table registered as a view.

    Parameters
    ----------
    tables
        Validated shop tables (see ``features.inputs.schema``).
    con
        An existing connection to register into; a new in-memory one by default.
    threads, memory_limit
        DuckDB settings; DuckDB's own defaults when ``None``.
    customer_keys
        Assign the integer keys of ``features.inputs.keys`` now (a pass over the
        ids), so the feature build groups by them; worth it only when several
        builds read the same connection.
    """
    con = _configured(con, threads=threads, memory_limit=memory_limit)
    frames = {name: f for name, f in tables.present().items() if name in SCHEMAS}
    con.execute(f"DROP VIEW IF EXISTS {ORDERS_TABLE}")  # a connection reused for other tables
    if customer_keys:
        for name, table in _keyed_arrow(frames).items():
            register_arrow(con, name, table)
        return con
    con.execute(f"DROP VIEW IF EXISTS {KEYS_TABLE}")
    for name, frame in frames.items():
        register_arrow(con, name, _as_naive_utc(frame))
    return con


def has_customer_keys(con: Engine, columns: Mapping[str, Collection[str]]) -> bool:
    """Whether the contract views on ``con`` carry integer keys the build can group by.

    True on a DuckDB connection with the ``customer_keys`` relation registered
    (by :func:`connect_parquet` on files written with one key set, or by
    :func:`connect` with ``customer_keys``), ``order_key`` in ``transactions``
    and ``customer_key`` in every table with a ``customer_id``.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return False
    try:
        con.execute(f"SELECT {CUSTOMER_KEY}, customer_id FROM {KEYS_TABLE} LIMIT 0").fetchall()
    except duckdb.Error:
        return False
    return ORDER_KEY in columns.get("transactions", ()) and all(
        CUSTOMER_KEY in names for names in columns.values() if "customer_id" in names
    )


def has_order_table(con: Engine, columns: Mapping[str, Collection[str]]) -> bool:
    """Whether ``con`` has the order table the keyed build reads instead of grouping lines.

    True on a keyed DuckDB connection (:func:`has_customer_keys`) where
    :func:`connect_parquet` registered ``purchase_orders`` (written with the same
    key set and from the same number of lines, ``features.inputs.order_table``)
    with every column the lines' columns call for.
    """
    if not has_customer_keys(con, columns):
        return False
    assert isinstance(con, duckdb.DuckDBPyConnection)  # has_customer_keys says so
    try:
        cursor = con.execute(f"SELECT * FROM {ORDERS_TABLE} LIMIT 0")
    except duckdb.Error:
        return False
    present = {d[0] for d in cursor.description}
    cursor.fetchall()
    return set(order_table_columns(columns["transactions"])) <= present


def table_columns(con: Engine) -> dict[str, list[str]]:
    """Column names of each contract table visible on ``con``, any engine (absent tables left out)."""
    out: dict[str, list[str]] = {}
    for name in SCHEMAS:
        try:
            cursor = con.execute(f"SELECT * FROM {name} LIMIT 0")
        except duckdb.CatalogException:
            continue
        out[name] = [d[0] for d in cursor.description]
        cursor.fetchall()
    return out


def _parquet_files(directory: Path, name: str) -> tuple[str, list[Path]] | None:
    """The ``read_parquet`` source of table ``name`` in ``directory`` and its files."""
    single = directory / f"{name}.parquet"
    if single.is_file():
        return str(single), [single]
    folder = directory / name
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if files:
        return str(folder / "*.parquet"), files
    return None


def _register_keys(
    con: duckdb.DuckDBPyConnection, directory: Path, files: list[Path]
) -> bytes | None:
    """Register ``customer_keys`` when it and every table's files carry one key set.

    Files written together by ``features.inputs.keys.with_keys`` share the
    digest in their metadata (only the footers are read); any other mix leaves
    the relation out, and the build groups by the string ids. Returns the
    digest of the key set registered, or ``None``.
    """
    con.execute(f"DROP VIEW IF EXISTS {KEYS_TABLE}")  # a connection reused for another folder
    keys_file = directory / KEYS_FILE
    digest = shared_digest([keys_file, *files]) if keys_file.is_file() else None
    if digest is None:
        return None
    quoted = str(keys_file).replace("'", "''")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {KEYS_TABLE} AS SELECT {CUSTOMER_KEY}, customer_id"
        f" FROM read_parquet('{quoted}')"
    )
    return digest


def _register_orders(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    digest: bytes | None,
    lines: list[Path],
    *,
    excluding: bool,
) -> None:
    """Register the order table ``purchase_orders`` when it belongs to the keyed tables.

    It must carry ``digest``, the key set registered with the tables
    (:func:`_register_keys`), and the row count of the ``transactions`` files
    ``lines`` it was made from; otherwise (no keys, or a tool rewrote the lines
    or the table) the build groups the lines.
    """
    con.execute(f"DROP VIEW IF EXISTS {ORDERS_TABLE}")  # a connection reused for another folder
    orders = directory / ORDERS_FILE
    if digest is None or not orders.is_file():
        return
    metadata = pq.read_schema(orders).metadata or {}
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in lines)
    if (
        metadata.get(DIGEST_METADATA) != digest
        or metadata.get(LINES_METADATA) != str(rows).encode()
    ):
        return
    quoted = str(orders).replace("'", "''")
    _create_view(con, ORDERS_TABLE, f"read_parquet('{quoted}')", excluding=excluding)


def connect_parquet(
    directory: str | Path,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    exclude: Collection[str] = (),
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with contract views reading Parquet files in place.

    Each contract table is read from ``<directory>/<name>.parquet`` (or every
    ``*.parquet`` in ``<directory>/<name>/``) without going through pandas, so
    tables larger than memory stream out-of-core. Time-zone-aware timestamp
    columns become naive UTC (through the epoch: ten times faster in DuckDB than
    a time-zone conversion) and money decimal, as in :func:`connect`. Absent
    files mean absent tables. Files written with integer keys
    (``features.inputs.keys``, e.g. by ``winback data simulate``) also register
    ``customer_keys``, and the feature build groups by the keys; with the order
    table written beside them (``features.inputs.order_table``) also
    ``purchase_orders``, which the build reads instead of grouping the lines.

    Parameters
    ----------
    directory
        Folder holding the Parquet files (at least ``transactions``).
    con, threads, memory_limit
        As in :func:`connect`.
    exclude
        Customer ids whose rows every view leaves out (and whose id in another
        customer's row it blanks), e.g. those ``winback forget`` erased since the
        files were written; ``features.erasure.drop_erased`` does the same to frames.
        ``customer_keys`` keeps them: it maps every key to its id by position, and
        the rows left hold none of their keys.
    """
    directory = Path(directory)
    con = _configured(con, threads=threads, memory_limit=memory_limit)
    if _parquet_files(directory, "transactions") is None:
        raise FileNotFoundError(
            f"no transactions.parquet (or transactions/*.parquet) in {directory}: "
            "write the canonical transactions table there first"
        )
    excluding = _register_excluded(con, exclude)
    files: list[Path] = []
    lines: list[Path] = []
    for name in SCHEMAS:
        found = _parquet_files(directory, name)
        if found is None:
            continue
        source, table_files = found
        files += table_files
        lines += table_files if name == "transactions" else []
        quoted = source.replace("'", "''")
        _create_view(con, name, f"read_parquet('{quoted}')", excluding=excluding)
    digest = _register_keys(con, directory, files)
    _register_orders(con, directory, digest, lines, excluding=excluding)
    keyed_lines = digest is not None and not excluding
    con.execute(
        f"SET VARIABLE {LINES_FILES_VARIABLE} = ?::VARCHAR[]",
        [[str(f) for f in lines] if keyed_lines else []],
    )
    return con


def _register_excluded(con: duckdb.DuckDBPyConnection, exclude: Collection[str]) -> bool:
    """Hold ``exclude`` in :data:`EXCLUDED_TABLE` (dropped when empty); whether any id is."""
    ids = sorted({str(i) for i in exclude})
    con.execute(f"DROP TABLE IF EXISTS {EXCLUDED_TABLE}")
    if not ids:
        return False
    con.register("_winback_exclude", pa.table({"customer_id": pa.array(ids, pa.string())}))
    try:
        con.execute(f"CREATE TEMP TABLE {EXCLUDED_TABLE} AS SELECT * FROM _winback_exclude")
    finally:
        con.unregister("_winback_exclude")
    return True


def outline(con: Engine, source: str = "") -> ShopTables:
    """A stand-in ``ShopTables`` for the tables registered on ``con``, any engine (e.g. ``connect_parquet``).

    Each contract table present is a pandas frame with its columns and no rows,
    except ``transactions``, which holds its first and last line by
    ``ordered_at`` (as UTC), and ``suppressions``, read whole (a short list of
    do-not-contact customers that the score store keeps), so ``last_event_at``,
    the suppressions and the SQL generators of
    ``features.labels``/``features.tiers`` (which read only column names) work
    without loading the rows. Never use it for values: pass ``con`` along. The
    integer key columns (``features.inputs.keys``) are left out.
    """
    present: dict[str, pd.DataFrame] = {}
    for name, columns in table_columns(con).items():
        if name == "transactions":
            frame = con.sql(
                "(SELECT * FROM transactions WHERE ordered_at IS NOT NULL"
                " ORDER BY ordered_at LIMIT 1) UNION ALL"
                " (SELECT * FROM transactions WHERE ordered_at IS NOT NULL"
                " ORDER BY ordered_at DESC LIMIT 1)"
            ).df()
            frame["ordered_at"] = pd.to_datetime(frame["ordered_at"]).dt.tz_localize("UTC")
        elif name == "suppressions":  # values, not only columns: stored with each score version
            frame = con.sql("SELECT * FROM suppressions").df()
            for column in ("customer_id", "reason"):
                if column in frame.columns:
                    frame[column] = frame[column].astype("string")
        else:
            frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        present[name] = frame.drop(columns=list(KEY_COLUMNS), errors="ignore")
    return ShopTables(**present, source=source)
