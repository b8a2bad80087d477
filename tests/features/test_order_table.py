"""The purchase-order table written with the keyed tables: the build reads it, same frame.

``purchase_orders.parquet`` (``features.inputs.order_table``) holds one row per
purchase order with its sums and the gap to the customer's previous order; the
build reads it instead of grouping the lines, and must give the frame it gives from
the lines to the last bit, for one cutoff and for many.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from features.build import build_feature_table_from
from features.definitions import resolve
from features.engines.duckdb_engine import (
    connect,
    connect_parquet,
    has_customer_keys,
    has_order_table,
    table_columns,
)
from features.erasure_files import erase_from_tree, erase_rows, mentions
from features.inputs.keys import (
    DIGEST_METADATA,
    LINES_METADATA,
    ORDERS_FILE,
    ORDERS_TABLE,
    with_keys,
)
from features.inputs.order_table import order_table
from features.inputs.schema import ShopTables
from features.inputs.table_files import arrow_table, write_tables
from features.query import Sources, feature_query
from features.relations import order_table_columns
from features.simulation import SimulationConfig, simulate_shop
from tests.features.reference_features import random_shop

CUTOFFS = [date(2022, 12, 31), date(2023, 6, 30), date(2024, 3, 1), date(2024, 6, 17)]
UTC = "UTC"


def _builds(folder: Path, cutoffs: list[date]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The frame built from ``folder`` with its order table, and without it (the lines)."""
    con = connect_parquet(folder, threads=2)
    assert has_order_table(con, table_columns(con))
    with_table = build_feature_table_from(con, cutoffs)
    lines = folder.with_name(folder.name + "-lines")
    shutil.copytree(folder, lines)
    (lines / ORDERS_FILE).unlink()
    con = connect_parquet(lines, threads=2)
    assert has_customer_keys(con, table_columns(con))
    assert not has_order_table(con, table_columns(con))
    return with_table, build_feature_table_from(con, cutoffs)


@pytest.mark.parametrize(
    "cutoffs", [CUTOFFS[1:2], CUTOFFS[3:], CUTOFFS], ids=["one", "last", "many"]
)
def test_the_order_table_gives_the_frame_of_the_lines_on_a_random_shop(tmp_path, cutoffs):
    shop = random_shop(customers=120, seed=11)
    write_tables(shop.present(), tmp_path / "shop")
    with_table, from_lines = _builds(tmp_path / "shop", cutoffs)
    assert len(with_table) > 40 and with_table["purchase_gap_std_days"].notna().sum() > 5
    pd.testing.assert_frame_equal(with_table, from_lines, check_exact=True)


def test_lines_of_an_order_at_other_times_of_its_day_give_the_same_frame(tmp_path):
    """A cutoff, a window and a gap see a line's day only: one day per order is enough."""
    shop = random_shop(customers=80, seed=12)
    lines = shop.transactions.copy()
    day = lines["ordered_at"].dt.floor("D")
    shift = pd.to_timedelta(np.random.default_rng(0).integers(0, 40_000, len(lines)), unit="s")
    lines["ordered_at"] = day + (lines["ordered_at"] - day + shift) % pd.Timedelta(days=1)
    purchases = lines[~lines["is_return"]]
    assert (purchases.groupby("order_id")["ordered_at"].nunique() > 1).sum() > 20
    write_tables({**shop.present(), "transactions": lines}, tmp_path / "shop")
    with_table, from_lines = _builds(tmp_path / "shop", CUTOFFS)
    pd.testing.assert_frame_equal(with_table, from_lines, check_exact=True)


def test_missing_margins_and_discounts_give_the_same_frame(tmp_path):
    """Lines without a margin or discount (null): the order's sums skip them as the lines' do."""
    shop = random_shop(customers=80, seed=6)
    lines = shop.transactions.copy()
    lines.loc[lines.index[::7], "margin_amount"] = float("nan")
    lines.loc[lines.index[::11], "discount_amount"] = float("nan")
    tables = {**shop.present(), "transactions": lines}
    write_tables(tables, tmp_path / "shop")
    orders = pq.read_table(tmp_path / "shop" / ORDERS_FILE)
    assert orders.column("margin_e4").null_count > 0
    with_table, from_lines = _builds(tmp_path / "shop", CUTOFFS)
    pd.testing.assert_frame_equal(with_table, from_lines, check_exact=True)


