"""Recording a value training run in MLflow and gating ``winback-value``'s champion.

The run holds the model's parameters, every metric of
``ValueTrainingResult.metrics`` (``test_*``, ``baseline_<name>_*``, ``origin_<k>_*``,
``delta_normalized_gini_<baseline>*``), the decile plot and the notes. The new
version becomes ``champion`` only when it loses to no baseline (no Gini
interval wholly below zero) and, when a champion exists that was tested on the
same origins, beats its normalized Gini; otherwise it stays a challenger and the
reason is tagged and returned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from training.tracking.gate import gate
from training.tracking.model_io import model_pip_requirements
from training.tracking.model_registry import CHAMPION_ALIAS
from training.tracking.runs import (
    TrackingConfig,
    configure_tracking,
    log_figures,
    log_metrics,
    start_run,
)
from training.tracking.value_tracking import (
    VALUE_MODEL_NAME,
    log_value_model,
    register_value_model,
    value_champion,
)

GATE_METRIC = "test_normalized_gini"


@dataclass(frozen=True)
class ValueRecord:
    """Where a value run went: the MLflow run, the model version and the gate's decision."""

    run_id: str
    version: str
    promoted: bool
    reason: str


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's own INFO lines and warnings held back: the command prints what matters."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _origins(result: Any) -> list[str]:
    origins = sorted(result.evaluation.per_origin["origin"].unique())
    return [str(o.date()) for o in origins]


#: Metrics ``winback models list`` shows for a value model (mean over origins).
LISTED_METRICS = ("normalized_gini", "spearman", "top_decile_capture")


def _listing_tags(result: Any, promoted: bool, reason: str) -> dict[str, str]:
    """The version tags the registry listing reads, as the classifiers' versions have them."""
    metrics = result.metrics()
    tags = {
        "role": "champion" if promoted else "challenger",
        "gate_reason": reason,
        "test_cutoff": _origins(result)[-1],
    }
    for name in LISTED_METRICS:
        if f"test_{name}" in metrics:
            tags[f"metric.{name}"] = repr(float(metrics[f"test_{name}"]))
    return tags


def value_gate(result: Any, champion: Any, client: Any) -> tuple[bool, str]:
    """Whether the new value model may become champion, and why (pure apart from reading tags)."""
    losing = result.loses_to()
    if losing:
        return False, f"loses to {', '.join(losing)}: {result.verdict()}"
    new = result.metrics().get(GATE_METRIC)
    if champion is None:
        return True, f"first value model ({result.verdict()})"
    tags = champion.tags or {}
    if tags.get("test_origins") != json.dumps(_origins(result)):
        return True, (
            f"{result.verdict()}; the champion v{champion.version} was tested on other origins "
            f"({tags.get('test_origins')}), so it is not compared"
        )
    old = client.get_run(champion.run_id).data.metrics.get(GATE_METRIC)
    decision = gate(new, old, metric="normalized Gini")
    return decision.promote, decision.reason


def record_value_run(result: Any, tracking: TrackingConfig | None = None) -> ValueRecord:
    """Log the run, register the model as ``winback-value`` and move the champion if it earns it."""
    import mlflow  # noqa: F401 (configures its loggers on import: before quieting them)

    with quiet_mlflow():
        return _record(result, tracking or TrackingConfig())


def _record(result: Any, tracking: TrackingConfig) -> ValueRecord:
    import mlflow

    configure_tracking(tracking)
    client = mlflow.MlflowClient()
    champion = value_champion(client)
    with start_run(VALUE_MODEL_NAME, tracking, tags={"target": "value"}) as run:
        mlflow.log_params({k: json.dumps(v) if isinstance(v, list) else v
                           for k, v in result.model.describe().items()})  # fmt: skip
        log_metrics(result.metrics())
        log_figures(result.figures())
        mlflow.set_tags({"verdict": result.verdict(), "notes": "; ".join(result.notes) or "none"})
        uri = log_value_model(result.model, pip_requirements=model_pip_requirements())
        version = register_value_model(client, uri, run.info.run_id)
    client.set_model_version_tag(
        VALUE_MODEL_NAME, version, "test_origins", json.dumps(_origins(result))
    )
    promoted, reason = value_gate(result, champion, client)
    for key, value in _listing_tags(result, promoted, reason).items():
        client.set_model_version_tag(VALUE_MODEL_NAME, version, key, value)
    if result.loses_to():
        client.set_model_version_tag(
            VALUE_MODEL_NAME, version, "loses_to", ",".join(result.loses_to())
        )
    if promoted:
        client.set_registered_model_alias(VALUE_MODEL_NAME, CHAMPION_ALIAS, version)
    return ValueRecord(run.info.run_id, str(version), promoted, reason)
