"""Loaders and column mappings: every source kind gives the same validated shop."""

from __future__ import annotations

import gzip
import json
import sqlite3
import zipfile

import duckdb
import pandas as pd
import pytest

from features.inputs.contracts import ContractError
from features.inputs.mappings import ColumnMapping, builtin_mappings, load_mapping, parse_mapping
from features.inputs.sources import load_shop, source_kind

NOW = pd.Timestamp("2025-01-01", tz="UTC")

#: Five order lines: one without a customer, one duplicate of the first line.
TRANSACTIONS = pd.DataFrame(
    {
        "customer_id": ["007", "007", "b", None, "007"],
        "order_id": ["o1", "o2", "o3", "o4", "o1"],
        "ordered_at": [
            "2024-01-01 10:00:00",
            "2024-02-01 10:00:00",
            "2024-03-01 10:00:00",
            "2024-03-02 10:00:00",
            "2024-01-01 10:00:00",
        ],
        "amount": [10.0, 20.0, 30.0, 40.0, 10.0],
    }
)
CUSTOMERS = pd.DataFrame({"customer_id": ["007", "b"], "region": ["UK", "FR"]})


def assert_shop(validation, *, customers: bool) -> None:
    t = validation.results["transactions"]
    assert t.report.rows_in == 5
    assert t.report.by_reason == {"missing_customer_id": 1, "duplicate_row": 1}
    assert t.quarantine["source_row"].tolist() == [3, 4]
    assert validation.tables.transactions["customer_id"].tolist() == ["007", "007", "b"]
    assert str(validation.tables.transactions["ordered_at"].dtype) == "datetime64[us, UTC]"
    if customers:
        assert validation.tables.customers["region"].tolist() == ["UK", "FR"]
    else:
        assert validation.tables.customers is None


def test_csv(tmp_path):
    path = tmp_path / "orders.csv"
    TRANSACTIONS.to_csv(path, index=False)
    assert source_kind(path) == "csv"
    assert_shop(load_shop(path, now=NOW), customers=False)


def test_gzipped_csv(tmp_path):
    path = tmp_path / "orders.csv.gz"
    with gzip.open(path, "wt") as handle:
        TRANSACTIONS.to_csv(handle, index=False)
    assert_shop(load_shop(path, now=NOW), customers=False)


def test_parquet(tmp_path):
    path = tmp_path / "orders.parquet"
    TRANSACTIONS.to_parquet(path)
    assert source_kind(path) == "parquet"
    assert_shop(load_shop(path, now=NOW), customers=False)


def test_directory_of_contract_tables(tmp_path):
    TRANSACTIONS.to_parquet(tmp_path / "transactions.parquet")
    CUSTOMERS.to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "notes.txt.bak").write_text("not a table")
    validation = load_shop(tmp_path, now=NOW)
    assert_shop(validation, customers=True)
    assert set(validation.results) == {"transactions", "customers"}


def test_directory_without_transactions_names_what_it_expected(tmp_path):
    CUSTOMERS.to_csv(tmp_path / "customers.csv", index=False)
    with pytest.raises(ContractError, match="no transactions table .* transactions.parquet"):
        load_shop(tmp_path, now=NOW)


def test_duckdb_file(tmp_path):
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("t", TRANSACTIONS)
        con.register("c", CUSTOMERS)
        con.execute("CREATE TABLE transactions AS SELECT * FROM t")
        con.execute("CREATE TABLE customers AS SELECT * FROM c")
        con.execute("CREATE TABLE unrelated AS SELECT 1 AS x")
    assert source_kind(path) == "duckdb"
    assert_shop(load_shop(path, now=NOW), customers=True)


