"""The uplift estimates a win-back list ranks by: a named model, ``WINBACK_UPLIFT_MODEL``, or the champion."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.lists.build import score_frame


def uplift_estimates(
    model: Any, features: pd.DataFrame, scores: pd.DataFrame | None = None
) -> pd.Series:
    """Estimated uplift of a contact for each (lapsed, when ``scores`` given) customer.

    ``model`` is a ``training.uplift.model.UpliftModel``; ``features`` the score table's
    feature values by ``customer_id``. Only lapsed customers are estimated when
    the score table is given (the uplift model learnt from lapsed contacts).
    """
    frame = features
    if scores is not None:
        s = score_frame(scores)
        lapsed = s.index[s["is_lapsed"].astype(bool).to_numpy()]
        frame = features.loc[features.index.intersection(lapsed)]
    if len(frame) == 0:
        return pd.Series(dtype="float64", name="uplift")
    values = model.predict_uplift(frame)
    index = pd.Index(frame.index.astype("string"), name="customer_id")
    return pd.Series(np.asarray(values, dtype="float64"), index=index, name="uplift")


#: Environment variable naming the uplift model the service's winback lists use.
ENV_UPLIFT_MODEL = "WINBACK_UPLIFT_MODEL"


@functools.lru_cache(maxsize=4)
def _cached_uplift_model(location: str, store: str) -> Any:
    """The model at an MLflow ``location`` of the ``store`` (tracking, registry URI) it is in.

    The store is part of the key: ``models:/winback-uplift/1`` of one working
    directory is not that of another.
    """
    from training.uplift.record import load_uplift_model

    return load_uplift_model(location)


def registry_uplift_location(tracking: Any = None) -> str | None:
    """``models:/winback-uplift/<version>`` of the champion uplift model, or None.

    None when the MLflow store does not exist (no empty store is created) or
    ``winback-uplift`` has no champion yet.
    """
    from training.tracking.runs import TrackingConfig, configure_tracking
    from training.uplift.record import champion_uplift_location

    config = tracking or TrackingConfig()
    uri = config.resolved_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None
    configure_tracking(config)
    return champion_uplift_location()


@dataclass(frozen=True)
class ListUplift:
    """The uplift estimates a win-back list uses, and what the manifest says about them."""

    estimates: pd.Series | None = None
    model_version: str | None = None
    note: str | None = None


def list_uplift(
    kind: str,
    scores: pd.DataFrame,
    features: pd.DataFrame | None,
    *,
    uplift_model: str | Path | None = None,
    tracking: Any = None,
    environ: Mapping[str, str] | None = None,
) -> ListUplift:
    """Uplift estimates for a list: the given model, else ``WINBACK_UPLIFT_MODEL``, else the champion.

    Only ``winback`` lists use uplift. The champion of ``winback-uplift`` is
    the default; when it cannot score this score table's features (a feature
    file is missing, or was written for other columns) the list falls back to
    reactivation x value and ``note`` says why. A model named explicitly must
    work: its errors are raised. Registry and ``runs:/`` models are cached (they
    never change); a file is read each time.
    """
    if kind != "winback":
        return ListUplift()
    env = os.environ if environ is None else environ
    location = str(uplift_model) if uplift_model is not None else env.get(ENV_UPLIFT_MODEL)
    explicit = bool(location)
    if not explicit:
        location = registry_uplift_location(tracking)
        if location is None:
            return ListUplift()
    version = location.removeprefix("models:/")
    if features is None:
        message = (
            "the uplift model needs the score table's feature file: rerun "
            "`winback score --as-of <date>`"
        )
        if explicit:
            raise FileNotFoundError(message)
        return ListUplift(note=f"{version} not used: {message}")
    if location.startswith(("models:/", "runs:/")):
        import mlflow

        model = _cached_uplift_model(
            location, f"{mlflow.get_tracking_uri()} {mlflow.get_registry_uri()}"
        )
    else:
        from training.uplift.record import load_uplift_model

        model = load_uplift_model(location)
    try:
        estimates = uplift_estimates(model, features, scores)
    except ValueError as exc:
        if explicit:
            raise
        return ListUplift(note=f"{version} not used: {exc}")
    return ListUplift(estimates=estimates, model_version=version)
