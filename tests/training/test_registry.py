"""The registry: the promotion gate both ways, manual promotion, rollback, loading the champion."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training import test_tracking as shared
from tests.training.test_tracking import LinearStandIn, feature_frame
from training.tracking.gate import GateConfig, GateDecision, gate
from training.tracking.model_io import log_model
from training.tracking.model_list import champion_history, list_models
from training.tracking.model_registry import (
    CHAMPION_ALIAS,
    NoChampionError,
    RegistryError,
    champion,
    load_champion,
    promote,
    promote_if_better,
    register,
    registered_model_name,
    rollback,
)
from training.tracking.runs import start_training_run

# The tracking-store fixtures of test_tracking: each test gets an empty store
# under its own tmp_path/mlruns, tmp_path being the working directory.
empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking

CUTOFF = "2024-06-30"


def registered_version(config, target: str, roc_auc: float, *, bias: float = -0.5) -> str:
    """Log a stand-in model in a run and register it with its test metrics."""
    model = LinearStandIn()
    model.bias_ = bias
    with start_training_run(target, config) as run:
        log_model(model, input_example=feature_frame(8))
    return register(
        run.info.run_id,
        target,
        "model",
        test_cutoff=CUTOFF,
        metrics={"roc_auc": roc_auc, "log_loss": 0.5},
    )


# ---------------------------------------------------------------- the pure gate


@pytest.mark.parametrize(
    ("new", "champ", "min_improvement", "higher", "promote", "word"),
    [
        (0.80, 0.75, 0.0, True, True, "better"),
        (0.75, 0.80, 0.0, True, False, "worse"),
        (0.80, 0.80, 0.0, True, False, "equal"),
        (0.80, 0.79, 0.02, True, False, "not better enough"),
        (0.80, 0.78, 0.02, True, True, "better"),
        (0.40, 0.50, 0.0, False, True, "better"),  # log loss: lower is better
        (0.50, 0.40, 0.0, False, False, "worse"),
        (0.70, None, 0.05, True, True, "first model"),
        (0.70, float("nan"), 0.0, True, True, "first model"),
        (None, 0.70, 0.0, True, False, "no roc_auc"),
        (float("nan"), 0.70, 0.0, True, False, "no roc_auc"),
    ],
)
def test_gate_decides_by_direction_and_minimum_improvement(
    new, champ, min_improvement, higher, promote, word
):
    decision = gate(
        new, champ, min_improvement=min_improvement, higher_is_better=higher, metric="roc_auc"
    )
    assert isinstance(decision, GateDecision)
    assert decision.promote is promote
    assert word in decision.reason
    if new is not None and not math.isnan(new):
        assert f"{new:.4f}" in decision.reason


@settings(max_examples=200, deadline=None)
@given(
    a=st.floats(0, 1, allow_nan=False),
    b=st.floats(0, 1, allow_nan=False),
    min_improvement=st.floats(0, 0.2, allow_nan=False),
    higher=st.booleans(),
)
def test_gate_never_promotes_both_ways(a, b, min_improvement, higher):
    forward = gate(a, b, min_improvement=min_improvement, higher_is_better=higher).promote
    backward = gate(b, a, min_improvement=min_improvement, higher_is_better=higher).promote
    assert not (forward and backward)
    improvement = (a - b) if higher else (b - a)
    assert forward == (improvement > 0 and improvement >= min_improvement)


def test_gate_config_from_training_config():
    from training.config import TrainConfig

    config = GateConfig.from_config(TrainConfig(gate_metric="log_loss", gate_min_improvement=0.01))
    assert config == GateConfig("log_loss", 0.01, False)
    assert not config.higher
    assert GateConfig.from_config(None) == GateConfig()
    assert GateConfig("pr_auc").higher
    with pytest.raises(ValueError, match="'gini'"):
        GateConfig("gini")
    with pytest.raises(TypeError, match="gate_metric"):
        GateConfig.from_config({"metric": "roc_auc"})


# ---------------------------------------------------------------- registry


def test_register_tags_version_with_cutoff_and_metrics(tracking):
    import mlflow

    first = registered_version(tracking, "churn", 0.7)
    second = registered_version(tracking, "churn", 0.8)
    assert (first, second) == ("1", "2")
    version = mlflow.MlflowClient().get_model_version("winback-churn", second)
    assert version.tags["test_cutoff"] == CUTOFF
    assert float(version.tags["metric.roc_auc"]) == 0.8
    assert version.tags["target"] == "churn"
    assert registered_model_name("vip") == "winback-vip"
    with pytest.raises(ValueError, match="'churned'"):
        registered_model_name("churned")


def test_first_model_becomes_champion_then_better_model_replaces_it(tracking):
    import mlflow

    client = mlflow.MlflowClient()
    first = registered_version(tracking, "churn", 0.70)
    decision = promote_if_better("churn", first, {"roc_auc": 0.70}, None, GateConfig())
    assert decision.promote and "first model" in decision.reason
    assert champion("churn").version == int(first)

    second = registered_version(tracking, "churn", 0.75)
    decision = promote_if_better(
        "churn", second, {"roc_auc": 0.75}, {"roc_auc": 0.71}, GateConfig(min_improvement=0.01)
    )
    assert decision.promote and "better" in decision.reason
    assert champion("churn").version == int(second)
    assert client.get_model_version("winback-churn", second).tags["role"] == "champion"
    assert client.get_model_version("winback-churn", first).tags["role"] == "former_champion"
    assert client.get_registered_model("winback-churn").aliases == {CHAMPION_ALIAS: int(second)}


@pytest.mark.parametrize(("new_auc", "word"), [(0.69, "worse"), (0.71, "equal")])
def test_worse_or_equal_model_is_tagged_challenger_and_champion_stays(tracking, new_auc, word):
    import mlflow

    first = registered_version(tracking, "vip", 0.71)
    promote_if_better("vip", first, {"roc_auc": 0.71}, None)
    second = registered_version(tracking, "vip", new_auc)
    decision = promote_if_better("vip", second, {"roc_auc": new_auc}, {"roc_auc": 0.71})
    assert not decision.promote
    assert word in decision.reason and "champion version 1" in decision.reason
    assert champion("vip").version == int(first)
    tags = mlflow.MlflowClient().get_model_version("winback-vip", second).tags
    assert tags["role"] == "challenger"
    assert tags["gate_reason"] == decision.reason
    assert tags["gate_metric"] == "roc_auc"


def test_model_that_loses_to_a_baseline_never_replaces_the_champion(tracking):
    import mlflow
    import pandas as pd

    losing = pd.DataFrame(
        {"delta": [-0.012], "ci_low": [-0.020], "ci_high": [-0.004]},
        index=pd.Index(["logistic"], name="baseline"),
    )
    first = registered_version(tracking, "churn", 0.70)
    decision = promote_if_better("churn", first, {"roc_auc": 0.70}, None, loses_to=losing)
    # the first version is still champion (so scoring works) but carries the tag
    assert decision.promote and "loses to logistic" in decision.reason
    client = mlflow.MlflowClient()
    assert client.get_model_version("winback-churn", first).tags["loses_to"] == "logistic"

    # better than the champion, but worse than logistic regression: refused
    second = registered_version(tracking, "churn", 0.80)
    decision = promote_if_better(
        "churn", second, {"roc_auc": 0.80}, {"roc_auc": 0.70}, loses_to=losing
    )
    assert not decision.promote
    assert "loses to logistic (ROC-AUC Δ -0.012 [-0.020, -0.004])" in decision.reason
    assert champion("churn").version == int(first)
    tags = client.get_model_version("winback-churn", second).tags
    assert tags["role"] == "challenger" and tags["loses_to"] == "logistic"

    # a tie within the interval is not a loss
    tie = losing.assign(ci_high=[0.003])
    third = registered_version(tracking, "churn", 0.80)
    decision = promote_if_better(
        "churn", third, {"roc_auc": 0.80}, {"roc_auc": 0.70}, loses_to=tie[tie["ci_high"] < 0]
    )
    assert decision.promote and champion("churn").version == int(third)


def test_unmeasured_champion_is_never_replaced_automatically(tracking):
    first = registered_version(tracking, "churn", 0.6)
    promote_if_better("churn", first, {"roc_auc": 0.6}, None)
    second = registered_version(tracking, "churn", 0.9)
    decision = promote_if_better("churn", second, {"roc_auc": 0.9}, None)
    assert not decision.promote and "not evaluated" in decision.reason
    assert champion("churn").version == int(first)


def test_gate_uses_configured_metric_and_direction(tracking):
    first = registered_version(tracking, "churn", 0.7)
    promote_if_better("churn", first, {"log_loss": 0.50}, None, GateConfig("log_loss"))
    second = registered_version(tracking, "churn", 0.7)
    decision = promote_if_better(
        "churn", second, {"log_loss": 0.45}, {"log_loss": 0.50}, GateConfig("log_loss")
    )
    assert decision.promote
    with pytest.raises(KeyError, match="'pr_auc'"):
        promote_if_better("churn", second, {"roc_auc": 0.8}, None, GateConfig("pr_auc"))
    with pytest.raises(RegistryError, match="no version 9"):
        promote_if_better("churn", 9, {"roc_auc": 0.8}, None)


def test_manual_promotion_and_rollback_restore_previous_champions(tracking):
    import mlflow

    client = mlflow.MlflowClient()
    v1 = registered_version(tracking, "churn", 0.70)
    v2 = registered_version(tracking, "churn", 0.72)
    v3 = registered_version(tracking, "churn", 0.60)
    promote_if_better("churn", v1, {"roc_auc": 0.70}, None)
    promote_if_better("churn", v2, {"roc_auc": 0.72}, {"roc_auc": 0.70})
    promoted = promote("churn", v3, reason="hotfix for a new feature")
    assert promoted.version == int(v3)
    tags = client.get_model_version("winback-churn", v3).tags
    assert tags["gate_reason"] == "manual: hotfix for a new feature"
    assert tags["promoted_by"]

    assert rollback("churn").version == int(v2)
    assert champion("churn").version == int(v2)
    assert client.get_model_version("winback-churn", v3).tags["role"] == "rolled_back"
    assert rollback("churn").version == int(v1)
    with pytest.raises(RegistryError, match="no earlier champion"):
        rollback("churn")
    assert champion("churn").version == int(v1)

    history = champion_history("churn")
    assert [(h["version"], h["action"]) for h in history] == [
        (v1, "gate"),
        (v2, "gate"),
        (v3, "promote"),
        (v2, "rollback"),
        (v1, "rollback"),
    ]
    stored = json.loads(client.get_registered_model("winback-churn").tags["champion_history"])
    assert stored == history
    with pytest.raises(RegistryError, match="no version 7"):
        promote("churn", 7)


def test_rollback_after_new_promotion_goes_to_the_champion_it_replaced(tracking):
    v1 = registered_version(tracking, "reactivation", 0.6)
    v2 = registered_version(tracking, "reactivation", 0.7)
    v3 = registered_version(tracking, "reactivation", 0.8)
    promote("reactivation", v1)
    promote("reactivation", v2)
    rollback("reactivation")  # back to v1
    promote("reactivation", v3)
    assert rollback("reactivation").version == int(v1)


def test_missing_champion_gives_a_clear_message(tracking):
    with pytest.raises(NoChampionError) as excinfo:
        load_champion("churn")
    message = str(excinfo.value)
    assert "'winback-churn'" in message and "champion" in message
    assert "winback train --target churn" in message
    assert "winback models promote churn" in message
    assert "mlruns" in message  # names the registry it looked in
    registered_version(tracking, "churn", 0.7)  # registered but never promoted
    with pytest.raises(NoChampionError):
        load_champion("churn")
    with pytest.raises(NoChampionError):
        rollback("churn")
    assert champion("vip") is None


def test_load_champion_returns_the_champion_classifier(tracking):
    frame = feature_frame(20)
    v1 = registered_version(tracking, "churn", 0.7, bias=-0.5)
    v2 = registered_version(tracking, "churn", 0.8, bias=1.5)
    promote("churn", v1)
    first = load_champion("churn")
    promote_if_better("churn", v2, {"roc_auc": 0.8}, {"roc_auc": 0.7})
    second = load_champion("churn")
    np.testing.assert_array_equal(first.predict_proba(frame), LinearStandIn().predict_proba(frame))
    assert (second.predict_proba(frame) > first.predict_proba(frame)).all()


def test_list_models_shows_roles_cutoffs_and_metrics(tracking):
    v1 = registered_version(tracking, "churn", 0.7)
    v2 = registered_version(tracking, "churn", 0.6)
    promote_if_better("churn", v1, {"roc_auc": 0.7}, None)
    promote_if_better("churn", v2, {"roc_auc": 0.6}, {"roc_auc": 0.7})
    rows = list_models()
    assert [(r.target, r.version, r.role, r.is_champion) for r in rows] == [
        ("churn", v2, "challenger", False),
        ("churn", v1, "champion", True),
    ]
    assert rows[0].metrics == {"roc_auc": 0.6, "log_loss": 0.5}
    assert rows[0].test_cutoff == CUTOFF
    assert "worse" in rows[0].gate_reason
    assert list_models("vip") == []
