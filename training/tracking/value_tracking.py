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

VALUE_MODEL_NAME = "winback-value"
VALUE_ARTIFACT_PATH = "value_model"


def _python_model_class():
    import mlflow.pyfunc

    class WinbackValuePythonModel(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc wrapper carrying a whole ``FittedValueModel``."""

        _skip_type_hint_validation = True

        def __init__(self, value_model: Any):
            self.value_model = value_model

        def predict(self, context, model_input, params=None):  # noqa: ARG002 (pyfunc contract)
            frame = pd.DataFrame(model_input)
            return self.value_model.predict(frame, frame[list(SUMMARY_COLUMNS)])

    WinbackValuePythonModel.__module__ = __name__
    WinbackValuePythonModel.__qualname__ = "WinbackValuePythonModel"
    return WinbackValuePythonModel


def __getattr__(name: str):
    # Built lazily so importing this module does not import MLflow, while pickles
    # can still find ``training.tracking.value_tracking.WinbackValuePythonModel``.
    if name == "WinbackValuePythonModel":
        cls = _python_model_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log_value_model(
    model: Any, *, pip_requirements: list[str], registered_model_name: str | None = None
) -> str:
    """Log a fitted value model to the active MLflow run; returns its model URI.

    No input example is stored: it would copy customers' rows into the artifact.
    """
    import mlflow

    wrapper = __getattr__("WinbackValuePythonModel")(model)
    info = mlflow.pyfunc.log_model(
        name=VALUE_ARTIFACT_PATH,
        python_model=wrapper,
        pip_requirements=pip_requirements,
        registered_model_name=registered_model_name,
        metadata={"horizon_days": model.horizon_days, "value_basis": model.value_basis},
    )
    return info.model_uri


def load_value_model(uri: str) -> Any:
    """The ``FittedValueModel`` inside a logged or registered value model."""
    import mlflow

    wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    model = getattr(wrapper, "value_model", None)
    if model is None:
        raise TypeError(
            f"model {uri!r} is not a winback value model; log it with "
            "training.tracking.value_tracking.log_value_model"
        )
    return model


def value_champion(client: Any) -> Any:
    """The ``winback-value`` version with the ``champion`` alias, or None when there is none."""
    try:
        return client.get_model_version_by_alias(VALUE_MODEL_NAME, "champion")
    except Exception:  # MLflow raises its own RestException when the name or alias is unknown
        return None
