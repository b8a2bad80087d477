"""Customers and their latent parameters: acquisition, segments, rates, lifetimes, traits.

One step, one random stream (``customers``). The draws happen in a fixed order
(acquisition, segments, rates, lifetimes, traits); changing that order changes
every table, which the byte-pinning test catches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulation.config import (
    ACQUISITION_CHANNELS,
    CHANNELS,
    DAYS_PER_YEAR,
    REGIONS,
    SimulationConfig,
)
from features.simulation.process import Latent, shift_latent


@dataclass(frozen=True)
class Customers:
    """Every customer's latent process and observable traits, indexed by position."""

    latent: Latent
    region: np.ndarray
    acquisition_channel: np.ndarray
    is_vip: np.ndarray
    discount_sensitive: np.ndarray
    spend_mean: np.ndarray
    is_advocate: np.ndarray
    return_propensity: np.ndarray
    ticket_rate: np.ndarray  # per day
    review_propensity: np.ndarray
    rating_mean: np.ndarray
    movable: np.ndarray
    favourite_category: np.ndarray
    preferred_channel: np.ndarray

    def __len__(self) -> int:
        return len(self.latent.acquired)


def draw_customers(
    config: SimulationConfig, rng: np.random.Generator, season: np.ndarray
) -> Customers:
    """Draw every customer: acquired in order of first purchase (``C0000001`` first)."""
    n = config.customers
    acquired, region, acq_channel = _acquisition(config, rng, season)
    segment = rng.random(n)
    is_vip = segment < config.vip_grower_share
    is_decliner = (segment >= config.vip_grower_share) & (
        segment < config.vip_grower_share + config.decliner_share
    )
    discount_sensitive = rng.random(n) < config.discount_sensitive_share
    rates = _rates(config, rng, acq_channel, is_vip, discount_sensitive)
    shift_day, shift_dropout = shift_latent(config, discount_sensitive)
    dropout, stage_at = _lifetimes(
        config, rng, acquired, rates["dropout_rate"], is_decliner, (shift_day, shift_dropout)
    )
    latent = Latent(
        acquired=acquired,
        dropout=dropout,
        is_decliner=is_decliner,
        stage_at=stage_at,
        shift_day=shift_day,
        shift_dropout=shift_dropout,
        **{k: v for k, v in rates.items() if k != "spend_mean"},
    )
    return Customers(
        latent=latent,
        region=region,
        acquisition_channel=acq_channel,
        is_vip=is_vip,
        discount_sensitive=discount_sensitive,
        spend_mean=rates["spend_mean"],
        **_traits(config, rng, is_vip),
    )


