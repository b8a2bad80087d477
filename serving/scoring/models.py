"""The served models: each target's champion (or pinned version) loaded once from the MLflow registry.

:class:`ServedModels` holds the three targets' models with where they came from
(version, training run, test metrics) and the union of their feature sets.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet, union_feature_sets
from serving.config import TARGETS, ServingConfig

logger = logging.getLogger("winback.serving.scoring")


class ServingSetupError(RuntimeError):
    """Something scoring or serving needs is missing; the message says how to create it."""


class ScoringModel(Protocol):
    """What serving needs from a model (``training.model.classifier.WinbackClassifier`` has it)."""

    feature_set_: FeatureSet

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame: ...


@dataclass(frozen=True)
class ServedModel:
    """One loaded model with where it came from."""

    target: str
    model: Any
    name: str
    version: str
    trained_at: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None
    run_metrics: Mapping[str, float] = field(default_factory=dict)
    #: The training run's ``verdict`` and ``loses_to`` tags (when training set them).
    run_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def feature_set(self) -> FeatureSet:
        return self.model.feature_set_


@dataclass(frozen=True)
class ServedModels:
    """The models of the three targets, loaded once."""

    models: Mapping[str, ServedModel]
    #: The ``winback-value`` champion (``serving.scoring.value.ServedValueModel``), if any.
    value: Any = None
    _unions: dict[tuple[str, ...], FeatureSet] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __getitem__(self, target: str) -> ServedModel:
        return self.models[target]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for t in TARGETS if t in self.models)

    def feature_set(self, targets: Sequence[str] | None = None) -> FeatureSet:
        """The union of the targets' feature sets (order: first appearance).

        Built once per combination of targets (every posted-rows request asks).
        """
        targets = self.targets if targets is None else tuple(targets)
        union = self._unions.get(targets)
        if union is None:
            union = self._unions[targets] = self._union(targets)
        return union

    def _union(self, targets: tuple[str, ...]) -> FeatureSet:
        sets = [self.models[t].feature_set for t in targets]
        return union_feature_sets(sets, "+".join(fs.name for fs in sets))

    def versions(self) -> dict[str, str]:
        return {t: m.version for t, m in self.models.items()}

    def feature_set_names(self) -> dict[str, str]:
        return {t: m.feature_set.name for t, m in self.models.items()}


def _train_command(target: str) -> str:
    return f"winback train --target {target}"


def check_registry_exists(tracking_uri: str) -> None:
    """Fail fast when the tracking URI points at a SQLite file that does not exist.

    MLflow would otherwise create an empty registry and report no champion,
    hiding the real cause (wrong working directory or no training yet).
    """
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///") :])
        if not path.exists():
            raise ServingSetupError(
                f"no MLflow model registry at {str(path)!r}: train the models first "
                f"({'; '.join(_train_command(t) for t in TARGETS)}) in this working "
                f"directory, or set MLFLOW_TRACKING_URI / WINBACK_HOME to where they were trained"
            )


def load_served_models(
    config: ServingConfig,
    *,
    targets: Sequence[str] | None = None,
    tracking_uri: str | None = None,
) -> ServedModels:
    """Load each target's champion (or its pinned version) from the MLflow registry.

    ``targets`` None means every target that has a champion: a shop whose history
    cannot support one (reactivation on a one-year log) is served without it,
    with a warning naming the command that would create it.

    Raises
    ------
    ServingSetupError
        When the registry, a pinned version, a champion of a requested target or
        every champion is missing, naming the command that creates it.
    """
    from mlflow.tracking import MlflowClient

    from training.tracking import runs

    track = (
        tracking_config(config)
        if tracking_uri is None
        else runs.TrackingConfig(root=str(config.home / "mlruns"), tracking_uri=tracking_uri)
    )
    tracking_uri = track.resolved_tracking_uri()
    check_registry_exists(tracking_uri)  # before MLflow creates an empty store
    runs.configure_tracking(track)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=track.resolved_registry_uri())
    loaded, missing = {}, []
    for target in TARGETS if targets is None else targets:
        version = _registry_version(client, target, config, tracking_uri, required=bool(targets))
        if version is None:
            missing.append(target)
            continue
        loaded[target] = _served_model(client, target, version)
    if not loaded:
        raise ServingSetupError(
            f"no champion model in the registry at {tracking_uri}: create them with "
            "`winback train` (or `winback demo`)"
        )
    for target in missing:
        logger.warning(
            "no champion for target %r: serving %s without it (create one with `%s`)",
            target,
            ", ".join(loaded),
            _train_command(target),
        )
    from serving.scoring.value import load_value_champion

    return ServedModels(loaded, value=load_value_champion(client))


def _registry_version(
    client: Any, target: str, config: ServingConfig, tracking_uri: str, *, required: bool
) -> Any:
    """The registry version to serve for ``target``: pinned, else the champion.

    ``None`` when there is no champion and the target was not asked for by name.
    """
    from training.tracking import model_registry

    name = model_registry.registered_model_name(target)
    pinned = config.model_versions.get(target)
    if pinned is not None:
        try:
            return client.get_model_version(name, str(pinned))
        except Exception as exc:  # MLflow raises its own RestException subclasses
            raise ServingSetupError(
                f"pinned model version {name} v{pinned} (target {target!r}) is not in the "
                f"registry at {tracking_uri}: list versions with `winback models list` or "
                f"unpin it (WINBACK_MODEL_VERSIONS)"
            ) from exc
    version = model_registry.champion(target, client=client)
    if version is None and required:
        raise ServingSetupError(
            f"no champion model for target {target!r} ({name}@champion) in the registry "
            f"at {tracking_uri}: create one with `{_train_command(target)}`"
        )
    return version


def _served_model(client: Any, target: str, version: Any) -> ServedModel:
    """Load one registry version with its training run's metrics and verdict."""
    from training.tracking import model_io, model_registry

    name = model_registry.registered_model_name(target)
    model = model_io.load_model(f"models:/{name}/{version.version}")
    run = training_run(client, version.run_id)
    run_metrics = {} if run is None else {k: float(v) for k, v in run.data.metrics.items()}
    logger.info(
        "loaded %s version %s (feature set %s)", name, version.version, model.feature_set_.name
    )
    return ServedModel(
        target=target,
        model=model,
        name=name,
        version=str(version.version),
        trained_at=run_started_at(run),
        metrics=_version_metrics(version, run_metrics),
        run_id=version.run_id,
        run_metrics=run_metrics,
        run_tags=verdict_tags(run),
    )


