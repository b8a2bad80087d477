"""The report's calibration note: the floor a base-rate shift puts under ECE."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from training.evaluation.compare import OriginScores
from training.evaluation.metrics import expected_calibration_error
from training.tracking.recording import _calibration_notes


def _origin(rng, cutoff: str, validation_rate: float, test_rate: float, predicted: float):
    split = SimpleNamespace(
        test_cutoff=pd.Timestamp(cutoff),
        validation=pd.DataFrame({"churned": rng.random(2000) < validation_rate}),
    )
    y = rng.random(2000) < test_rate
    p = np.clip(rng.normal(predicted, 0.1, 2000), 0.01, 0.99)
    return split, OriginScores(pd.Timestamp(cutoff), y, p, {})


def _notes(origins, ece: float) -> list[str]:
    splits, scores = zip(*origins, strict=True)
    prepared = SimpleNamespace(label="churned", origins=SimpleNamespace(splits=list(splits)))
    return _calibration_notes(prepared, SimpleNamespace(metrics={"ece": ece}), list(scores))


def test_ece_is_never_below_the_gap_between_predicted_and_observed_rate():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.random(500) < rng.uniform(0.1, 0.9)
        p = rng.beta(rng.uniform(0.5, 5), rng.uniform(0.5, 5), 500)
        assert expected_calibration_error(y, p) >= abs(p.mean() - y.mean()) - 1e-12


def test_a_base_rate_shift_is_named_with_its_floor():
    rng = np.random.default_rng(1)
    origins = [
        _origin(rng, "2011-09-10", 0.50, 0.38, 0.49),
        _origin(rng, "2011-08-11", 0.48, 0.40, 0.47),
    ]
    (note,) = _notes(origins, ece=0.09)
    floors = [abs(o.model.mean() - o.y.mean()) for _, o in origins]
    assert "out of reach" in note
    assert f"mean {np.mean(floors):.3f}" in note
    assert f"{origins[0][1].y.mean():.3f} at test" in note
    assert f"ECE ≥ {floors[1]:.3f}" in note


def test_no_shift_says_the_gap_explains_little():
    rng = np.random.default_rng(2)
    origins = [_origin(rng, "2011-09-10", 0.40, 0.40, 0.40)]
    (note,) = _notes(origins, ece=0.05)
    assert "out of reach" not in note
    assert "explains at most" in note


@pytest.mark.parametrize("ece", [0.01, 0.03, float("nan")])
def test_no_note_when_ece_meets_its_target(ece):
    rng = np.random.default_rng(3)
    assert _notes([_origin(rng, "2011-09-10", 0.5, 0.3, 0.5)], ece=ece) == []
