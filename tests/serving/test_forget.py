"""``forget_customers`` on hand-made stores: every store rewritten, logged, and checked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import duckdb
import pandas as pd
import pytest

from features.erasure import ErasureRegistry
from features.erasure_files import mentions
from serving.forget import ForgetStores, forget_customers
from serving.lists.store import ListSource, create_list, read_manifest
from serving.scoring import store
from tests.serving.lists.test_lists import _large_scores

GONE = "C00007"
D1, D2 = dt.date(2025, 5, 31), dt.date(2025, 6, 30)


@pytest.fixture
def stores(tmp_path) -> ForgetStores:
    out = tmp_path / "winback_output"
    stores = ForgetStores(
        output_dir=out,
        score_dir=out / "scores",
        list_dir=out / "lists",
        tracking_root=tmp_path / "mlruns",
        erasure=ErasureRegistry(out / "erasure"),
        wait_seconds=5,
    )
    scores, features = _large_scores(100, seed=1)
    suppressions = pd.DataFrame({"customer_id": [GONE, "C00008"], "reason": ["opted_out"] * 2})
    for as_of in (D1, D2):
        store.write_score_table(
            scores.assign(as_of=as_of), features, stores.score_dir, as_of, suppressions=suppressions
        )
    create_list("winback", ListSource(scores, D2, features=features), stores.list_dir)
    (out / "validation").mkdir(parents=True)
    quarantine = pd.DataFrame({"customer_id": [GONE, "C00009"], "reason": ["duplicate_row"] * 2})
    quarantine.to_parquet(out / "validation" / "transactions.quarantine.parquet")
    features.reset_index().to_csv(out / "features.csv", index=False)
    (out / "data").mkdir()  # a simulated shop's input data: left alone
    (out / "data" / "simulation.json").write_text("{}")
    scores.to_parquet(out / "data" / "transactions.parquet")
    artifacts = tmp_path / "mlruns" / "artifacts" / "winback-lists" / "run1" / "artifacts"
    artifacts.mkdir(parents=True)
    scores[["customer_id"]].to_csv(artifacts / "list.csv", index=False)
    return stores


def test_forget_rewrites_every_store_logs_hashes_and_finds_nothing_left(stores):
    report = forget_customers([GONE, " ", GONE], stores)
    assert report.clean, (report.problems, report.remaining)
    assert report.customers == 1
    assert report.removed_rows["winback_output/validation/transactions.quarantine.parquet"] == 1
    assert report.removed_rows["winback_output/features.csv"] == 1
    assert report.removed_rows["mlruns/artifacts/winback-lists/run1/artifacts/list.csv"] == 1
    assert sum(v for k, v in report.removed_rows.items() if k.startswith("scores/")) == 2
    for as_of in (D1, D2):
        scores, features = store.read_version(stores.score_dir, as_of)
        assert GONE not in set(scores["customer_id"]) and GONE not in features.index
        assert len(scores) == 99
        assert store.read_suppressions(stores.score_dir, as_of)["customer_id"].tolist() == [
            "C00008"
        ]
    with duckdb.connect(str(store.catalogue_path(stores.score_dir)), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM scores WHERE customer_id = ?", [GONE]
        ).fetchall() == [(0,)]
        assert con.execute("SELECT sum(rows) FROM score_versions").fetchall() == [(198,)]
    (list_id,) = [p.name for p in stores.list_dir.iterdir()]
    manifest = read_manifest(stores.list_dir, list_id)
    assert manifest.erased_rows == 1 and manifest.rows == 99
    assert manifest.treatment_rows + manifest.control_rows == 99
    # the log: one line, a salted hash, never the id
    log = stores.erasure.log_path.read_text()
    assert GONE not in log and json.loads(log)["rewritten"] == report.rewritten
    # the shop's input is left as it is; everything else no longer mentions the customer
    assert mentions(stores.output_dir / "data" / "transactions.parquet", [GONE])
    for root in (stores.output_dir, stores.tracking_root):
        for path in root.rglob("*"):
            if path.is_file() and "data" not in path.parts:
                assert not mentions(path, [GONE]), path


def test_a_file_that_cannot_be_rewritten_fails_the_check(stores):
    (stores.output_dir / "notes.html").write_text(f"<p>{GONE} called</p>")
    report = forget_customers([GONE], stores)
    assert not report.clean
    assert report.problems == [
        "winback_output/notes.html: mentions the customer; winback cannot rewrite it"
    ]
    assert report.remaining == [stores.output_dir / "notes.html"]


def test_later_loads_quarantine_the_forgotten_customer(stores, tmp_path):
    from features.inputs.sources import load_shop

    forget_customers([GONE], stores)
    orders = pd.DataFrame(
        {
            "customer_id": [GONE, "C00001"],
            "order_id": ["o1", "o2"],
            "ordered_at": ["2024-01-01", "2024-01-02"],
            "amount": [5.0, 6.0],
        }
    )
    orders.to_csv(tmp_path / "orders.csv", index=False)
    validation = load_shop(tmp_path / "orders.csv", erasures=stores.erasure)
    assert validation.results["transactions"].report.by_reason == {"erased": 1}
    assert validation.tables.transactions["customer_id"].tolist() == ["C00001"]


def test_a_later_score_write_never_stores_a_forgotten_customer(stores, monkeypatch):
    forget_customers([GONE], stores)
    monkeypatch.setenv("WINBACK_ERASURE_DIR", str(stores.erasure.folder))
    scores, features = _large_scores(100, seed=1)  # e.g. Spark reading the raw Parquet in place
    written = store.write_score_table(scores, features, stores.score_dir, D2)
    assert written.rows == 99
    stored, stored_features = store.read_version(stores.score_dir, D2)
    assert GONE not in set(stored["customer_id"]) and GONE not in stored_features.index


def test_files_written_elsewhere_are_rewritten_and_their_neighbours_left(stores, tmp_path):
    """Files written with --out outside the output folder, even inside the shop's input."""
    shop = tmp_path / "shop"  # the configured input: its own sources stay as they are
    shop.mkdir()
    rows = pd.DataFrame({"customer_id": [GONE, "C00001"], "amount": [1.0, 2.0]})
    rows.to_csv(shop / "transactions.csv", index=False)
    rows.to_parquet(shop / "transactions.quarantine.parquet")  # what validate --out shop wrote
    export = tmp_path / "exports" / "winback.json"  # an exported list
    export.parent.mkdir()
    listed = [{"customer_id": c, "score": 0.5} for c in (GONE, "C00002")]
    export.write_text(json.dumps({"list_id": "L1", "rows": listed}))
    registry = stores.registry()
    registry.record_written(
        [shop / "transactions.quarantine.parquet", export, tmp_path / "gone.csv"]
    )
    registry.record_written([export])  # noted once
    assert registry.written_files() == [
        (shop / "transactions.quarantine.parquet").resolve(),
        export.resolve(),
        (tmp_path / "gone.csv").resolve(),  # never written: skipped, not an error
    ]
    stores = dataclasses.replace(
        stores, input_data=(shop,), written=tuple(registry.written_files())
    )

    report = forget_customers([GONE], stores)
    assert report.clean, (report.problems, report.remaining)
    assert report.removed_rows[str((shop / "transactions.quarantine.parquet").resolve())] == 1
    assert report.removed_rows[str(export.resolve())] == 1
    assert pd.read_parquet(shop / "transactions.quarantine.parquet")["customer_id"].tolist() == [
        "C00001"
    ]
    assert json.loads(export.read_text())["rows"] == [{"customer_id": "C00002", "score": 0.5}]
    assert mentions(shop / "transactions.csv", [GONE])  # the shop's own source: not ours


