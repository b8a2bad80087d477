"""Validated tables written once as keyed Parquet and read again without validation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from features.build import build_feature_table, build_feature_table_from
from features.engines.duckdb_engine import connect_parquet, has_customer_keys, table_columns
from features.erasure import ENV_ERASURE_DIR, ErasureRegistry
from features.inputs.schema import ShopTables
from features.inputs.sources import load_shop
from features.inputs.table_files import (
    ROW_GROUP_ROWS,
    VALIDATED_MARKER,
    is_validated_folder,
    read_validated,
    write_parquet,
    write_validated,
)
from winback.commands.data import validate
from winback.shop import is_canonical_folder, load_tables


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s rows in one canonical order (sorted by every column)."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def _validate_cli(*args: str):
    app = typer.Typer()
    data = typer.Typer()
    data.command("validate")(validate)
    app.add_typer(data, name="data")
    return CliRunner().invoke(app, ["data", "validate", *args])


@pytest.fixture()
def csv_shop(small_shop, tmp_path) -> Path:
    """The small shop's transactions and customers as CSV files, with one unusable line."""
    folder = tmp_path / "csv"
    folder.mkdir()
    tx = small_shop.tables.transactions.copy()
    tx.loc[tx.index[0], "customer_id"] = None
    tx.to_csv(folder / "transactions.csv", index=False)
    small_shop.tables.customers.to_csv(folder / "customers.csv", index=False)
    return folder


def test_validate_writes_the_accepted_rows_that_later_commands_read_as_they_are(csv_shop, tmp_path):
    out = tmp_path / "validated"
    result = _validate_cli(
        str(csv_shop), "--out", str(out), "--write-tables", "--now", "2026-01-01"
    )
    assert result.exit_code == 0, result.output
    assert is_validated_folder(out) and is_canonical_folder(out, None)
    assert not is_canonical_folder(out, "online-retail")  # a mapping means raw data
    expected = load_shop(csv_shop, now=pd.Timestamp("2026-01-01", tz="UTC")).tables
    tables, truth = load_tables(out)
    assert truth is None
    assert sorted(tables.present()) == ["customers", "transactions"]
    for name, frame in expected.present().items():  # the same rows, clustered by customer
        pd.testing.assert_frame_equal(_rows(tables.present()[name]), _rows(frame))
    assert len(tables.transactions) == len(pd.read_csv(csv_shop / "transactions.csv")) - 1
    # quarantine and report beside the tables, as without --write-tables
    assert (out / "transactions.quarantine.parquet").is_file()
    assert (out / "validation_report.json").is_file()


def test_the_written_folder_builds_on_integer_keys_with_the_same_features(csv_shop, tmp_path):
    out = tmp_path / "validated"
    assert _validate_cli(str(csv_shop), "--out", str(out), "--write-tables").exit_code == 0
    con = connect_parquet(out)
    assert has_customer_keys(con, table_columns(con))
    cutoff = [date(2025, 6, 30)]
    in_place = build_feature_table_from(con, cutoff)
    loaded = build_feature_table(read_validated(out), cutoff)
    pd.testing.assert_frame_equal(in_place, loaded)


def test_write_tables_needs_out(csv_shop):
    result = _validate_cli(str(csv_shop), "--write-tables")
    assert result.exit_code != 0
    assert "--write-tables needs --out" in result.output


def test_a_rewrite_removes_the_tables_the_new_source_lacks(small_shop, tmp_path):
    out = tmp_path / "validated"
    write_validated(small_shop.tables, out, {"mapping": None})
    assert (out / "reviews.parquet").is_file()
    fewer = ShopTables(transactions=small_shop.tables.transactions, source="orders only")
    write_validated(fewer, out, {"mapping": None})
    assert sorted(p.name for p in out.glob("*.parquet")) == [
        "customer_keys.parquet",
        "purchase_orders.parquet",
        "transactions.parquet",
    ]
    assert sorted(read_validated(out).present()) == ["transactions"]


def test_a_folder_without_its_marker_is_not_taken_as_validated(small_shop, tmp_path):
    out = tmp_path / "validated"
    write_validated(small_shop.tables, out, {})
    (out / VALIDATED_MARKER).unlink()
    assert not is_validated_folder(out)
    assert not is_validated_folder(None)


def test_customers_erased_after_validation_are_left_out(small_shop, tmp_path, monkeypatch):
    out = tmp_path / "validated"
    write_validated(small_shop.tables, out, {})
    monkeypatch.setenv(ENV_ERASURE_DIR, str(tmp_path / "erasure"))
    gone = str(small_shop.tables.transactions["customer_id"].iloc[0])
    registry = ErasureRegistry.default()
    with registry.locked():
        registry.record([gone])
    tables, _ = load_tables(out)
    for frame in tables.present().values():
        if "customer_id" in frame.columns:
            assert gone not in set(frame["customer_id"].astype("string"))


def test_written_files_are_in_row_groups_of_the_set_size(tmp_path):
    """Tables are written in row groups a scan can share between cores."""
    path = write_parquet(pa.table({"x": range(ROW_GROUP_ROWS * 2 + 1)}), tmp_path / "t.parquet")
    sizes = [g.num_rows for g in map(pq.ParquetFile(path).metadata.row_group, range(3))]
    assert sizes == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 1]
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
