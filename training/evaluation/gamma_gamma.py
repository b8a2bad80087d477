"""Gamma-Gamma: the spend-per-purchase model that pairs with BG/NBD for customer value.

A small maximum-likelihood implementation of Fader, Hardie & Lee (2005), "RFM
and CLV: Using Iso-Value Curves for Customer Base Analysis" (and Fader & Hardie's
note "The Gamma-Gamma Model of Monetary Value"). BG/NBD says how many purchases a
customer will make in a horizon; Gamma-Gamma says what each will be worth; their
product is the classic "BTYD" customer-value estimate our value model is judged
against.

Model: a customer's purchase values are ``z ~ Gamma(p, nu)`` (shape ``p``, rate
``nu``), so her mean purchase value is ``p / nu``; across customers ``nu ~
Gamma(q, gamma)`` (shape ``q``, rate ``gamma``). The population mean purchase
value is ``p * gamma / (q - 1)`` (for ``q > 1``). Spend is assumed independent of
the purchase process.

Vocabulary (as in lifetimes / PyMC-Marketing): ``frequency`` is the number of
purchases a customer's ``monetary_value`` (their mean purchase value, > 0)
averages over. Here it counts every purchase day, the first included, so that
one-time buyers inform the fit too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from training.evaluation.bgnbd import BetaGeoFitter

SPEND_COLUMNS = ("frequency", "monetary_value")


def _as_arrays(frequency, monetary_value) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    x, m = np.broadcast_arrays(x, m)
    for name, values in (("frequency", x), ("monetary_value", m)):
        if np.isnan(values).any():
            raise ValueError(f"{name} has {int(np.isnan(values).sum())} missing values; drop them")
    if (x < 1).any():
        raise ValueError(
            f"frequency must be >= 1 purchase; {int((x < 1).sum())} rows are below: "
            "drop customers without purchases before fitting Gamma-Gamma"
        )
    if (m <= 0).any():
        raise ValueError(
            f"monetary_value must be > 0; {int((m <= 0).sum())} rows are not: "
            "Gamma-Gamma models positive spend only, drop them"
        )
    return x, m


def gamma_gamma_log_likelihood(
    frequency, monetary_value, *, p: float, q: float, gamma: float
) -> np.ndarray:
    """Per-customer log-likelihood of a mean purchase value under Gamma-Gamma.

    ``x * z_bar`` is a sum of ``x`` Gamma(p, nu) values, so Gamma(px, nu); mixing
    over ``nu ~ Gamma(q, gamma)`` gives, for ``z_bar`` (FHL 2005, appendix)::

        Gamma(px + q) / (Gamma(px) Gamma(q)) * gamma^q * z_bar^(px - 1) * x^(px)
            / (gamma + x z_bar)^(px + q)
    """
    x, m = _as_arrays(frequency, monetary_value)
    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * m)
    )


def _log_likelihood_and_gradient(
    x: np.ndarray, m: np.ndarray, p: float, q: float, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient in (p, q, gamma), shape (n, 3)."""
    ll = gamma_gamma_log_likelihood(x, m, p=p, q=q, gamma=gamma)
    px = p * x
    log_total = np.log(gamma + x * m)
    grad = np.empty((x.size, 3))
    grad[:, 0] = x * (
        special.digamma(px + q) - special.digamma(px) + np.log(m) + np.log(x) - log_total
    )
    grad[:, 1] = special.digamma(px + q) - special.digamma(q) + np.log(gamma) - log_total
    grad[:, 2] = q / gamma - (px + q) / (gamma + x * m)
    return ll, grad


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (``gamma`` in the currency of the spend)."""

    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}


class GammaGammaFitter:
    """Maximum-likelihood Gamma-Gamma model with a lifetimes-like interface.

    Parameters
    ----------
    penalizer_coef
        L2 penalty on the log-parameters; 0 gives the plain MLE.
    max_iter
        Maximum iterations of the L-BFGS-B optimiser.

    Attributes
    ----------
    params_ : GammaGammaParams
    log_likelihood_ : float
        Total log-likelihood at the optimum (without the penalty).
    n_customers_ : int
    converged_ : bool
    """

    def __init__(self, penalizer_coef: float = 0.0, max_iter: int = 500):
        self.penalizer_coef = penalizer_coef
        self.max_iter = max_iter

    def fit(self, frequency, monetary_value) -> GammaGammaFitter:
        """Fit (p, q, gamma) by maximum likelihood; returns self."""
        x, m = _as_arrays(frequency, monetary_value)
        if x.size == 0:
            raise ValueError("cannot fit Gamma-Gamma on 0 customers")
        n = float(x.size)
        scale = float(np.mean(m))  # gamma is in money units: start it at the mean spend

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll, grad = _log_likelihood_and_gradient(x, m, *params)
            if not np.all(np.isfinite(ll)):
                return 1e10, np.zeros(3)
            value = -float(ll.sum()) / n + self.penalizer_coef * float(np.sum(log_params**2))
            gradient = -grad.sum(axis=0) / n * params + 2 * self.penalizer_coef * log_params
            return value, gradient

        result = optimize.minimize(
            objective,
            np.log([1.0, 2.0, scale]),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-10.0, 10.0), (-10.0, 10.0), (np.log(scale) - 15.0, np.log(scale) + 15.0)],
            options={"maxiter": self.max_iter},
        )
        p, q, gamma = (float(v) for v in np.exp(result.x))
        self.params_ = GammaGammaParams(p=p, q=q, gamma=gamma)
        self.log_likelihood_ = float(gamma_gamma_log_likelihood(x, m, p=p, q=q, gamma=gamma).sum())
        self.n_customers_ = int(n)
        self.converged_ = bool(result.success)
        return self

    @classmethod
    def from_params(cls, p: float, q: float, gamma: float) -> GammaGammaFitter:
        """A fitter with fixed, known parameters (no fitting)."""
        fitter = cls()
        fitter.params_ = GammaGammaParams(p=p, q=q, gamma=gamma)
        return fitter

    def _params(self) -> GammaGammaParams:
        if not hasattr(self, "params_"):
            raise RuntimeError(
                "GammaGammaFitter is not fitted; call fit(frequency, monetary_value)"
            )
        return self.params_

    def population_mean(self) -> float:
        """Mean purchase value of a customer nothing is known about: ``p gamma / (q - 1)``."""
        p = self._params()
        if p.q <= 1:
            raise ValueError(f"q = {p.q:.3g} <= 1: the population mean spend is infinite")
        return p.p * p.gamma / (p.q - 1)

    def expected_spend(self, frequency, monetary_value) -> np.ndarray:
        """E[mean purchase value | frequency, monetary_value] (FHL 2005, eq. 5).

        A weighted average of the population mean and the customer's own mean,
        with weight ``p x / (p x + q - 1)`` on her own; ``frequency`` 0 gives the
        population mean (``monetary_value`` is then ignored).
        """
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        x, m = np.broadcast_arrays(x, m)
        p = self._params()
        population = self.population_mean()
        own = np.where(x > 0, np.nan_to_num(m, nan=0.0), 0.0)
        weight = p.p * x / (p.p * x + p.q - 1)
        return (1 - weight) * population + weight * own

    def expected_value(
        self, bgnbd: BetaGeoFitter, horizon_days: float, rfm: pd.DataFrame
    ) -> np.ndarray:
        """BG/NBD x Gamma-Gamma: expected purchases in the horizon x expected spend per purchase.

        ``rfm`` holds ``frequency``, ``recency``, ``T`` (repeat purchase days, as
        BG/NBD counts them) and ``monetary_value``; ``frequency + 1`` purchase
        days inform the spend, and a non-positive mean spend counts as unknown.
        """
        missing = [c for c in ("frequency", "recency", "T", "monetary_value") if c not in rfm]
        if missing:
            raise ValueError(f"rfm is missing columns {missing}; build it with value_summary")
        purchases = bgnbd.expected_purchases(
            horizon_days, rfm["frequency"], rfm["recency"], rfm["T"]
        )
        m = rfm["monetary_value"].to_numpy(dtype=float)
        days = np.where(m > 0, rfm["frequency"].to_numpy(dtype=float) + 1, 0.0)
        return purchases * self.expected_spend(days, m)


def simulate_gamma_gamma(
    n_customers: int, frequency, *, p: float, q: float, gamma: float, seed: int = 0
) -> pd.DataFrame:
    """Simulate mean purchase values from a Gamma-Gamma model with known parameters.

    ``frequency`` (purchases per customer, >= 1) is a scalar or one count per
    customer. Returns ``frequency``, ``monetary_value`` and the true ``nu`` and
    ``mean_spend`` (``p / nu``) per customer.
    """
    rng = np.random.default_rng(seed)
    x = np.broadcast_to(np.asarray(frequency, dtype=int), (n_customers,)).copy()
    if (x < 1).any():
        raise ValueError("frequency must be >= 1 for every simulated customer")
    nu = rng.gamma(shape=q, scale=1.0 / gamma, size=n_customers)
    # the sum of x purchase values is Gamma(p x, nu)
    totals = rng.gamma(shape=p * x, scale=1.0 / nu)
    return pd.DataFrame(
        {"frequency": x.astype(float), "monetary_value": totals / x, "nu": nu, "mean_spend": p / nu}
    )
