"""The demo's value step: train, record and gate the customer-value model.

Kept apart from ``winback.demo`` so the wiring there stays one call: the
value model is trained on the same tables after the three classifiers, and
scoring then picks up its champion like theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from winback.config import WinbackConfig


@dataclass(frozen=True)
class DemoValue:
    """The value model's evaluation and where the registry put it (or why it was skipped)."""

    result: Any = None
    record: Any = None
    skipped: str | None = None

    def summary(self) -> str:
        """One line for the demo summary: Gini of the model next to its baselines."""
        if self.result is None:
            return f"skipped: {self.skipped}"
        mean = self.result.evaluation.mean["normalized_gini"]
        model = mean[self.result.model.variant]
        baselines = ", ".join(
            f"{n} {v:.3f}" for n, v in mean.items() if n != self.result.model.variant
        )
        role = "champion" if self.record.promoted else "challenger"
        return (
            f"normalized Gini {model:.3f} vs {baselines} ({self.result.verdict()}); "
            f"winback-value v{self.record.version} {role}"
        )


def train_demo_value(config: WinbackConfig, tables: Any, progress) -> DemoValue:
    """Train the value model on ``tables`` and gate it; a history too short is a skip, not a failure."""
    from training.tracking.value_record import record_value_run
    from training.value_training import train_value

    progress("value: evaluating over rolling origins")
    try:
        result = train_value(tables, config.value.settings(config.train.num_threads))
    except ValueError as exc:
        return DemoValue(skipped=str(exc))
    progress("value: recording and gating")
    return DemoValue(result, record_value_run(result, config.train.tracking))
