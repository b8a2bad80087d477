"""The built-in ``online-retail`` mapping on the real UCI file, checked against raw counts.

Every count is recomputed independently from the raw CSV with DuckDB, applying
the documented order of reasons (missing customer first, then the mapping's
exclusions, then duplicates), and the README's published figures are asserted
where they apply.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.inputs.sources import load_shop

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ONLINE_RETAIL = DATA / "online_retail_I.csv.gz"
NOW = pd.Timestamp("2012-01-01", tz="UTC")
NON_PRODUCT = "('POST','DOT','C2','M','BANK CHARGES','AMAZONFEE','CRUK','PADS','B','D','S')"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not ONLINE_RETAIL.is_file(),
        reason=f"real data not available: {ONLINE_RETAIL} is absent (see ../shared/data/README.md)",
    ),
]


@pytest.fixture(scope="module")
def validation():
    return load_shop(ONLINE_RETAIL, "online-retail", now=NOW)


@pytest.fixture(scope="module")
def raw_counts() -> dict[str, int]:
    """Independent counts from the raw file, in the documented order of reasons."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"CREATE TABLE raw AS SELECT * FROM read_csv('{ONLINE_RETAIL}', all_varchar = true)"
    )
    con.execute(
        f"""
        CREATE TABLE classified AS
        SELECT *,
            CASE
                WHEN CustomerID IS NULL THEN 'missing_customer_id'
                WHEN upper(trim(StockCode)) IN {NON_PRODUCT} THEN 'non_product_line'
                WHEN CAST(UnitPrice AS DOUBLE) <= 0 THEN 'non_positive_price'
                WHEN CAST(Quantity AS BIGINT) <= 0 AND NOT starts_with(InvoiceNo, 'C')
                    THEN 'non_positive_quantity'
            END AS reason
        FROM raw
        """
    )

    def one(sql: str) -> int:
        return int(con.sql(sql).fetchall()[0][0])

    counts = {
        "lines": one("SELECT count(*) FROM raw"),
        "no_customer": one("SELECT count(*) FROM raw WHERE CustomerID IS NULL"),
        "cancellations": one("SELECT count(*) FROM raw WHERE InvoiceNo LIKE 'C%'"),
        "quantity_le_0": one("SELECT count(*) FROM raw WHERE CAST(Quantity AS BIGINT) <= 0"),
        "price_le_0": one("SELECT count(*) FROM raw WHERE CAST(UnitPrice AS DOUBLE) <= 0"),
        "customers": one("SELECT count(DISTINCT CustomerID) FROM raw"),
        "invoices": one("SELECT count(DISTINCT InvoiceNo) FROM raw"),
    }
    for reason in ("missing_customer_id", "non_product_line", "non_positive_price"):
        counts[reason] = one(f"SELECT count(*) FROM classified WHERE reason = '{reason}'")
    counts["non_positive_quantity"] = one(
        "SELECT count(*) FROM classified WHERE reason = 'non_positive_quantity'"
    )
    # Duplicates: same canonical line (invoice, customer, time, stock code, value, quantity).
    counts["duplicate_row"] = one(
        """
        SELECT count(*) - count(DISTINCT (InvoiceNo, CAST(CAST(CustomerID AS DOUBLE) AS BIGINT),
            InvoiceDate, StockCode, abs(CAST(Quantity AS BIGINT) * CAST(UnitPrice AS DOUBLE)),
            abs(CAST(Quantity AS BIGINT))))
        FROM classified WHERE reason IS NULL
        """
    )
    counts["accepted_returns"] = one(
        """
        SELECT count(DISTINCT (InvoiceNo, CustomerID, InvoiceDate, StockCode, Quantity, UnitPrice))
        FROM classified WHERE reason IS NULL AND InvoiceNo LIKE 'C%'
        """
    )
    con.close()
    return counts


def test_raw_file_matches_the_published_figures(raw_counts):
    assert raw_counts["lines"] == 541_909
    assert raw_counts["no_customer"] == 135_080
    assert raw_counts["cancellations"] == 9_288
    assert raw_counts["quantity_le_0"] == 10_624
    assert raw_counts["price_le_0"] == 2_517
    assert raw_counts["invoices"] == 25_900
    assert raw_counts["customers"] == 4_372


def test_report_accounts_for_every_line(validation, raw_counts):
    report = validation.results["transactions"].report
    assert report.rows_in == 541_909
    assert report.rows_in == report.rows_accepted + report.rows_quarantined
    expected = {
        reason: raw_counts[reason]
        for reason in (
            "missing_customer_id",
            "non_product_line",
            "non_positive_price",
            "non_positive_quantity",
            "duplicate_row",
        )
        if raw_counts[reason]
    }
    assert report.by_reason == expected
    assert report.by_reason["missing_customer_id"] == 135_080
    assert "ordered_at had no time zone on 541,909 values: assumed Europe/London" in report.notes
    quarantine = validation.results["transactions"].quarantine
    assert quarantine["source_row"].is_unique
    assert quarantine["reason"].value_counts().to_dict() == expected


def test_transactions_meet_the_contract(validation, raw_counts):
    table = validation.tables.transactions
    assert table["customer_id"].str.fullmatch(r"\d{5}").all()  # 17850.0 -> "17850"
    assert (table["amount"] > 0).all() and (table["quantity"] > 0).all()
    returns = table[table["is_return"]]
    assert returns["order_id"].str.startswith("C").all()
    assert len(returns) == raw_counts["accepted_returns"]
    assert not table.loc[~table["is_return"], "order_id"].str.startswith("C").any()
    # 2010-12-01 08:26 is GMT; 2011-06-01 is BST (UTC+1).
    first = table.iloc[0]
    assert first["ordered_at"] == pd.Timestamp("2010-12-01 08:26", tz="UTC")
    summer = table[table["order_id"] == "555200"]["ordered_at"].iloc[0]
    assert summer == pd.Timestamp("2011-06-01 11:05", tz="UTC")  # raw 2011-06-01 12:05 BST
    assert table["ordered_at"].max() < pd.Timestamp("2011-12-10", tz="UTC")


def test_customers_get_their_most_frequent_country(validation, raw_counts):
    customers = validation.tables.customers
    assert len(customers) == raw_counts["customers"] == 4_372
    assert customers["customer_id"].is_unique
    region = customers.set_index("customer_id")["region"]
    assert region["17850"] == "United Kingdom"
    assert region["12347"] == "Iceland"
    assert region.notna().mean() > 0.99