def test_the_order_table_gives_the_frame_of_the_lines_on_a_simulated_shop(tmp_path):
    shop = simulate_shop(SimulationConfig(customers=600, seed=8))
    write_tables(shop.tables.present(), tmp_path / "shop")
    cutoffs = [date(2024, 6, 30), date(2024, 12, 31), date(2025, 6, 30)]
    for chosen in (cutoffs[-1:], cutoffs):
        with_table, from_lines = _builds(tmp_path / "shop", chosen)
        shutil.rmtree(tmp_path / "shop-lines")
        pd.testing.assert_frame_equal(with_table, from_lines, check_exact=True)


def _lines(**columns) -> pd.DataFrame:
    """A transactions table of hand-written lines (times as UTC strings)."""
    frame = pd.DataFrame(columns)
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return frame


HAND = _lines(
    customer_id=["b", "a", "a", "a", "a", "a", "b", "a"],
    order_id=["o9", "o1", "o1", "o2", "o3", "o4", "o5", "o3"],
    ordered_at=[
        "2024-01-05 10:00",
        "2024-01-01 09:00",
        "2024-01-01 09:01",  # minutes apart (an invoice printed across a minute)
        "2024-01-01 17:30",  # another order the same day: gap 0
        "2024-01-11 08:00",
        "2024-01-20 12:00",  # returned lines only: no purchase order
        "2024-01-07 23:59",
        "2024-02-01 08:00",  # a return of o3 later: only purchase lines need one day
    ],
    amount=[5.0, 10.25, 0.0001, 3.5, 7.0, 2.0, 1.0, 7.0],
    is_return=[False, False, False, False, False, True, False, True],
    margin_amount=[1.0, 2.5, None, -0.5, None, 0.1, 0.2, 0.0],
    discount_amount=[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0],
)


def _ids(keyed: dict[str, pa.Table]) -> pa.ChunkedArray:
    """Each key's ``customer_id``, in key order, as the writer passes them."""
    return keyed["customer_keys"].column("customer_id")


def test_order_rows_hold_the_sums_in_ten_thousandths_and_the_gaps():
    keyed = with_keys({"transactions": arrow_table(HAND)})
    table = order_table(keyed["transactions"], _ids(keyed))
    assert table is not None
    rows = table.to_pydict()
    assert rows["customer_id"] == ["a", "a", "a", "b", "b"]
    assert [t.isoformat() for t in rows["ordered_at"]] == [
        "2024-01-01T09:00:00+00:00",
        "2024-01-01T17:30:00+00:00",
        "2024-01-11T08:00:00+00:00",
        "2024-01-05T10:00:00+00:00",
        "2024-01-07T23:59:00+00:00",
    ]
    assert rows["amount_e4"] == [102_501, 35_000, 70_000, 50_000, 10_000]
    assert rows["margin_e4"] == [25_000, -5_000, None, 10_000, 2_000]
    assert rows["discount_e4"] == [10_000, 0, 0, 0, 5_000]
    assert rows["full_price_e4"] == [1, 35_000, 70_000, 50_000, 0]
    assert rows["discounted"] == [1, 0, 0, 0, 1]
    assert rows["gap_days"] == [None, 0, 10, None, 2]
    assert (
        table.schema.metadata[DIGEST_METADATA]
        == keyed["customer_keys"].schema.metadata[DIGEST_METADATA]
    )
    assert table.schema.metadata[LINES_METADATA] == b"8"


def test_no_order_table_when_an_order_spans_two_days_and_an_old_one_goes(tmp_path):
    out = tmp_path / "shop"
    write_tables({"transactions": HAND}, out)
    assert (out / ORDERS_FILE).is_file()
    moved = HAND.copy()
    moved.loc[2, "ordered_at"] = pd.Timestamp("2024-01-02 00:00", tz=UTC)  # o1 on two days
    keyed = with_keys({"transactions": arrow_table(moved)})
    assert order_table(keyed["transactions"], _ids(keyed)) is None
    paths = write_tables({"transactions": moved}, out)
    assert ORDERS_TABLE not in paths and not (out / ORDERS_FILE).exists()
    con = connect_parquet(out)
    assert has_customer_keys(con, table_columns(con))
    assert not has_order_table(con, table_columns(con))
    # the lines' own answer: o1 counts from its first day, with the second line's value
    cutoffs = [date(2024, 1, 1), date(2024, 1, 31)]
    frame = build_feature_table_from(con, cutoffs)
    expected = build_feature_table_from(connect(ShopTables(transactions=moved)), cutoffs)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_unkeyed_lines_or_a_missing_time_make_no_order_table():
    assert order_table(arrow_table(HAND), pa.array(["a", "b"])) is None
    missing = HAND.copy()
    missing.loc[1, "ordered_at"] = pd.NaT
    keyed = with_keys({"transactions": arrow_table(missing)})
    assert order_table(keyed["transactions"], _ids(keyed)) is None


