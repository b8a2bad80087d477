"""What is registered: every winback model version and the champion's history, as ``winback models list`` shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from training.tracking.model_registry import (
    REGISTERED_KINDS,
    _client,
    _history,
    champion,
    registered_model_name,
)

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


@dataclass(frozen=True)
class ModelSummary:
    """One registered version, as ``winback models list`` shows it."""

    target: str
    name: str
    version: str
    role: str
    is_champion: bool
    test_cutoff: str
    metrics: dict[str, float]
    gate_reason: str
    run_id: str
    created_at: str
    loses_to: str = ""


def _summary(target: str, mv: ModelVersion, champion_version: str | None) -> ModelSummary:
    tags = mv.tags or {}
    metrics = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                metrics[key.removeprefix("metric.")] = float(value)
            except ValueError:
                continue
    is_champion = champion_version is not None and str(mv.version) == champion_version
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
        timespec="seconds"
    )
    return ModelSummary(
        target=target,
        name=mv.name,
        version=str(mv.version),
        role="champion" if is_champion else tags.get("role", "registered"),
        is_champion=is_champion,
        test_cutoff=tags.get("test_cutoff", ""),
        metrics=metrics,
        gate_reason=tags.get("gate_reason", ""),
        run_id=mv.run_id or "",
        created_at=created,
        loses_to=tags.get("loses_to", ""),
    )


def list_models(
    target: str | None = None, *, client: MlflowClient | None = None
) -> list[ModelSummary]:
    """Every registered version of the winback models (one target, or all), newest first."""
    client = _client(client)
    targets = [target] if target is not None else list(REGISTERED_KINDS)
    out: list[ModelSummary] = []
    for each in targets:
        name = registered_model_name(each)
        current = champion(each, client=client)
        current_version = None if current is None else str(current.version)
        versions = client.search_model_versions(f"name = '{name}'")
        for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
            out.append(_summary(each, mv, current_version))
    return out


def champion_history(target: str, *, client: MlflowClient | None = None) -> list[dict[str, Any]]:
    """The recorded moves of the champion alias (oldest first)."""
    from mlflow.exceptions import MlflowException

    client = _client(client)
    try:
        return _history(client, registered_model_name(target))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
