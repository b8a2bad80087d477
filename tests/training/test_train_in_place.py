"""Training on a folder of canonical tables read in place: the same tables, metrics and erasures."""

from __future__ import annotations

import shutil

import pandas as pd
import pyarrow.parquet as pq

from features.engines.duckdb_engine import has_customer_keys, has_order_table, table_columns
from features.erasure import ErasureRegistry
from features.inputs.keys import ORDERS_FILE
from features.inputs.table_files import write_validated
from features.training_table import build_training_table, monthly_cutoffs
from training.evaluation.bgnbd import rfm_summary_at_cutoffs
from training.tracking.fingerprint import ParquetFolder, data_fingerprint
from winback.shop import connect_folder, in_place_connection, load_tables, open_in_place


def _same_tables(folder, targets=("churn", "reactivation"), count=3):
    """Assert the training tables and RFM summaries of ``folder`` match on both paths."""
    tables, _ = load_tables(folder)
    cutoffs = monthly_cutoffs(tables, 90, count=count)
    con = connect_folder(folder)
    for target in targets:
        expected = build_training_table(tables, target, cutoffs)
        in_place = build_training_table(tables, target, cutoffs, con=con)
        pd.testing.assert_frame_equal(in_place, expected, check_exact=True)
        assert in_place.attrs == expected.attrs
    pd.testing.assert_frame_equal(
        rfm_summary_at_cutoffs(tables, cutoffs, con=con),
        rfm_summary_at_cutoffs(tables, cutoffs),
        check_exact=True,
    )
    return tables, con


def test_a_simulated_folder_gives_the_training_table_of_its_loaded_tables(small_shop_dir):
    _, con = _same_tables(small_shop_dir)
    assert has_order_table(con, table_columns(con))  # the keyed query path with its orders


def test_a_folder_without_the_order_table_gives_the_same_table(small_shop_dir, tmp_path):
    folder = tmp_path / "shop"
    shutil.copytree(small_shop_dir, folder)
    (folder / ORDERS_FILE).unlink()
    _, con = _same_tables(folder, targets=("churn",), count=2)
    assert has_customer_keys(con, table_columns(con))
    assert not has_order_table(con, table_columns(con))


def test_a_validated_folder_gives_the_same_table(small_shop, tmp_path):
    folder = tmp_path / "validated"
    write_validated(small_shop.tables, folder, {})
    _, con = _same_tables(folder, targets=("vip",), count=2)
    assert has_order_table(con, table_columns(con))


def test_only_canonical_folders_are_read_in_place(small_shop_dir, tmp_path):
    assert in_place_connection(small_shop_dir) is not None
    assert in_place_connection(small_shop_dir, "online-retail") is None  # a mapping: raw data
    assert in_place_connection(tmp_path) is None  # a user's folder is validated first


def test_erased_customers_stay_out_of_the_folder_read_in_place(small_shop, small_shop_dir):
    referrals = small_shop.tables.referrals
    referred = set(referrals["referred_customer_id"].dropna().astype(str))
    buyers = small_shop.tables.transactions["customer_id"].astype(str)
    gone = next(c for c in buyers if c in referred)  # a buyer someone else referred
    registry = ErasureRegistry.default()
    with registry.locked():
        registry.record([gone])
    tables, con = _same_tables(small_shop_dir, targets=("churn",), count=2)
    for name, columns in table_columns(con).items():
        for column in {"customer_id", "referred_customer_id"} & set(columns):
            found = con.execute(f"SELECT count(*) FROM {name} WHERE {column} = ?", [gone])
            assert found.fetchone() == (0,), (name, column)
    orders = con.execute("SELECT count(*) FROM purchase_orders WHERE customer_id = ?", [gone])
    assert orders.fetchone() == (0,)
    # the referral itself stays, its referred customer blanked, as in the loaded tables
    blanked = con.execute("SELECT count(*) FROM referrals WHERE referred_customer_id IS NULL")
    assert blanked.fetchone()[0] == int(tables.referrals["referred_customer_id"].isna().sum())
    assert (con.execute("SELECT count(*) FROM transactions").fetchone()[0]) == len(
        tables.transactions
    )


