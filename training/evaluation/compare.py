"""Judge a model against its baselines over several test origins, with intervals.

Pure: no fitting, no MLflow. The pipeline hands over, per test origin, the
labels and the scores of the model, each baseline and (on simulated data) the
oracle; this module returns

* every metric per origin and per scorer, and their mean over origins (the
  headline figures: ``test_<metric>`` is the model's mean);
* a paired bootstrap 95% interval of the ROC-AUC difference model − baseline
  for each baseline, resampling customers within each origin (the same
  resample for the model and the baseline, so their shared noise cancels);
* a one-line verdict, and which baselines the model loses to (the whole
  interval below zero).

Why several origins: on one test cutoff of a few thousand customers an AUC
moves by about 0.01 between samples, so one cutoff cannot tell a 0.005 win
from noise; origins also differ in season.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Metrics shown side by side for the model, the baselines and the oracle.
SUMMARY_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_at_10",
    "capture_at_10",
    "expected_maximum_profit",
)

#: Row of the model in every comparison table.
MODEL = "model"
#: Row of the Bayes-optimal oracle (a pure BG/NBD world: the best any model can do).
ORACLE = "oracle"
#: Row of the rich simulated shop's hidden-state probabilities (no model can reach it).
CEILING = "ceiling"
#: Reference rows that are neither the model nor a baseline.
REFERENCES = (ORACLE, CEILING)


@dataclass(frozen=True)
class OriginScores:
    """Labels and every scorer's scores on one test origin (same rows, same order)."""

    test_cutoff: pd.Timestamp
    y: np.ndarray
    model: np.ndarray
    baselines: Mapping[str, np.ndarray]
    oracle: np.ndarray | None = None
    oracle_name: str = ORACLE

    def scorers(self) -> dict[str, np.ndarray]:
        """Model, baselines and the oracle (or ceiling) by name."""
        out = {MODEL: self.model, **self.baselines}
        if self.oracle is not None:
            out[self.oracle_name] = self.oracle
        return out


@dataclass(frozen=True)
class Evaluation:
    """The evaluation of one model over its test origins.

    ``per_origin`` is indexed by (``test_cutoff``, ``scorer``); ``comparison``
    by ``scorer`` (the mean over origins); ``deltas`` by ``baseline`` with
    ``delta``, ``ci_low``, ``ci_high`` (ROC-AUC, model − baseline).
    """

    per_origin: pd.DataFrame
    comparison: pd.DataFrame
    deltas: pd.DataFrame
    resamples: int

    @property
    def metrics(self) -> dict[str, float]:
        """The model's metrics, mean over origins."""
        return {k: float(v) for k, v in self.comparison.loc[MODEL].items()}

    @property
    def baselines(self) -> pd.DataFrame:
        """The baselines' mean metrics (index ``baseline``)."""
        drop = [i for i in (MODEL, *REFERENCES) if i in self.comparison.index]
        frame = self.comparison.drop(index=drop)
        frame.index.name = "baseline"
        return frame

    @property
    def reference(self) -> str | None:
        """``"oracle"``, ``"ceiling"`` or None (real data)."""
        return next((r for r in REFERENCES if r in self.comparison.index), None)

    @property
    def oracle_metrics(self) -> dict[str, float] | None:
        """The oracle's (or ceiling's) mean metrics, or None on real data."""
        if self.reference is None:
            return None
        return {k: float(v) for k, v in self.comparison.loc[self.reference].items()}

    @property
    def not_beaten(self) -> list[str]:
        """Baselines whose interval of model − baseline reaches zero or below."""
        return [str(b) for b, row in self.deltas.iterrows() if not row["ci_low"] > 0]

    @property
    def loses_to(self) -> list[str]:
        """Baselines the model is worse than: the whole interval below zero."""
        return [str(b) for b, row in self.deltas.iterrows() if row["ci_high"] < 0]

    @property
    def verdict(self) -> str:
        """ "beats every baseline" or "does not beat <baseline> (Δ … [low, high])"."""
        return verdict_line(self.deltas)

    def delta_metrics(self) -> dict[str, float]:
        """``delta_roc_auc_<baseline>`` and its ``_ci_low`` / ``_ci_high``, for logging."""
        out: dict[str, float] = {}
        for name, row in self.deltas.iterrows():
            out[f"delta_roc_auc_{name}"] = float(row["delta"])
            out[f"delta_roc_auc_{name}_ci_low"] = float(row["ci_low"])
            out[f"delta_roc_auc_{name}_ci_high"] = float(row["ci_high"])
        return out


def verdict_line(deltas: pd.DataFrame) -> str:
    """The verdict from a ``deltas`` table (index baseline; delta, ci_low, ci_high)."""
    failing = [
        f"{name} (Δ {row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}])"
        for name, row in deltas.iterrows()
        if not row["ci_low"] > 0
    ]
    if not failing:
        if deltas.empty:
            return "no baseline to compare"
        weakest = deltas["ci_low"].idxmin()
        row = deltas.loc[weakest]
        return (
            f"beats every baseline (smallest win: {weakest} Δ {row['delta']:+.3f} "
            f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}])"
        )
    return "does not beat " + "; ".join(failing)