def tracking_config(config: ServingConfig) -> Any:
    """The ``training.tracking.runs.TrackingConfig`` of the served working directory.

    ``MLFLOW_TRACKING_URI`` wins when set; otherwise ``<home>/mlruns``.
    """
    from training.tracking.runs import TrackingConfig

    return TrackingConfig(root=str(config.home / "mlruns"))


def training_run(client: Any, run_id: str | None) -> Any:
    """The MLflow run a model version came from, read once at load; ``None`` if unreadable."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:  # a deleted run must not stop serving
        logger.warning("cannot read training run %s", run_id)
        return None


#: Training-run tags ``/models`` shows: the one-line verdict and the baselines the model loses to.
VERDICT_TAGS = ("verdict", "loses_to")


def verdict_tags(run: Any) -> dict[str, str]:
    """The run's :data:`VERDICT_TAGS` that are set (none for an unreadable run)."""
    tags = {} if run is None else dict(run.data.tags or {})
    return {k: str(tags[k]) for k in VERDICT_TAGS if k in tags}


def run_started_at(run: Any) -> str | None:
    """When the training run started (ISO, UTC), or None."""
    start = None if run is None else run.info.start_time
    return dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC).isoformat() if start else None


def _version_metrics(version: Any, run_metrics: Mapping[str, float]) -> dict[str, float]:
    """Test metrics of a model version: its ``metric.*`` tags, else its run's ``test*`` metrics."""
    out = {}
    for key, value in (getattr(version, "tags", None) or {}).items():
        if key.startswith("metric."):
            try:
                out[key[len("metric.") :]] = float(value)
            except ValueError:
                continue
    if out:
        return out
    return {k: v for k, v in run_metrics.items() if k.startswith("test")}
