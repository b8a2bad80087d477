"""Batch scoring: features for every customer as of a date, scored by the champion models.

The score table has one row per customer known at ``as_of``:

``customer_id, as_of, churn_risk, vip_potential, reactivation_probability,
expected_value, tier, is_active, is_lapsed, is_vip, trailing_margin,
churn_reasons, vip_reasons, reactivation_reasons, churn_model_version,
vip_model_version, reactivation_model_version, churn_feature_set,
vip_feature_set, reactivation_feature_set, scored_at``

Each score is given only inside its model's population (the customers the model
was trained on): ``churn_risk`` for active customers, ``vip_potential`` for
active customers who are not VIP yet, ``reactivation_probability`` for lapsed
customers; elsewhere it is missing, never a made-up number. Reasons cost about
2 ms a row (SHAP), so only the ``explain_top`` highest-scored customers of each
target get them in batch; the service explains other customers on request.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet, FeatureSetMismatch
from features.schema import ShopTables
from serving.config import SCORE_COLUMNS, TARGETS, ServingConfig
from serving.scoring import store

logger = logging.getLogger("winback.serving.scoring")

#: Context columns of the scoring frame that the score table carries along.
CONTEXT_COLUMNS = ("is_active", "is_lapsed", "is_vip", "tier", "trailing_margin")


class ServingSetupError(RuntimeError):
    """Something scoring or serving needs is missing; the message says how to create it."""


class ScoringModel(Protocol):
    """What serving needs from a model (``training.model.WinbackClassifier`` has it)."""

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

    @property
    def feature_set(self) -> FeatureSet:
        return self.model.feature_set_


@dataclass(frozen=True)
class ServedModels:
    """The models of the three targets, loaded once."""

    models: Mapping[str, ServedModel]
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
        columns: dict[str, str] = {}
        for target in targets:
            for name, dtype in self.models[target].feature_set.columns:
                columns.setdefault(name, dtype)
        name = "+".join(self.models[t].feature_set.name for t in targets)
        return FeatureSet(name, tuple(columns.items()))

    def versions(self) -> dict[str, str]:
        return {t: m.version for t, m in self.models.items()}

    def feature_set_names(self) -> dict[str, str]:
        return {t: m.feature_set.name for t, m in self.models.items()}


# --------------------------------------------------------------------- models


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
    config: ServingConfig, *, targets: Sequence[str] = TARGETS, tracking_uri: str | None = None
) -> ServedModels:
    """Load each target's champion (or its pinned version) from the MLflow registry.

    Raises
    ------
    ServingSetupError
        When the registry, a champion or a pinned version is missing, naming the
        command that creates it.
    """
    from mlflow.tracking import MlflowClient

    from training import registry, tracking

    track = (
        tracking_config(config)
        if tracking_uri is None
        else tracking.TrackingConfig(root=str(config.home / "mlruns"), tracking_uri=tracking_uri)
    )
    tracking_uri = track.resolved_tracking_uri()
    check_registry_exists(tracking_uri)  # before MLflow creates an empty store
    tracking.configure_tracking(track)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=track.resolved_registry_uri())
    loaded = {}
    for target in targets:
        name = registry.registered_model_name(target)
        pinned = config.model_versions.get(target)
        if pinned is not None:
            try:
                version = client.get_model_version(name, str(pinned))
            except Exception as exc:  # MLflow raises its own RestException subclasses
                raise ServingSetupError(
                    f"pinned model version {name} v{pinned} (target {target!r}) is not in the "
                    f"registry at {tracking_uri}: list versions with `winback models list` or "
                    f"unpin it (WINBACK_MODEL_VERSIONS)"
                ) from exc
        else:
            version = registry.champion(target, client=client)
            if version is None:
                raise ServingSetupError(
                    f"no champion model for target {target!r} ({name}@champion) in the registry "
                    f"at {tracking_uri}: create one with `{_train_command(target)}`"
                )
        model = tracking.load_model(f"models:/{name}/{version.version}")
        run = _training_run(client, version.run_id)
        run_metrics = {} if run is None else {k: float(v) for k, v in run.data.metrics.items()}
        loaded[target] = ServedModel(
            target=target,
            model=model,
            name=name,
            version=str(version.version),
            trained_at=_run_started_at(run),
            metrics=_version_metrics(version, run_metrics),
            run_id=version.run_id,
            run_metrics=run_metrics,
        )
        logger.info(
            "loaded %s version %s (feature set %s)", name, version.version, model.feature_set_.name
        )
    return ServedModels(loaded)


def tracking_config(config: ServingConfig) -> Any:
    """The ``training.tracking.TrackingConfig`` of the served working directory.

    ``MLFLOW_TRACKING_URI`` wins when set; otherwise ``<home>/mlruns``.
    """
    from training.tracking import TrackingConfig

    return TrackingConfig(root=str(config.home / "mlruns"))


def _training_run(client: Any, run_id: str | None) -> Any:
    """The MLflow run a model version came from, read once at load; ``None`` if unreadable."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:  # a deleted run must not stop serving
        logger.warning("cannot read training run %s", run_id)
        return None