# ---------------------------------------------------------------- bootstrap


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start positions of runs of equal values in a sorted array."""
    change = np.flatnonzero(np.diff(sorted_scores)) + 1
    return np.concatenate(([0], change))


def weighted_roc_auc(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of ``counts`` (how often each customer is drawn).

    ``counts`` has shape (resamples, customers); ties count one half, as in
    ``sklearn.metrics.roc_auc_score``. A resample with no positive or no
    negative gives NaN.
    """
    order = np.argsort(score, kind="stable")
    starts = _tie_groups(score[order])
    positive = y[order].astype(bool)
    w = counts[:, order].astype("float64")
    w_pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    w_neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    below = np.cumsum(w_neg, axis=1) - w_neg
    pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w_pos * (below + 0.5 * w_neg)).sum(axis=1) / pairs


def paired_auc_deltas(
    origins: list[OriginScores], *, resamples: int = 400, seed: int = 0, chunk: int = 100
) -> pd.DataFrame:
    """Mean ROC-AUC difference model − baseline over origins, with a paired bootstrap 95% CI.

    Each resample draws customers with replacement within every origin (the
    same draw for the model and all baselines) and averages the per-origin
    differences; the interval is the 2.5th and 97.5th percentile.
    """
    if not origins:
        raise ValueError("no test origin to evaluate")
    names = list(origins[0].baselines)
    rng = np.random.default_rng(seed)
    sums = {name: np.zeros(resamples) for name in names}
    for origin in origins:
        n = len(origin.y)
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            draws = rng.integers(0, n, size=(size, n))
            flat = (draws + (np.arange(size) * n)[:, None]).ravel()
            counts = np.bincount(flat, minlength=size * n).reshape(size, n)
            model = weighted_roc_auc(origin.y, origin.model, counts)
            for name in names:
                base = weighted_roc_auc(origin.y, origin.baselines[name], counts)
                sums[name][start : start + size] += model - base
    from sklearn.metrics import roc_auc_score

    rows = {}
    for name in names:
        point = np.mean(
            [roc_auc_score(o.y, o.model) - roc_auc_score(o.y, o.baselines[name]) for o in origins]
        )
        draws = sums[name] / len(origins)
        low, high = np.nanpercentile(draws, [2.5, 97.5])
        rows[name] = {"delta": float(point), "ci_low": float(low), "ci_high": float(high)}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["delta", "ci_low", "ci_high"])
    frame.index.name = "baseline"
    return frame


# ---------------------------------------------------------------- evaluation


def scorer_metrics(
    y: np.ndarray,
    score: np.ndarray,
    *,
    probabilities: bool,
    contact_cost: float,
    offer_value: float,
) -> dict[str, float]:
    """The classification metrics plus expected maximum profit of one scorer."""
    from training.evaluation.metrics import (
        ProfitModel,
        classification_metrics,
        expected_maximum_profit,
    )

    metrics = classification_metrics(y, score, probabilities=probabilities)
    metrics["expected_maximum_profit"] = expected_maximum_profit(
        y, score, ProfitModel(contact_cost=contact_cost, offer_value=offer_value)
    )
    return metrics


def evaluate_origins(
    origins: list[OriginScores],
    *,
    probabilistic: set[str] | frozenset[str],
    contact_cost: float = 1.0,
    offer_value: float = 10.0,
    resamples: int = 400,
    seed: int = 0,
) -> Evaluation:
    """Metrics per origin and scorer, their means, and the paired AUC intervals.

    ``probabilistic`` names the baselines whose scores are probabilities (their
    log loss, Brier and ECE are reported; rank-only baselines get NaN there).
    The model and the oracle are always probabilities.
    """
    rows = {}
    for origin in origins:
        for name, score in origin.scorers().items():
            is_probability = name in (MODEL, *REFERENCES) or name in probabilistic
            rows[(origin.test_cutoff, name)] = scorer_metrics(
                origin.y,
                score,
                probabilities=is_probability,
                contact_cost=contact_cost,
                offer_value=offer_value,
            )
    per_origin = pd.DataFrame.from_dict(rows, orient="index")
    per_origin.index = pd.MultiIndex.from_tuples(per_origin.index, names=["test_cutoff", "scorer"])
    columns = [c for c in SUMMARY_METRICS if c in per_origin.columns]
    per_origin = per_origin[columns]
    order = list(origins[0].scorers())
    comparison = per_origin.groupby(level="scorer", sort=False).mean().reindex(order)
    deltas = paired_auc_deltas(origins, resamples=resamples, seed=seed)
    return Evaluation(per_origin, comparison, deltas, resamples)


def origin_metric_names(evaluation: Evaluation) -> dict[str, float]:
    """Per-origin figures as flat metric names (``origin1_test_roc_auc`` = newest origin).

    Baselines become ``origin<k>_baseline_<name>_<metric>``, the oracle
    ``origin<k>_oracle_<metric>`` (the ceiling ``origin<k>_ceiling_<metric>``).
    """
    cutoffs = sorted(evaluation.per_origin.index.get_level_values("test_cutoff").unique())
    number = {c: len(cutoffs) - i for i, c in enumerate(cutoffs)}
    out: dict[str, float] = {}
    for (cutoff, scorer), row in evaluation.per_origin.iterrows():
        if scorer == MODEL:
            prefix = f"origin{number[cutoff]}_test_"
        elif scorer in REFERENCES:
            prefix = f"origin{number[cutoff]}_{scorer}_"
        else:
            prefix = f"origin{number[cutoff]}_baseline_{scorer}_"
        for metric, value in row.items():
            if np.isfinite(value):
                out[f"{prefix}{metric}"] = float(value)
    return out
