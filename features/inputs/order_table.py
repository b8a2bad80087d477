"""The purchase-order table: one row per purchase order, written once beside the keyed tables.

Every feature build groups the purchase lines by (customer, order), and a window
over the orders gives each one the days since the customer's previous purchase
order. Both are the same at every cutoff, so :func:`order_table` does them once,
when the keyed tables are written (``features.inputs.table_files.write_tables``),
and the build reads ``purchase_orders.parquet`` instead
(``features.relations.order_table_sql``): a shop with 20 lines per order reads a
twentieth of the rows, with no grouping and no window.

One row per (``customer_key``, ``order_key``) of the purchase (non-return) lines,
clustered by customer and time: ``customer_id`` (so erasing a customer removes its
rows, ``features.erasure_files``), ``ordered_at`` (the order's first line's time, as
the build takes it), the order's money sums in integer ten-thousandths
(``features.relations.order_table_sums``: the sums the build takes over the lines)
and ``gap_days`` (days since the customer's previous purchase order, NULL for the
first, 0 for another order the same day).

Exact only when every order's purchase lines fall on one calendar day (UTC). The
order relation uses a line's time only against day boundaries: a cutoff takes the
events before the day after it, a window those from a midnight on, and ages and
gaps count days. So with one day per order a cutoff takes or leaves whole orders
and a windowed sum over its lines is the order's sum or 0. Lines minutes apart (31
of Online Retail's 22,190 invoices) are fine; when an order's lines span two days,
or a purchase line lacks its customer, order or time, the table is not made
(``None``) and the build groups the lines. It carries the key set's digest of the
tables and the number of lines it was made from
(``features.inputs.keys.LINES_METADATA``); ``connect_parquet`` reads it only when
both still match. It is a derived table, not a contract table.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from features.engines.duckdb_engine import register_arrow
from features.inputs.keys import (
    CUSTOMER_KEY,
    DIGEST_METADATA,
    LINES_METADATA,
    ORDER_KEY,
    with_digest,
)
from features.relations import is_return, order_table_sums


def order_table_sql(tx_columns: list[str]) -> str:
    """The order table's SQL over the ``transactions`` view, with the check column ``one_day``."""
    sums = "".join(
        f",\n    CAST({sql} AS BIGINT) AS {name}"
        if name != "discounted"
        else f",\n    {sql} AS {name}"
        for name, sql in order_table_sums(tx_columns).items()
    )
    purchased = f"WHERE NOT {is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    day = "CAST(ordered_at AS DATE)"
    gap = (
        f"date_diff('day', LAG({day}) OVER (PARTITION BY {CUSTOMER_KEY}"
        f" ORDER BY ordered_at, {ORDER_KEY}), {day}) AS gap_days"
    )
    names = ", ".join(["ordered_at", *order_table_sums(tx_columns)])
    return (
        f"SELECT {CUSTOMER_KEY}, {ORDER_KEY}, {names}, {gap}, one_day\n"
        f"FROM (SELECT t.{CUSTOMER_KEY}, t.{ORDER_KEY}, MIN(t.ordered_at) AS ordered_at,\n"
        "    CAST(MIN(t.ordered_at) AS DATE) = CAST(MAX(t.ordered_at) AS DATE)"
        " AND COUNT(t.ordered_at) = COUNT(*) AS one_day"
        f"{sums}\n  FROM transactions AS t {purchased}\n"
        f"  GROUP BY t.{CUSTOMER_KEY}, t.{ORDER_KEY})\n"
        f"ORDER BY {CUSTOMER_KEY}, ordered_at, {ORDER_KEY}"
    )


def order_table(
    transactions: pa.Table, customer_ids: pa.Array | pa.ChunkedArray, *, threads: int | None = None
) -> pa.Table | None:
    """The purchase-order table of keyed ``transactions`` (see the module docstring), or ``None``.

    Parameters
    ----------
    transactions
        The keyed lines as written (``features.inputs.keys.with_keys``: with
        ``customer_key``, ``order_key`` and the key set's digest).
    customer_ids
        The ``customer_id`` of each ``customer_key``, in key order (the
        ``customer_keys`` table's column): the rows get their id by key, which
        takes less memory and time than carrying the strings through the grouping.
    threads
        DuckDB threads; DuckDB's default when ``None``.

    Returns
    -------
    pyarrow.Table or None
        One row per purchase order, sorted by ``customer_key``, ``ordered_at``,
        ``order_key``; ``None`` when the lines are not keyed, an order's purchase
        lines fall on more than one day, or one lacks a key or a time.
    """
    digest = (transactions.schema.metadata or {}).get(DIGEST_METADATA)
    names = transactions.column_names
    if digest is None or CUSTOMER_KEY not in names or ORDER_KEY not in names:
        return None
    con = duckdb.connect()
    try:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        register_arrow(con, "transactions", transactions)
        table = con.sql(order_table_sql(names)).to_arrow_table()
    finally:
        con.close()
    one_day = table.num_rows == 0 or pc.all(pc.fill_null(table.column("one_day"), False)).as_py()
    keys = table.column(CUSTOMER_KEY).null_count + table.column(ORDER_KEY).null_count
    if not one_day or keys:
        return None
    table = table.drop_columns(["one_day"])
    ids = pa.chunked_array([customer_ids]) if isinstance(customer_ids, pa.Array) else customer_ids
    table = table.add_column(1, "customer_id", ids.take(table.column(CUSTOMER_KEY)))
    at = table.schema.get_field_index("ordered_at")
    unit = table.schema.field(at).type.unit
    table = table.set_column(at, "ordered_at", table.column(at).cast(pa.timestamp(unit, tz="UTC")))
    table = with_digest(table.combine_chunks(), digest)
    metadata = {**table.schema.metadata, LINES_METADATA: str(transactions.num_rows).encode()}
    return table.replace_schema_metadata(metadata)