def _run_started_at(run: Any) -> str | None:
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


# -------------------------------------------------------------------- scoring


class FeatureColumns:
    """Feature columns as NumPy arrays, each converted once and shared by every model.

    Built from a frame (batch scoring, tests) or straight from a request's typed
    columns (:meth:`from_arrays`, what :func:`rows_to_columns` returns): posted rows
    then never become a DataFrame only for their arrays to be taken back out of
    it. The three models read mostly the same columns; a model's matrix is built
    once and shared by every model with the same columns and categories.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame: pd.DataFrame | None = frame
        self._rows = len(frame)
        self._dtypes: dict[str, str] | None = None
        self._floats: dict[str, np.ndarray] = {}
        self._strings: dict[str, np.ndarray] = {}
        self._codes: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self._matrices: dict[tuple, np.ndarray] = {}

    @classmethod
    def from_arrays(
        cls, feature_set: FeatureSet, arrays: Mapping[str, np.ndarray]
    ) -> FeatureColumns:
        """Typed columns of ``feature_set``: float64 arrays, or object arrays of str/None.

        The arrays must already fit the feature set (what :func:`rows_to_columns`
        checks); they are used as they are, not copied.
        """
        lengths = {len(v) for v in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths {sorted(lengths)}")
        self = cls.__new__(cls)
        self._frame = None
        self._rows = lengths.pop()
        self._dtypes = {name: feature_set.dtypes[name] for name in arrays}
        self._floats = {n: a for n, a in arrays.items() if self._dtypes[n] != "category"}
        self._strings = {n: a for n, a in arrays.items() if self._dtypes[n] == "category"}
        self._codes = {}
        self._matrices = {}
        return self

    @classmethod
    def concat(cls, parts: Sequence[FeatureColumns]) -> FeatureColumns:
        """The rows of ``parts`` one after the other (the micro-batcher merges requests so)."""
        if len(parts) == 1:
            return parts[0]
        if any(p._dtypes is None for p in parts):
            return cls(pd.concat([p.frame for p in parts], ignore_index=True))
        dtypes = parts[0]._dtypes
        if any(p._dtypes != dtypes for p in parts):
            raise ValueError("cannot merge requests with different columns")
        arrays = {
            name: np.concatenate(
                [(p._strings if kind == "category" else p._floats)[name] for p in parts]
            )
            for name, kind in dtypes.items()
        }
        return cls.from_arrays(FeatureSet("merged", tuple(dtypes.items())), arrays)

    def __len__(self) -> int:
        return self._rows

    @property
    def frame(self) -> pd.DataFrame:
        """The columns as a frame (float64, categoricals as ``string``), built on first use."""
        if self._frame is None:
            assert self._dtypes is not None
            data = {
                name: pd.array(self._strings[name], dtype="string")
                if kind == "category"
                else self._floats[name]
                for name, kind in self._dtypes.items()
            }
            self._frame = pd.DataFrame(data, columns=list(self._dtypes))
        return self._frame

    def check(self, feature_set: FeatureSet) -> None:
        """Raise ``FeatureSetMismatch`` naming every column of ``feature_set`` missing or mistyped."""
        if self._dtypes is None:
            feature_set.check(self.frame)
            return
        missing = [c for c in feature_set.names if c not in self._dtypes]
        wrong = {
            c: (kind, self._dtypes[c])
            for c, kind in feature_set.columns
            if c in self._dtypes and (kind == "category") != (self._dtypes[c] == "category")
        }
        if missing or wrong:
            raise FeatureSetMismatch(feature_set.name, missing, [], wrong)

    def floats(self, name: str) -> np.ndarray:
        """Column ``name`` as float64, missing values NaN."""
        if name not in self._floats:
            self._floats[name] = self.frame[name].to_numpy(dtype="float64", na_value=np.nan)
        return self._floats[name]

    def strings(self, name: str) -> np.ndarray:
        """Column ``name`` as an object array of str, missing values None."""
        if name not in self._strings:
            column = self.frame[name].astype("string")
            self._strings[name] = column.to_numpy(dtype=object, na_value=None)
        return self._strings[name]

    def codes(self, name: str, categories: Sequence[str]) -> np.ndarray:
        """Column ``name`` as positions in ``categories`` (float64; unknown or missing NaN)."""
        key = (name, tuple(categories))  # models trained on the same data share categories
        if key not in self._codes:
            positions = {category: float(i) for i, category in enumerate(key[1])}
            values = self.strings(name)
            self._codes[key] = np.fromiter(
                (positions.get(v, np.nan) for v in values), dtype="float64", count=len(values)
            )  # a dict lookup per value: a third of Index.get_indexer's time on object arrays
        return self._codes[key]

    def matrix(self, names: Sequence[str], categories: Mapping[str, Sequence[str]]) -> np.ndarray:
        """The float64 matrix of ``names`` (categoricals as codes), shared by equal requests."""
        names = tuple(names)
        key = (names, tuple((n, tuple(categories[n])) for n in names if n in categories))
        matrix = self._matrices.get(key)
        if matrix is None:
            matrix = np.empty((self._rows, len(names)), dtype="float64")
            for j, name in enumerate(names):
                if name in categories:
                    matrix[:, j] = self.codes(name, categories[name])
                else:
                    matrix[:, j] = self.floats(name)
            self._matrices[key] = matrix
        return matrix


def model_matrix(model: Any, features: pd.DataFrame | FeatureColumns) -> np.ndarray:
    """The float64 matrix LightGBM sees for ``features``: the model's columns, categoricals as codes.

    The same values ``WinbackClassifier._encode`` hands LightGBM through pandas
    (a categorical becomes its position in the fitted ``categories_``, unknown or
    missing values NaN), built directly as one C-ordered array: for a 1,000-row
    request this is ~0.3 ms instead of ~15 ms of frame copies and conversions.
    Models with the same columns and categories get the same (read-only) matrix.
    """
    columns = features if isinstance(features, FeatureColumns) else FeatureColumns(features)
    return columns.matrix(model.feature_set_.names, model.categories_)


def _has_booster(model: Any) -> bool:
    return all(
        hasattr(model, a) for a in ("booster_", "categories_", "best_iteration_", "calibrator_")
    )


def predict_matrix(model: Any, matrix: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
    """Calibrated probabilities of a fitted ``WinbackClassifier`` for a :func:`model_matrix`."""
    threads = model.num_threads if num_threads is None else num_threads
    raw = np.asarray(
        model.booster_.predict(
            matrix, raw_score=True, num_iteration=model.best_iteration_, num_threads=threads
        ),
        dtype="float64",
    )
    if model.calibrator_ is None:
        return 1.0 / (1.0 + np.exp(-raw))
    return np.asarray(model.calibrator_.predict(raw), dtype="float64")


def predict_probability(
    model: Any, features: pd.DataFrame | FeatureColumns, *, num_threads: int | None = None
) -> np.ndarray:
    """Calibrated probability of the positive class for every row, by the fastest safe route.

    For a fitted ``WinbackClassifier`` the booster predicts on
    :func:`model_matrix` with ``num_threads`` LightGBM threads (the model's own
    setting when ``None``), then the fitted calibrator applies: exactly what
    ``model.predict_proba`` returns, without its pandas round trip. Any other
    model (a stand-in with only ``predict_proba``) is called as it is.
    """
    if not _has_booster(model):
        frame = features.frame if isinstance(features, FeatureColumns) else features
        return np.asarray(model.predict_proba(frame[model.feature_set_.names]), dtype="float64")
    return predict_matrix(model, model_matrix(model, features), num_threads=num_threads)


def predict_scores(
    models: ServedModels,
    features: pd.DataFrame | FeatureColumns,
    targets: Sequence[str] | None = None,
    *,
    num_threads: int | None = None,
    pool: Executor | None = None,
    row_chunks: int = 1,
    min_chunk_rows: int = 256,
) -> pd.DataFrame:
    """Calibrated probabilities of each target for every row of ``features``.

    Each model sees exactly the columns of its own feature set, checked with
    ``FeatureSet.check`` (a missing or mistyped column raises, never NaN-fills).
    ``features`` is a frame or a :class:`FeatureColumns` (posted rows, typed by
    :func:`rows_to_columns`); every column is converted to NumPy once and models
    with the same columns share one matrix. ``num_threads`` caps LightGBM's
    threads per call. With a ``pool`` (the service's, one thread per core) the
    predictions run there as one task per model and row chunk (``row_chunks``
    chunks of at least ``min_chunk_rows`` rows): LightGBM releases the GIL, so
    one large request uses every core, while concurrent requests share the same
    few threads instead of oversubscribing the cores. The result has the frame's
    index (a ``RangeIndex`` for :class:`FeatureColumns`).
    """
    targets = models.targets if targets is None else tuple(targets)
    if isinstance(features, FeatureColumns):
        columns = features
        for target in targets:
            columns.check(models[target].feature_set)
        index = pd.RangeIndex(len(columns))
    else:
        for target in targets:
            models[target].feature_set.check(features)
        columns = FeatureColumns(features)
        index = features.index
    n = len(columns)
    chunk = max(min_chunk_rows, -(-n // max(row_chunks, 1)))
    if pool is None or (n <= chunk and len(targets) == 1):
        out = {
            SCORE_COLUMNS[t]: predict_probability(models[t].model, columns, num_threads=num_threads)
            for t in targets
        }
        return pd.DataFrame(out, index=index)
    jobs = {}
    for t in targets:
        model = models[t].model
        matrix = model_matrix(model, columns) if _has_booster(model) else None
        for start in range(0, n, chunk):
            if matrix is None:
                job = pool.submit(
                    predict_probability,
                    model,
                    columns.frame.iloc[start : start + chunk],
                    num_threads=num_threads,
                )
            else:
                job = pool.submit(
                    predict_matrix, model, matrix[start : start + chunk], num_threads=num_threads
                )
            jobs[(t, start)] = job
    out = {
        SCORE_COLUMNS[t]: np.concatenate(
            [jobs[(t, start)].result() for start in range(0, n, chunk)]
        )
        for t in targets
    }
    return pd.DataFrame(out, index=index)


def populations(context: pd.DataFrame) -> dict[str, pd.Series]:
    """Which customers each model scores: churn and VIP among active, reactivation among lapsed."""
    missing = [c for c in ("is_active", "is_lapsed", "is_vip") if c not in context.columns]
    if missing:
        raise ValueError(f"the scoring frame lacks the population columns {missing}")
    active = context["is_active"].fillna(False).astype(bool)
    lapsed = context["is_lapsed"].fillna(False).astype(bool)
    vip = context["is_vip"].fillna(False).astype(bool)
    return {"churn": active, "vip": active & ~vip, "reactivation": lapsed}


def expected_value(
    churn_risk: np.ndarray | pd.Series,
    reactivation_probability: np.ndarray | pd.Series,
    is_lapsed: np.ndarray | pd.Series,
    trailing_margin: np.ndarray | pd.Series,
    typical_margin: float,
    *,
    horizon_days: int = 90,
) -> np.ndarray:
    """Expected gross margin of each customer over the next ``horizon_days``.

    * active customers: ``(1 - churn_risk) * trailing_margin * horizon_days / 365``
      — the margin they earned in the last 12 months, at the same daily rate,
      if they stay;
    * lapsed customers: ``reactivation_probability * typical_margin * horizon_days / 365``
      — a returning customer is worth a typical active customer's 12-month margin
      (``typical_margin``, the median among active customers), at that rate.

    Missing where the score it needs is missing (a customer outside both
    populations, or a missing margin).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    share = horizon_days / 365.0
    churn = np.asarray(churn_risk, dtype="float64")
    react = np.asarray(reactivation_probability, dtype="float64")
    lapsed = np.asarray(is_lapsed, dtype=bool)
    margin = np.asarray(trailing_margin, dtype="float64")
    active_value = (1.0 - churn) * margin * share
    lapsed_value = react * float(typical_margin) * share
    return np.where(lapsed, lapsed_value, active_value)


def feature_reference(features: pd.DataFrame) -> dict[str, float]:
    """Median of every numeric feature: what a reason calls "high" or "low" against.

    Computed over the whole scored population, so a customer's reasons do not
    depend on which other customers are explained in the same call.
    """
    out = {}
    for column in features.columns:
        dtype = features[column].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            value = features[column].median()
            if not pd.isna(value):
                out[column] = float(value)
    return out


def reason_texts(
    model: Any,
    features: pd.DataFrame,
    *,
    top: int = 3,
    reference: Mapping[str, float] | None = None,
) -> list[list[str]]:
    """Plain-language reasons (strongest first) for each row, from the model's SHAP values.

    Uses ``training.reasons.reason_codes`` on ``model.contributions``; about
    2 ms a row, so call it for the customers a request or a list needs.
    """
    from training.reasons import reason_codes

    if len(features) == 0:
        return []
    X = features[model.feature_set_.names]
    contributions = model.contributions(X)
    result = reason_codes(contributions, X, top=top, reference=reference)
    return _as_texts(result, len(X))


def _as_texts(result: Any, n: int) -> list[list[str]]:
    """Normalise what ``reason_codes`` returns (a frame or lists of reasons) to text lists."""
    if isinstance(result, pd.DataFrame):
        cols = [c for c in result.columns if str(c).startswith("reason_") and str(c)[7:].isdigit()]
        cols.sort(key=lambda c: int(str(c)[7:]))
        values = result[cols].to_numpy(dtype=object)
        return [
            [str(v) for v in row if v is not None and not pd.isna(v) and v != ""] for row in values
        ]
    texts = []
    for reasons in result:
        row = []
        for reason in reasons:
            text = getattr(reason, "text", None)
            row.append(str(text if text is not None else reason))
        texts.append(row)
    if len(texts) != n:
        raise ValueError(f"reason_codes returned {len(texts)} rows for {n} customers")
    return texts


def _reason_column(target: str) -> str:
    return f"{target}_reasons"


def top_scored(scores: pd.Series, n: int) -> pd.Index:
    """The index of the ``n`` highest non-missing scores (ties broken by index order)."""
    valid = scores.dropna()
    if n <= 0 or valid.empty:
        return valid.index[:0]
    order = np.lexsort((np.arange(len(valid)), -valid.to_numpy()))
    return valid.index[order[:n]]


def score_table(
    frame: pd.DataFrame,
    models: ServedModels,
    *,
    as_of: dt.date,
    horizon_days: int = 90,
    explain_top: int = 1000,
    top_reasons: int = 3,
    scored_at: dt.datetime | None = None,
) -> pd.DataFrame:
    """The score table of one date from a scoring frame (features + context columns).

    ``frame`` is indexed by ``customer_id`` and holds each model's feature
    columns plus ``is_active, is_lapsed, is_vip, tier, trailing_margin`` (what
    ``features.training_table.build_scoring_frame`` returns).
    """
    missing = [c for c in CONTEXT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the scoring frame lacks the columns {missing}; build it with "
            f"features.training_table.build_scoring_frame"
        )
    scored_at = scored_at or dt.datetime.now(dt.UTC)
    masks = populations(frame)
    out = pd.DataFrame(index=frame.index)
    out["as_of"] = pd.Series([as_of] * len(frame), index=frame.index, dtype="object")
    for target in TARGETS:
        column = SCORE_COLUMNS[target]
        values = pd.Series(np.nan, index=frame.index, dtype="float64")
        mask = masks[target].to_numpy()
        if target in models.models and mask.any():
            values[mask] = predict_scores(models, frame.loc[mask], [target])[column].to_numpy()
        out[column] = values
    lapsed = masks["reactivation"]
    margin = frame["trailing_margin"].astype("float64")
    active_margin = margin[masks["churn"]].dropna()
    typical = float(active_margin.median()) if len(active_margin) else np.nan
    out["expected_value"] = expected_value(
        out["churn_risk"],
        out["reactivation_probability"],
        lapsed,
        margin,
        typical,
        horizon_days=horizon_days,
    )
    out["tier"] = frame["tier"].astype("string")
    for col in ("is_active", "is_lapsed", "is_vip"):
        out[col] = frame[col].fillna(False).astype(bool)
    out["trailing_margin"] = margin
    reference = feature_reference(frame[models.feature_set().names]) if explain_top > 0 else None
    for target in TARGETS:
        reasons = pd.Series([None] * len(frame), index=frame.index, dtype="object")
        if target in models.models and explain_top > 0:
            chosen = top_scored(out[SCORE_COLUMNS[target]], explain_top)
            if len(chosen):
                texts = reason_texts(
                    models[target].model,
                    frame.loc[chosen],
                    top=top_reasons,
                    reference=reference,
                )
                reasons.loc[chosen] = pd.Series(texts, index=chosen, dtype="object")
        out[_reason_column(target)] = reasons
    for target in TARGETS:
        served = models.models.get(target)
        out[f"{target}_model_version"] = served.version if served else None
        out[f"{target}_feature_set"] = served.feature_set.name if served else None
    out["scored_at"] = pd.Timestamp(scored_at).tz_convert("UTC")
    out.index.name = "customer_id"
    return out.reset_index()


def score_customers(
    tables: ShopTables,
    as_of: dt.date,
    models: ServedModels,
    config: ServingConfig | None = None,
    *,
    scored_at: dt.datetime | None = None,
) -> store.ScoreTableVersion:
    """Build features as of ``as_of``, score everyone and write the versioned score table.

    This is what ``winback score --as-of DATE`` runs. A rerun for the same date
    replaces that version.
    """
    from features.training_table import build_scoring_frame

    config = config or ServingConfig()
    feature_set = models.feature_set()
    frame = build_scoring_frame(tables, as_of, feature_set)
    table = score_table(
        frame,
        models,
        as_of=as_of,
        horizon_days=config.horizon_days,
        explain_top=config.explain_top,
        top_reasons=config.top_reasons,
        scored_at=scored_at,
    )
    features = frame[feature_set.names]
    return store.write_score_table(table, features, config.score_path, as_of)


# ------------------------------------------------------------------- lookups

#: Columns of a looked-up customer that are returned as they are stored.
RECORD_COLUMNS = (
    "churn_risk",
    "vip_potential",
    "reactivation_probability",
    "expected_value",
    "tier",
    "is_active",
    "is_lapsed",
    "is_vip",
)


def _plain(value: Any) -> Any:
    """A JSON-ready Python value (NaN/NA → None, numpy scalars → Python)."""
    if value is None:
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    if pd.isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain_list(column: pd.Series) -> list[Any]:
    """The column as JSON-ready Python values (what :func:`_plain` gives for each value)."""
    dtype = column.dtype
    if pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan).tolist()
        return [None if v != v else v for v in values]  # v != v only for NaN
    return [_plain(v) for v in column.to_numpy(dtype=object)]


