"""Logging the value model to MLflow and loading it back, as ``winback-value``.

The fitted :class:`training.value_fit.FittedValueModel` travels whole inside an
MLflow pyfunc (BG/NBD and Gamma-Gamma parameters, the regressor, the reason
yardsticks), so serving gets exactly what was evaluated. The pyfunc's
``predict`` takes the feature columns plus the BTYD summary columns
(``frequency``, ``recency``, ``T``, ``monetary_value``) and returns the
predicted value over the model's horizon.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from training.evaluation.value_baselines import SUMMARY_COLUMNS
from training.tracking.model_io import load_python_model, python_model_class

VALUE_MODEL_NAME = "winback-value"
VALUE_ARTIFACT_PATH = "value_model"


def _predicted_value(value_model: Any, frame: pd.DataFrame) -> Any:
    return value_model.predict(frame, frame[list(SUMMARY_COLUMNS)])


def __getattr__(name: str):
    # Pickles of logged value models name this module's ``WinbackValuePythonModel``.
    if name == "WinbackValuePythonModel":
        cls = python_model_class(f"{__name__}.{name}", "value_model", _predicted_value)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log_value_model(model: Any, *, pip_requirements: list[str]) -> str:
    """Log a fitted value model to the active MLflow run; returns its model URI.

    No input example is stored: it would copy customers' rows into the artifact.
    Register it with :func:`register_value_model`, which records its digest.
    """
    import mlflow

    wrapper = __getattr__("WinbackValuePythonModel")(model)
    info = mlflow.pyfunc.log_model(
        name=VALUE_ARTIFACT_PATH,
        python_model=wrapper,
        pip_requirements=pip_requirements,
        metadata={"horizon_days": model.horizon_days, "value_basis": model.value_basis},
    )
    return info.model_uri


def register_value_model(client: Any, uri: str, run_id: str) -> str:
    """Register a logged value model as a new version of ``winback-value``, with its SHA-256.

    :func:`load_value_model` unpickles a registered version only when its files
    still have that digest.
    """
    from training.tracking.integrity import DIGEST_TAG, digest_of_uri
    from training.tracking.model_registry import _ensure_registered_model

    _ensure_registered_model(client, VALUE_MODEL_NAME, "value")
    tags = {DIGEST_TAG: digest_of_uri(uri)}
    return str(
        client.create_model_version(VALUE_MODEL_NAME, source=uri, run_id=run_id, tags=tags).version
    )


def load_value_model(uri: str) -> Any:
    """The ``FittedValueModel`` inside a logged or registered value model (digest checked)."""
    return load_python_model(uri, "value_model", "training.tracking.value_tracking.log_value_model")


def value_champion(client: Any) -> Any:
    """The ``winback-value`` version with the ``champion`` alias, or None when there is none."""
    try:
        return client.get_model_version_by_alias(VALUE_MODEL_NAME, "champion")
    except Exception:  # MLflow raises its own RestException when the name or alias is unknown
        return None
