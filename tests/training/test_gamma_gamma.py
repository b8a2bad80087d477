"""Gamma-Gamma: brute-force likelihood, gradient, parameter recovery, expectations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from training.evaluation.bgnbd import BetaGeoFitter
from training.evaluation.gamma_gamma import (
    GammaGammaFitter,
    _log_likelihood_and_gradient,
    gamma_gamma_log_likelihood,
    simulate_gamma_gamma,
)

TRUTH = dict(p=6.25, q=3.74, gamma=15.44)  # lifetimes' CDNOW fit, dollars


def brute_force_likelihood(x, m, p, q, gamma):
    """Integrate the density of x purchases averaging m over nu ~ Gamma(q, gamma)."""

    def integrand(nu):
        # x * z_bar ~ Gamma(p x, rate nu); density of z_bar = x * density of the sum at x m
        return (
            x
            * stats.gamma.pdf(x * m, p * x, scale=1 / nu)
            * stats.gamma.pdf(nu, q, scale=1 / gamma)
        )

    value, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    return np.log(value)


@pytest.mark.parametrize(("x", "m"), [(1, 12.0), (3, 40.0), (7, 5.5)])
def test_log_likelihood_matches_numerical_integration(x, m):
    ll = gamma_gamma_log_likelihood([x], [m], **TRUTH)[0]
    assert ll == pytest.approx(brute_force_likelihood(x, m, **TRUTH), abs=1e-6)


def test_gradient_matches_finite_differences():
    x = np.array([1.0, 2.0, 5.0])
    m = np.array([10.0, 33.0, 4.0])
    params = np.array([4.0, 3.0, 20.0])
    _, grad = _log_likelihood_and_gradient(x, m, *params)
    names = ["p", "q", "gamma"]
    for k in range(3):
        step = np.zeros(3)
        step[k] = 1e-6 * params[k]
        up = gamma_gamma_log_likelihood(x, m, **dict(zip(names, params + step, strict=True)))
        down = gamma_gamma_log_likelihood(x, m, **dict(zip(names, params - step, strict=True)))
        np.testing.assert_allclose(grad[:, k], (up - down) / (2 * step[k]), rtol=1e-5)


def test_fit_recovers_known_parameters():
    # p is only weakly identified from few purchases each: 10,000 customers with 1-14
    frequency = np.random.default_rng(5).integers(1, 15, 10000)
    sim = simulate_gamma_gamma(10000, frequency, seed=3, **TRUTH)
    fitter = GammaGammaFitter().fit(sim["frequency"], sim["monetary_value"])
    for name, value in TRUTH.items():
        assert fitter.params_.as_dict()[name] == pytest.approx(value, rel=0.2), name
    truth_ll = gamma_gamma_log_likelihood(sim["frequency"], sim["monetary_value"], **TRUTH).sum()
    assert fitter.log_likelihood_ >= truth_ll - 1e-6
    assert fitter.converged_


def test_expected_spend_is_the_posterior_mean():
    fitter = GammaGammaFitter.from_params(**TRUTH)
    sim = simulate_gamma_gamma(40000, 2, seed=9, **TRUTH)
    expected = fitter.expected_spend(sim["frequency"], sim["monetary_value"])
    # unbiased for the true mean spend overall and within spend quartiles (shrinkage is right)
    assert expected.mean() == pytest.approx(sim["mean_spend"].mean(), rel=0.02)
    quartile = np.digitize(
        sim["monetary_value"], np.quantile(sim["monetary_value"], [0.25, 0.5, 0.75])
    )
    for k in range(4):
        rows = quartile == k
        assert expected[rows].mean() == pytest.approx(sim["mean_spend"][rows].mean(), rel=0.05)
    # more evidence, less shrinkage toward the population mean
    many, one = fitter.expected_spend([20, 1], [100.0, 100.0])
    assert one < many < 100.0
    assert fitter.expected_spend(0, np.nan)[()] == pytest.approx(fitter.population_mean())


def test_expected_value_is_purchases_times_spend():
    bgnbd = BetaGeoFitter.from_params(r=0.8, alpha=40.0, a=0.9, b=3.0)
    spend = GammaGammaFitter.from_params(**TRUTH)
    rfm = pd.DataFrame(
        {"frequency": [0.0, 3.0], "recency": [0.0, 50.0], "T": [30.0, 60.0],
         "monetary_value": [0.0, 25.0]}
    )  # fmt: skip
    value = spend.expected_value(bgnbd, 90, rfm)
    purchases = bgnbd.expected_purchases(90, rfm["frequency"], rfm["recency"], rfm["T"])
    assert value[0] == pytest.approx(purchases[0] * spend.population_mean())
    assert value[1] == pytest.approx(purchases[1] * spend.expected_spend(4, 25.0)[()])


@pytest.mark.parametrize(
    ("frequency", "monetary_value", "message"),
    [([0], [3.0], "frequency must be >= 1"), ([2], [0.0], "monetary_value must be > 0"),
     ([2], [np.nan], "monetary_value has 1 missing")],
)  # fmt: skip
def test_invalid_input_is_rejected(frequency, monetary_value, message):
    with pytest.raises(ValueError, match=message):
        GammaGammaFitter().fit(frequency, monetary_value)


def test_unfitted_model_says_what_to_do():
    with pytest.raises(RuntimeError, match="call fit"):
        GammaGammaFitter().expected_spend([1], [3.0])
