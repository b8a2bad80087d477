"""Sources read safely: mapping SQL sandboxed, databases read-only, no credentials written."""

from __future__ import annotations

import json
import sqlite3

import duckdb
import pandas as pd
import pytest

from features.inputs.contracts import ContractError, validate_shop, write_quarantine
from features.inputs.mappings import ColumnMapping
from features.inputs.sources import load_shop
from features.redaction import redact_credentials

NOW = pd.Timestamp("2025-01-01", tz="UTC")
ORDERS = pd.DataFrame(
    {
        "customer_id": ["a", "b"],
        "order_id": ["o1", "o2"],
        "ordered_at": ["2024-01-01 10:00:00", "2024-02-01 10:00:00"],
        "amount": [10.0, 20.0],
    }
)


def _mapping(**transactions) -> ColumnMapping:
    return ColumnMapping.model_validate({"name": "t", "tables": {"transactions": transactions}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://crm:s3cret@db:5432/shop", "postgresql://crm:***@db:5432/shop"),
        ("postgresql+psycopg://crm:p@ss@db/shop?x=1", "postgresql+psycopg://crm:***@db/shop?x=1"),
        ("mysql://db/shop?user=crm&password=s3cret", "mysql://db/shop?user=crm&password=***"),
        ("host=db user=crm password=s3cret dbname=x", "host=db user=crm password=*** dbname=x"),
        ('{"password": "s3cret"}', '{"password": "***"}'),
        ("https://ghp_0123456789abcdefghij@host/r", "https://***@host/r"),
        ("s3://b/k?X-Amz-Security-Token=abc", "s3://b/k?X-Amz-Security-Token=***"),
        ("postgresql://crm@db/shop", "postgresql://crm@db/shop"),
        ("/data/shop/orders.parquet", "/data/shop/orders.parquet"),
        ("sqlite:///shop.db", "sqlite:///shop.db"),
    ],
)
def test_redact_credentials(text, expected):
    assert redact_credentials(text) == expected
    assert redact_credentials(expected) == expected  # idempotent


def test_validation_report_and_tables_never_hold_the_password(tmp_path):
    url = "postgresql://crm:s3cret-pw@db.example.com/shop"
    validation = validate_shop({"transactions": ORDERS}, now=NOW, source=url)
    assert "s3cret-pw" not in validation.tables.source
    written = write_quarantine(validation, tmp_path)
    report = json.loads(written["report"].read_text())
    assert report["source"] == "postgresql://crm:***@db.example.com/shop"
    assert "s3cret-pw" not in written["report"].read_text()


def test_database_errors_are_reported_without_the_password():
    url = "postgresql+nosuchdriver://crm:s3cret-pw@127.0.0.1:1/shop"
    with pytest.raises(ContractError) as info:
        load_shop(url, now=NOW)
    assert "s3cret-pw" not in str(info.value)
    assert "crm:***@127.0.0.1" in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("field", "sql"),
    [
        ("expressions", {"amount": "(SELECT count(*) FROM read_csv('/etc/passwd'))"}),
        ("query", "SELECT * FROM read_csv('/etc/passwd')"),
        ("query", "COPY (SELECT * FROM raw) TO 'stolen.csv'"),
        ("query", "SET enable_external_access = true"),
        ("query", "ATTACH 'other.duckdb' AS other"),
    ],
)
def test_mapping_sql_cannot_touch_files_or_settings(tmp_path, monkeypatch, field, sql):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "orders.csv"
    ORDERS.to_csv(path, index=False)
    spec = {"source": "orders.csv", field: sql}
    with pytest.raises(ContractError, match="mapping's SQL was refused") as info:
        load_shop(path, _mapping(**spec), now=NOW)
    assert "cannot read or write files" in str(info.value)
    assert not (tmp_path / "stolen.csv").exists()


def test_duckdb_database_query_is_sandboxed_and_read_only(tmp_path):
    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.register("o", ORDERS)
        con.execute("CREATE TABLE transactions AS SELECT * FROM o")
    ok = load_shop(db, _mapping(query="SELECT * FROM transactions"), now=NOW)
    assert ok.tables.transactions["customer_id"].tolist() == ["a", "b"]
    with pytest.raises(ContractError, match="refused"):
        load_shop(db, _mapping(query="SELECT * FROM read_csv('/etc/passwd')"), now=NOW)
    with pytest.raises(ContractError):
        load_shop(db, _mapping(query="DELETE FROM transactions RETURNING *"), now=NOW)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM transactions").fetchall() == [(2,)]


def test_sqlite_is_opened_read_only_without_attach(tmp_path):
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as con:
        ORDERS.to_sql("transactions", con, index=False)
    for url in (db, f"sqlite:///{db}"):
        with pytest.raises(ContractError):
            load_shop(url, _mapping(query="DELETE FROM transactions RETURNING *"), now=NOW)
        with pytest.raises(ContractError):
            load_shop(url, _mapping(query=f"ATTACH '{tmp_path / 'x.db'}' AS x"), now=NOW)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM transactions").fetchone() == (2,)
    assert not (tmp_path / "x.db").exists()
