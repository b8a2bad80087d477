"""Calibration: each method fits what it should, and "auto" picks the better one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.model.calibration import (
    IsotonicCalibrator,
    SigmoidCalibrator,
    cross_fitted_scores,
    fit_calibrator,
)


def logistic_sample(n: int, slope: float, intercept: float, seed: int):
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 2, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(slope * raw + intercept)))
    return raw, y


def step_sample(n: int, seed: int):
    """True probability is a staircase in the raw score: no sigmoid fits it."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(-3, 3, n)
    p = np.select([raw < -1, raw < 1.5], [0.05, 0.5], 0.55)
    return raw, rng.random(n) < p


def test_sigmoid_recovers_platt_parameters():
    raw, y = logistic_sample(40_000, slope=0.5, intercept=-1.0, seed=1)
    calibrator = SigmoidCalibrator().fit(raw, y)
    assert calibrator.slope_ == pytest.approx(0.5, abs=0.03)
    assert calibrator.intercept_ == pytest.approx(-1.0, abs=0.05)
    expected = 1 / (1 + np.exp(-(calibrator.slope_ * 1.0 + calibrator.intercept_)))
    assert calibrator.predict(np.array([1.0]))[0] == pytest.approx(expected)


def test_isotonic_matches_bin_frequencies_on_a_hand_table():
    raw = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    calibrator = IsotonicCalibrator().fit(raw, y)
    np.testing.assert_allclose(calibrator.predict(np.array([0.0, 1.0, 2.0])), [1e-6, 0.5, 1 - 1e-6])
    # outside the fitted range the ends are kept
    np.testing.assert_allclose(calibrator.predict(np.array([-5.0, 9.0])), [1e-6, 1 - 1e-6])


def test_auto_picks_sigmoid_when_truth_is_logistic_and_data_is_small():
    raw, y = logistic_sample(400, slope=1.0, intercept=0.0, seed=2)
    result = fit_calibrator(raw, y, "auto")
    assert result.method == "sigmoid"
    assert result.scores["sigmoid"]["log_loss"] < result.scores["isotonic"]["log_loss"]


def test_auto_picks_isotonic_when_truth_is_a_staircase():
    raw, y = step_sample(20_000, seed=3)
    result = fit_calibrator(raw, y, "auto")
    assert result.method == "isotonic"
    assert isinstance(result.calibrator, IsotonicCalibrator)
    assert result.scores["isotonic"]["log_loss"] < result.scores["sigmoid"]["log_loss"]


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_auto_choice_is_the_lower_cross_fitted_log_loss(seed):
    raw, y = step_sample(1500, seed=seed) if seed % 2 else logistic_sample(1500, 2.0, 0.5, seed)
    result = fit_calibrator(raw, y, "auto", seed=seed)
    scores = {m: cross_fitted_scores(raw, y, m, seed=seed) for m in ("sigmoid", "isotonic")}
    assert scores == result.scores
    assert result.method == min(scores, key=lambda m: scores[m]["log_loss"])


def test_explicit_method_is_respected():
    raw, y = step_sample(2000, seed=7)
    assert fit_calibrator(raw, y, "sigmoid").method == "sigmoid"
    assert fit_calibrator(raw, y, "isotonic").method == "isotonic"
    assert fit_calibrator(raw, y, "sigmoid").scores == {}


def test_calibration_improves_a_miscalibrated_score():
    raw, y = logistic_sample(20_000, slope=0.3, intercept=-1.5, seed=8)
    fit_raw, fit_y, held_raw, held_y = raw[:10_000], y[:10_000], raw[10_000:], y[10_000:]
    uncalibrated = 1 / (1 + np.exp(-held_raw))
    calibrated = fit_calibrator(fit_raw, fit_y).calibrator.predict(held_raw)
    brier = lambda p: np.mean((p - held_y) ** 2)  # noqa: E731
    assert brier(calibrated) < brier(uncalibrated) - 0.01


def test_single_class_is_a_clear_error():
    with pytest.raises(ValueError, match="only one class"):
        fit_calibrator(np.arange(5.0), np.zeros(5))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(["sigmoid", "isotonic"]))
def test_calibrated_probabilities_are_monotone_in_the_raw_score(seed, method):
    raw, y = logistic_sample(300, slope=1.0, intercept=0.0, seed=seed)
    calibrator = fit_calibrator(raw, y, method).calibrator
    grid = np.linspace(-8, 8, 101)
    p = calibrator.predict(grid)
    assert np.all(np.diff(p) >= 0)
    assert np.all((p > 0) & (p < 1))
