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
import hashlib
import json
import os
import platform
import subprocess
import tempfile
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

#: What the logged model needs at load time (``winback`` itself is installed
#: separately: it is not on a package index).
MODEL_REQUIREMENTS = (
    "mlflow",
    "lightgbm",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "pyarrow",
    "duckdb",
    "cloudpickle",
)

#: Artifact name of the model inside a run.
MODEL_ARTIFACT_PATH = "model"


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
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = "mlruns"
    tracking_uri: str | None = None
    registry_uri: str | None = None
    artifact_root: str | None = None

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


def ensure_experiment(target: str, config: TrackingConfig | None = None) -> str:
    """Create (if needed) and select the target's experiment; return its id.

    A new experiment keeps its artifacts under ``<artifact_root>/winback-<target>``.
    """
    import mlflow

    experiment_id = ensure_named_experiment(experiment_name(target), config)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


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
def start_training_run(
    target: str,
    config: TrackingConfig | None = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open an MLflow run for training ``target``, tagged with code and package versions.

    Configures tracking, selects the target's experiment and yields the active
    run; the run ends (FAILED if an exception escapes) when the block exits.
    """
    import mlflow

    config = config or TrackingConfig()
    configure_tracking(config)
    ensure_experiment(target, config)
    run_tags = {"target": target, "code_version": code_version(), **dict(tags or {})}
    with mlflow.start_run(run_name=run_name, tags=run_tags) as run:
        log_environment()
        yield run


# ---------------------------------------------------------------- fingerprint

_ROW_MIX = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: mixes column hashes per row
_SECOND_KEY = "winback-fp-key-2"  # a second, independent 64-bit hash of each row


_P = np.uint64(0x100000001B3)  # multiplier of the per-string polynomial hash
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)  # hash of a missing value
_STRING_CHUNK_ROWS = 1_000_000  # strings hashed per numpy pass (bounds memory)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole 64-bit word."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _string_hash(series: pd.Series) -> np.ndarray:
    """uint64 hash of each string's UTF-8 bytes, vectorised over Arrow's buffers.

    Hashing 10M strings through Python objects takes tens of seconds; this reads
    the Arrow offsets and bytes directly: a polynomial over the bytes (segmented
    sums), xor the length, then a bit mixer. Missing values share one hash.
    """
    import pyarrow as pa

    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = pd.Series(series.cat.categories.astype(str), dtype=object)
        codes = series.cat.codes.to_numpy()
        category_hashes = np.append(_string_hash(categories), _NULL_HASH)
        return category_hashes[np.where(codes < 0, len(categories), codes)]
    if isinstance(series.array, pd.arrays.ArrowStringArray):
        array = pa.array(series.array)
    else:
        array = pa.array(series.to_numpy(dtype=object), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    n = len(array)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + n + 1]
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.empty(0, dtype=np.uint8)
    )
    for first in range(0, n, _STRING_CHUNK_ROWS):
        last = min(first + _STRING_CHUNK_ROWS, n)
        starts = offsets[first : last + 1] - offsets[first]
        lengths = np.diff(starts)
        raw = data[offsets[first] : offsets[last]]
        longest = int(lengths.max()) if len(lengths) else 0
        powers = np.ones(max(longest, 1), dtype=np.uint64)  # P**0, P**1, ... (wrapping)
        powers[1:] = np.cumprod(np.full(len(powers) - 1, _P, dtype=np.uint64))
        position = np.arange(len(raw), dtype=np.int64) - np.repeat(starts[:-1], lengths)
        weighted = (raw.astype(np.uint64) + np.uint64(1)) * powers[position]
        weighted = np.append(weighted, np.uint64(0))  # keeps reduceat's indices in range
        sums = np.add.reduceat(weighted, starts[:-1])
        sums[lengths == 0] = 0
        out[first:last] = _mix64(sums ^ (lengths.astype(np.uint64) * _NULL_HASH))
    if array.null_count:
        out[np.asarray(array.is_null())] = _NULL_HASH
    return out


def _column_hash(series: pd.Series) -> np.ndarray:
    """Deterministic uint64 hash of each value of one column (by value, not by dtype quirks)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        values = series.dt.tz_localize(None) if isinstance(dtype, pd.DatetimeTZDtype) else series
        ints = values.dt.as_unit("us").to_numpy(dtype="datetime64[us]").view("int64")
        return pd.util.hash_array(ints)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return _string_hash(series)
    return pd.util.hash_pandas_object(series, index=False).to_numpy()


def _frame_digest(frame: pd.DataFrame) -> tuple[int, int]:
    """Two order-independent 64-bit sums over the rows' hashes (a multiset hash)."""
    row = np.zeros(len(frame), dtype=np.uint64)
    for column in sorted(frame.columns):
        row = row * _ROW_MIX ^ _column_hash(frame[column])
    first = int(row.sum(dtype=np.uint64))
    second = int(pd.util.hash_array(row, hash_key=_SECOND_KEY).sum(dtype=np.uint64))
    return first, second


def _cutoff_text(cutoff: Any) -> str:
    return pd.Timestamp(cutoff).strftime("%Y-%m-%d")


def data_fingerprint(
    tables: ShopTables | Mapping[str, pd.DataFrame] | pd.DataFrame,
    cutoffs: Iterable[date | datetime | str | pd.Timestamp] = (),
) -> str:
    """A stable hex hash of the input tables' content and the cutoffs.

    Two runs with the same fingerprint saw the same data: the same rows (in any
    order), the same columns (in any order, with the same dtypes) and the same
    set of cutoff dates. Each row is hashed by value with pandas' deterministic
    hashing and the row hashes are summed, twice with independent keys, which
    is linear in the number of rows (no sort) and independent of row order.

    Parameters
    ----------
    tables
        The canonical shop tables, a mapping of name to frame, or one frame.
    cutoffs
        The cutoff dates the training table is built at.

    Returns
    -------
    str
        32 hex characters.
    """
    if isinstance(tables, ShopTables):
        frames = tables.present()
    elif isinstance(tables, pd.DataFrame):
        frames = {"table": tables}
    else:
        frames = dict(tables)
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(frames):
        frame = frames[name]
        columns = sorted((str(c), str(frame[c].dtype)) for c in frame.columns)
        first, second = _frame_digest(frame)
        header = {"table": name, "rows": len(frame), "columns": columns, "sums": [first, second]}
        digest.update(json.dumps(header, sort_keys=True).encode())
    cutoff_texts = sorted({_cutoff_text(c) for c in cutoffs})
    digest.update(json.dumps({"cutoffs": cutoff_texts}).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- environment


def _project_root() -> Path:
    return Path(__file__).resolve().parent.parent


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


def model_pip_requirements() -> list[str]:
    """Pinned pip requirements for a logged model (explicit: inference is slow)."""
    versions = package_versions()
    return [f"{p}=={versions[p]}" for p in MODEL_REQUIREMENTS if p in versions]


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
    tables: ShopTables | Mapping[str, pd.DataFrame] | pd.DataFrame,
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


def _load_python_model_class():
    import mlflow.pyfunc

    class WinbackPythonModel(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc wrapper carrying a whole fitted ``WinbackClassifier``.

        ``predict`` returns the calibrated probability of the positive class,
        one per row; :func:`load_model` unwraps the classifier itself, which
        serving needs for ``contributions`` (reason codes).
        """

        # Our signature is explicit (inferred from the input example); skip
        # MLflow's type-hint validation of ``predict`` and its warning about it.
        _skip_type_hint_validation = True

        def __init__(self, classifier: Any):
            self.classifier = classifier

        def predict(self, context, model_input, params=None):  # noqa: ARG002 (pyfunc contract)
            feature_set = getattr(self.classifier, "feature_set_", None)
            frame = pd.DataFrame(model_input)
            return _positive_probability(
                self.classifier.predict_proba(decode_model_input(frame, feature_set))
            )

    WinbackPythonModel.__module__ = __name__
    WinbackPythonModel.__qualname__ = "WinbackPythonModel"
    return WinbackPythonModel


def __getattr__(name: str):
    # The pyfunc wrapper subclasses an MLflow class; build it lazily so that
    # importing this module does not import MLflow, while pickles can still
    # find ``training.tracking.runs.WinbackPythonModel``.
    if name == "WinbackPythonModel":
        cls = _load_python_model_class()
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
    python_model = globals().get("WinbackPythonModel") or __getattr__("WinbackPythonModel")
    wrapper = python_model(model)
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
    ``models:/winback-churn/3``, ``runs:/<run_id>/model``, ``models:/m-...``). A
    registered version is unpickled only when its files still have the SHA-256
    recorded at registration (``training.tracking.integrity``).
    """
    import mlflow

    from training.tracking.integrity import verified_download

    with tempfile.TemporaryDirectory() as folder:
        pyfunc = mlflow.pyfunc.load_model(str(verified_download(uri, folder)))
    wrapper = pyfunc.unwrap_python_model()
    classifier = getattr(wrapper, "classifier", None)
    if classifier is None:
        raise TypeError(
            f"model {uri!r} is not a winback model (no classifier inside its pyfunc wrapper); "
            "log models with training.tracking.runs.log_model"
        )
    return classifier
