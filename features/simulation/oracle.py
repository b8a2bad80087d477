"""The oracle: the true probability of no purchase over a horizon, from the latent state.

It knows what the process knows at a cutoff: every customer's latent parameters
and state (alive or not, decline stage) and the win-back bursts already started.
It does not know future transitions or purchase times, so its probabilities are
exact for the process and no model can beat it on average. Campaigns use the same
computation for a contact's probability of coming back untreated.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from features.simulation.columns import days_since_start
from features.simulation.config import DAYS_PER_YEAR, SimulatedShop, SimulationConfig
from features.simulation.process import Latent, growth, season_by_day, shift_latent, stage


def no_purchase_probability(
    lat: Latent,
    idx: np.ndarray,
    start: float,
    stop: float,
    config: SimulationConfig,
    steps_per_day: int = 1,
) -> np.ndarray:
    """Probability that customers ``idx`` make no natural purchase in ``(start, stop]``.

    Conditions on each customer's state at ``start`` (dead, healthy or decline
    stage) and integrates the continuous-time chain (healthy -> dropout, or
    healthy -> stage 1 -> 2 -> 3 -> dropout for decliners) with purchases as
    killing, day by day with the day's constant rates: in closed form for
    non-decliners, by RK4 for decliners (error < 1e-5 at realistic rates).
    """
    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    out = np.ones(n)
    if n == 0 or stop <= start:
        return out
    first_day, last_day = int(np.floor(start)), int(np.ceil(stop))
    season = season_by_day(config, last_day + 1)
    days = [(d, max(start, d), min(stop, d + 1)) for d in range(first_day, last_day)]
    alive = (lat.acquired[idx] <= start) & (lat.dropout[idx] > start)
    dec = lat.is_decliner[idx]
    out[alive & ~dec] = _healthy_quiet(lat, idx[alive & ~dec], days, season, config)
    sel = idx[alive & dec]
    out[alive & dec] = _declining_quiet(
        lat, sel, stage(lat, sel, start), days, season, config, steps_per_day
    )
    return np.clip(out, 0.0, 1.0)


def _healthy_quiet(
    lat: Latent, sel: np.ndarray, days: list, season: np.ndarray, config: SimulationConfig
) -> np.ndarray:
    """No-purchase probability of non-decliners: healthy until a memoryless dropout."""
    lam, mu = lat.purchase_rate[sel], lat.dropout_rate[sel]
    survive, dead_quiet = np.ones(len(sel)), np.zeros(len(sel))
    for day, lo, hi in days:
        if hi <= lo:
            continue
        lam_d, mu_d = lam, mu
        if day >= lat.shift_day:  # days split at midnight, the shift starts at one
            lam_d, mu_d = lam * config.shift_purchase_rate_factor, mu * lat.shift_dropout[sel]
        rate = mu_d + lam_d * season[day] * growth(lat, sel, day + 0.5, lat.rate_growth)
        leave = -np.expm1(-rate * (hi - lo))
        dead_quiet += survive * mu_d * leave / rate
        survive *= 1.0 - leave
    return survive + dead_quiet


def _declining_quiet(
    lat: Latent,
    sel: np.ndarray,
    stage_now: np.ndarray,
    days: list,
    season: np.ndarray,
    config: SimulationConfig,
    steps_per_day: int,
) -> np.ndarray:
    """No-purchase probability of decliners: healthy -> three decline stages -> dropout (RK4)."""
    lam, nu = lat.purchase_rate[sel], lat.dropout_rate[sel]
    rates = (1.0 / config.decline_stage_days, *config.decline_stage_factors)
    q = tuple((stage_now == s).astype(float) for s in range(4)) + (np.zeros(len(sel)),)
    for day, lo, hi in days:
        if hi <= lo:
            continue
        phi = lam * season[day] * growth(lat, sel, day + 0.5, lat.rate_growth)
        nu_d = nu
        if day >= lat.shift_day:
            phi, nu_d = phi * config.shift_purchase_rate_factor, nu * lat.shift_dropout[sel]
        dt = (hi - lo) / steps_per_day
        for _ in range(steps_per_day):
            k1 = _derivative(q, phi, nu_d, rates)
            k2 = _derivative(_euler(q, k1, dt / 2), phi, nu_d, rates)
            k3 = _derivative(_euler(q, k2, dt / 2), phi, nu_d, rates)
            k4 = _derivative(_euler(q, k3, dt), phi, nu_d, rates)
            q = tuple(
                a + dt / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4)
                for a, b1, b2, b3, b4 in zip(q, k1, k2, k3, k4, strict=True)
            )
    return sum(q)


def _derivative(q: tuple, phi: np.ndarray, nu: np.ndarray, rates: tuple) -> tuple:
    """Time derivative of (healthy, stage 1, 2, 3, dead) with purchases as killing."""
    kappa, f1, f2, f3 = rates
    h, s1, s2, s3, _ = q
    return (
        -(nu + phi) * h,
        nu * h - (kappa + f1 * phi) * s1,
        kappa * (s1 - s2) - f2 * phi * s2,
        kappa * (s2 - s3) - f3 * phi * s3,
        kappa * s3,
    )


def _euler(q: tuple, k: tuple, dt: float) -> tuple:
    """``q + dt * k``, component by component."""
    return tuple(a + dt * b for a, b in zip(q, k, strict=True))


def latent_from_truth(truth: pd.DataFrame, config: SimulationConfig) -> Latent:
    """Rebuild the latent parameters (in days) from a truth frame."""
    days = days_since_start
    stage_at = np.column_stack([days(config, truth[f"decline_stage_{k}_at"]) for k in (1, 2, 3)])
    sensitive = (
        truth["discount_sensitive"].to_numpy(bool) if config.shift_date is not None else None
    )
    shift_day, shift_dropout = shift_latent(config, sensitive)
    return Latent(
        shift_day=shift_day,
        shift_dropout=shift_dropout,
        acquired=days(config, truth["acquired_at"]),
        dropout=days(config, truth["dropout_at"]),
        purchase_rate=truth["purchase_rate_per_year"].to_numpy(float) / DAYS_PER_YEAR,
        dropout_rate=truth["dropout_rate_per_year"].to_numpy(float) / DAYS_PER_YEAR,
        is_decliner=truth["is_decliner"].to_numpy(bool),
        stage_at=stage_at,
        rate_growth=truth["rate_growth"].to_numpy(float),
        spend_growth=truth["spend_growth"].to_numpy(float),
        ramp_days=truth["ramp_days"].to_numpy(float),
    )


def oracle_churn_probability(
    shop: SimulatedShop | pd.DataFrame,
    cutoff: date,
    horizon_days: int,
    *,
    contact_truth: pd.DataFrame | None = None,
    config: SimulationConfig | None = None,
) -> pd.Series:
    """The true probability of no purchase in ``(cutoff, cutoff + horizon_days]``.

    For every customer acquired on or before the cutoff day, computed from the
    latent state at the end of the cutoff day (alive or not, decline stage,
    rates, seasonality, dropout hazard over the horizon, and treated win-back
    bursts overlapping it). Returns are not purchases. This is the ceiling a
    churn model's AUC is compared with.

    Parameters
    ----------
    shop
        A :class:`SimulatedShop`, or its ``truth`` frame (then ``config``
        defaults to ``truth.attrs["simulation_config"]`` and treated win-back
        bursts are taken from ``contact_truth`` when given).
    cutoff
        Calendar date (UTC); the horizon starts the day after.
    horizon_days
        Length of the label window in days.

    Returns
    -------
    pd.Series
        ``oracle_churn_probability`` indexed by ``customer_id``.
    """
    if isinstance(shop, SimulatedShop):
        truth, contact_truth, config = shop.truth, shop.contact_truth, shop.config
    else:
        truth = shop
        config = config or truth.attrs.get("simulation_config")
        if config is None:
            raise ValueError(
                "oracle_churn_probability needs the SimulationConfig: pass config=... "
                "or a SimulatedShop (read_shop(dir) gives one)"
            )
    if isinstance(cutoff, datetime):
        cutoff = cutoff.date()
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")
    lat = latent_from_truth(truth, config)
    start = float((cutoff - config.start).days + 1)
    stop = start + horizon_days
    idx = np.flatnonzero(lat.acquired < start)
    prob = no_purchase_probability(lat, idx, start, stop, config)
    if contact_truth is not None and len(contact_truth):
        prob = prob * np.exp(-_burst_exposure(truth, contact_truth, config, start, stop)[idx])
    return pd.Series(
        prob, index=pd.Index(truth.index[idx], name="customer_id"), name="oracle_churn_probability"
    )


def _burst_exposure(
    truth: pd.DataFrame,
    contact_truth: pd.DataFrame,
    config: SimulationConfig,
    start: float,
    stop: float,
) -> np.ndarray:
    """Each customer's expected win-back orders from treated bursts overlapping ``(start, stop]``."""
    treated = contact_truth[contact_truth["group"] == "treatment"]
    t0 = days_since_start(config, treated["contacted_at"])
    t1 = np.minimum(t0 + config.response_days, float(config.days))
    overlap = np.clip(np.minimum(t1, stop) - np.maximum(t0, start), 0.0, None)
    burst = treated["treatment_rate"].to_numpy(float) * overlap / config.response_days
    pos = pd.Index(truth.index).get_indexer(treated["customer_id"])
    return np.bincount(pos, weights=burst, minlength=len(truth))