class ScoreLookup:
    """The latest score table held in memory for fast lookups by customer id.

    Built once at service start: a dict from id to row position and one list of
    JSON-ready values per column (NaN already ``None``, numpy scalars already
    Python), so a lookup is a few list indexings: microseconds, not a pandas
    ``.loc`` (milliseconds) or a conversion per value per request.
    """

    def __init__(
        self, as_of: dt.date, table: pd.DataFrame, features: pd.DataFrame | None = None
    ) -> None:
        self.as_of = as_of
        self.table = table
        self.features = features
        ids = table.index.astype(str)
        self._positions: dict[str, int] = dict(zip(ids, range(len(ids)), strict=True))
        self._ids = np.asarray(ids, dtype=object)
        wanted = [
            *RECORD_COLUMNS,
            *(_reason_column(t) for t in TARGETS),
            *(f"{t}_model_version" for t in TARGETS),
            *(f"{t}_feature_set" for t in TARGETS),
        ]
        self._columns: dict[str, list[Any]] = {
            c: _plain_list(table[c]) for c in wanted if c in table.columns
        }
        self._scored_at = pd.to_datetime(table["scored_at"], utc=True).dt.to_pydatetime().tolist()
        self._feature_rows: np.ndarray | None = None
        self.reference: dict[str, float] | None = None
        if features is not None:
            self._feature_rows = features.index.astype(str).get_indexer(ids)
            self.reference = feature_reference(features)

    @classmethod
    def load(cls, score_dir: Path, *, with_features: bool = True) -> ScoreLookup:
        """Load the newest score table (and its features) from ``score_dir``.

        Raises
        ------
        ServingSetupError
            When there is no score table, naming the command that writes one.
        """
        as_of = store.latest_version(score_dir)
        if as_of is None:
            raise ServingSetupError(
                f"no score table in {str(score_dir)!r}: write one with "
                f"`winback score --as-of YYYY-MM-DD` (or set WINBACK_SCORE_DIR to where it is)"
            )
        table = store.read_scores(score_dir, as_of)
        table["customer_id"] = table["customer_id"].astype("string")
        table = table.set_index("customer_id")
        features = store.read_features(score_dir, as_of) if with_features else None
        return cls(as_of=as_of, table=table, features=features)

    def model_versions(self) -> dict[str, str | None]:
        """The model versions the stored scores were computed with."""
        out: dict[str, str | None] = {}
        for target in TARGETS:
            column = self._columns.get(f"{target}_model_version")
            out[target] = column[0] if column is not None and len(column) else None
        return out

    def find(self, customer_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Split ``customer_ids`` into known and unknown ids (duplicates dropped, order kept)."""
        ids = list(dict.fromkeys(str(c) for c in customer_ids))
        found = [c for c in ids if c in self._positions]
        unknown = [c for c in ids if c not in self._positions]
        return found, unknown

    def needs_reasons(self, customer_ids: Sequence[str], models: ServedModels) -> bool:
        """Whether any of these (known) customers has a score without stored reasons."""
        for target in models.targets:
            reasons = self._columns.get(_reason_column(target))
            scores = self._columns.get(SCORE_COLUMNS[target])
            if reasons is None or scores is None:
                continue
            for c in customer_ids:
                p = self._positions[c]
                if reasons[p] is None and scores[p] is not None:
                    return True
        return False

    def records(
        self,
        customer_ids: Sequence[str],
        *,
        models: ServedModels | None = None,
        explain: bool = True,
        top_reasons: int = 3,
    ) -> list[dict[str, Any]]:
        """One record per (known) customer id: scores, tier, reasons and provenance.

        Reasons missing from the table are computed now from the stored features
        when ``explain`` and ``models`` are given (only for the scores the
        customer has), against the whole table's feature medians.
        """
        positions = [self._positions[str(c)] for c in customer_ids]
        reasons: dict[str, list[Any]] = {}
        for target in TARGETS:
            column = self._columns.get(_reason_column(target))
            reasons[target] = [
                None if column is None or column[p] is None else list(column[p]) for p in positions
            ]
        if explain and models is not None and self._feature_rows is not None:
            for target in models.targets:
                scores = self._columns[SCORE_COLUMNS[target]]
                need = [
                    i
                    for i, p in enumerate(positions)
                    if reasons[target][i] is None
                    and scores[p] is not None
                    and self._feature_rows[p] >= 0
                ]
                if need:
                    rows = self._feature_rows[[positions[i] for i in need]]
                    texts = reason_texts(
                        models[target].model,
                        self.features.iloc[rows],
                        top=top_reasons,
                        reference=self.reference,
                    )
                    for i, text in zip(need, texts, strict=True):
                        reasons[target][i] = text
        out = []
        for i, p in enumerate(positions):
            record: dict[str, Any] = {"customer_id": self._ids[p], "as_of": self.as_of}
            for col in RECORD_COLUMNS:
                column = self._columns.get(col)
                record[col] = None if column is None else column[p]
            record["reasons"] = {t: reasons[t][i] for t in TARGETS}
            record["model_versions"] = {t: self._columns[f"{t}_model_version"][p] for t in TARGETS}
            record["feature_sets"] = {t: self._columns[f"{t}_feature_set"][p] for t in TARGETS}
            record["scored_at"] = self._scored_at[p]
            out.append(record)
        return out


def stale_targets(lookup: ScoreLookup, models: ServedModels) -> dict[str, tuple[str | None, str]]:
    """Targets whose stored scores came from another model version than the one served."""
    stored = lookup.model_versions()
    return {
        t: (stored.get(t), m.version)
        for t, m in models.models.items()
        if stored.get(t) != m.version
    }


def union_columns(models: ServedModels, targets: Iterable[str] | None = None) -> dict[str, str]:
    """Feature name → dtype over the given targets' feature sets."""
    return models.feature_set(None if targets is None else list(targets)).dtypes


# -------------------------------------------------------------- posted rows


class RowsInvalid(ValueError):
    """Posted feature rows do not match the feature set; names every offending column.

    Attributes
    ----------
    missing, unexpected
        Columns absent from / not part of the feature set.
    wrong_dtypes
        Column → (expected, what was sent).
    incomplete_rows
        Column → positions of the rows that lack it (first few), for row-wise input
        where some rows have a column and others do not.
    """

    def __init__(
        self,
        feature_set: str,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        wrong_dtypes: Mapping[str, tuple[str, str]] | None = None,
        incomplete_rows: Mapping[str, list[int]] | None = None,
        detail: str = "",
    ) -> None:
        self.feature_set = feature_set
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.wrong_dtypes = dict(wrong_dtypes or {})
        self.incomplete_rows = dict(incomplete_rows or {})
        parts = [detail] if detail else []
        if self.missing:
            parts.append(f"missing columns {self.missing}")
        if self.unexpected:
            parts.append(f"unexpected columns {self.unexpected}")
        if self.wrong_dtypes:
            parts.append(
                "wrong types "
                + ", ".join(
                    f"{c}: expected {e}, got {g}" for c, (e, g) in sorted(self.wrong_dtypes.items())
                )
            )
        if self.incomplete_rows:
            parts.append(
                "columns missing from some rows "
                + ", ".join(f"{c} (rows {r})" for c, r in sorted(self.incomplete_rows.items()))
            )
        super().__init__(f"feature set {feature_set!r}: " + "; ".join(parts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "feature_set": self.feature_set,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "wrong_dtypes": {
                c: {"expected": e, "got": g} for c, (e, g) in self.wrong_dtypes.items()
            },
            "incomplete_rows": self.incomplete_rows,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: The exact Python types JSON decoding yields for a number or a string (or null);
#: a column of only these is checked with one C-level pass over its value types.
_NUMBER_TYPES = frozenset({int, float, type(None)})
_STRING_TYPES = frozenset({str, type(None)})


def _typed_column(values: Sequence[Any], expected: str) -> tuple[Any, str | None]:
    """``values`` converted to the feature dtype, or the name of the offending type.

    Numbers (or null) for numeric features, as float64 (null NaN); strings (or
    null) for categoricals, as an object array of str/None. Nothing is coerced:
    ``"12"`` for a numeric feature is an error, not 12.
    """
    kinds = set(map(type, values))
    if expected == "category":
        if not kinds <= _STRING_TYPES:
            bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
            if bad is not None:
                return None, type(bad).__name__
            values = [None if v is None else str(v) for v in values]  # str subclasses
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array, None
    if kinds <= _NUMBER_TYPES:
        return np.array(values, dtype="float64"), None  # None becomes NaN
    bad = next((v for v in values if v is not None and not _is_number(v)), None)
    if bad is not None:
        return None, type(bad).__name__
    return np.array([np.nan if v is None else v for v in values], dtype="float64"), None


def rows_to_columns(
    feature_set: FeatureSet,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> FeatureColumns:
    """Posted feature values as typed arrays, checked against ``feature_set``.

    Give either ``rows`` (a list of ``{feature: value}``) or ``columns``
    (``{feature: [values]}``). Every feature of the set must be present in every
    row, nothing else may be; ``null`` is a legitimate missing value (LightGBM
    handles it), an absent key is not. Raises :class:`RowsInvalid` naming the
    columns. The arrays go to the models as they are (no DataFrame in between).
    """
    if (rows is None) == (columns is None):
        raise RowsInvalid(feature_set.name, detail="send exactly one of 'rows' or 'columns'")
    expected = feature_set.dtypes
    if rows is not None:
        if len(rows) == 0:
            raise RowsInvalid(feature_set.name, detail="no rows sent")
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        present = set(keys)
        incomplete: dict[str, list[int]] = {}
        width = len(keys)
        for i, row in enumerate(rows):
            if len(row) != width:
                for col in keys:
                    if col not in row and col in expected:
                        lacking = incomplete.setdefault(col, [])
                        if len(lacking) < 5:
                            lacking.append(i)
        wanted = [col for col in expected if col in present]
        if incomplete or not wanted:
            data = {col: [row.get(col) for row in rows] for col in wanted}
        else:  # every row has every key: one C-level pass per row, then transpose
            pick = operator.itemgetter(*wanted)
            picked = map(pick, rows) if len(wanted) > 1 else ((pick(r),) for r in rows)
            data = dict(zip(wanted, zip(*picked, strict=True), strict=True))
    else:
        present = set(columns)
        lengths = {c: len(v) for c, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise RowsInvalid(feature_set.name, detail=f"columns have different lengths {lengths}")
        if not lengths or next(iter(lengths.values())) == 0:
            raise RowsInvalid(feature_set.name, detail="no rows sent")
        incomplete = {}
        data = {col: columns[col] for col in expected if col in present}
    missing = [c for c in expected if c not in present]
    unexpected = [c for c in present if c not in expected]
    wrong: dict[str, tuple[str, str]] = {}
    typed: dict[str, np.ndarray] = {}
    for col, values in data.items():
        converted, bad_type = _typed_column(values, expected[col])
        if bad_type is not None:
            wrong[col] = (expected[col], bad_type)
        else:
            typed[col] = converted
    if missing or unexpected or wrong or incomplete:
        raise RowsInvalid(
            feature_set.name,
            missing=missing,
            unexpected=unexpected,
            wrong_dtypes=wrong,
            incomplete_rows=incomplete,
        )
    return FeatureColumns.from_arrays(feature_set, {name: typed[name] for name in expected})


def rows_to_frame(
    feature_set: FeatureSet,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """Posted feature values as a typed frame (float64, categoricals ``string``).

    The same checks and errors as :func:`rows_to_columns` (which the service
    uses), for callers that want a frame.
    """
    frame = rows_to_columns(feature_set, rows=rows, columns=columns).frame
    feature_set.check(frame, allow_extra=False)
    return frame


#: Media type of an Arrow IPC stream, the binary alternative to a JSON body of rows.
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _arrow_kind_fits(arrow_type: Any, expected: str) -> bool:
    import pyarrow as pa

    if pa.types.is_null(arrow_type):  # a column of nulls only: missing values, any kind
        return True
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if expected == "category":
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def arrow_to_columns(
    feature_set: FeatureSet, body: bytes, *, max_rows: int | None = None
) -> FeatureColumns:
    """Feature columns from an Arrow IPC stream (``ARROW_STREAM``), checked like JSON rows.

    The binary alternative to posting JSON: numbers arrive as typed buffers, so
    there is no per-value parsing and type check. Numeric features take Arrow
    integers or floats (never booleans or strings), categoricals take strings
    (or a dictionary of strings); nulls are missing values. Raises
    :class:`RowsInvalid` naming missing, unexpected and mistyped columns, or
    saying why the body cannot be read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise RowsInvalid(
            feature_set.name,
            detail=f"the body is not an Arrow IPC stream ({exc}); send one table written with "
            f"pyarrow.ipc.new_stream, or JSON with Content-Type application/json",
        ) from None
    expected = feature_set.dtypes
    names = table.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RowsInvalid(feature_set.name, detail=f"columns sent twice {duplicated}")
    if table.num_rows == 0:
        raise RowsInvalid(feature_set.name, detail="no rows sent")
    if max_rows is not None and table.num_rows > max_rows:
        raise RowsInvalid(
            feature_set.name,
            detail=f"{table.num_rows} rows sent, at most {max_rows} per request: split them",
        )
    missing = [c for c in expected if c not in names]
    unexpected = [c for c in names if c not in expected]
    wrong = {
        c: (expected[c], str(table.schema.field(c).type))
        for c in expected
        if c in names and not _arrow_kind_fits(table.schema.field(c).type, expected[c])
    }
    if missing or unexpected or wrong:
        raise RowsInvalid(
            feature_set.name, missing=missing, unexpected=unexpected, wrong_dtypes=wrong
        )
    arrays: dict[str, np.ndarray] = {}
    for name, kind in feature_set.columns:
        column = table.column(name)
        if kind == "category":
            array = np.empty(len(column), dtype=object)
            array[:] = pc.cast(column, pa.string()).to_pylist()
        else:
            # unsafe: an integer beyond 2**53 is rounded, as JSON's numbers are, not an error
            array = pc.cast(column, pa.float64(), safe=False).to_numpy()  # nulls become NaN
            array = np.array(array, dtype="float64")  # writable and owned, like JSON's
        arrays[name] = array
    return FeatureColumns.from_arrays(feature_set, arrays)
