"""Erasing customers from written files, and finding them inside any file."""

from __future__ import annotations

import json
import sqlite3

import duckdb
import pandas as pd

from features.erasure_files import erase_from_file, erase_from_tree, erase_rows, mentions

GONE = "C0004242"


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C0000001", GONE, "C0000003"],
            "referred_customer_id": [GONE, None, "C0000001"],
            "score": [0.1, 0.2, 0.3],
        }
    )


def test_erase_rows_drops_owners_and_blanks_references():
    out, removed = erase_rows(frame(), [GONE])
    assert removed == 1
    assert out["customer_id"].tolist() == ["C0000001", "C0000003"]
    assert out["referred_customer_id"].isna().tolist() == [True, False]
    indexed = frame().set_index(["customer_id"])
    out, removed = erase_rows(indexed, [GONE])
    assert removed == 1 and GONE not in out.index


def test_parquet_csv_and_mlflow_table_files_are_rewritten(tmp_path):
    frame().set_index("customer_id").to_parquet(tmp_path / "features.parquet")
    frame().to_csv(tmp_path / "list.csv", index=False)
    table = frame()[["customer_id", "score"]]
    (tmp_path / "table.json").write_text(
        json.dumps({"columns": list(table.columns), "data": table.values.tolist()})
    )
    (tmp_path / "clean.txt").write_text("nobody here")
    results = erase_from_tree(tmp_path, [GONE])
    assert sorted((r.path.name, r.rows_removed, r.problem) for r in results) == [
        ("features.parquet", 1, None),
        ("list.csv", 1, None),
        ("table.json", 1, None),
    ]
    kept = pd.read_parquet(tmp_path / "features.parquet")
    assert kept.index.name == "customer_id" and list(kept.index) == ["C0000001", "C0000003"]
    for path in tmp_path.iterdir():
        assert not mentions(path, [GONE]), path
    assert erase_from_tree(tmp_path, [GONE]) == []  # nothing left to do


def test_a_file_that_cannot_be_rewritten_is_reported(tmp_path):
    (tmp_path / "report.html").write_text(f"<td>{GONE}</td>")
    (tmp_path / "notes.json").write_text(json.dumps({"who": GONE}))
    result = erase_from_file(tmp_path / "report.html", [GONE])
    assert result.problem and "cannot rewrite" in result.problem
    assert erase_from_file(tmp_path / "notes.json", [GONE]).problem == (
        "mentions the customer and is not a table"
    )


def test_mentions_looks_inside_compressed_parquet_duckdb_and_sqlite(tmp_path):
    many = pd.DataFrame({"customer_id": [f"C{i:07d}" for i in range(20_000)]})
    many.to_parquet(tmp_path / "many.parquet", compression="zstd")
    assert mentions(tmp_path / "many.parquet", ["C0004242"])
    assert not mentions(tmp_path / "many.parquet", ["C9999999"])
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 'x-' || ? || '-y' AS note", [GONE])
    assert mentions(tmp_path / "store.duckdb", [GONE])
    assert not mentions(tmp_path / "store.duckdb", ["C9999999"])
    with sqlite3.connect(tmp_path / "runs.db") as con:
        con.execute("CREATE TABLE params (value TEXT)")
        con.execute("INSERT INTO params VALUES (?)", [GONE])
    assert mentions(tmp_path / "runs.db", [GONE])
