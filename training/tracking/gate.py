"""The promotion gate: whether a new model beats the champion, decided from metrics alone (no registry access)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Whether a larger value of a metric means a better model.
HIGHER_IS_BETTER: dict[str, bool] = {
    "qini_test": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "expected_maximum_profit": True,
    "emp": True,
    **{f"lift_at_{k}": True for k in (5, 10, 20)},
    **{f"capture_at_{k}": True for k in (5, 10, 20)},
}


@dataclass(frozen=True)
class GateConfig:
    """How the promotion gate compares a new model with the champion.

    Attributes
    ----------
    metric
        Metric compared on the shared test cutoff (a key of the metrics dicts).
    min_improvement
        The new model must beat the champion by more than zero and by at least
        this much (in the metric's units) to be promoted.
    higher_is_better
        Direction of the metric; looked up in :data:`HIGHER_IS_BETTER` when None.
    """

    metric: str = "roc_auc"
    min_improvement: float = 0.0
    higher_is_better: bool | None = None

    def __post_init__(self) -> None:
        if self.higher_is_better is None and self.metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"gate metric {self.metric!r} has no known direction; "
                f"use one of {sorted(HIGHER_IS_BETTER)} or set higher_is_better"
            )
        if not self.min_improvement >= 0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement!r}")

    @property
    def higher(self) -> bool:
        """The metric's direction (explicit, else from :data:`HIGHER_IS_BETTER`)."""
        if self.higher_is_better is not None:
            return self.higher_is_better
        return HIGHER_IS_BETTER[self.metric]

    @classmethod
    def from_config(cls, config: Any) -> GateConfig:
        """A gate config from a :class:`GateConfig` or a training config.

        A training config provides ``gate_metric``, ``gate_min_improvement`` and
        optionally ``gate_higher_is_better`` (see ``training.config.TrainConfig``).
        """
        if isinstance(config, GateConfig):
            return config
        if config is None:
            return cls()
        try:
            metric = config.gate_metric
        except AttributeError:
            raise TypeError(
                f"cannot read a promotion gate from {type(config).__name__}: "
                "pass a GateConfig or a config with gate_metric and gate_min_improvement"
            ) from None
        return cls(
            metric=metric,
            min_improvement=float(getattr(config, "gate_min_improvement", 0.0)),
            higher_is_better=getattr(config, "gate_higher_is_better", None),
        )


@dataclass(frozen=True)
class GateDecision:
    """Whether a new model replaces the champion, and why in one sentence."""

    promote: bool
    reason: str


def _is_missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def gate(
    new_metric: float | None,
    champion_metric: float | None,
    *,
    min_improvement: float = 0.0,
    higher_is_better: bool = True,
    metric: str = "metric",
) -> GateDecision:
    """Decide whether a new model beats the champion (pure: no registry access).

    The new model is promoted when there is no champion metric (first model),
    or when its improvement over the champion (``new - champion``, or
    ``champion - new`` when lower is better) is positive and at least
    ``min_improvement``. Equal is not better. A missing or NaN new metric never
    promotes.
    """
    if _is_missing(new_metric):
        return GateDecision(False, f"the new model has no {metric} to compare")
    new_metric = float(new_metric)
    if _is_missing(champion_metric):
        return GateDecision(
            True, f"first model: no champion to compare ({metric} {new_metric:.4f})"
        )
    champion_metric = float(champion_metric)
    improvement = new_metric - champion_metric if higher_is_better else champion_metric - new_metric
    comparison = f"{metric} {new_metric:.4f} vs champion {champion_metric:.4f}"
    if improvement > 0 and improvement >= min_improvement:
        return GateDecision(True, f"better: {comparison} (improvement {improvement:+.4f})")
    if improvement > 0:
        return GateDecision(
            False,
            f"not better enough: {comparison} (improvement {improvement:+.4f} "
            f"< required {min_improvement:.4f})",
        )
    word = "equal" if improvement == 0 else "worse"
    return GateDecision(False, f"{word}: {comparison} (improvement {improvement:+.4f})")
