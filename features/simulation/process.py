"""The customer process in continuous time: latent state, intensities and thinning.

Every step that draws events while a customer is alive (orders, engagement,
tickets) uses these pieces: the seasonal factor of a day, a VIP grower's ramp,
the decline stage at a time, the behaviour shift, and candidate Poisson events
thinned by the true intensity. Times are float days since ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulation.config import SimulationConfig

#: Named random streams, in the order they are spawned from the seed. The order is
#: part of the output: a new stream goes at the end, so every earlier one keeps its draws.
STREAMS = (
    "customers",
    "orders",
    "campaigns",
    "lines",
    "returns",
    "tickets",
    "reviews",
    "referrals",
    "engagement",
)


def spawn_streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per step, named as in :data:`STREAMS`."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(STREAMS, children, strict=True)}


@dataclass(frozen=True)
class Latent:
    """Per-customer latent parameters in days since ``start``."""

    acquired: np.ndarray
    dropout: np.ndarray  # inf when alive at the end
    purchase_rate: np.ndarray  # per day
    dropout_rate: np.ndarray  # per day; a decliner's rate of starting to decline
    is_decliner: np.ndarray
    stage_at: np.ndarray  # (n, 3): start of decline stages 1..3, inf if not reached
    rate_growth: np.ndarray
    spend_growth: np.ndarray
    ramp_days: np.ndarray
    # behaviour shift: day it starts (inf: none) and per-customer dropout factor after it
    shift_day: float = np.inf
    shift_dropout: np.ndarray | None = None


@dataclass(frozen=True)
class Process:
    """What every alive-time step needs: config, latent state, seasonality, peak factor."""

    config: SimulationConfig
    latent: Latent
    season: np.ndarray  # factor of each day since start
    peak: float  # an upper bound of season x purchase shift, for thinning


def season_by_day(config: SimulationConfig, n_days: int) -> np.ndarray:
    """Seasonal factor of each day since ``start`` (monthly, mean 1 over a year)."""
    factors = np.asarray(config.monthly_seasonality, dtype=float)
    factors = factors / factors.mean()
    days = np.datetime64(config.start, "D") + np.arange(n_days)
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    return factors[month]


def purchase_peak(config: SimulationConfig, lat: Latent, season: np.ndarray) -> float:
    """Upper bound of the seasonal and shift factors of the purchase intensity."""
    peak = season.max()
    if lat.shift_dropout is not None:
        peak *= max(1.0, config.shift_purchase_rate_factor)
    return peak


def growth(lat: Latent, idx: np.ndarray, at: np.ndarray | float, factor: np.ndarray) -> np.ndarray:
    """A VIP grower's ramp factor at times ``at`` (1 for everyone else)."""
    out = np.ones(len(idx))
    sub = np.flatnonzero(factor[idx] != 1.0)
    if len(sub):
        who = idx[sub]
        at_sub = at[sub] if np.ndim(at) else at
        ramp = np.clip((at_sub - lat.acquired[who]) / lat.ramp_days[who], 0.0, 1.0)
        out[sub] = 1.0 + (factor[who] - 1.0) * ramp
    return out


def stage(lat: Latent, idx: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Decline stage (0 healthy, 1..3 declining) of customers ``idx`` at times ``t``."""
    out = np.zeros(len(idx), dtype=np.int8)
    sub = np.flatnonzero(lat.is_decliner[idx])
    if len(sub):
        st = lat.stage_at[idx[sub]]
        t_sub = t[sub] if np.ndim(t) else t
        out[sub] = (st[:, 0] <= t_sub).astype(np.int8) + (st[:, 1] <= t_sub) + (st[:, 2] <= t_sub)
    return out


def shift_latent(
    config: SimulationConfig, discount_sensitive: np.ndarray | None
) -> tuple[float, np.ndarray | None]:
    """Day the behaviour shift starts (inf when off) and each customer's dropout factor after it."""
    if config.shift_date is None:
        return np.inf, None
    factor = np.where(
        discount_sensitive,
        config.shift_discount_sensitive_dropout_factor,
        config.shift_dropout_factor,
    )
    return float((config.shift_date - config.start).days), factor


def purchase_shift(config: SimulationConfig, lat: Latent, t: np.ndarray) -> np.ndarray | float:
    """Factor of the natural purchase rate at times ``t`` (1 before the shift or without one)."""
    if lat.shift_dropout is None:
        return 1.0
    return np.where(t >= lat.shift_day, config.shift_purchase_rate_factor, 1.0)


def poisson_times(
    rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray, max_rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate events of a Poisson process of rate ``max_rate`` per unit on each interval.

    Returns the owner index (into the arrays) and the time of every candidate,
    grouped by owner; thin them with the true intensity.
    """
    span = np.maximum(ends - starts, 0.0)
    counts = rng.poisson(max_rate * span)
    owner = np.repeat(np.arange(len(starts), dtype=np.int64), counts)
    times = starts[owner] + rng.random(len(owner)) * span[owner]
    return owner, times


def thin_alive(
    process: Process,
    rng: np.random.Generator,
    max_rate: np.ndarray,
    stage_factors: np.ndarray,
    block: slice,
) -> tuple[np.ndarray, np.ndarray]:
    """Owner and time of events while alive, for the customers in ``block``.

    Candidates at ``max_rate`` per day (which must include ``peak x rate_growth``)
    are kept with probability season x ramp x stage factor x shift over that
    bound: the purchase intensity's shape, scaled per customer by ``max_rate``.
    """
    config, lat = process.config, process.latent
    period_end = float(config.days)
    alive_end = np.minimum(lat.dropout[block], period_end)
    owner, times = poisson_times(rng, lat.acquired[block], alive_end, max_rate[block])
    owner += block.start
    day = np.minimum(times.astype(np.int64), config.days - 1)
    intensity = (
        process.season[day]
        * growth(lat, owner, day + 0.5, lat.rate_growth)
        * stage_factors[stage(lat, owner, times)]
        * purchase_shift(config, lat, times)
    )
    keep = rng.random(len(owner)) * process.peak * lat.rate_growth[owner] < intensity
    return owner[keep], times[keep]
