"""Integer customer and order keys: assigned once when the tables are written, same features.

The build groups by ``customer_key``/``order_key`` when the files carry one key set
and by the string ids otherwise; both paths must give the same frame to the last bit.
"""

from __future__ import annotations

import shutil
from datetime import date

import duckdb
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
    table_columns,
)
from features.inputs.keys import (
    CUSTOMER_KEY,
    DIGEST_METADATA,
    KEYS_FILE,
    KEYS_TABLE,
    shared_digest,
    with_keys,
)
from features.inputs.schema import SCHEMAS
from features.query import feature_query
from features.result_frame import ids_by_key
from features.simulation import write_shop
from tests.features.reference_features import random_shop

CUTOFFS = [date(2024, 6, 30), date(2025, 6, 30)]


def test_keys_follow_the_sorted_ids_of_every_table():
    transactions = pa.table(
        {
            "customer_id": ["b", "a", "c", "a", None],
            "order_id": ["o1", "o2", "o1", "o3", "o4"],
        }
    )
    customers = pa.table({"customer_id": ["z", "a"]})
    keyed = with_keys({"transactions": transactions, "customers": customers})
    assert keyed["customer_keys"].to_pydict() == {
        "customer_key": [0, 1, 2, 3],
        "customer_id": ["a", "b", "c", "z"],
    }
    assert keyed["transactions"].column("customer_key").to_pylist() == [1, 0, 2, 0, None]
    # one key per order id: "o1" of two customers stays two orders by (customer_key, order_key)
    assert keyed["transactions"].column("order_key").to_pylist() == [0, 1, 0, 2, 3]
    assert keyed["customers"].column("customer_key").to_pylist() == [3, 0]
    digests = {t.schema.metadata[DIGEST_METADATA] for t in keyed.values()}
    assert len(digests) == 1


def test_another_key_set_has_another_digest_and_reserved_columns_are_refused():
    one = with_keys({"transactions": pa.table({"customer_id": ["a"], "order_id": ["o"]})})
    two = with_keys({"transactions": pa.table({"customer_id": ["b"], "order_id": ["o"]})})
    assert (
        one["customer_keys"].schema.metadata[DIGEST_METADATA]
        != two["customer_keys"].schema.metadata[DIGEST_METADATA]
    )
    with pytest.raises(ValueError, match="customer_key"):
        with_keys({"transactions": pa.table({"customer_id": ["a"], "customer_key": [1]})})


@pytest.mark.parametrize("cutoffs", [CUTOFFS[1:], CUTOFFS], ids=["one cutoff", "two cutoffs"])
def test_keyed_build_equals_the_string_build_on_a_simulated_shop(
    small_shop, small_shop_dir, cutoffs
):
    keyed_con = connect_parquet(small_shop_dir, threads=2)
    assert has_customer_keys(keyed_con, table_columns(keyed_con))
    keyed = build_feature_table_from(keyed_con, cutoffs)
    plain = build_feature_table_from(connect(small_shop.tables, threads=2), cutoffs)
    assert keyed.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(keyed, plain, check_exact=True)


def test_keyed_build_equals_the_string_build_with_shared_order_ids():
    """Random shop with every optional column and an order id reused by another customer."""
    shop = random_shop(customers=120, seed=11)
    tx = shop.transactions.copy()
    tx.loc[tx.index[-5:], "order_id"] = tx.loc[tx.index[0], "order_id"]
    shop = type(shop)(**{**shop.present(), "transactions": tx})
    cutoffs = [date(2022, 9, 30), date(2023, 6, 30)]
    for chosen in (cutoffs, cutoffs[1:]):
        keyed_con = connect(shop, threads=1, customer_keys=True)
        assert has_customer_keys(keyed_con, table_columns(keyed_con))
        keyed = build_feature_table_from(keyed_con, chosen)
        plain = build_feature_table_from(connect(shop, threads=1), chosen)
        pd.testing.assert_frame_equal(keyed, plain, check_exact=True)


def _rewrite_without_metadata(path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({}), path)


