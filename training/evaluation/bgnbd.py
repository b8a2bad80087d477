"""BG/NBD: the beta-geometric / negative-binomial model of repeat buying.

A small maximum-likelihood implementation of Fader, Hardie & Lee (2005),
"Counting Your Customers the Easy Way", used as a baseline (expected purchases
in the label horizon) and as a candidate LightGBM feature. PyMC-Marketing
would do the same with a much heavier dependency.

Model: while alive, a customer buys as a Poisson process with rate
``lambda ~ Gamma(r, alpha)`` (shape ``r``, rate ``alpha``); after each *repeat*
purchase she drops out for good with probability ``p ~ Beta(a, b)``.

Vocabulary (as in lifetimes / PyMC-Marketing, in days):

* ``frequency`` -- the number of repeat purchase days (distinct purchase days
  minus one),
* ``recency`` -- days from the first to the last purchase day,
* ``T`` -- days from the first purchase day to the cutoff.

Note that ``p_alive`` is 1 for customers without repeat purchases, so one-time
buyers should be ranked by :meth:`BetaGeoFitter.expected_purchases`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy import optimize, special

from features.engines.duckdb_engine import connect
from features.inputs.schema import ShopTables

RFM_COLUMNS = ("frequency", "recency", "T")


def _as_arrays(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    t = np.asarray(T, dtype=float)
    x, t_x, t = np.broadcast_arrays(x, t_x, t)
    for name, values in (("frequency", x), ("recency", t_x), ("T", t)):
        if np.isnan(values).any():
            raise ValueError(f"{name} has {int(np.isnan(values).sum())} missing values; drop them")
    if (x < 0).any():
        raise ValueError(f"frequency must be >= 0; got {int((x < 0).sum())} negative values")
    if (t_x > t + 1e-9).any() or (t_x < 0).any():
        raise ValueError(
            f"recency must lie in [0, T]; {int(((t_x > t + 1e-9) | (t_x < 0)).sum())} rows do not"
        )
    if ((x == 0) & (t_x != 0)).any():
        raise ValueError("recency must be 0 when frequency is 0 (no repeat purchase)")
    return x, t_x, t


def bgnbd_log_likelihood(
    frequency, recency, T, *, r: float, alpha: float, a: float, b: float
) -> np.ndarray:
    """Per-customer log-likelihood of the BG/NBD model (FHL 2005, eq. 6).

    Parameters
    ----------
    frequency, recency, T
        Array-likes of the RFM summary (see the module docstring).
    r, alpha, a, b
        Model parameters, all > 0.

    Returns
    -------
    numpy.ndarray
        ``log L(r, alpha, a, b | x, t_x, T)`` for each customer.
    """
    x, t_x, t = _as_arrays(frequency, recency, T)
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.betaln(a, b + x) - special.betaln(a, b)
    a3 = -(r + x) * np.log(alpha + t)
    has_repeat = x > 0
    a4 = np.full_like(x, -np.inf)
    xr = x[has_repeat]
    a4[has_repeat] = (
        special.betaln(a + 1, b + xr - 1)
        - special.betaln(a, b + xr)
        - (r + xr) * np.log(alpha + t_x[has_repeat])
    )
    return a1 + a2 + np.logaddexp(a3, a4)


def _log_likelihood_and_gradient(
    x: np.ndarray, t_x: np.ndarray, t: np.ndarray, r: float, alpha: float, a: float, b: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient in (r, alpha, a, b), shape (n, 4).

    With ``A3 = -(r+x) log(alpha+T)`` (alive at T) and, for x > 0,
    ``A4 = log a - log(b+x-1) - (r+x) log(alpha+t_x)`` (dropped out at t_x), the
    likelihood is ``A1 + A2 + log(exp A3 + exp A4)``; ``s4`` is the posterior
    weight of the dropout branch.
    """
    ll = bgnbd_log_likelihood(x, t_x, t, r=r, alpha=alpha, a=a, b=b)
    has = x > 0
    a3 = -(r + x) * np.log(alpha + t)
    a4 = np.full_like(x, -np.inf)
    a4[has] = np.log(a) - np.log(b + x[has] - 1) - (r + x[has]) * np.log(alpha + t_x[has])
    s4 = np.where(has, special.expit(a4 - a3), 0.0)
    s3 = 1.0 - s4
    safe_b = np.where(has, b + x - 1, 1.0)
    grad = np.empty((x.size, 4))
    grad[:, 0] = (
        special.digamma(r + x)
        - special.digamma(r)
        + np.log(alpha)
        - s3 * np.log(alpha + t)
        - s4 * np.log(alpha + t_x)
    )
    grad[:, 1] = r / alpha - s3 * (r + x) / (alpha + t) - s4 * (r + x) / (alpha + t_x)
    grad[:, 2] = special.digamma(a + b) - special.digamma(a + b + x) + s4 / a
    grad[:, 3] = (
        special.digamma(b + x)
        - special.digamma(a + b + x)
        - special.digamma(b)
        + special.digamma(a + b)
        - s4 / safe_b
    )
    return ll, grad


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters (time unit: days unless stated otherwise)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


