"""Erased customers, do-not-contact suppressions and quarantine files without passengers."""

from __future__ import annotations

import json
import stat

import pandas as pd
import pytest

from features.erasure import ErasureRegistry, drop_erased
from features.inputs.contracts import validate_shop, validate_table, write_quarantine
from features.inputs.mappings import ColumnMapping
from features.inputs.schema import ShopTables
from features.inputs.sources import load_shop

NOW = pd.Timestamp("2025-01-01", tz="UTC")


def orders(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["keep", "gone", "gone", None],
            "order_id": ["o1", "o2", "o3", "o4"],
            "ordered_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
            "amount": [10.0, 20.0, -5.0, 7.0],
            **extra,
        }
    )


@pytest.fixture
def registry(tmp_path) -> ErasureRegistry:
    registry = ErasureRegistry(tmp_path / "erasure")
    with registry.locked():
        registry.record(["gone"], rewritten=["scores"], removed_rows={"scores": 1})
    return registry


def test_registry_holds_salted_hashes_never_the_id(registry):
    files = list(registry.folder.iterdir())
    assert sorted(p.name for p in files) == [".erasure.lock", "erasure_log.jsonl", "salt"]
    for path in files:
        assert b"gone" not in path.read_bytes()
    (entry,) = registry.entries()
    assert set(entry) == {"id_hash", "erased_at", "rewritten", "removed_rows"}
    assert len(entry["id_hash"]) == 64
    assert stat.S_IMODE((registry.folder / "salt").stat().st_mode) & 0o077 == 0
    assert registry.mask(pd.Series(["keep", "gone", None, "GONE"])).tolist() == [
        False,
        True,
        False,
        False,
    ]
    # another installation (another salt) does not recognise the hash
    other = ErasureRegistry(registry.folder.parent / "other")
    with other.locked():
        other.record(["someone"])
    assert other.mask(["gone"]).tolist() == [False]


def test_an_empty_registry_erases_nothing(tmp_path):
    registry = ErasureRegistry(tmp_path / "nothing")
    assert not registry.has_erasures()
    assert registry.mask(["a"]).tolist() == [False]
    assert not (tmp_path / "nothing").exists()


def test_rows_of_erased_customers_are_counted_not_kept(registry):
    result = validate_table(orders(), "transactions", now=NOW, erased=registry.mask)
    assert result.report.by_reason == {"erased": 2, "missing_customer_id": 1}
    assert result.report.rows_in == 4 and result.report.rows_accepted == 1
    assert result.table["customer_id"].tolist() == ["keep"]
    assert result.quarantine["reason"].tolist() == ["missing_customer_id"]
    assert "gone" not in result.quarantine.to_csv()


def test_loaders_consult_the_default_registry(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WINBACK_ERASURE_DIR", str(registry.folder))
    path = tmp_path / "orders.csv"
    orders().to_csv(path, index=False)
    validation = load_shop(path, now=NOW)
    assert validation.results["transactions"].report.by_reason["erased"] == 2
    written = write_quarantine(validation, tmp_path / "out")
    for file in written.values():
        assert b"gone" not in file.read_bytes()


def test_referrals_to_an_erased_customer_are_blanked(registry):
    referrals = pd.DataFrame(
        {
            "customer_id": ["keep", "gone"],
            "referred_at": ["2024-01-01", "2024-01-02"],
            "referred_customer_id": ["gone", "keep"],
        }
    )
    result = validate_table(referrals, "referrals", now=NOW, erased=registry.mask)
    assert result.report.by_reason == {"erased": 1}
    assert result.table["customer_id"].tolist() == ["keep"]
    assert result.table["referred_customer_id"].isna().tolist() == [True]


def test_drop_erased_from_a_simulated_shop(registry):
    validation = validate_shop({"transactions": orders()}, now=NOW)
    tables = ShopTables(
        transactions=validation.tables.transactions,
        customers=pd.DataFrame({"customer_id": pd.array(["gone", "keep"], dtype="string")}),
    )
    kept, removed = drop_erased(tables, registry)
    assert removed == {"transactions": 1, "customers": 1}
    assert kept.transactions["customer_id"].tolist() == ["keep"]
    assert kept.customers["customer_id"].tolist() == ["keep"]
    assert drop_erased(tables, ErasureRegistry(registry.folder / "none")) == (tables, {})


def test_suppressions_table_in_the_contract():
    raw = pd.DataFrame(
        {
            "customer_id": ["a", "b", None],
            "reason": ["opted_out", None, "x"],
            "since": ["2024-05-01", "2099-01-01", None],  # a future date still suppresses
        }
    )
    validation = validate_shop({"transactions": orders(), "suppressions": raw}, now=NOW)
    result = validation.results["suppressions"]
    assert result.report.by_reason == {"missing_customer_id": 1}
    assert validation.tables.suppressions["customer_id"].tolist() == ["a", "b"]
    assert str(validation.tables.suppressions["since"].dtype) == "datetime64[us, UTC]"


def test_quarantine_keeps_no_unmapped_columns_by_default(tmp_path):
    raw = orders(email=["a@x.org", "b@x.org", "c@x.org", "d@x.org"])
    result = validate_table(raw, "transactions", now=NOW)
    assert "email" not in result.quarantine.columns
    assert "@x.org" not in result.quarantine.to_csv()
    path = tmp_path / "orders.csv"
    raw.rename(columns={"customer_id": "Kunde"}).to_csv(path, index=False)
    base = {"name": "t", "tables": {"transactions": {"columns": {"customer_id": "Kunde"}}}}
    plain = load_shop(path, ColumnMapping.model_validate(base), now=NOW)
    assert list(plain.results["transactions"].quarantine.columns) == [
        "customer_id",
        "order_id",
        "ordered_at",
        "amount",
        "reason",
        "detail",
        "source_row",
    ]
    base["tables"]["transactions"]["keep_unmapped"] = ["email"]
    asked = load_shop(path, ColumnMapping.model_validate(base), now=NOW)
    assert asked.results["transactions"].quarantine["email"].tolist() == ["c@x.org", "d@x.org"]


def test_validation_report_holds_no_erased_id(registry, tmp_path):
    validation = validate_shop({"transactions": orders()}, now=NOW, erased=registry.mask)
    written = write_quarantine(validation, tmp_path)
    report = json.loads(written["report"].read_text())
    assert report["tables"]["transactions"]["by_reason"]["erased"] == 2
    assert "gone" not in written["report"].read_text()
