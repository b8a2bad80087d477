"""Lists honour do-not-contact, log no rows to MLflow by default and are safe in a spreadsheet."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest

from serving.lists.build import build_list, mark_suppressed
from serving.lists.export import list_csv, spreadsheet_safe
from serving.lists.store import ListOptions, ListSource, create_list
from serving.lists.targeting import TargetingConfig
from tests.serving.lists.test_lists import _large_scores
from tests.training import test_tracking as shared

empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking


def _suppressions(ids: list[str], reasons: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": pd.array(ids, dtype="string"), "reason": reasons})


def test_suppressed_customers_never_reach_a_list_and_are_counted_by_reason():
    scores, features = _large_scores(1_000, seed=4)
    full = build_list("winback", scores, list_id="winback-x", features=features)
    best = full["customer_id"].head(30).tolist()
    marked = mark_suppressed(
        scores, _suppressions(best[:20] + ["NOT-SCORED"], ["opted_out"] * 15 + [None] * 6)
    )
    out = build_list(
        "winback",
        marked,
        list_id="winback-x",
        features=features,
        targeting=TargetingConfig(top=100),
    )
    assert not set(out["customer_id"]) & set(best[:20])
    assert out.attrs["suppressed_rows"] == {"opted_out": 15, "unspecified": 5}
    # the top 100 is filled from contactable customers, in the same order as before
    contactable = full.loc[~full["customer_id"].isin(best[:20]), "customer_id"]
    assert out["customer_id"].tolist() == contactable.head(100).tolist()
    # the control group is drawn among those contacted: 10% of the 100 kept
    assert int((out["group"] == "control").sum()) == 10


def test_manifest_counts_suppressed_rows(tmp_path):
    scores, features = _large_scores(300, seed=5)
    marked = mark_suppressed(scores, _suppressions(["C00001", "C00002"], ["opted_out", "legal"]))
    frame, manifest = create_list(
        "winback", ListSource(marked, "2025-06-30", features=features), tmp_path
    )
    assert manifest.suppressed_rows == {"legal": 1, "opted_out": 1}
    assert manifest.rows == len(frame) == 298
    written = json.loads((tmp_path / manifest.list_id / "manifest.json").read_text())
    assert written["suppressed_rows"] == {"legal": 1, "opted_out": 1}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(start):
    frame = pd.DataFrame(
        {
            "customer_id": [f'{start}HYPERLINK("http://x")', "C1"],
            "reasons": ["fine", f"{start}cmd|' /C calc'!A0"],
            "expected_value": [-3.5, 2.0],
        }
    )
    text = list_csv(frame)
    back = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert back["customer_id"].tolist()[0] == f'\'{start}HYPERLINK("http://x")'
    assert back["reasons"].tolist() == ["fine", f"'{start}cmd|' /C calc'!A0"]
    assert back["expected_value"].tolist() == [-3.5, 2.0]  # numbers stay numbers
    for line in text.splitlines()[1:]:
        assert not line.startswith(("=", "+", "-", "@"))
    assert spreadsheet_safe(frame.iloc[1:])["customer_id"].tolist() == ["C1"]


def test_saved_csv_is_escaped(tmp_path):
    scores, features = _large_scores(50, seed=6)
    scores.loc[0, "customer_id"] = "=1+2"
    features.index = pd.Index(scores["customer_id"], name="customer_id")
    frame, manifest = create_list(
        "winback", ListSource(scores, "2025-06-30", features=features), tmp_path
    )
    saved = (tmp_path / manifest.list_id / "list.csv").read_text()
    assert "'=1+2" in saved and "\n=1+2" not in saved
    assert "=1+2" in frame["customer_id"].tolist()  # the Parquet and JSON keep the real value


def test_mlflow_gets_manifest_and_aggregates_not_rows_unless_asked(tracking, tmp_path):
    import mlflow

    scores, features = _large_scores(200, seed=7)
    source = ListSource(scores, "2025-06-30", features=features)
    logged = ListOptions(log_to_mlflow=True, tracking=tracking)
    _, plain = create_list("winback", source, tmp_path / "lists", logged)
    with_rows = ListOptions(log_to_mlflow=True, tracking=tracking, log_rows=True)
    _, rows = create_list("winback", source, tmp_path / "lists", with_rows)
    client = mlflow.MlflowClient()
    listed = {a.path for a in client.list_artifacts(plain.mlflow_run_id)}
    # the package versions every run records; no rows
    assert listed == {"manifest.json", "aggregates.json", "package_versions.json"}
    assert {a.path for a in client.list_artifacts(rows.mlflow_run_id)} == listed | {"list.csv"}
    run = client.get_run(plain.mlflow_run_id)
    assert run.data.metrics["rows"] == 200
    assert run.data.metrics["group.control.rows"] == 20
    assert "reactivation_probability.mean.treatment" in run.data.metrics
    folder = tmp_path / "artifacts"
    mlflow.artifacts.download_artifacts(run_id=plain.mlflow_run_id, dst_path=str(folder))
    for path in folder.rglob("*"):
        if path.is_file():
            assert "C00001" not in path.read_text(), path
    shutil.rmtree(folder)