def test_forget_command_reaches_a_validated_folder_outside_the_output_folder(
    small_shop, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from features.build import build_feature_table_from
    from features.engines.duckdb_engine import connect_parquet
    from winback.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WINBACK_ERASURE_DIR", str(tmp_path / "winback_output" / "erasure"))
    source = tmp_path / "source"
    source.mkdir()
    small_shop.tables.transactions.to_csv(source / "transactions.csv", index=False)
    small_shop.tables.customers.to_csv(source / "customers.csv", index=False)
    validated = tmp_path / "elsewhere" / "validated"
    runner = CliRunner()
    args = ["data", "validate", str(source), "--out", str(validated), "--write-tables"]
    assert runner.invoke(app, args).exit_code == 0
    gone = str(small_shop.tables.transactions["customer_id"].iloc[0])
    assert mentions(validated / "transactions.parquet", [gone])

    result = runner.invoke(app, ["forget", gone])
    assert result.exit_code == 0, result.output
    assert str(validated) in result.output  # named among the places checked
    for path in validated.iterdir():
        assert not mentions(path, [gone]), path
    assert mentions(source / "transactions.csv", [gone])  # the shop's own input, left alone
    frame = build_feature_table_from(connect_parquet(validated), [dt.date(2025, 6, 30)])
    assert gone not in set(frame.index.get_level_values("customer_id")) and len(frame) > 100