def test_files_of_mixed_key_sets_fall_back_to_the_ids(small_shop, small_shop_dir, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(small_shop_dir, mixed)
    _rewrite_without_metadata(mixed / "customers.parquet")  # e.g. rewritten by another tool
    con = connect_parquet(mixed, threads=2)
    assert not has_customer_keys(con, table_columns(con))
    assert shared_digest([mixed / "transactions.parquet", mixed / KEYS_FILE]) is not None
    built = build_feature_table_from(con, CUTOFFS[1:])
    plain = build_feature_table_from(connect(small_shop.tables, threads=2), CUTOFFS[1:])
    pd.testing.assert_frame_equal(built, plain, check_exact=True)


def test_unkeyed_files_and_a_reused_connection_use_the_ids(small_shop, small_shop_dir, tmp_path):
    write_shop(small_shop, tmp_path / "plain", customer_keys=False)
    assert not (tmp_path / "plain" / KEYS_FILE).exists()
    con = connect_parquet(small_shop_dir, threads=2)
    assert has_customer_keys(con, table_columns(con))
    connect_parquet(tmp_path / "plain", con)  # the same connection, another folder
    assert not has_customer_keys(con, table_columns(con))
    built = build_feature_table_from(con, CUTOFFS[1:])
    plain = build_feature_table_from(connect(small_shop.tables, threads=2), CUTOFFS[1:])
    pd.testing.assert_frame_equal(built, plain, check_exact=True)


def _rows(table: pa.Table) -> pa.Table:
    """``table``'s rows in one canonical order (sorted by every column)."""
    return table.sort_by([(c, "ascending") for c in table.column_names])


def test_keyed_files_hold_the_contract_tables_unchanged(small_shop, small_shop_dir, tmp_path):
    plain = write_shop(small_shop, tmp_path, customer_keys=False)
    for name, path in plain.items():
        if path.suffix != ".parquet":
            continue
        keyed = pq.read_table(small_shop_dir / path.name)
        without = keyed.drop_columns(
            [c for c in ("customer_key", "order_key") if c in keyed.column_names]
        )
        assert _rows(without).equals(_rows(pq.read_table(path))), name
        if name in small_shop.tables.present():
            assert "customer_key" in keyed.column_names, name
            time_column = SCHEMAS[name].time_column
            order = [CUSTOMER_KEY] + ([time_column] if time_column in keyed.column_names else [])
            clustered_rows = keyed.select(order).to_pandas()
            # clustered: sorted by customer, then time
            assert clustered_rows.equals(
                clustered_rows.sort_values(order, kind="stable").reset_index(drop=True)
            ), name
    # the generator writes lines in time order, so the clustering moved them
    plain_ids = pq.read_table(plain["transactions"]).column("customer_id").to_pandas()
    assert not plain_ids.is_monotonic_increasing


def test_keyed_query_is_sorted_by_the_key_and_transpiles_to_spark():
    shop = random_shop(customers=20, seed=4)
    columns = table_columns(connect(shop, customer_keys=True))
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[0]):
        sql = feature_query(definitions, columns, cutoff=cutoff, keyed=True)
        # the relations read the keys only; the id comes from customer_keys for the output
        assert sql.count("customer_id") == 1 and "order_id" not in sql
        spark = sqlglot.transpile(sql, read="duckdb", write="spark")
        parsed = sqlglot.parse_one(spark[0], read="spark")
        assert [o.this.name for o in parsed.args["order"].expressions] == (
            ["customer_key"] if cutoff else ["cutoff", "customer_key"]
        )


def test_query_by_key_is_sorted_by_the_key_and_leaves_the_ids_to_the_fetch():
    shop = random_shop(customers=20, seed=4)
    columns = table_columns(connect(shop, customer_keys=True))
    definitions, _ = resolve(None, columns)
    for cutoff in (None, CUTOFFS[0]):
        sql = feature_query(definitions, columns, cutoff=cutoff, keyed=True, by_key=True)
        assert "customer_id" not in sql and KEYS_TABLE not in sql
        spark = sqlglot.transpile(sql, read="duckdb", write="spark")
        parsed = sqlglot.parse_one(spark[0], read="spark")
        assert [e.alias_or_name for e in parsed.expressions[:2]] == ["cutoff", "customer_key"]
        assert [o.this.name for o in parsed.args["order"].expressions] == (
            ["customer_key"] if cutoff else ["cutoff", "customer_key"]
        )


def test_ids_by_key_follow_the_keys_and_a_key_set_with_gaps_is_refused():
    con = duckdb.connect()
    shuffled = pa.table({"customer_key": [2, 0, 1], "customer_id": ["c", "a", "b"]})
    con.register("customer_keys", shuffled)
    assert ids_by_key(con).to_pylist() == ["a", "b", "c"]
    con.unregister("customer_keys")
    con.register("customer_keys", pa.table({"customer_key": [0, 2], "customer_id": ["a", "c"]}))
    with pytest.raises(ValueError, match="each key 0..1 once"):
        ids_by_key(con)


def test_validating_a_keyed_table_drops_the_keys_without_a_note():
    from features.inputs.contracts import validate_table

    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "order_id": ["o1", "o2"],
            "ordered_at": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
            "amount": [1.0, 2.0],
            "customer_key": [0, 1],
            "order_key": [0, 1],
            "stray": [1, 2],
        }
    )
    validated = validate_table(frame, "transactions")
    assert "customer_key" not in validated.table.columns
    assert [n for n in validated.report.notes if "unknown" in n] == [
        "dropped unknown columns ['stray']"
    ]
