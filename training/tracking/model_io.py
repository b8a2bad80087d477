"""Logging a fitted classifier to MLflow and loading it back: the input encoding, the pyfunc wrapper, the integrity digest."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from training.tracking.runs import TRACKED_PACKAGES, package_versions

#: What the logged model needs at load time: the tracked packages but winback itself
#: (installed separately: it is not on a package index) and the tuner.
MODEL_REQUIREMENTS = tuple(
    p for p in TRACKED_PACKAGES if p not in ("winback", "optuna", "optuna-integration")
)


#: Artifact name of the model inside a run.
MODEL_ARTIFACT_PATH = "model"


def model_pip_requirements() -> list[str]:
    """Pinned pip requirements for a logged model (explicit: inference is slow)."""
    versions = package_versions()
    return [f"{p}=={versions[p]}" for p in MODEL_REQUIREMENTS if p in versions]


def encode_model_input(frame: pd.DataFrame, feature_set: FeatureSet | None = None) -> pd.DataFrame:
    """The model's input as MLflow sees it: feature columns only, categoricals as strings.

    Category columns become Python strings (``None`` where missing), because a
    pandas ``category`` column turns into ``string`` in a signature and pyfunc
    then rejects category input. The index (customer ids) is dropped, so no
    identifier reaches the artifact.
    """
    columns = feature_set.names if feature_set is not None else list(frame.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"model input lacks feature columns {missing}: pass a frame with the "
            f"columns of feature set {feature_set.name if feature_set else '?'!r}"
        )
    out = frame.loc[:, columns].reset_index(drop=True)
    categorical = set(feature_set.categorical) if feature_set is not None else set()
    for column in out.columns:
        dtype = out[column].dtype
        if column in categorical or isinstance(dtype, pd.CategoricalDtype):
            values = out[column].astype(object)
            out[column] = values.where(out[column].notna(), None).astype(object)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            out[column] = out[column].astype("float64")
    return out


def decode_model_input(frame: pd.DataFrame, feature_set: FeatureSet | None) -> pd.DataFrame:
    """The inverse of :func:`encode_model_input`: string categoricals back to ``category``.

    The classifier maps categories to the fixed lists it learned in ``fit``;
    here they only need to be categoricals again.
    """
    if feature_set is None:
        return frame
    out = frame.copy()
    for column in feature_set.categorical:
        if column in out.columns and not isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("category")
    for column in feature_set.names:
        if column in out.columns and column not in feature_set.categorical:
            out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
    return out


def synthetic_input_example(frame: pd.DataFrame) -> pd.DataFrame:
    """One made-up row for a model's input example: each feature's median (or commonest value).

    The example is stored with the model and shown by MLflow, so it must not be
    a customer: medians of numeric columns and the most frequent value of the
    others describe the training data without being anyone's row.
    """
    row: dict[str, Any] = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            median = values.median()
            row[column] = float(median) if pd.notna(median) else np.nan
        else:
            common = values.dropna().mode()
            row[column] = common.iloc[0] if len(common) else None
    keep = {c: frame[c].dtype for c in frame.columns if pd.api.types.is_bool_dtype(frame[c].dtype)}
    return pd.DataFrame([row], columns=frame.columns).astype(keep)


def _positive_probability(probabilities: Any) -> np.ndarray:
    array = np.asarray(probabilities, dtype=float)
    if array.ndim == 2:
        array = array[:, -1]
    return array


def python_model_class(name: str, attribute: str, predict: Callable[[Any, pd.DataFrame], Any]):
    """An MLflow pyfunc class named ``name`` carrying one fitted object as ``attribute``.

    ``predict(inner, frame)`` answers the pyfunc's ``predict``. The class is
    made on first use, so importing a module does not import MLflow; the
    module that names it serves it from its ``__getattr__`` so pickles find
    it. Our signatures are explicit, so MLflow's type-hint check of
    ``predict`` (and its warning) is skipped.
    """
    import mlflow.pyfunc

    def __init__(self, inner: Any) -> None:
        setattr(self, attribute, inner)

    def predict_(self, context, model_input, params=None):  # noqa: ARG001 (pyfunc contract)
        return predict(getattr(self, attribute), pd.DataFrame(model_input))

    module, _, qualname = name.rpartition(".")
    return type(
        qualname,
        (mlflow.pyfunc.PythonModel,),
        {
            "__init__": __init__,
            "predict": predict_,
            "_skip_type_hint_validation": True,
            "__module__": module,
            "__qualname__": qualname,
            "__doc__": f"MLflow pyfunc wrapper carrying a whole fitted model as ``{attribute}``.",
        },
    )


def load_python_model(uri: str, attribute: str, hint: str) -> Any:
    """The fitted object inside a logged or registered pyfunc, as ``attribute``.

    A registered version is unpickled only when its files still have the
    SHA-256 recorded at registration (``training.tracking.integrity``).
    ``hint`` names the function that logs such models, for the error.
    """
    import mlflow

    from training.tracking.integrity import verified_download

    with tempfile.TemporaryDirectory() as folder:
        # No requirement check: it costs a scan of the installed packages per model, and
        # commands print their own messages, not MLflow's warnings.
        local = str(verified_download(uri, folder))
        pyfunc = mlflow.pyfunc.load_model(local, suppress_warnings=True)
    inner = getattr(pyfunc.unwrap_python_model(), attribute, None)
    if inner is None:
        raise TypeError(
            f"model {uri!r} is not a winback model of this kind (no {attribute} inside its "
            f"pyfunc wrapper); log such models with {hint}"
        )
    return inner


def _classifier_probability(classifier: Any, frame: pd.DataFrame) -> np.ndarray:
    feature_set = getattr(classifier, "feature_set_", None)
    return _positive_probability(classifier.predict_proba(decode_model_input(frame, feature_set)))


def __getattr__(name: str):
    # Pickles of logged classifiers name ``training.tracking.model_io.WinbackPythonModel``.
    if name == "WinbackPythonModel":
        cls = python_model_class(f"{__name__}.{name}", "classifier", _classifier_probability)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log_model(
    model: Any,
    *,
    input_example: pd.DataFrame,
    registered_model_name: str | None = None,
    name: str = MODEL_ARTIFACT_PATH,
) -> str:
    """Log a fitted ``WinbackClassifier`` to the active run and return its model URI.

    The model is stored as an MLflow pyfunc whose ``predict`` returns
    calibrated probabilities (the calibrator travels inside the classifier),
    with explicit pinned ``pip_requirements`` (inferring them takes seconds),
    and a signature inferred from ``input_example`` with categoricals encoded
    as strings. The stored example is one synthetic row (feature medians, see
    :func:`synthetic_input_example`): never a customer's row or id.

    Parameters
    ----------
    model
        Fitted classifier with ``predict_proba`` and ``feature_set_``.
    input_example
        The training features (extra columns are dropped); only their medians
        and commonest values are stored.
    registered_model_name
        Also register the model under this name (usually let
        :func:`training.tracking.model_registry.register` do it, which records the test cutoff).
    name
        Artifact name of the model in the run.
    """
    import mlflow
    from mlflow.models import infer_signature

    feature_set = getattr(model, "feature_set_", None)
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"cannot log {type(model).__name__}: it has no predict_proba (not fitted?)")
    if input_example.empty:
        raise ValueError("input_example has no rows: pass the training features")
    example = synthetic_input_example(encode_model_input(input_example, feature_set))
    wrapper = __getattr__("WinbackPythonModel")(model)
    output = wrapper.predict(None, example)
    signature = infer_signature(example, output)
    metadata_ = {"feature_set": feature_set.to_dict()} if feature_set is not None else None
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=wrapper,
        signature=signature,
        input_example=example,
        pip_requirements=model_pip_requirements(),
        registered_model_name=registered_model_name,
        metadata=metadata_,
    )
    return info.model_uri


def load_model(uri: str) -> Any:
    """Load a logged or registered model back as the native ``WinbackClassifier``.

    Accepts any MLflow model URI (``models:/winback-churn@champion``,
    ``models:/winback-churn/3``, ``runs:/<run_id>/model``, ``models:/m-...``);
    registered versions are checked against their digest first.
    """
    return load_python_model(uri, "classifier", "training.tracking.model_io.log_model")
