"""The value gate: baselines first, then the champion on the same origins."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd

from training.tracking.value_record import value_gate

ORIGINS = [pd.Timestamp("2024-11-01"), pd.Timestamp("2024-12-01")]


def _result(gini: float, deltas: list[tuple[str, float, float]]):
    evaluation = SimpleNamespace(per_origin=pd.DataFrame({"origin": ORIGINS}))
    return SimpleNamespace(
        evaluation=evaluation,
        loses_to=lambda: [name for name, _, high in deltas if high < 0],
        verdict=lambda: "beats every baseline" if all(low > 0 for _, low, _ in deltas) else "no",
        metrics=lambda: {"test_normalized_gini": gini},
    )


class _Client:
    def __init__(self, gini: float):
        self.gini = gini

    def get_run(self, run_id):
        return SimpleNamespace(data=SimpleNamespace(metrics={"test_normalized_gini": self.gini}))


def _champion(origins=ORIGINS):
    tags = {"test_origins": json.dumps([str(o.date()) for o in origins])}
    return SimpleNamespace(version="3", run_id="r", tags=tags)


def test_a_model_that_loses_to_a_baseline_is_never_champion():
    promoted, reason = value_gate(_result(0.8, [("btyd", -0.03, -0.01)]), None, _Client(0.0))
    assert not promoted and reason.startswith("loses to btyd")


def test_first_model_and_champion_comparison_on_the_same_origins():
    good = _result(0.81, [("btyd", 0.01, 0.02), ("trailing", 0.05, 0.07)])
    assert value_gate(good, None, _Client(0.0)) == (
        True,
        "first value model (beats every baseline)",
    )
    promoted, reason = value_gate(good, _champion(), _Client(0.81))
    assert not promoted and reason.startswith("equal")
    promoted, reason = value_gate(good, _champion(), _Client(0.79))
    assert promoted and reason.startswith("better")
    promoted, reason = value_gate(good, _champion([pd.Timestamp("2023-01-01")]), _Client(0.99))
    assert promoted and "tested on other origins" in reason