def test_train_gives_the_same_metrics_on_the_folder_read_in_place(
    small_shop_dir, tmp_path, monkeypatch
):
    from training.config import LightGBMParams, TrainConfig
    from training.pipeline import train_target
    from training.tracking.runs import TrackingConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tables, truth = load_tables(small_shop_dir)
    shop = open_in_place(small_shop_dir)
    assert len(shop.tables.transactions) == 2  # an outline: no copy of the rows
    runs = {
        "pandas": {"tables": tables, "truth": truth},
        "in_place": {
            "tables": shop.tables,
            "truth": shop.truth,
            "con": shop.con,
            "fingerprinted": shop.fingerprinted,
        },
    }
    results = []
    for name, run in runs.items():
        config = TrainConfig(
            horizon_days=60,
            cutoff_count=7,
            lightgbm=LightGBMParams(n_estimators=30, learning_rate=0.1, min_child_samples=20),
            early_stopping_rounds=10,
            num_threads=1,
            bgnbd_feature_experiment=False,
            report=False,
            tracking=TrackingConfig(root=str(tmp_path / name)),
        )
        results.append(train_target(config=config, **run))
    pandas_run, in_place_run = results
    assert in_place_run.metrics == pandas_run.metrics
    assert in_place_run.oracle_metrics == pandas_run.oracle_metrics
    assert in_place_run.fingerprint == pandas_run.fingerprint
    pd.testing.assert_frame_equal(in_place_run.comparison, pandas_run.comparison, check_exact=True)


def test_the_folder_fingerprint_is_that_of_its_loaded_tables(small_shop, small_shop_dir, tmp_path):
    """Hashed a row group at a time, erased customers left out, the same as loaded."""
    folder = tmp_path / "shop"
    shutil.copytree(small_shop_dir, folder)
    lines = folder / "transactions.parquet"
    pq.write_table(pq.read_table(lines), lines, row_group_size=5_000)  # metadata kept
    assert pq.ParquetFile(lines).num_row_groups > 1
    cutoffs = ["2025-06-30"]
    tables, _ = load_tables(folder)
    assert data_fingerprint(ParquetFolder(folder), cutoffs) == data_fingerprint(tables, cutoffs)
    gone = str(small_shop.tables.referrals["referred_customer_id"].dropna().iloc[0])
    registry = ErasureRegistry.default()
    with registry.locked():
        registry.record([gone])
    erased, _ = load_tables(folder)
    shop = open_in_place(folder)
    assert shop.fingerprinted == ParquetFolder(folder, (gone,))
    expected = data_fingerprint(erased, cutoffs)
    assert expected != data_fingerprint(tables, cutoffs)
    assert data_fingerprint(shop.fingerprinted, cutoffs) == expected


def test_features_table_reads_a_validated_folder_as_written(small_shop, tmp_path):
    """Not validated again: the folder's quarantine files beside the tables stay out."""
    from typer.testing import CliRunner

    from winback.commands.features import app

    folder = tmp_path / "validated"
    write_validated(small_shop.tables, folder, {})
    quarantined = small_shop.tables.transactions.head(50)
    quarantined.to_parquet(folder / "transactions.quarantine.parquet")
    out = tmp_path / "churn.parquet"
    args = ["table", "--data", str(folder), "--out", str(out), "--cutoffs", "every:60,count:2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tables, _ = load_tables(folder)
    expected = build_training_table(tables, "churn", monthly_cutoffs(tables, 90, 60, count=2))
    written = pd.read_parquet(out).set_index(["cutoff", "customer_id"])
    pd.testing.assert_frame_equal(written, expected, check_exact=True, check_index_type=False)
