"""Which champions are served: every target that has one, or the ones asked for."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from serving.config import ServingConfig
from serving.lists.store import ListSource, ListUnavailable, create_list
from serving.scoring.models import ServingSetupError, load_served_models
from training.tracking.runs import TrackingConfig


def _home_without(serving_home: Path, tmp_path: Path, *targets: str) -> tuple[Path, str]:
    """A copy of the serving home's registry with the champions of ``targets`` removed."""
    home = tmp_path / "home"
    shutil.copytree(serving_home / "mlruns", home / "mlruns")
    uri = TrackingConfig(root=str(home / "mlruns")).resolved_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for target in targets:
        client.delete_registered_model_alias(f"winback-{target}", "champion")
    return home, uri


def test_a_target_without_a_champion_is_left_out_with_a_warning(serving_home, tmp_path, caplog):
    home, uri = _home_without(serving_home, tmp_path, "reactivation")
    with caplog.at_level(logging.WARNING, logger="winback.serving.scoring"):
        models = load_served_models(ServingConfig(home=home), tracking_uri=uri)
    assert models.targets == ("churn", "vip")
    assert "winback train --target reactivation" in caplog.text


def test_a_requested_target_without_a_champion_is_an_error(serving_home, tmp_path):
    home, uri = _home_without(serving_home, tmp_path, "reactivation")
    with pytest.raises(ServingSetupError, match="winback train --target reactivation"):
        load_served_models(ServingConfig(home=home), targets=["reactivation"], tracking_uri=uri)


def test_no_champion_at_all_is_an_error(serving_home, tmp_path):
    home, uri = _home_without(serving_home, tmp_path, "churn", "vip", "reactivation")
    with pytest.raises(ServingSetupError, match="no champion model in the registry"):
        load_served_models(ServingConfig(home=home), tracking_uri=uri)


def test_a_list_ranked_by_a_model_that_was_not_served_is_refused(tmp_path):
    scores = pd.DataFrame({"customer_id": ["a"], "churn_risk": [0.5]})
    source = ListSource(scores, "2025-06-30", model_versions={"churn": "1", "reactivation": None})
    with pytest.raises(ListUnavailable, match="no reactivation scores.*winback train"):
        create_list("winback", source, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing saved
