"""The uplift model in MLflow: save, log, register as ``winback-uplift`` and gate its champion."""

from __future__ import annotations

import datetime as dt
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.publish import publish_bytes
from training.uplift.fit import UpliftConfig, UpliftResult, fit_campaign_uplift
from training.uplift.model import UpliftModel, plot_qini, qini_coefficient

#: MLflow experiment of uplift runs, and the artifact holding the pickled model.
UPLIFT_EXPERIMENT = "winback-uplift"
UPLIFT_ARTIFACT = "uplift_model/model.pkl"

#: The uplift model's name in ``training.tracking.model_registry`` (registered model ``winback-uplift``).
UPLIFT_TARGET = "uplift"

#: The metric the registry gate compares (held-out Qini coefficient).
GATE_METRIC = "qini_test"


def save_uplift_model(model: UpliftModel, path: str | Path) -> Path:
    """Pickle the model to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    publish_bytes(path, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_uplift_model(location: str | Path) -> UpliftModel:
    """An uplift model from a local pickle or an MLflow URI.

    ``runs:/<run_id>`` (or a path inside the run) and registry URIs such as
    ``models:/winback-uplift/3`` or ``models:/winback-uplift@champion`` work; a
    registered version is unpickled only when its file still has the SHA-256
    recorded at registration (``training.tracking.integrity``).
    """
    text = str(location)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        from training.tracking.integrity import verified_download

        if text.startswith("runs:/") and text.rstrip("/").count("/") == 1:
            text = f"{text.rstrip('/')}/{UPLIFT_ARTIFACT}"
        with tempfile.TemporaryDirectory() as folder:
            return _unpickle_uplift(verified_download(text, folder), location)
    return _unpickle_uplift(Path(text), location)


def _unpickle_uplift(path: Path, location: str | Path) -> UpliftModel:
    if path.is_dir():  # a registered version is the folder holding the pickle
        path = path / Path(UPLIFT_ARTIFACT).name
    if not path.is_file():
        raise FileNotFoundError(
            f"no uplift model at {str(location)!r}: train one with `winback train --target "
            f"uplift`, or pass a file, runs:/<run_id> or models:/winback-uplift/<version>"
        )
    with path.open("rb") as handle:
        model = pickle.load(handle)  # noqa: S301 - our own artifact, digest checked
    if not isinstance(model, UpliftModel):
        raise TypeError(f"{location} holds a {type(model).__name__}, not an UpliftModel")
    return model


def log_uplift_model(
    result: UpliftResult,
    *,
    tracking: Any = None,
    tags: dict[str, str] | None = None,
    trained_at: dt.datetime | None = None,
) -> str:
    """Log the model, its config and held-out Qini as a run of ``winback-uplift``; return the run id.

    ``tracking`` is a ``training.tracking.runs.TrackingConfig`` (the default store when None).
    Load the model back with ``load_uplift_model(f"runs:/{run_id}")``.
    """
    import mlflow

    from training.tracking.runs import log_figures, start_run

    run_tags = {"kind": "uplift", "learner": result.config.learner, **(tags or {})}
    with start_run(UPLIFT_EXPERIMENT, tracking, tags=run_tags) as run:
        params = {k: v for k, v in result.config.__dict__.items()}
        params["feature_columns"] = ",".join(result.model.feature_names_)[:6000]
        mlflow.log_params(params)
        mlflow.log_metrics(result.metrics())
        with tempfile.TemporaryDirectory() as folder:
            local = save_uplift_model(result.model, Path(folder) / Path(UPLIFT_ARTIFACT).name)
            mlflow.log_artifact(str(local), artifact_path=str(Path(UPLIFT_ARTIFACT).parent))
        ax = plot_qini(result.qini_curve_test)
        log_figures({"qini_test": ax.figure})
        if trained_at is not None:
            mlflow.set_tag("trained_at", trained_at.isoformat())
        return run.info.run_id


def champion_uplift_location(*, client: Any = None) -> str | None:
    """``models:/winback-uplift/<version>`` of the champion uplift model, or None without one.

    Uses the tracking/registry URIs set by ``training.tracking.runs.configure_tracking``.
    """
    from training.tracking.model_registry import champion

    version = champion(UPLIFT_TARGET, client=client)
    return None if version is None else f"models:/{version.name}/{version.version}"


def champion_qini_on(
    X: pd.DataFrame,
    treatment: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    *,
    client: Any = None,
) -> tuple[str | None, float | None]:
    """``(champion version, its Qini)`` on the given held-out contacts.

    ``(None, None)`` without a champion; ``(version, None)`` when the champion
    cannot score these rows (e.g. it was fitted on columns the table lacks), so
    the gate keeps the new model a challenger rather than compare unlike things.
    """
    location = champion_uplift_location(client=client)
    if location is None:
        return None, None
    version = location.rsplit("/", 1)[-1]
    try:
        uplift = load_uplift_model(location).predict_uplift(X)
    except (FileNotFoundError, ValueError, TypeError):
        return version, None
    return version, qini_coefficient(np.asarray(y, dtype=bool), treatment, uplift)


@dataclass(frozen=True)
class UpliftTraining:
    """A fitted, logged and registered uplift model and the gate's decision."""

    result: UpliftResult
    run_id: str
    version: str
    promoted: bool
    reason: str
    champion_version: str | None = None
    champion_qini: float | None = None


