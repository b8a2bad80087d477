"""Reference distributions of a model's training data, for drift monitoring.

A training run records, next to its model, how each feature and the model's
score were distributed on the data it learned from: quantile bin edges and the
share of rows in each bin for numeric columns, the share of each level for
categorical ones, and the share of missing values. Serving (``serving.drift``)
bins a scoring run's values with exactly these edges and compares the shares
(population stability index). Only bin edges and shares are stored: no rows,
no customer ids.

The binning rules live here, in one place, so training and monitoring can never
bin differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.targets import score_columns

#: Artifact of a training run holding its reference distributions.
REFERENCE_ARTIFACT = "reference/reference_bins.json"
#: Label of the missing-value bin (always the last bin).
MISSING = "(missing)"
#: Label of the bin of categorical levels unseen in the reference.
OTHER = "(other)"


@dataclass(frozen=True)
class ColumnBins:
    """How one column was distributed in the reference data.

    Attributes
    ----------
    name
        Column name (a feature, or a score such as ``churn_risk``).
    kind
        ``"numeric"``: ``edges`` are the interior cut points, bin ``i`` holds
        values in ``(edges[i-1], edges[i]]``, then one bin for missing values.
        ``"categorical"``: one bin per level in ``levels``, one for unseen
        levels, one for missing values.
    proportions
        Share of reference rows in each bin (sums to 1).
    rows
        Reference rows the shares were computed from.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    proportions: tuple[float, ...]
    rows: int
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """A readable label per bin (same order as ``proportions``)."""
        if self.kind == "categorical":
            return [*self.levels, OTHER, MISSING]
        bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
        return [f"({lo}, {hi}]" for lo, hi in zip(bounds, bounds[1:], strict=False)] + [MISSING]

    def counts(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Rows of ``values`` in each of this column's bins (the reference's binning)."""
        return bin_counts(values, self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "proportions": list(self.proportions),
            "rows": self.rows,
            "edges": list(self.edges),
            "levels": list(self.levels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnBins:
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            proportions=tuple(float(p) for p in data["proportions"]),
            rows=int(data["rows"]),
            edges=tuple(float(e) for e in data.get("edges", ())),
            levels=tuple(str(v) for v in data.get("levels", ())),
        )


@dataclass(frozen=True)
class ReferenceBins:
    """Reference distributions of a model's features and its score."""

    target: str
    feature_set: str
    features: dict[str, ColumnBins]
    score: ColumnBins | None = None
    n_bins: int = 10
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "feature_set": self.feature_set,
            "n_bins": self.n_bins,
            "description": self.description,
            "features": [b.to_dict() for b in self.features.values()],
            "score": None if self.score is None else self.score.to_dict(),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceBins:
        features = [ColumnBins.from_dict(b) for b in data["features"]]
        return cls(
            target=str(data["target"]),
            feature_set=str(data["feature_set"]),
            features={b.name: b for b in features},
            score=None if data.get("score") is None else ColumnBins.from_dict(data["score"]),
            n_bins=int(data.get("n_bins", 10)),
            description=str(data.get("description", "")),
            extra=dict(data.get("extra", {})),
        )


# ---------------------------------------------------------------- binning