class BetaGeoFitter:
    """Maximum-likelihood BG/NBD model with a lifetimes-like interface.

    Parameters
    ----------
    penalizer_coef
        L2 penalty on the log-parameters' distance from 0; 0 gives the plain MLE.
        A small value (e.g. 0.001) keeps fits stable on tiny or degenerate data.
    max_iter
        Maximum iterations of the L-BFGS-B optimiser.

    Attributes
    ----------
    params_ : BgNbdParams
    log_likelihood_ : float
        Total log-likelihood at the optimum (without the penalty).
    n_customers_ : int
    """

    def __init__(self, penalizer_coef: float = 0.0, max_iter: int = 500):
        self.penalizer_coef = penalizer_coef
        self.max_iter = max_iter

    def fit(self, frequency, recency, T) -> BetaGeoFitter:
        """Fit (r, alpha, a, b) by maximum likelihood; returns self."""
        x, t_x, t = _as_arrays(frequency, recency, T)
        if x.size == 0:
            raise ValueError("cannot fit BG/NBD on 0 customers")
        # Identical (x, t_x, T) rows share a likelihood: fit on unique rows with weights.
        rows, weights = np.unique(np.column_stack([x, t_x, t]), axis=0, return_counts=True)
        ux, utx, ut = rows[:, 0], rows[:, 1], rows[:, 2]
        scale = max(float(np.mean(t)), 1e-9)  # alpha is a time scale: start it at the mean age
        n = float(weights.sum())

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll, grad = _log_likelihood_and_gradient(ux, utx, ut, *params)
            if not np.all(np.isfinite(ll)):
                return 1e10, np.zeros(4)
            value = -float(np.dot(weights, ll)) / n
            # chain rule to log-parameters, plus the L2 penalty
            gradient = -(weights @ grad) / n * params + 2 * self.penalizer_coef * log_params
            return value + self.penalizer_coef * float(np.sum(log_params**2)), gradient

        start = np.log([1.0, scale, 1.0, 1.0])
        result = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-12.0, 12.0), (-12.0, np.log(scale) + 12.0), (-12.0, 12.0), (-12.0, 12.0)],
            options={"maxiter": self.max_iter},
        )
        r, alpha, a, b = (float(v) for v in np.exp(result.x))
        self.params_ = BgNbdParams(r=r, alpha=alpha, a=a, b=b)
        self.log_likelihood_ = float(
            np.dot(weights, bgnbd_log_likelihood(ux, utx, ut, r=r, alpha=alpha, a=a, b=b))
        )
        self.n_customers_ = int(n)
        self.converged_ = bool(result.success)
        return self

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float) -> BetaGeoFitter:
        """A fitter with fixed, known parameters (no fitting), e.g. published ones."""
        fitter = cls()
        fitter.params_ = BgNbdParams(r=r, alpha=alpha, a=a, b=b)
        return fitter

    def _params(self) -> BgNbdParams:
        if not hasattr(self, "params_"):
            raise RuntimeError("BetaGeoFitter is not fitted; call fit(frequency, recency, T)")
        return self.params_

    def p_alive(self, frequency, recency, T) -> np.ndarray:
        """P(customer still alive | x, t_x, T) (FHL 2005, eq. 11); 1 when frequency is 0."""
        x, t_x, t = _as_arrays(frequency, recency, T)
        p = self._params()
        out = np.ones_like(x)
        has = x > 0
        xr = x[has]
        log_ratio = (
            np.log(p.a)
            - np.log(p.b + xr - 1)
            + (p.r + xr) * (np.log(p.alpha + t[has]) - np.log(p.alpha + t_x[has]))
        )
        out[has] = special.expit(-log_ratio)
        return out

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """Expected number of purchases in the next ``t`` days (FHL 2005, eq. 10).

        Parameters
        ----------
        t
            Length of the future period in days (e.g. ``horizon_days``).
        frequency, recency, T
            The customers' RFM summary at the cutoff.
        """
        x, t_x, age = _as_arrays(frequency, recency, T)
        p = self._params()
        t = float(t)
        a = p.a if abs(p.a - 1.0) > 1e-9 else 1.0 + 1e-9  # removable singularity at a = 1
        hyp = special.hyp2f1(p.r + x, p.b + x, a + p.b + x - 1, t / (p.alpha + age + t))
        numerator = ((a + p.b + x - 1) / (a - 1)) * (
            1 - ((p.alpha + age) / (p.alpha + age + t)) ** (p.r + x) * hyp
        )
        return numerator * self.p_alive(x, t_x, age)

    def probability_no_purchase(self, t, frequency, recency, T) -> np.ndarray:
        """P(no purchase in the next ``t`` days | x, t_x, T), closed form.

        ``(1 − P(alive)) + P(alive)·((α+T)/(α+T+t))^(r+x)``: dead customers never
        buy; a live one's rate has the Gamma(r + x, α + T) posterior.
        """
        x, t_x, age = _as_arrays(frequency, recency, T)
        p = self._params()
        alive = self.p_alive(x, t_x, age)
        silent = np.exp((p.r + x) * (np.log(p.alpha + age) - np.log(p.alpha + age + float(t))))
        return (1.0 - alive) + alive * silent

    def expected_purchases_new_customer(self, t) -> np.ndarray:
        """Expected purchases in ``(0, t]`` for a customer just acquired (FHL 2005, eq. 7)."""
        p = self._params()
        t = np.asarray(t, dtype=float)
        a = p.a if abs(p.a - 1.0) > 1e-9 else 1.0 + 1e-9
        hyp = special.hyp2f1(p.r, p.b, a + p.b - 1, t / (p.alpha + t))
        return ((a + p.b - 1) / (a - 1)) * (1 - (p.alpha / (p.alpha + t)) ** p.r * hyp)


