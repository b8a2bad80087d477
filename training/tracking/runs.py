"""MLflow tracking for training runs: where runs go, what each run records.

Every training run records enough to be trusted and repeated: the config, the
feature set (name and typed columns), a fingerprint of the input data and the
cutoffs, the code version, the package versions, metrics, plots and the model
itself (calibrator included). The store is local: an SQLite database under
``./mlruns`` of the working directory with artifacts beside it, so no server is
needed and the MLflow UI can be pointed at it
(``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``).

Nothing here runs at import time, and ``mlflow`` itself is imported inside the
functions that need it (it takes seconds to import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.redaction import redact_credentials
from features.targets import TARGET_NAMES
from training.tracking.fingerprint import ParquetFolder, _cutoff_text, data_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import mlflow

#: Targets winback trains classifiers for.
TARGETS = TARGET_NAMES

#: Environment switches that stop MLflow from calling its telemetry host.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

#: Packages whose versions every run records (and the model's pip requirements pin).
TRACKED_PACKAGES = (
    "winback",
    "lightgbm",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "pyarrow",
    "duckdb",
    "mlflow",
    "optuna",
    "optuna-integration",
    "cloudpickle",
)


class TrackingConfig(BaseModel):
    """Where MLflow keeps runs, artifacts and registered models.

    Defaults work out of the box: ``sqlite:///<cwd>/mlruns/mlflow.db`` for runs
    and the registry, ``<cwd>/mlruns/artifacts`` for artifacts, where ``<cwd>``
    is the working directory when :func:`configure_tracking` is called (never
    when this module is imported). ``MLFLOW_TRACKING_URI`` in the environment
    overrides the default tracking URI; an explicit ``tracking_uri`` overrides
    both.

    Attributes
    ----------
    root
        Folder (relative to the working directory, or absolute) holding the
        SQLite database, the artifacts and the Optuna studies.
    tracking_uri
        MLflow tracking URI; ``None`` means ``MLFLOW_TRACKING_URI`` or the
        SQLite default under ``root``.
    registry_uri
        Model registry URI; ``None`` means the tracking URI.
    artifact_root
        Folder (or URI) under which each experiment keeps its artifacts;
        ``None`` means ``<root>/artifacts``.
    register_model
        ``False`` logs training runs without touching the model registry.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = "mlruns"
    tracking_uri: str | None = None
    registry_uri: str | None = None
    artifact_root: str | None = None
    register_model: bool = True

    @field_validator("root")
    @classmethod
    def _root_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("tracking.root must be a folder path, e.g. 'mlruns'")
        return value

    def root_path(self) -> Path:
        """The absolute tracking folder, resolved against the working directory now."""
        return Path(self.root).expanduser().resolve()

    def resolved_tracking_uri(self) -> str:
        """The tracking URI to use: explicit, else ``MLFLOW_TRACKING_URI``, else SQLite."""
        if self.tracking_uri:
            return self.tracking_uri
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return "sqlite:///" + (self.root_path() / "mlflow.db").as_posix()

    def resolved_registry_uri(self) -> str:
        """The registry URI to use: explicit, else the tracking URI."""
        return self.registry_uri or self.resolved_tracking_uri()

    def resolved_artifact_root(self) -> str:
        """The artifact root as a URI (``file://...`` for local folders)."""
        if self.artifact_root and "://" in self.artifact_root:
            return self.artifact_root.rstrip("/")
        folder = (
            Path(self.artifact_root).expanduser().resolve()
            if self.artifact_root
            else self.root_path() / "artifacts"
        )
        return folder.as_uri()

    def optuna_storage(self, target: str) -> str:
        """SQLite URL of the Optuna study store for ``target`` under ``root``."""
        return "sqlite:///" + (self.root_path() / f"optuna-{target}.db").as_posix()


def configure_tracking(config: TrackingConfig | None = None) -> str:
    """Point MLflow at the configured store and return the tracking URI.

    Creates the tracking folder when the store is the local default, sets the
    tracking and registry URIs, and turns MLflow telemetry off unless the user
    already chose (the environment variables in :data:`TELEMETRY_OFF`).
    Call it at the start of a command, never at import.
    """
    import mlflow

    config = config or TrackingConfig()
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    uri = config.resolved_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    artifact_root = config.resolved_artifact_root()
    if artifact_root.startswith("file://"):
        Path(_file_uri_to_path(artifact_root)).mkdir(parents=True, exist_ok=True)
    # MLflow copies the URI into MLFLOW_TRACKING_URI (for subprocesses); left there,
    # every later TrackingConfig in this process would take it for the user's
    # choice and write to this store. Keep the environment as the user set it.
    user_choice = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(config.resolved_registry_uri())
    if user_choice is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_choice
    return uri


def _file_uri_to_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