def quantile_edges(values: pd.Series | np.ndarray, n_bins: int = 10) -> tuple[float, ...]:
    """Interior cut points splitting the non-missing ``values`` into ``n_bins`` quantile bins.

    Repeated quantiles (a column with many equal values, e.g. zero counts)
    collapse into one edge, so a column may get fewer bins than asked for.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
    array = array[np.isfinite(array)]
    if array.size == 0:
        return ()
    # Linear-interpolated quantiles k / n_bins, with the position (n - 1) * k / n_bins
    # computed from integers first: a whole position is then exact, so a quantile that
    # equals a data value is that value (np.quantile's k / n_bins rounding can land
    # 1e-10 below it and add an empty bin).
    ordered = np.sort(array)
    position = (ordered.size - 1) * np.arange(1, n_bins) / n_bins
    lower = np.floor(position).astype("int64")
    upper = np.minimum(lower + 1, ordered.size - 1)
    cuts = ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)
    # the largest value must fall in the last bin: drop cut points at or above it
    return tuple(float(c) for c in np.unique(cuts) if c < array.max())


def _numeric_counts(values: pd.Series | np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
    missing = np.isnan(array)
    # bin i holds (edges[i-1], edges[i]]: searchsorted "left" gives that index
    index = np.searchsorted(np.asarray(edges, dtype="float64"), array[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype("int64")
    return np.append(counts, int(missing.sum()))


def _categorical_counts(values: pd.Series | np.ndarray, levels: tuple[str, ...]) -> np.ndarray:
    series = pd.Series(values, dtype="object")
    missing = series.isna().to_numpy()
    text = series[~missing].astype(str)
    position = pd.Index(levels).get_indexer(text)
    position = np.where(position < 0, len(levels), position)  # unseen → (other)
    counts = np.bincount(position, minlength=len(levels) + 1).astype("int64")
    return np.append(counts, int(missing.sum()))


def bin_counts(values: pd.Series | np.ndarray, bins: ColumnBins) -> np.ndarray:
    """Rows of ``values`` per bin of ``bins`` (numeric edges or categorical levels, then missing)."""
    if bins.kind == "categorical":
        return _categorical_counts(values, bins.levels)
    return _numeric_counts(values, bins.edges)


def column_bins(
    name: str, values: pd.Series | np.ndarray, *, categorical: bool = False, n_bins: int = 10
) -> ColumnBins:
    """The reference bins of one column: quantile bins (numeric) or levels (categorical)."""
    series = pd.Series(values)
    if len(series) == 0:
        raise ValueError(f"cannot compute reference bins of column {name!r} from zero rows")
    if categorical:
        levels = tuple(sorted(series.dropna().astype(str).unique()))
        bins = ColumnBins(name, "categorical", (), len(series), levels=levels)
    else:
        bins = ColumnBins(name, "numeric", (), len(series), edges=quantile_edges(series, n_bins))
    counts = bin_counts(series, bins)
    proportions = tuple(float(c) for c in counts / counts.sum())
    return ColumnBins(bins.name, bins.kind, proportions, bins.rows, bins.edges, bins.levels)


def reference_bins(
    features: pd.DataFrame,
    feature_set: FeatureSet,
    *,
    target: str,
    scores: pd.Series | np.ndarray | None = None,
    score_name: str = "score",
    n_bins: int = 10,
    description: str = "",
) -> ReferenceBins:
    """Reference distributions of every feature of ``feature_set`` (and of the score).

    Parameters
    ----------
    features
        The model's training rows (its population at the training cutoffs).
    feature_set
        Which columns to describe; categoricals are binned by level.
    scores
        The model's scores on reference rows (need not be the same rows).
    score_name
        The score's column name in score tables (``churn_risk`` ...).
    """
    missing = [c for c in feature_set.names if c not in features.columns]
    if missing:
        raise ValueError(
            f"reference data lacks feature columns {missing} of feature set "
            f"{feature_set.name!r}: pass the training rows the model was fitted on"
        )
    categorical = set(feature_set.categorical)
    bins = {
        name: column_bins(name, features[name], categorical=name in categorical, n_bins=n_bins)
        for name in feature_set.names
    }
    score = None if scores is None else column_bins(score_name, scores, n_bins=n_bins)
    return ReferenceBins(target, feature_set.name, bins, score, n_bins, description)


def log_reference_bins(reference: ReferenceBins) -> None:
    """Record the reference distributions as the active run's :data:`REFERENCE_ARTIFACT`."""
    import mlflow

    mlflow.log_dict(reference.to_dict(), REFERENCE_ARTIFACT)


def load_reference_bins(run_id: str, *, client: Any = None) -> ReferenceBins:
    """The reference distributions logged by training run ``run_id``.

    Raises
    ------
    FileNotFoundError
        When the run has no :data:`REFERENCE_ARTIFACT` (trained before runs
        recorded one): retrain the model to monitor its drift.
    """
    import json
    import tempfile

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, folder)
        except (MlflowException, OSError) as exc:
            raise FileNotFoundError(
                f"training run {run_id} has no {REFERENCE_ARTIFACT} artifact (it was trained "
                "before runs recorded reference distributions): retrain the model with "
                "`winback retrain` or `winback train` to monitor its drift"
            ) from exc
        with open(path, encoding="utf-8") as handle:
            return ReferenceBins.from_dict(json.load(handle))


#: Score column of each target in score tables (the serving vocabulary).
SCORE_NAMES: dict[str, str] = score_columns()


def log_training_reference(
    target: str,
    features: pd.DataFrame,
    feature_set: FeatureSet,
    scores: np.ndarray,
    *,
    n_bins: int = 10,
) -> ReferenceBins:
    """Compute and log a training run's reference distributions; return them.

    The pipeline passes the rows of the training table's newest cutoff (the
    test cutoff) and the model's scores on them. Newest, because features
    such as ``tenure_days`` grow with the shop's age: a reference pooled over
    cutoffs a year back would flag that as drift on every run. Out of sample,
    because in-sample scores are over-confident, so the reference score
    distribution is what an unchanged population scored by this model looks
    like.
    """
    reference = reference_bins(
        features,
        feature_set,
        target=target,
        scores=scores,
        score_name=SCORE_NAMES[target],
        n_bins=n_bins,
        description="features and score on the newest (test) cutoff of the training table",
    )
    log_reference_bins(reference)
    return reference
