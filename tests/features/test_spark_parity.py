"""Spark and DuckDB run the same feature and label SQL to the same results.

One local Spark session for the module (about 6 s to start on an idle
machine). Skipped, with the reason, when PySpark or a Java runtime is missing.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest
import sqlglot

from features.build import build_feature_table, build_feature_table_from
from features.engines.duckdb_engine import connect_parquet, has_order_table, outline, table_columns
from features.engines.spark_engine import (
    ENV_SPARK_MASTER,
    SparkConfig,
    SparkConnection,
    spark_session,
    to_spark_sql,
)
from features.inputs.keys import ORDERS_TABLE
from features.inputs.schema import ShopTables
from features.inputs.table_files import write_tables
from features.training_table import build_training_table

CUTOFFS = [dt.date(2024, 12, 31), dt.date(2025, 6, 30)]


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="PySpark is not installed (uv sync --extra dev)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH: apt-get install -y openjdk-17-jre-headless")
    return spark_session(SparkConfig(shuffle_partitions=1))


@pytest.fixture(scope="module")
def shop_with_gaps(small_shop) -> ShopTables:
    """The small shop with NaN margins and discounts on some lines (DuckDB reads NaN as NULL)."""
    tables = small_shop.tables
    transactions = tables.transactions.copy()
    rng = np.random.default_rng(7)
    rows = rng.choice(len(transactions), size=len(transactions) // 50, replace=False)
    transactions.loc[transactions.index[rows], "margin_amount"] = np.nan
    transactions.loc[transactions.index[rows[::2]], "discount_amount"] = np.nan
    return ShopTables(
        transactions=transactions,
        customers=tables.customers,
        support_tickets=tables.support_tickets,
        referrals=tables.referrals,
        reviews=tables.reviews,
        campaign_contacts=tables.campaign_contacts,
    )


@pytest.fixture(scope="module")
def connection(spark, shop_with_gaps) -> SparkConnection:
    con = SparkConnection(spark)
    con.register_shop(shop_with_gaps)
    return con


def test_training_table_with_every_feature_matches_duckdb(connection, shop_with_gaps):
    """One Spark run covers every feature (populations, NaN inputs) and the VIP labels."""
    expected = build_training_table(shop_with_gaps, "vip", CUTOFFS)
    got = build_training_table(outline(connection), "vip", CUTOFFS, con=connection)
    assert got.index.names == ["cutoff", "customer_id"]
    assert len(got) == len(expected) > 1_000
    assert got.shape[1] == expected.shape[1] > 45
    assert got["became_vip"].any() and not got["became_vip"].all()
    # NaN margins are read as missing (skipped by sums), not spread to whole sums.
    lines = shop_with_gaps.transactions
    touched = lines.loc[lines["margin_amount"].isna(), "customer_id"].nunique()
    assert got["total_margin_amount"].isna().sum() < touched / 4
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    assert got.attrs == expected.attrs


def test_one_cutoff_with_every_feature_matches_duckdb(connection, shop_with_gaps):
    """One cutoff takes the other shape of the query (a literal date, no cutoffs join)."""
    cutoff = [dt.date(2025, 3, 31)]
    expected = build_feature_table(shop_with_gaps, cutoff)
    got = build_feature_table_from(connection, cutoff)
    assert got.shape == expected.shape and got.shape[1] > 45
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)


def test_outline_gives_the_data_range(connection, shop_with_gaps):
    stand_in = outline(connection)
    assert list(stand_in.transactions.columns) == list(shop_with_gaps.transactions.columns)
    assert stand_in.last_event_at() == shop_with_gaps.last_event_at()
    assert (
        stand_in.transactions["ordered_at"].min() == shop_with_gaps.transactions["ordered_at"].min()
    )


def test_parquet_folder_and_warehouse_tables_register_the_contract_views(
    spark, small_shop, small_shop_dir
):
    from_files = SparkConnection(spark)
    views = from_files.register_parquet(small_shop_dir)
    assert set(views) == set(small_shop.tables.present())
    for name, frame in small_shop.tables.present().items():
        assert views[name] == list(frame.columns)
    assert outline(from_files).last_event_at() == small_shop.tables.last_event_at()

    spark.read.parquet(str(small_shop_dir / "transactions.parquet")).createOrReplaceTempView(
        "warehouse_order_lines"
    )
    from_tables = SparkConnection(spark)
    assert from_tables.register_tables({"transactions": "warehouse_order_lines"}) == {
        "transactions": views["transactions"]
    }
    with pytest.raises(ValueError, match="'transactions'"):
        SparkConnection(spark).register_tables({"customers": "warehouse_order_lines"})


def test_unregistered_table_is_absent_and_wrong_columns_are_named(spark):
    con = SparkConnection(spark)
    with pytest.raises(ValueError, match="'ordered_at'"):
        con.register(
            "transactions",
            spark.createDataFrame([("c1", "o1")], "customer_id string, order_id string"),
        )
    with pytest.raises(ValueError, match="not a contract table"):
        con.register("sales", spark.createDataFrame([("c1",)], "customer_id string"))
    with pytest.raises(FileNotFoundError, match="transactions.parquet"):
        con.register_parquet("/nonexistent-winback-dir")


def test_decimal_literals_become_doubles_in_spark_sql():
    sql = "SELECT (365.0 / 90.0) * SUM(CASE WHEN x THEN 1.0 ELSE 0 END) AS r FROM t"
    spark_sql = to_spark_sql(sql)
    tree = sqlglot.parse_one(spark_sql, read="spark")
    casts = [c for c in tree.find_all(sqlglot.exp.Cast) if c.to.is_type("double")]
    assert len(casts) == 3  # 365.0, 90.0 and 1.0; the integer 0 is left alone
    assert "date_diff('day'" not in to_spark_sql(
        "SELECT date_diff('day', CAST(a AS DATE), c.cutoff) FROM t, c"
    )


def test_spark_config_settings_and_master(monkeypatch):
    settings = SparkConfig().settings()
    assert settings["spark.master"] == "local[2]"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.ui.enabled"] == "false"
    assert "spark.master" not in SparkConfig(master=None).settings()
    monkeypatch.setenv(ENV_SPARK_MASTER, "spark://head:7077")
    assert SparkConfig.from_env().master == "spark://head:7077"
    assert SparkConfig.from_env("local[1]").master == "local[1]"
    with pytest.raises(ValueError, match="shuffle_partitions"):
        SparkConfig(shuffle_partitions=0)


def test_user_defined_features_give_the_same_values_on_spark(connection, shop_with_gaps):
    """A windowed custom feature goes through the same SQL (transpiled) as the built-in ones."""
    from features.custom.spec import CustomFeature, custom_definitions
    from features.feature_sets import FeatureSet

    entries = [
        CustomFeature(
            name="large_line_share_120d",
            expression="avg(CASE WHEN amount > 50 THEN 1.0 ELSE 0.0 END)",
            window_days=120,
            description="Share of lines above 50 in the last 120 days",
        ),
        CustomFeature(
            name="distinct_products_all",
            expression="count(distinct product_id) filter (where not is_return)",
            description="Distinct products bought, all history",
            fill=0,
        ),
    ]
    fs = FeatureSet("parity", (("order_count", "float64"),)).with_custom(
        custom_definitions(entries)
    )
    expected = build_feature_table(shop_with_gaps, CUTOFFS, feature_set=fs)
    got = build_feature_table_from(connection, CUTOFFS, feature_set=fs)
    assert list(got.columns) == ["order_count", "large_line_share_120d", "distinct_products_all"]
    assert got["large_line_share_120d"].isna().any() and got["large_line_share_120d"].gt(0).any()
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)


def test_a_folder_with_the_order_table_gives_duckdb_values_from_the_lines_on_spark(
    spark, shop_with_gaps, tmp_path
):
    """Spark registers the contract tables only, so it groups the lines; DuckDB reads the orders."""
    write_tables(shop_with_gaps.present(), tmp_path)
    duck = connect_parquet(tmp_path)
    assert has_order_table(duck, table_columns(duck))
    con = SparkConnection(spark)
    assert ORDERS_TABLE not in con.register_parquet(tmp_path)
    expected = build_feature_table_from(duck, CUTOFFS)
    got = build_feature_table_from(con, CUTOFFS)
    assert len(got) > 1_000
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)
