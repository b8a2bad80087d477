"""Digital engagement: identified site visits, app sessions, e-mail opens and clicks.

One random stream (``engagement``), drawn after every other step's so that
adding engagement left the other tables as they were. Three thinned Poisson
processes: alive engagement at the customer's browse-to-buy ratio times the
purchase intensity (with steeper decline factors: disengagement leads), a
residual of e-mail opens and clicks after dropout, and a treated win-back
contact's burst. Engagement never changes purchases, so the oracle ignores it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.inputs.schema import EVENT_TYPES
from features.simulation.columns import take, timestamps
from features.simulation.config import SimulationConfig
from features.simulation.process import Process, poisson_times, thin_alive

#: Customers per block when thinning engagement candidates (bounds the temporary memory).
_ENGAGEMENT_BLOCK = 200_000


def engagement_ratio(config: SimulationConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Each customer's identified engagement events per order (0: never engages digitally)."""
    engaged = rng.random(n) >= config.engagement_none_share
    shape = config.engagement_per_order_shape
    ratio = rng.gamma(shape, config.engagement_per_order / shape, n)
    return np.where(engaged & config.engagement, ratio, 0.0)


def engagement_frame(
    process: Process,
    rng: np.random.Generator,
    ratio: np.ndarray,
    contacts: dict[str, np.ndarray],
    customer_ids: pa.Array,
) -> pd.DataFrame:
    """The ``engagement_events`` table, in time order."""
    owner, times, types = _engagement_times(process, rng, ratio, contacts)
    order = np.argsort(times, kind="stable")
    return pd.DataFrame(
        {
            "customer_id": take(customer_ids, owner[order]),
            "occurred_at": timestamps(process.config, times[order]),
            "event_type": take(pa.array(EVENT_TYPES), types[order]),
        }
    )


def _engagement_times(
    process: Process, rng: np.random.Generator, ratio: np.ndarray, contacts: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owner, time (days since start) and type code of every engagement event, unsorted."""
    alive_owner, alive_t = _alive_events(process, rng, ratio)
    dead_owner, dead_t = _residual_events(process, rng, ratio)
    burst_owner, burst_t = _burst_events(process.config, rng, ratio, contacts)
    shares = np.asarray(process.config.engagement_type_shares, dtype=float)
    email_only = np.where(np.arange(len(shares)) >= EVENT_TYPES.index("email_open"), shares, 0.0)
    types = np.concatenate(
        (
            _event_types(rng, shares, len(alive_owner)),
            _event_types(rng, email_only, len(dead_owner)),
            _event_types(rng, shares, len(burst_owner)),
        )
    )
    owner = np.concatenate((alive_owner, dead_owner, burst_owner))
    times = np.concatenate((alive_t, dead_t, burst_t))
    return owner, times, types


def _alive_events(
    process: Process, rng: np.random.Generator, ratio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Engagement while alive, in blocks of customers so that the thinning
    candidates (several per kept event) never all exist at once."""
    lat, n = process.latent, len(ratio)
    max_rate = ratio * lat.purchase_rate * process.peak * lat.rate_growth
    stage_factors = np.array((1.0, *process.config.engagement_decline_stage_factors))
    owners, times = [], []
    for lo in range(0, n, _ENGAGEMENT_BLOCK):
        block = slice(lo, min(n, lo + _ENGAGEMENT_BLOCK))
        owner, at = thin_alive(process, rng, max_rate, stage_factors, block)
        owners.append(owner)
        times.append(at)
    return np.concatenate(owners), np.concatenate(times)


def _residual_events(
    process: Process, rng: np.random.Generator, ratio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """After dropout: newsletter opens and clicks by people who no longer buy (seasonal)."""
    config, lat, season = process.config, process.latent, process.season
    n, period_end = len(ratio), float(config.days)
    season_peak = float(season.max())
    dead_from = np.where(np.isfinite(lat.dropout), lat.dropout, period_end)
    rate = ratio * lat.purchase_rate * config.engagement_residual_share * season_peak
    owner, times = poisson_times(rng, dead_from, np.full(n, period_end), rate)
    day = np.minimum(times.astype(np.int64), config.days - 1)
    keep = rng.random(len(owner)) * season_peak < season[day]
    return owner[keep], times[keep]


def _burst_events(
    config: SimulationConfig,
    rng: np.random.Generator,
    ratio: np.ndarray,
    contacts: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """A treated win-back contact's burst: the customer comes back to look at the offer."""
    treated = contacts["treated"]
    who = contacts["customer"][treated]
    t0 = contacts["contacted_at"][treated]
    window = np.minimum(t0 + config.response_days, float(config.days))
    burst_rate = (
        contacts.get("treatment_rate", np.zeros(0))[treated] / config.response_days * ratio[who]
    )
    b_index, burst_t = poisson_times(rng, t0, window, burst_rate)
    return who[b_index], burst_t


def _event_types(
    rng: np.random.Generator, shares: tuple[float, ...] | np.ndarray, size: int
) -> np.ndarray:
    """Codes into ``EVENT_TYPES`` drawn with the given (unnormalised) shares."""
    cdf = np.cumsum(shares) / np.sum(shares)
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)