def test_sqlite_file_and_url(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        TRANSACTIONS.to_sql("transactions", con, index=False)
        CUSTOMERS.to_sql("customers", con, index=False)
    assert source_kind(path) == "sqlite"
    assert_shop(load_shop(path, now=NOW), customers=True)
    assert source_kind(f"sqlite:///{path}") == "url"
    assert_shop(load_shop(f"sqlite:///{path}", now=NOW), customers=True)


def test_database_table_or_query_from_a_mapping(tmp_path):
    path = tmp_path / "shop.sqlite"
    raw = TRANSACTIONS.rename(columns={"customer_id": "buyer", "amount": "total"})
    with sqlite3.connect(path) as con:
        raw.to_sql("orders", con, index=False)
    by_table = ColumnMapping(
        name="db",
        tables={
            "transactions": {
                "source": "orders",
                "columns": {
                    "customer_id": "buyer",
                    "order_id": "order_id",
                    "ordered_at": "ordered_at",
                    "amount": "total",
                },
            }
        },
    )
    assert_shop(load_shop(path, by_table, now=NOW), customers=False)
    by_query = ColumnMapping(
        name="db",
        tables={
            "transactions": {
                "query": "SELECT buyer AS customer_id, order_id, ordered_at, total AS amount"
                " FROM orders WHERE total < 35",
            }
        },
    )
    result = load_shop(path, by_query, now=NOW).results["transactions"]
    assert result.report.rows_in == 4
    assert result.report.by_reason == {"duplicate_row": 1}


def test_unknown_file_kind(tmp_path):
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x", "y")
    with pytest.raises(ContractError, match="cannot tell how to read"):
        load_shop(path, now=NOW)
    with pytest.raises(ContractError, match="no such file or folder"):
        load_shop(tmp_path / "missing.csv", now=NOW)


def test_csv_with_a_bad_number_is_read_as_text_and_quarantined(tmp_path):
    path = tmp_path / "orders.csv"
    frame = TRANSACTIONS.copy()
    frame["amount"] = ["10", "20", "30", "40", "ten"]
    frame.to_csv(path, index=False)
    result = load_shop(path, now=NOW).results["transactions"]
    assert result.report.by_reason == {"missing_customer_id": 1, "unparseable_amount": 1}


USER_MAPPING = """
name = "my-shop"

[tables.transactions]
source = "orders_*.csv"
timestamp_formats = ["%d/%m/%Y %H:%M"]
timezone = "Europe/Berlin"
returns = "negative_lines"

[tables.transactions.columns]
customer_id = "Kunde"
order_id = "Beleg"
ordered_at = "Datum"

[tables.transactions.expressions]
amount = "Menge * Preis"

[[tables.transactions.exclude]]
reason = "test_order"
where = "Kunde = 'TEST'"
"""


def test_user_mapping_from_toml_on_a_folder_of_files(tmp_path):
    (tmp_path / "my-shop.toml").write_text(USER_MAPPING)
    pd.DataFrame(
        {
            "Kunde": ["k1", "TEST", "k2"],
            "Beleg": ["1", "2", "3"],
            "Datum": ["01/07/2024 12:00", "02/07/2024 12:00", "03/07/2024 12:00"],
            "Menge": [2, 1, -1],
            "Preis": [5.0, 1.0, 7.5],
        }
    ).to_csv(tmp_path / "orders_2024.csv", index=False)
    pd.DataFrame(
        {
            "Kunde": ["k1"],
            "Beleg": ["4"],
            "Datum": ["01/01/2025 00:30"],
            "Menge": [1],
            "Preis": [1.0],
        }
    ).to_csv(tmp_path / "orders_2025.csv", index=False)
    validation = load_shop(tmp_path, tmp_path / "my-shop.toml", now=NOW)
    result = validation.results["transactions"]
    assert result.report.rows_in == 4
    assert result.report.by_reason == {"test_order": 1}
    table = validation.tables.transactions
    assert table["amount"].tolist() == [10.0, 7.5, 1.0]
    assert table["is_return"].tolist() == [False, True, False]
    assert table["ordered_at"].tolist() == [
        pd.Timestamp("2024-07-01 10:00", tz="UTC"),  # CEST
        pd.Timestamp("2024-07-03 10:00", tz="UTC"),
        pd.Timestamp("2024-12-31 23:30", tz="UTC"),  # CET
    ]
    assert result.quarantine["customer_id"].tolist() == ["TEST"]
    # unmapped source columns are not read, so they reach neither the report nor the quarantine
    assert "Menge" not in result.quarantine.columns
    assert not any("Menge" in note for note in result.report.notes)


def test_flag_return_convention(tmp_path):
    path = tmp_path / "lines.csv"
    frame = TRANSACTIONS.iloc[:3].assign(returned=["N", "Y", "N"], amount=[10.0, -20.0, 30.0])
    frame.to_csv(path, index=False)
    mapping = ColumnMapping(
        name="flags",
        tables={
            "transactions": {"returns": "flag", "columns": {"is_return": "returned"}},
        },
    )
    table = load_shop(path, mapping, now=NOW).tables.transactions
    assert table["is_return"].tolist() == [False, True, False]
    assert table["amount"].tolist() == [10.0, 20.0, 30.0]


def test_mapping_errors_name_the_problem(tmp_path):
    with pytest.raises(ContractError, match=r"tables\.transactions: unknown contract column"):
        parse_mapping('name = "x"\n[tables.transactions.columns]\nprice = "P"\n')
    with pytest.raises(ContractError, match="not valid TOML"):
        parse_mapping("name = ")
    with pytest.raises(ContractError, match="returns = 'order_prefix' needs order_id"):
        parse_mapping('name = "x"\n[tables.transactions]\nreturns = "order_prefix"\n')
    with pytest.raises(ContractError, match="no column mapping 'nope'"):
        load_mapping("nope")
    path = tmp_path / "orders.csv"
    TRANSACTIONS.to_csv(path, index=False)
    bad_column = ColumnMapping(name="x", tables={"transactions": {"columns": {"amount": "Preis"}}})
    with pytest.raises(ContractError, match=r"source column\(s\) \['Preis'\], not found"):
        load_shop(path, bad_column, now=NOW)
    bad_sql = ColumnMapping(name="x", tables={"transactions": {"expressions": {"amount": "nope("}}})
    with pytest.raises(ContractError, match="could not be applied"):
        load_shop(path, bad_sql, now=NOW)


def test_builtin_mappings_are_found_by_name_and_valid():
    names = builtin_mappings()
    assert "online-retail" in names
    for name in names:
        mapping = load_mapping(name)
        assert mapping.name == name
        assert mapping is load_mapping(mapping)


def test_builtin_mapping_files_are_in_the_wheel_sources():
    # hatchling ships every file under a listed package folder unless VCS-ignored.
    from pathlib import Path

    import features

    folder = Path(features.__file__).parent / "inputs" / "mappings"
    assert (folder / "online_retail.toml").is_file()
    ignored = (Path(features.__file__).parents[1] / ".gitignore").read_text()
    assert "*.toml" not in ignored and "mappings" not in ignored


# --------------------------------------------------------------------------- CLI


def test_cli_validate_prints_counts_and_writes_quarantine(tmp_path):
    import typer
    from typer.testing import CliRunner

    from winback.commands.data import validate

    app = typer.Typer()
    data = typer.Typer()
    data.command("validate")(validate)
    app.add_typer(data, name="data")
    path = tmp_path / "orders.csv"
    TRANSACTIONS.to_csv(path, index=False)
    runner = CliRunner()
    out = tmp_path / "q"
    result = runner.invoke(
        app, ["data", "validate", str(path), "--out", str(out), "--now", "2025-01-01"]
    )
    assert result.exit_code == 0, result.output
    assert "5 rows in" in result.output
    assert "missing_customer_id" in result.output and "duplicate_row" in result.output
    report = json.loads((out / "validation_report.json").read_text())
    assert report["tables"]["transactions"]["rows_quarantined"] == 2
    assert len(pd.read_parquet(out / "transactions.quarantine.parquet")) == 2

    TRANSACTIONS.drop(columns=["amount"]).to_csv(path, index=False)
    failed = runner.invoke(app, ["data", "validate", str(path)])
    assert failed.exit_code == 2
    assert "missing required column(s) ['amount']" in failed.output
    assert "Traceback" not in failed.output