@dataclass(frozen=True)
class UpliftRows:
    """The rows an uplift model was fitted and tested on: features, contacted or not, outcome."""

    X: pd.DataFrame
    treatment: np.ndarray | pd.Series
    y: np.ndarray | pd.Series


def register_uplift(
    result: UpliftResult,
    rows: UpliftRows,
    *,
    test_cutoff: dt.date | dt.datetime | str | pd.Timestamp,
    tracking: Any = None,
    min_improvement: float = 0.0,
    trained_at: dt.datetime | None = None,
) -> UpliftTraining:
    """Log a fitted uplift model, register it as ``winback-uplift`` and gate the champion.

    ``rows`` are the rows ``result`` was fitted and tested on
    (``result.test_mask`` picks the held-out ones). The current champion is
    scored on the *same* held-out rows, and ``training.tracking.model_registry.promote_if_better``
    moves the ``champion`` alias only if the new held-out Qini beats it by more
    than zero and at least ``min_improvement``; otherwise the version is tagged
    ``role=challenger`` with the reason.
    """
    from training.tracking.gate import GateConfig
    from training.tracking.model_registry import promote_if_better, register
    from training.tracking.runs import TrackingConfig, configure_tracking

    tracking = tracking or TrackingConfig()
    run_id = log_uplift_model(result, tracking=tracking, trained_at=trained_at)
    configure_tracking(tracking)
    test = result.test_mask
    champion_version, champion_qini = champion_qini_on(
        rows.X[test],
        np.asarray(rows.treatment, dtype=bool)[test],
        np.asarray(rows.y, dtype=bool)[test],
    )
    metrics = result.metrics()
    version = register(
        run_id,
        UPLIFT_TARGET,
        str(Path(UPLIFT_ARTIFACT).parent),
        test_cutoff=test_cutoff,
        metrics=metrics,
        tags={
            "test_split": (
                f"customers hashed with seed {result.config.random_state}, "
                f"test_share {result.config.test_share}"
            ),
            "learner": result.config.learner,
        },
    )
    decision = promote_if_better(
        UPLIFT_TARGET,
        version,
        metrics,
        None if champion_qini is None else {GATE_METRIC: champion_qini},
        GateConfig(metric=GATE_METRIC, min_improvement=min_improvement),
    )
    return UpliftTraining(
        result=result,
        run_id=run_id,
        version=version,
        promoted=decision.promote,
        reason=decision.reason,
        champion_version=champion_version,
        champion_qini=champion_qini,
    )


def train_uplift(
    tables: ShopTables,
    config: UpliftConfig = UpliftConfig(),
    *,
    feature_set: FeatureSet | None = None,
    tracking: Any = None,
    min_improvement: float = 0.0,
    trained_at: dt.datetime | None = None,
) -> UpliftTraining:
    """Fit on past campaigns (:func:`fit_campaign_uplift`), then :func:`register_uplift`.

    What ``winback train --target uplift`` and ``winback demo`` run. The test
    cutoff recorded with the version is the day of the last contact.
    """
    result, table = fit_campaign_uplift(tables, config, feature_set=feature_set)
    rows = UpliftRows(
        table[table.attrs["feature_columns"]],
        table["treatment"].to_numpy(),
        table["reactivated"].to_numpy(),
    )
    return register_uplift(
        result,
        rows,
        test_cutoff=pd.Timestamp(table["contacted_at"].max()),
        tracking=tracking,
        min_improvement=min_improvement,
        trained_at=trained_at,
    )
