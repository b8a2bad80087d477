"""Models hold no customer and load only as registered; configs are logged without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training import test_tracking as shared
from tests.training.test_tracking import FEATURES, LinearStandIn, feature_frame
from training.tracking.integrity import DIGEST_TAG, ModelIntegrityError, model_digest
from training.tracking.model_io import load_model, log_model, synthetic_input_example
from training.tracking.model_registry import register
from training.tracking.runs import log_config, start_training_run
from training.uplift.record import load_uplift_model

empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking


def _registered(config) -> tuple[str, str]:
    with start_training_run("churn", config) as run:
        log_model(LinearStandIn(), input_example=feature_frame(41))
    version = register(
        run.info.run_id, "churn", "model", test_cutoff="2024-06-30", metrics={"roc_auc": 0.7}
    )
    return run.info.run_id, version


def test_synthetic_example_is_medians_and_commonest_values():
    frame = pd.DataFrame(
        {
            "a": [1.0, 2.0, 10.0, np.nan],
            "b": [5, 6, 7, 8],
            "c": ["x", "y", "y", None],
            "d": [True, False, False, True],
        }
    )
    row = synthetic_input_example(frame)
    assert len(row) == 1
    assert row.iloc[0].to_dict() == {"a": 2.0, "b": 6.5, "c": "y", "d": False}


def test_input_example_is_no_customer_row(tracking):
    import mlflow

    frame = feature_frame(41)
    with start_training_run("churn", tracking):
        uri = log_model(LinearStandIn(), input_example=frame)
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    stored = json.loads((folder / "input_example.json").read_text())
    example = pd.DataFrame(stored["data"], columns=stored["columns"])
    assert len(example) == 1
    assert example["days_since_last_order"].iloc[0] == frame["days_since_last_order"].median()
    numeric = frame[["days_since_last_order", "orders_90d"]].to_numpy()
    as_row = example[["days_since_last_order", "orders_90d"]].to_numpy()
    assert not (numeric == as_row).all(axis=1).any()  # not any customer's row
    assert "c0" not in (folder / "input_example.json").read_text()


def test_registered_model_carries_its_digest_and_loads(tracking):
    from mlflow import MlflowClient

    _, version = _registered(tracking)
    tags = MlflowClient().get_model_version("winback-churn", version).tags
    assert len(tags[DIGEST_TAG]) == 64
    loaded = load_model(f"models:/winback-churn/{version}")
    frame = feature_frame(8)
    np.testing.assert_array_equal(loaded.predict_proba(frame), LinearStandIn().predict_proba(frame))
    assert loaded.feature_set_ == FEATURES


def _stored_pickle(tmp_path: Path) -> Path:
    found = [p for p in (tmp_path / "mlruns").rglob("python_model.pkl")]
    assert len(found) == 1, found
    return found[0]


def test_a_swapped_model_file_is_refused_before_unpickling(tracking, tmp_path):
    _, version = _registered(tracking)
    stored = _stored_pickle(tmp_path)
    before = model_digest(stored.parent)
    # another (valid) pickle put in its place: a model that loads fine but is not the one registered
    other = LinearStandIn()
    other.bias_ = 3.0
    with start_training_run("churn", tracking):
        log_model(other, input_example=feature_frame(8))
    replacement = [p for p in (tmp_path / "mlruns").rglob("python_model.pkl") if p != stored][0]
    stored.write_bytes(replacement.read_bytes())
    assert model_digest(stored.parent) != before
    with pytest.raises(ModelIntegrityError, match="changed after registration"):
        load_model(f"models:/winback-churn/{version}")


def test_a_version_without_digest_is_refused(tracking):
    from mlflow import MlflowClient

    _, version = _registered(tracking)
    MlflowClient().delete_model_version_tag("winback-churn", version, DIGEST_TAG)
    with pytest.raises(ModelIntegrityError, match="no model_sha256"):
        load_model(f"models:/winback-churn/{version}")


def test_uplift_registry_load_checks_the_digest(tracking):
    from mlflow import MlflowClient

    _, version = _registered(tracking)
    MlflowClient().delete_model_version_tag("winback-churn", version, DIGEST_TAG)
    with pytest.raises(ModelIntegrityError, match="will not unpickle"):
        load_uplift_model(f"models:/winback-churn/{version}")


def test_log_config_masks_credentials(tracking):
    import mlflow

    url = "postgresql://crm:s3cret-pw@db/shop"
    with start_training_run("churn", tracking) as run:
        log_config({"data": {"path": url}, "target": "churn"})
    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.params["data.path"] == "postgresql://crm:***@db/shop"
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="config.json")
    text = Path(local).read_text()
    assert "s3cret-pw" not in text and json.loads(text)["data"]["path"].endswith("***@db/shop")