def simulate_bgnbd(
    n_customers: int, T, *, r: float, alpha: float, a: float, b: float, seed: int = 0
) -> pd.DataFrame:
    """Simulate RFM summaries from a BG/NBD model with known parameters.

    Used to test that the fitter recovers known parameters. ``T`` is a scalar
    or one age per customer. Returns ``frequency``, ``recency``, ``T`` and the
    true ``lambda`` / ``p`` / ``alive`` per customer.
    """
    rng = np.random.default_rng(seed)
    ages = np.broadcast_to(np.asarray(T, dtype=float), (n_customers,)).copy()
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n_customers)
    drop = rng.beta(a, b, size=n_customers)
    x = np.zeros(n_customers)
    t_x = np.zeros(n_customers)
    clock = np.zeros(n_customers)
    active = np.ones(n_customers, dtype=bool)
    alive = np.ones(n_customers, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        clock[idx] += rng.exponential(1.0 / np.maximum(lam[idx], 1e-300))
        past_end = clock[idx] > ages[idx]
        active[idx[past_end]] = False
        buying = idx[~past_end]
        x[buying] += 1
        t_x[buying] = clock[buying]
        dies = buying[rng.random(buying.size) < drop[buying]]
        alive[dies] = False
        active[dies] = False
    return pd.DataFrame(
        {"frequency": x, "recency": t_x, "T": ages, "lambda": lam, "p": drop, "alive": alive}
    )


def _cutoff_date(cutoff) -> pd.Timestamp:
    ts = pd.Timestamp(cutoff)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def cutoff_days(values) -> pd.DatetimeIndex:
    """Cutoffs (dates, timestamps, tz-aware or not) as naive midnight ``datetime64[us]``."""
    days = pd.DatetimeIndex(pd.to_datetime(pd.Index(values)))
    if days.tz is not None:
        days = days.tz_convert("UTC").tz_localize(None)
    return days.as_unit("us").normalize()


def rfm_summary(
    tables: ShopTables, cutoff, *, con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """Point-in-time RFM summary (``frequency``, ``recency``, ``T`` in days) at a cutoff.

    Only purchases (lines that are not returns) on or before the cutoff day
    count; purchase days are calendar days (UTC), so several orders on one day
    are one purchase. ``T`` runs from the first purchase day to the cutoff day.
    Customers without a purchase by the cutoff are absent.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``, float64 columns ``frequency``, ``recency``, ``T``.
    """
    return rfm_summary_at_cutoffs(tables, [cutoff], con=con).droplevel("cutoff")


def rfm_summary_at_cutoffs(
    tables: ShopTables, cutoffs: Iterable, *, con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """:func:`rfm_summary` at several cutoffs, indexed by (``cutoff``, ``customer_id``).

    The ``cutoff`` level holds naive midnight timestamps of the cutoff days. ``con``:
    a DuckDB connection where ``tables`` are registered (``tables`` may then be their
    outline, ``features.engines.duckdb_engine.outline``); a new one by default.
    """
    days = sorted({_cutoff_date(c) for c in cutoffs})
    if not days:
        raise ValueError("rfm_summary_at_cutoffs needs at least one cutoff")
    if "customer_id" not in tables.transactions or "ordered_at" not in tables.transactions:
        raise ValueError("transactions need 'customer_id' and 'ordered_at' columns for RFM")
    con = connect(tables) if con is None else con
    is_purchase = (
        "NOT coalesce(t.is_return, false)" if "is_return" in tables.transactions else "true"
    )
    cutoff_frame = pd.DataFrame({"cutoff": pd.Series(days, dtype="datetime64[us]")})
    con.register("_winback_rfm_cutoffs", cutoff_frame)
    query = f"""
        WITH purchase_days AS (
            SELECT DISTINCT t.customer_id, CAST(t.ordered_at AS DATE) AS day
            FROM transactions AS t
            WHERE {is_purchase}
        )
        SELECT c.cutoff,
               p.customer_id,
               CAST(count(*) - 1 AS DOUBLE) AS frequency,
               CAST(date_diff('day', min(p.day), max(p.day)) AS DOUBLE) AS recency,
               CAST(date_diff('day', min(p.day), CAST(c.cutoff AS DATE)) AS DOUBLE) AS "T"
        FROM _winback_rfm_cutoffs AS c
        JOIN purchase_days AS p ON p.day <= CAST(c.cutoff AS DATE)
        GROUP BY c.cutoff, p.customer_id
        ORDER BY c.cutoff, p.customer_id
    """
    try:
        out = con.execute(query).df()
    finally:
        con.unregister("_winback_rfm_cutoffs")
    out["cutoff"] = pd.to_datetime(out["cutoff"]).astype("datetime64[us]")
    out["customer_id"] = out["customer_id"].astype("string")
    return out.set_index(["cutoff", "customer_id"])[list(RFM_COLUMNS)]


def bgnbd_expected_purchases(
    rfm: pd.DataFrame, *, train_cutoffs: Iterable, horizon_days: int, penalizer_coef: float = 0.0
) -> pd.Series:
    """BG/NBD expected purchases in the horizon, fitted on the training cutoffs only.

    The model is fitted on the rows of ``rfm`` (from :func:`rfm_summary_at_cutoffs`)
    whose cutoff is one of ``train_cutoffs`` and then applied to every row, so
    the validation and test periods never inform the parameters. Used as the
    BG/NBD baseline and as an extra LightGBM feature.

    Returns
    -------
    pandas.Series
        ``bgnbd_expected_purchases``, indexed like ``rfm``.
    """
    missing = [c for c in RFM_COLUMNS if c not in rfm.columns]
    if missing:
        raise ValueError(f"rfm is missing columns {missing}; build it with rfm_summary_at_cutoffs")
    train_days = cutoff_days(list(train_cutoffs))
    in_train = cutoff_days(rfm.index.get_level_values("cutoff")).isin(train_days)
    if not in_train.any():
        raise ValueError(
            f"none of the train cutoffs {[str(d.date()) for d in train_days]} is in rfm's cutoffs"
        )
    train = rfm[in_train]
    fitter = BetaGeoFitter(penalizer_coef=penalizer_coef).fit(
        train["frequency"], train["recency"], train["T"]
    )
    values = fitter.expected_purchases(horizon_days, rfm["frequency"], rfm["recency"], rfm["T"])
    return pd.Series(values, index=rfm.index, name="bgnbd_expected_purchases")