def experiment_name(target: str) -> str:
    """The MLflow experiment (and registered model) name of a target: ``winback-<target>``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {list(TARGETS)}")
    return f"winback-{target}"


def ensure_named_experiment(name: str, config: TrackingConfig | None = None) -> str:
    """Create (if needed) the experiment ``name``, artifacts under ``<artifact_root>/<name>``; its id.

    For the experiments that are not a target's (``winback-lists``, ``winback-uplift``).
    """
    import mlflow

    config = config or TrackingConfig()
    client = mlflow.MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = f"{config.resolved_artifact_root()}/{name}"
    return client.create_experiment(name, artifact_location=location)


@contextlib.contextmanager
def start_run(
    experiment: str,
    config: TrackingConfig | None = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open an MLflow run in ``experiment``, tagged with the code and package versions.

    The one way a run starts: configure tracking, create or find the experiment
    (artifacts under ``<artifact_root>/<experiment>``), select it, start the
    run and record the environment. The run ends (FAILED if an exception
    escapes) when the block exits.
    """
    import mlflow

    config = config or TrackingConfig()
    configure_tracking(config)
    experiment_id = ensure_named_experiment(experiment, config)
    mlflow.set_experiment(experiment_id=experiment_id)
    run_tags = {"code_version": code_version(), **dict(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        log_environment()
        yield run


def start_training_run(
    target: str,
    config: TrackingConfig | None = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> contextlib.AbstractContextManager[mlflow.ActiveRun]:
    """:func:`start_run` in the target's experiment ``winback-<target>``, tagged ``target``."""
    run_tags = {"target": target, **dict(tags or {})}
    return start_run(experiment_name(target), config, run_name=run_name, tags=run_tags)


# ---------------------------------------------------------------- environment


def _project_root() -> Path:
    """The checkout this module runs from (``training/tracking/runs.py`` is three levels down)."""
    return Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=_project_root(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_version() -> str:
    """The code that trained the model: ``git:<sha>[+dirty]`` in a checkout, else the version.

    The checkout is the one containing this package (not the working
    directory), so runs started from anywhere record the right commit.
    """
    top = _git("rev-parse", "--show-toplevel")
    if top and Path(top).resolve() == _project_root():
        sha = _git("rev-parse", "HEAD")
        if sha:
            dirty = _git("status", "--porcelain", "--untracked-files=no")
            return f"git:{sha}" + ("+dirty" if dirty else "")
    return f"winback=={_installed_version('winback') or 'unknown'}"


def package_versions() -> dict[str, str]:
    """Installed versions of Python and the packages a model's behaviour depends on."""
    versions = {"python": platform.python_version()}
    for package in TRACKED_PACKAGES:
        version = _installed_version(package)
        if version is not None:
            versions[package] = version
    return versions


# ---------------------------------------------------------------- logging helpers


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a config value (pydantic models, dataclasses, dates, paths)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def flatten_params(config: Any, prefix: str = "") -> dict[str, str]:
    """Dotted ``key -> str(value)`` pairs of a (nested) config, for MLflow params."""
    plain = _plain(config)
    if not isinstance(plain, Mapping):
        return {prefix or "value": str(plain)}
    out: dict[str, str] = {}
    for key, value in plain.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, name))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | Mapping) else str(value)
    return out


def log_config(config: Any, *, artifact_file: str = "config.json") -> None:
    """Record a config in the active run: flattened as params, whole as a JSON artifact."""
    import mlflow

    params = {k: redact_credentials(v)[:6000] for k, v in flatten_params(config).items()}
    mlflow.log_params(params)
    mlflow.log_text(redact_credentials(json.dumps(_plain(config), indent=2)), artifact_file)


def log_feature_set(feature_set: FeatureSet) -> None:
    """Record the feature set's name and typed columns (serving checks frames against them)."""
    import mlflow

    mlflow.log_params({"feature_set": feature_set.name, "n_features": len(feature_set.names)})
    mlflow.set_tag("feature_set", feature_set.name)
    mlflow.log_dict(feature_set.to_dict(), "feature_set.json")


def log_data_fingerprint(
    tables: ShopTables | Mapping[str, pd.DataFrame] | pd.DataFrame | ParquetFolder,
    cutoffs: Iterable[Any],
) -> str:
    """Record the data fingerprint (tag + param) and the cutoffs; return the fingerprint."""
    import mlflow

    cutoffs = list(cutoffs)
    fingerprint = data_fingerprint(tables, cutoffs)
    mlflow.set_tag("data_fingerprint", fingerprint)
    mlflow.log_param("data_fingerprint", fingerprint)
    mlflow.log_dict({"cutoffs": sorted({_cutoff_text(c) for c in cutoffs})}, "cutoffs.json")
    return fingerprint


def log_environment() -> None:
    """Record the code version (tag) and package versions (params + artifact)."""
    import mlflow

    versions = package_versions()
    mlflow.set_tag("code_version", code_version())
    mlflow.log_params({f"version.{k}": v for k, v in versions.items()})
    mlflow.log_dict(versions, "package_versions.json")


def log_metrics(metrics: Mapping[str, Any], *, prefix: str = "") -> None:
    """Log the numeric entries of ``metrics`` (others are skipped), names optionally prefixed."""
    import mlflow

    numeric = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float | np.integer | np.floating):
            numeric[f"{prefix}{key}"] = float(value)
    if numeric:
        mlflow.log_metrics(numeric)


def log_figures(figures: Mapping[str, Any], *, folder: str = "plots") -> None:
    """Save matplotlib figures as PNG artifacts ``<folder>/<name>.png`` of the active run."""
    import mlflow

    for name, figure in figures.items():
        figure = getattr(figure, "figure", figure)  # accept Axes too
        file = name if name.endswith(".png") else f"{name}.png"
        mlflow.log_figure(figure, f"{folder}/{file}")


# ---------------------------------------------------------------- model