def test_the_build_reads_no_line_into_orders_and_the_query_transpiles_to_spark(tmp_path):
    write_tables(random_shop(customers=20, seed=4).present(), tmp_path)
    con = connect_parquet(tmp_path)
    columns = table_columns(con)
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[0]):
        sql = feature_query(
            definitions, columns, cutoff=cutoff, keyed=True, sources=Sources(order_table=True)
        )
        assert f"FROM {ORDERS_TABLE} AS o" in sql and "LAG(" not in sql
        assert "t.order_key" not in sql  # no grouping of lines into orders
        spark = sqlglot.transpile(sql, read="duckdb", write="spark")
        sqlglot.parse_one(spark[0], read="spark")
    with pytest.raises(ValueError, match="keyed"):
        feature_query(definitions, columns, sources=Sources(order_table=True))


def test_a_rewritten_order_table_or_lines_fall_back_to_the_lines(tmp_path):
    shop = random_shop(customers=40, seed=2)
    write_tables(shop.present(), tmp_path)
    orders = pq.read_table(tmp_path / ORDERS_FILE)
    # written by another tool: no digest
    pq.write_table(orders.replace_schema_metadata({}), tmp_path / ORDERS_FILE)
    con = connect_parquet(tmp_path)
    assert has_customer_keys(con, table_columns(con)) and not has_order_table(
        con, table_columns(con)
    )
    pq.write_table(orders, tmp_path / ORDERS_FILE)
    columns = table_columns(con)
    assert has_order_table(connect_parquet(tmp_path), columns)
    # lines filtered by a tool that keeps the metadata (and so the key set's digest)
    lines = pq.read_table(tmp_path / "transactions.parquet")
    pq.write_table(lines.slice(0, lines.num_rows - 1), tmp_path / "transactions.parquet")
    con = connect_parquet(tmp_path)
    assert has_customer_keys(con, columns) and not has_order_table(con, columns)
    # a connection reused for in-memory tables forgets the order table
    pq.write_table(lines, tmp_path / "transactions.parquet")
    con = connect_parquet(tmp_path)
    assert has_order_table(con, columns)
    assert not has_order_table(connect(shop, con, customer_keys=True), columns)


def test_erasure_removes_the_customer_from_the_order_table_and_the_build_follows(tmp_path):
    shop = random_shop(customers=60, seed=9)
    folder = tmp_path / "shop"
    write_tables(shop.present(), folder)
    gone = str(shop.transactions["customer_id"].iloc[0])
    before = pq.read_table(folder / ORDERS_FILE).column("customer_id").to_pylist()
    touched = {r.path.name: r.rows_removed for r in erase_from_tree(folder, [gone])}
    assert touched[ORDERS_FILE] == before.count(gone) > 0
    assert not mentions(folder / ORDERS_FILE, [gone])
    # the rewritten files lost the key set's digest: the build groups lines by the ids
    con = connect_parquet(folder)
    assert not has_customer_keys(con, table_columns(con))
    assert not has_order_table(con, table_columns(con))
    kept = {name: erase_rows(frame, [gone])[0] for name, frame in shop.present().items()}
    expected = build_feature_table_from(connect(ShopTables(**kept)), CUTOFFS)
    pd.testing.assert_frame_equal(
        build_feature_table_from(con, CUTOFFS), expected, check_exact=True
    )
    assert gone not in expected.index.get_level_values("customer_id")


def test_an_empty_purchase_history_gives_an_empty_order_table():
    returns = HAND.assign(is_return=True)
    keyed = with_keys({"transactions": arrow_table(returns)})
    table = order_table(keyed["transactions"], _ids(keyed))
    assert table is not None and table.num_rows == 0
    assert table.column_names == order_table_columns(list(returns.columns))
    assert pa.types.is_timestamp(table.schema.field("ordered_at").type)
