"""Each served model's test metrics next to its baselines', from its MLflow run's metrics.

``winback train`` logs, in the run of every model, its test metrics
(``test_<metric>``), each baseline's metrics on the same test cutoff
(``baseline_<name>_<metric>``) and, on simulated data, the oracle's
(``oracle_<metric>``, or the best achievable ``ceiling_<metric>`` on the rich simulated
shop; see ``training.tracking.recording``) and the run's ``verdict`` and ``loses_to`` tags. ``/models`` and the console's
model panel show them side by side, so a person sees whether the champion beats
the simple rules it must beat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TEST_PREFIX = "test_"
BASELINE_PREFIX = "baseline_"
ORACLE_PREFIX = "oracle_"
CEILING_PREFIX = "ceiling_"


@dataclass(frozen=True)
class RunComparison:
    """A model's test metrics, its baselines' and the oracle's (``None`` for real data)."""

    run_id: str | None = None
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    baselines: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    oracle: Mapping[str, float] | None = None
    #: The simulator's best achievable scorer on the rich simulated shop (``ceiling_<metric>``).
    ceiling: Mapping[str, float] | None = None
    verdict: str | None = None
    loses_to: tuple[str, ...] = ()

    def to_fields(self) -> dict[str, Any]:
        """The additive ``ModelInfo`` fields."""
        return {
            "run_id": self.run_id,
            "test_metrics": dict(self.test_metrics),
            "baselines": {name: dict(values) for name, values in self.baselines.items()},
            "oracle": None if self.oracle is None else dict(self.oracle),
            "ceiling": None if self.ceiling is None else dict(self.ceiling),
            "verdict": self.verdict,
            "loses_to": list(self.loses_to),
        }


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """The finite values (rank-only baselines have no log loss: NaN, which JSON cannot carry)."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def split_baseline_metric(key: str, metric_names: Iterable[str]) -> tuple[str, str] | None:
    """``("rfm_recency", "roc_auc")`` from ``baseline_rfm_recency_roc_auc``.

    Baseline and metric names both contain underscores, so the metric is the
    longest known metric name the key ends with; ``None`` when none fits.
    """
    if not key.startswith(BASELINE_PREFIX):
        return None
    rest = key[len(BASELINE_PREFIX) :]
    for metric in sorted(set(metric_names), key=len, reverse=True):
        suffix = f"_{metric}"
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return rest[: -len(suffix)], metric
    return None


def _reference(metrics: Mapping[str, float], prefix: str, known: Iterable[str]) -> dict | None:
    """``{metric: value}`` of the run's ``<prefix><metric>`` for the ``known`` metrics, or None."""
    known = set(known)
    out = {
        k[len(prefix) :]: float(v)
        for k, v in metrics.items()
        if k.startswith(prefix) and k[len(prefix) :] in known
    }
    return out or None


def run_comparison(
    metrics: Mapping[str, float],
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunComparison:
    """Split a training run's metrics into the model's test metrics, baselines, oracle and ceiling.

    The metric names known are those of the model's ``test_*`` metrics (the
    baselines are scored with the same function), so a baseline metric the model
    lacks is left out rather than misread.
    """
    metrics = _finite(metrics)
    test = {k[len(TEST_PREFIX) :]: v for k, v in metrics.items() if k.startswith(TEST_PREFIX)}
    baselines: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = split_baseline_metric(key, test)
        if parts is not None:
            name, metric = parts
            baselines.setdefault(name, {})[metric] = float(value)
    tags = tags or {}
    losing = tuple(n for n in str(tags.get("loses_to", "")).split(",") if n.strip())
    return RunComparison(
        run_id=run_id,
        test_metrics=test,
        baselines=dict(sorted(baselines.items())),
        oracle=_reference(metrics, ORACLE_PREFIX, test),
        ceiling=_reference(metrics, CEILING_PREFIX, test),
        verdict=tags.get("verdict") or None,
        loses_to=tuple(n.strip() for n in losing),
    )