def _acquisition(
    config: SimulationConfig, rng: np.random.Generator, season: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Acquisition times (sorted; growing over the period, seasonal), regions and channels."""
    n = config.customers
    weights = (1.0 + config.acquisition_growth * np.arange(config.days) / config.days) * season
    cdf = np.cumsum(weights)
    acq_day = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    acquired = np.sort(np.minimum(acq_day, config.days - 1) + rng.random(n))
    region = rng.choice(len(REGIONS), size=n)
    channel_p = np.asarray(config.acquisition_channel_shares) / sum(
        config.acquisition_channel_shares
    )
    acq_channel = rng.choice(len(ACQUISITION_CHANNELS), size=n, p=channel_p)
    return acquired, region, acq_channel


def _rates(
    config: SimulationConfig,
    rng: np.random.Generator,
    acq_channel: np.ndarray,
    is_vip: np.ndarray,
    discount_sensitive: np.ndarray,
) -> dict[str, np.ndarray]:
    """Purchase and dropout rates per day, mean spend, a VIP grower's growth and ramp."""
    n = config.customers
    purchase_rate = (
        rng.gamma(
            config.purchase_rate_shape,
            config.purchase_rate_per_year / config.purchase_rate_shape,
            n,
        )
        / DAYS_PER_YEAR
    )
    dropout_rate = (
        rng.gamma(
            config.dropout_rate_shape, config.dropout_rate_per_year / config.dropout_rate_shape, n
        )
        / DAYS_PER_YEAR
        * np.asarray(config.acquisition_channel_dropout_factors)[acq_channel]
        * np.where(is_vip, config.vip_dropout_factor, 1.0)
    )
    spend_mean = rng.gamma(config.spend_shape, config.spend_per_order / config.spend_shape, n)
    spend_mean *= np.where(discount_sensitive, 0.85, 1.0)
    return {
        "purchase_rate": purchase_rate,
        "dropout_rate": dropout_rate,
        "spend_mean": spend_mean,
        "rate_growth": np.where(is_vip, rng.uniform(*config.vip_rate_growth, n), 1.0),
        "spend_growth": np.where(is_vip, rng.uniform(*config.vip_spend_growth, n), 1.0),
        "ramp_days": np.where(is_vip, rng.uniform(*config.vip_ramp_days, n), 1.0),
    }


def _lifetimes(
    config: SimulationConfig,
    rng: np.random.Generator,
    acquired: np.ndarray,
    dropout_rate: np.ndarray,
    is_decliner: np.ndarray,
    shift: tuple[float, np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray]:
    """Dropout times and decline-stage starts (inf when after the period).

    A non-decliner leaves at its first memoryless exit; a decliner starts
    declining then and passes three exponential stages before leaving.
    """
    n, period_end = config.customers, float(config.days)
    first_leave = acquired + rng.exponential(1.0, n) / dropout_rate
    shift_day, shift_dropout = shift
    if shift_dropout is not None:  # memoryless: the time left after the shift scales by 1/factor
        pivot = np.maximum(acquired, shift_day)
        first_leave = np.where(
            first_leave > pivot, pivot + (first_leave - pivot) / shift_dropout, first_leave
        )
    stage_gaps = rng.exponential(config.decline_stage_days, (n, 3))
    stage_at = np.full((n, 3), np.inf)
    stage_at[:, 0] = np.where(is_decliner, first_leave, np.inf)
    stage_at[:, 1] = stage_at[:, 0] + stage_gaps[:, 0]
    stage_at[:, 2] = stage_at[:, 1] + stage_gaps[:, 1]
    dropout = np.where(is_decliner, stage_at[:, 2] + stage_gaps[:, 2], first_leave)
    dropout = np.where(dropout < period_end, dropout, np.inf)
    stage_at = np.where(stage_at < period_end, stage_at, np.inf)
    return dropout, stage_at


def _traits(
    config: SimulationConfig, rng: np.random.Generator, is_vip: np.ndarray
) -> dict[str, np.ndarray]:
    """Advocacy, returns, tickets, reviews, win-back movability, favourite category and channel."""
    n = config.customers
    is_advocate = rng.random(n) < np.where(is_vip, config.vip_advocate_share, config.advocate_share)
    return_mean = config.return_rate
    return_propensity = rng.beta(1.5, 1.5 * (1 - return_mean) / max(return_mean, 1e-9), n)
    ticket_rate = rng.gamma(2.0, config.ticket_rate_per_year / 2.0, n) / DAYS_PER_YEAR
    review_propensity = rng.beta(1.0, (1 - config.review_share) / max(config.review_share, 1e-9), n)
    rating_mean = rng.normal(4.3, 0.35, n)
    movable = rng.random(n) < config.movable_share
    favourite_category = rng.choice(
        len(config.categories),
        size=n,
        p=np.asarray(config.category_popularity) / sum(config.category_popularity),
    )
    preferred_channel = rng.choice(len(CHANNELS), size=n, p=channel_shares(config))
    return {
        "is_advocate": is_advocate,
        "return_propensity": return_propensity,
        "ticket_rate": ticket_rate,
        "review_propensity": review_propensity,
        "rating_mean": rating_mean,
        "movable": movable,
        "favourite_category": favourite_category,
        "preferred_channel": preferred_channel,
    }


def channel_shares(config: SimulationConfig) -> np.ndarray:
    """Order channel probabilities (``CHANNELS`` order), normalised."""
    return np.asarray(config.channel_shares) / sum(config.channel_shares)
