"""The simulated shop: winback's embedded default data, with its ground truth.

A seeded, vectorised simulator of a non-contractual shop. Its output is the
contract tables of :mod:`features.schema` (canonical dtypes) plus the latent
truth that generated them, so that churn, VIP-potential and win-back models can
be checked against what really happened and against an oracle.

The generating process, in days since ``start`` (midnight UTC)
---------------------------------------------------------------
* Customers are acquired by their first order; acquisitions grow linearly over
  the period and follow the monthly seasonality (Nov/Dec peak).
* While alive, a customer orders as a Poisson process with intensity
  ``purchase_rate * season(day) * growth(day) * stage_factor(state)``:
  ``purchase_rate`` is gamma distributed across customers, ``season`` is the
  monthly factor of the day, ``growth`` ramps a VIP grower's rate up from 1 to
  ``rate_growth`` over ``ramp_days`` after acquisition (evaluated at the day's
  midpoint), and ``stage_factor`` is 1 while healthy.
* Lifetimes are memoryless (Pareto/NBD-like): a customer who is not a
  decliner drops out at rate ``dropout_rate`` (gamma distributed across
  customers). A decliner instead starts declining at that rate and passes
  through three decline stages (each exponential, mean
  ``decline_stage_days``) with purchase factors ``decline_stage_factors``
  before dropping out; declining customers open more support tickets and give
  lower ratings.
* Realism defaults: most churn is gradual, as in real retail (customers buy
  less often, complain and review worse for months before they stop), so
  ``decliner_share`` is 0.8 (the other 20% leave suddenly: a move, a
  competitor), stages last ``decline_stage_days`` = 45 days on average
  (about 4.5 months of decline), and a declining customer opens tickets at
  ``ticket_decline_factor`` = 12 times their usual rate (about 6 a year) and
  reviews ``review_decline_factor`` = 4 times as often. The sudden leavers and
  each customer's true purchase rate stay unobservable, so the oracle (which
  knows them) keeps an edge no model can close.
* Win-back campaigns contact customers lapsed for ``lapse_days`` or more, hold
  out a random control group, and add to each treated customer a burst of
  win-back orders: a Poisson process of ``treatment_rate / response_days`` per
  day for ``response_days`` after contact, whether the customer is alive or not
  (a treated customer can be revived for an order). ``treatment_rate`` depends
  on discount sensitivity, the offer and recency; unmovable customers have 0.

* Digital engagement (``engagement_events``): identified site visits and app
  sessions, e-mail opens and clicks. ``engagement_none_share`` = 25% of
  customers never engage digitally (store-only, unsubscribed, never logged in:
  zero events, so the signal is not universal). Everyone else has a
  browse-to-buy ratio drawn from a gamma with mean ``engagement_per_order`` = 3
  identified sessions or opens per order (shape ``engagement_per_order_shape``
  = 2; most real sessions are anonymous and never reach the table). While
  alive, events are a Poisson process with intensity ``ratio x`` the natural
  purchase intensity, except that decline stages multiply it by
  ``engagement_decline_stage_factors`` = (0.45, 0.2, 0.06), roughly the
  purchase factors to the power 1.5: disengagement leads, a declining customer
  stops browsing and opening faster than they stop buying. After dropout a
  residual ``engagement_residual_share`` = 7% of the healthy rate (times the
  season) goes on to the end of the period: newsletter opens and clicks by
  people who no longer buy, so silence is not proof of death. A treated
  win-back contact adds ``ratio x`` its burst rate for ``response_days``
  (the customer comes back to look at the offer). Event types follow
  ``engagement_type_shares`` (site visit, app session, e-mail open, e-mail
  click: 34/18/42/6%, i.e. about one click per seven opens); residual events
  are e-mail opens and clicks only. ``engagement = False`` leaves the table out.
  Engagement never changes purchases, so the oracle below is unaffected.

The oracle knows what the process knows at a cutoff: every customer's latent
parameters and state (alive or not, decline stage) and the win-back bursts
already started. It does not know future transitions or purchase times, so its
probabilities are exact for the process and no model can beat it on average.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.publish import publish_file, publish_text
from features.schema import EVENT_TYPES, SCHEMAS, ShopTables

DAY_US = 86_400_000_000
DAYS_PER_YEAR = 365.25
CHANNELS = ("web", "app", "store")
REGIONS = ("north", "south", "east", "west", "central")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "email", "referral")
TICKET_TOPICS = ("delivery", "product", "payment", "return", "account")
TABLE_FILES = {name: f"{name}.parquet" for name in SCHEMAS}


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the simulated shop; every default works out of the box.

    Rates are per year, durations in days, shares in [0, 1]. Campaign dates
    must lie inside ``(start, end]`` and be at least ``response_days`` apart.
    """

    customers: int = 20_000
    start: date = date(2023, 1, 1)
    end: date = date(2025, 12, 31)
    seed: int = 0
    # acquisition and seasonality
    acquisition_growth: float = 2.0
    monthly_seasonality: tuple[float, ...] = (
        0.85, 0.8, 0.9, 0.95, 1.0, 0.95, 0.9, 0.95, 1.0, 1.05, 1.5, 1.75,
    )  # fmt: skip
    # purchase rate (gamma across customers) and lifetimes
    purchase_rate_per_year: float = 5.0
    purchase_rate_shape: float = 0.8
    dropout_rate_per_year: float = 0.8
    dropout_rate_shape: float = 2.0
    acquisition_channel_shares: tuple[float, ...] = (0.4, 0.2, 0.2, 0.1, 0.1)
    acquisition_channel_dropout_factors: tuple[float, ...] = (0.9, 1.1, 1.4, 0.9, 0.6)
    # spend (gamma-gamma-like)
    spend_per_order: float = 60.0
    spend_shape: float = 3.0
    order_value_shape: float = 4.0
    # segments
    discount_sensitive_share: float = 0.3
    vip_grower_share: float = 0.06
    vip_rate_growth: tuple[float, float] = (2.5, 4.0)
    vip_spend_growth: tuple[float, float] = (1.5, 2.5)
    vip_ramp_days: tuple[float, float] = (180.0, 540.0)
    vip_dropout_factor: float = 0.3
    decliner_share: float = 0.8
    decline_stage_days: float = 45.0
    decline_stage_factors: tuple[float, float, float] = (0.6, 0.35, 0.15)
    # order lines
    categories: tuple[str, ...] = ("grocery", "electronics", "home", "sports", "fashion", "beauty")
    category_margin_rates: tuple[float, ...] = (0.15, 0.12, 0.32, 0.35, 0.48, 0.55)
    category_popularity: tuple[float, ...] = (0.25, 0.12, 0.2, 0.13, 0.18, 0.12)
    category_return_factors: tuple[float, ...] = (0.2, 1.2, 0.8, 1.0, 2.0, 0.6)
    favourite_category_share: float = 0.6
    products_per_category: int = 200
    channel_shares: tuple[float, float, float] = (0.55, 0.3, 0.15)
    preferred_channel_share: float = 0.75
    # returns, tickets, reviews, referrals
    return_rate: float = 0.07
    return_handling_share: float = 0.1
    ticket_rate_per_year: float = 0.5
    ticket_decline_factor: float = 12.0
    review_share: float = 0.1
    review_decline_factor: float = 4.0
    rating_decline_drop: float = 1.8
    advocate_share: float = 0.06
    vip_advocate_share: float = 0.3
    # win-back campaigns
    campaign_dates: tuple[date, ...] = (
        date(2024, 3, 1), date(2024, 9, 2), date(2025, 3, 3), date(2025, 9, 1),
    )  # fmt: skip
    campaign_offers: tuple[str, ...] = ("discount_20", "free_shipping")
    lapse_days: int = 120
    max_lapse_days: int = 720
    control_share: float = 0.2
    response_days: int = 30
    reactivation_days: int = 60
    movable_share: float = 0.7
    treatment_rate: float = 0.45
    discount_sensitive_treatment_factor: float = 2.2
    full_price_treatment_factor: float = 0.6
    treatment_recency_days: float = 300.0
    # digital engagement (identified sessions, e-mail opens and clicks)
    engagement: bool = True
    engagement_none_share: float = 0.25
    engagement_per_order: float = 3.0
    engagement_per_order_shape: float = 2.0
    engagement_decline_stage_factors: tuple[float, float, float] = (0.45, 0.2, 0.06)
    engagement_residual_share: float = 0.07
    engagement_type_shares: tuple[float, float, float, float] = (0.34, 0.18, 0.42, 0.06)
    # behaviour shift (off by default): from the start of ``shift_date`` every
    # customer's natural purchase rate is multiplied by ``shift_purchase_rate_factor``
    # and dropout hazards by ``shift_dropout_factor`` (discount-sensitive customers'
    # by ``shift_discount_sensitive_dropout_factor`` instead), e.g. a competitor's
    # discount war; monitoring tests drift detection and model decay with it
    shift_date: date | None = None
    shift_purchase_rate_factor: float = 1.0
    shift_dropout_factor: float = 1.0
    shift_discount_sensitive_dropout_factor: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.customers < 1:
            problems.append(f"customers must be >= 1, got {self.customers}")
        if self.end <= self.start:
            problems.append(f"end ({self.end}) must be after start ({self.start})")
        if len(self.monthly_seasonality) != 12 or min(self.monthly_seasonality) <= 0:
            problems.append("monthly_seasonality needs 12 positive factors (January first)")
        n_cat = len(self.categories)
        for name in ("category_margin_rates", "category_popularity", "category_return_factors"):
            if len(getattr(self, name)) != n_cat:
                problems.append(f"{name} needs one value per category ({n_cat})")
        if len(self.acquisition_channel_shares) != len(ACQUISITION_CHANNELS) or len(
            self.acquisition_channel_dropout_factors
        ) != len(ACQUISITION_CHANNELS):
            problems.append(f"acquisition channel shares/factors need {len(ACQUISITION_CHANNELS)}")
        for name in (
            "discount_sensitive_share",
            "vip_grower_share",
            "decliner_share",
            "control_share",
            "movable_share",
            "return_rate",
            "review_share",
            "advocate_share",
            "favourite_category_share",
            "preferred_channel_share",
            "engagement_none_share",
            "engagement_residual_share",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if not (self.engagement_per_order > 0 and self.engagement_per_order_shape > 0):
            problems.append("engagement_per_order and engagement_per_order_shape must be > 0")
        if len(self.engagement_decline_stage_factors) != 3 or any(
            not 0.0 <= e <= p
            for e, p in zip(
                self.engagement_decline_stage_factors, self.decline_stage_factors, strict=False
            )
        ):
            problems.append(
                "engagement_decline_stage_factors needs 3 values, each in [0, the matching"
                f" decline_stage_factors {self.decline_stage_factors}] (disengagement leads),"
                f" got {self.engagement_decline_stage_factors}"
            )
        shares = self.engagement_type_shares
        if len(shares) != len(EVENT_TYPES) or min(shares) < 0 or sum(shares[2:]) <= 0:
            problems.append(
                f"engagement_type_shares needs {len(EVENT_TYPES)} non-negative shares"
                f" ({', '.join(EVENT_TYPES)}) with some e-mail share, got {shares}"
            )
        if self.vip_grower_share + self.decliner_share > 1:
            problems.append("vip_grower_share + decliner_share must be <= 1")
        if self.reactivation_days < self.response_days:
            problems.append("reactivation_days must be >= response_days")
        dates = sorted(self.campaign_dates)
        for d in dates:
            if not self.start < d <= self.end:
                problems.append(f"campaign date {d} is outside ({self.start}, {self.end}]")
        for a, b in zip(dates, dates[1:], strict=False):
            if (b - a).days < self.response_days:
                problems.append(f"campaign dates {a} and {b} are closer than response_days")
        if not self.campaign_offers:
            problems.append("campaign_offers needs at least one offer")
        if self.shift_date is not None and not self.start < self.shift_date <= self.end:
            problems.append(f"shift_date {self.shift_date} is outside ({self.start}, {self.end}]")
        for name in (
            "shift_purchase_rate_factor",
            "shift_dropout_factor",
            "shift_discount_sensitive_dropout_factor",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if problems:
            raise ValueError("invalid SimulationConfig: " + "; ".join(problems))

    @property
    def days(self) -> int:
        """Length of the simulated period in days (``end`` included)."""
        return (self.end - self.start).days + 1

    def to_dict(self) -> dict:
        """A JSON-ready dict (dates as ISO strings, tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [v.isoformat() if isinstance(v, date) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SimulationConfig:
        """The config written by :meth:`to_dict`."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name in ("start", "end") or (f.name == "shift_date" and value is not None):
                value = date.fromisoformat(value)
            elif f.name == "campaign_dates":
                value = tuple(date.fromisoformat(v) for v in value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class SimulatedShop:
    """The simulated shop's contract tables and the truth behind them.

    ``truth`` is indexed by ``customer_id``; ``contact_truth`` has one row per
    campaign contact with its potential outcomes and true uplift.
    """

    tables: ShopTables
    truth: pd.DataFrame
    contact_truth: pd.DataFrame
    config: SimulationConfig = field(default_factory=SimulationConfig)


@dataclass(frozen=True)
class _Latent:
    """Per-customer latent parameters in days since ``start`` (internal)."""

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


# --------------------------------------------------------------------------- helpers


def _season_by_day(config: SimulationConfig, n_days: int) -> np.ndarray:
    """Seasonal factor of each day since ``start`` (monthly, mean 1 over a year)."""
    factors = np.asarray(config.monthly_seasonality, dtype=float)
    factors = factors / factors.mean()
    days = np.datetime64(config.start, "D") + np.arange(n_days)
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    return factors[month]


def _growth(
    lat: _Latent, idx: np.ndarray, at: np.ndarray | float, growth: np.ndarray
) -> np.ndarray:
    """A VIP grower's ramp factor at times ``at`` (1 for everyone else)."""
    out = np.ones(len(idx))
    sub = np.flatnonzero(growth[idx] != 1.0)
    if len(sub):
        who = idx[sub]
        at_sub = at[sub] if np.ndim(at) else at
        ramp = np.clip((at_sub - lat.acquired[who]) / lat.ramp_days[who], 0.0, 1.0)
        out[sub] = 1.0 + (growth[who] - 1.0) * ramp
    return out


def _stage(lat: _Latent, idx: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Decline stage (0 healthy, 1..3 declining) of customers ``idx`` at times ``t``."""
    out = np.zeros(len(idx), dtype=np.int8)
    sub = np.flatnonzero(lat.is_decliner[idx])
    if len(sub):
        st = lat.stage_at[idx[sub]]
        t_sub = t[sub] if np.ndim(t) else t
        out[sub] = (st[:, 0] <= t_sub).astype(np.int8) + (st[:, 1] <= t_sub) + (st[:, 2] <= t_sub)
    return out


def _shift_latent(
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


def _purchase_shift(config: SimulationConfig, lat: _Latent, t: np.ndarray) -> np.ndarray | float:
    """Factor of the natural purchase rate at times ``t`` (1 before the shift or without one)."""
    if lat.shift_dropout is None:
        return 1.0
    return np.where(t >= lat.shift_day, config.shift_purchase_rate_factor, 1.0)


def _stage_factors(config: SimulationConfig) -> np.ndarray:
    return np.array((1.0, *config.decline_stage_factors))


def _string_array(values: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(values)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Zero-padded string ids such as ``C0000042`` (vectorised in Arrow)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _take(labels: pa.Array, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    return _string_array(labels.take(pa.array(codes)))


def _timestamps(config: SimulationConfig, t_days: np.ndarray) -> pd.Series:
    """UTC timestamps (microseconds) of times in days since start; inf -> NaT."""
    base = int(np.datetime64(config.start, "us").astype(np.int64))
    finite = np.isfinite(t_days)
    if finite.all():
        us = (t_days * DAY_US).astype(np.int64)  # truncation = floor for t >= 0
        us += base
    else:
        us = np.where(finite, np.floor(np.where(finite, t_days, 0.0) * DAY_US), 0).astype(np.int64)
        us = np.where(finite, us + base, np.iinfo(np.int64).min)
    return pd.Series(us.view("datetime64[us]")).dt.tz_localize("UTC")


def _days(config: SimulationConfig, stamps: pd.Series) -> np.ndarray:
    """Inverse of :func:`_timestamps`: days since start, NaT -> inf."""
    base = int(np.datetime64(config.start, "us").astype(np.int64))
    values = stamps.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    us = values.to_numpy().view(np.int64)
    out = (us - base) / DAY_US
    return np.where(values.isna().to_numpy(), np.inf, out)


def _interleave(
    first: np.ndarray, second: np.ndarray, pos_first: np.ndarray, pos_second: np.ndarray, n: int
) -> np.ndarray:
    """One array of length ``n`` with ``first`` at ``pos_first`` and ``second`` at ``pos_second``."""
    out = np.empty(n, dtype=first.dtype)
    out[pos_first] = first
    out[pos_second] = second
    return out


def _poisson_times(
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


#: Customers per block when thinning engagement candidates (bounds the temporary memory).
_ENGAGEMENT_BLOCK = 200_000


def _engagement_ratio(config: SimulationConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Each customer's identified engagement events per order (0: never engages digitally)."""
    engaged = rng.random(n) >= config.engagement_none_share
    shape = config.engagement_per_order_shape
    ratio = rng.gamma(shape, config.engagement_per_order / shape, n)
    return np.where(engaged & config.engagement, ratio, 0.0)


def _event_types(
    rng: np.random.Generator, shares: tuple[float, ...] | np.ndarray, size: int
) -> np.ndarray:
    """Codes into ``EVENT_TYPES`` drawn with the given (unnormalised) shares."""
    cdf = np.cumsum(shares) / np.sum(shares)
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def _engagement_times(
    config: SimulationConfig,
    rng: np.random.Generator,
    lat: _Latent,
    ratio: np.ndarray,
    season: np.ndarray,
    peak: float,
    contacts: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owner, time (days since start) and type code of every engagement event, unsorted.

    Three thinned Poisson processes (see the module docstring): alive
    engagement at ``ratio x`` the purchase intensity with the steeper
    engagement decline factors; a residual after dropout; and a treated
    win-back contact's burst.
    """
    n, period_end = len(ratio), float(config.days)
    last_day = config.days - 1
    # alive: the purchase intensity's factors, engagement's own stage factors; in blocks of
    # customers so the thinning candidates (several per kept event) never all exist at once
    alive_end = np.minimum(lat.dropout, period_end)
    max_rate = ratio * lat.purchase_rate * peak * lat.rate_growth
    stage_factors = np.array((1.0, *config.engagement_decline_stage_factors))
    alive_owner, alive_t = [], []
    for lo in range(0, n, _ENGAGEMENT_BLOCK):
        hi = min(n, lo + _ENGAGEMENT_BLOCK)
        owner, times = _poisson_times(rng, lat.acquired[lo:hi], alive_end[lo:hi], max_rate[lo:hi])
        owner += lo
        day = np.minimum(times.astype(np.int64), last_day)
        intensity = (
            season[day]
            * _growth(lat, owner, day + 0.5, lat.rate_growth)
            * stage_factors[_stage(lat, owner, times)]
            * _purchase_shift(config, lat, times)
        )
        keep = rng.random(len(owner)) * peak * lat.rate_growth[owner] < intensity
        alive_owner.append(owner[keep])
        alive_t.append(times[keep])
        del owner, times, day, intensity, keep
    alive_owner, alive_t = np.concatenate(alive_owner), np.concatenate(alive_t)
    # residual after dropout: newsletter opens and clicks by people who no longer buy
    season_peak = float(season.max())
    dead_from = np.where(np.isfinite(lat.dropout), lat.dropout, period_end)
    rate = ratio * lat.purchase_rate * config.engagement_residual_share * season_peak
    owner, times = _poisson_times(rng, dead_from, np.full(n, period_end), rate)
    day = np.minimum(times.astype(np.int64), last_day)
    keep = rng.random(len(owner)) * season_peak < season[day]
    dead_owner, dead_t = owner[keep], times[keep]
    # win-back bursts: a treated customer comes back to look at the offer
    treated = contacts["treated"]
    who = contacts["customer"][treated]
    t0 = contacts["contacted_at"][treated]
    window = np.minimum(t0 + config.response_days, period_end)
    burst_rate = contacts["treatment_rate"][treated] / config.response_days * ratio[who]
    b_index, burst_t = _poisson_times(rng, t0, window, burst_rate)
    burst_owner = who[b_index]
    shares = np.asarray(config.engagement_type_shares, dtype=float)
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


# --------------------------------------------------------------------------- oracle core


def _no_purchase_probability(
    lat: _Latent,
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
    season = _season_by_day(config, last_day + 1)
    days = [(d, max(start, d), min(stop, d + 1)) for d in range(first_day, last_day)]
    alive = (lat.acquired[idx] <= start) & (lat.dropout[idx] > start)
    dec = lat.is_decliner[idx]

    # non-decliners: healthy until a memoryless dropout
    sel = idx[alive & ~dec]
    lam, mu = lat.purchase_rate[sel], lat.dropout_rate[sel]
    survive, dead_quiet = np.ones(len(sel)), np.zeros(len(sel))
    for day, lo, hi in days:
        if hi <= lo:
            continue
        lam_d, mu_d = lam, mu
        if day >= lat.shift_day:  # days split at midnight, the shift starts at one
            lam_d, mu_d = lam * config.shift_purchase_rate_factor, mu * lat.shift_dropout[sel]
        rate = mu_d + lam_d * season[day] * _growth(lat, sel, day + 0.5, lat.rate_growth)
        leave = -np.expm1(-rate * (hi - lo))
        dead_quiet += survive * mu_d * leave / rate
        survive *= 1.0 - leave
    out[alive & ~dec] = survive + dead_quiet

    # decliners: healthy -> three decline stages -> dropout
    sel = idx[alive & dec]
    m = len(sel)
    lam, nu = lat.purchase_rate[sel], lat.dropout_rate[sel]
    kappa = 1.0 / config.decline_stage_days
    f1, f2, f3 = config.decline_stage_factors
    stage = _stage(lat, sel, start)
    q = tuple((stage == s).astype(float) for s in range(4)) + (np.zeros(m),)

    def deriv(q: tuple, phi: np.ndarray, nu: np.ndarray) -> tuple:
        h, s1, s2, s3, _ = q
        return (
            -(nu + phi) * h,
            nu * h - (kappa + f1 * phi) * s1,
            kappa * (s1 - s2) - f2 * phi * s2,
            kappa * (s2 - s3) - f3 * phi * s3,
            kappa * s3,
        )

    def step(q: tuple, k: tuple, dt: float) -> tuple:
        return tuple(a + dt * b for a, b in zip(q, k, strict=True))

    for day, lo, hi in days:
        if hi <= lo:
            continue
        phi = lam * season[day] * _growth(lat, sel, day + 0.5, lat.rate_growth)
        nu_d = nu
        if day >= lat.shift_day:
            phi, nu_d = phi * config.shift_purchase_rate_factor, nu * lat.shift_dropout[sel]
        dt = (hi - lo) / steps_per_day
        for _ in range(steps_per_day):
            k1 = deriv(q, phi, nu_d)
            k2 = deriv(step(q, k1, dt / 2), phi, nu_d)
            k3 = deriv(step(q, k2, dt / 2), phi, nu_d)
            k4 = deriv(step(q, k3, dt), phi, nu_d)
            q = tuple(
                a + dt / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4)
                for a, b1, b2, b3, b4 in zip(q, k1, k2, k3, k4, strict=True)
            )
    out[alive & dec] = sum(q)
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- simulation


def simulate_shop(config: SimulationConfig = SimulationConfig()) -> SimulatedShop:
    """Simulate a shop: contract tables in canonical dtypes plus the ground truth.

    Parameters
    ----------
    config
        Size, period, seed and the knobs of the generating process.

    Returns
    -------
    SimulatedShop
        Same config (seed included) -> identical frames.
    """
    # A ninth stream for engagement: the first eight (and every other table) stay as they were.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(9)]
    rng_cust, rng_orders, rng_camp, rng_lines, rng_ret, rng_tick, rng_rev, rng_ref = streams[:8]
    rng_eng = streams[8]
    n, period_end = config.customers, float(config.days)
    season = _season_by_day(config, config.days)

    # ---- customers and their latent parameters
    weights = (1.0 + config.acquisition_growth * np.arange(config.days) / config.days) * season
    cdf = np.cumsum(weights)
    acq_day = np.searchsorted(cdf, rng_cust.random(n) * cdf[-1], side="right")
    acquired = np.sort(np.minimum(acq_day, config.days - 1) + rng_cust.random(n))
    region = rng_cust.choice(len(REGIONS), size=n)
    channel_p = np.asarray(config.acquisition_channel_shares) / sum(
        config.acquisition_channel_shares
    )
    acq_channel = rng_cust.choice(len(ACQUISITION_CHANNELS), size=n, p=channel_p)
    segment = rng_cust.random(n)
    is_vip = segment < config.vip_grower_share
    is_decliner = (segment >= config.vip_grower_share) & (
        segment < config.vip_grower_share + config.decliner_share
    )
    discount_sensitive = rng_cust.random(n) < config.discount_sensitive_share
    purchase_rate = (
        rng_cust.gamma(
            config.purchase_rate_shape,
            config.purchase_rate_per_year / config.purchase_rate_shape,
            n,
        )
        / DAYS_PER_YEAR
    )
    dropout_rate = (
        rng_cust.gamma(
            config.dropout_rate_shape, config.dropout_rate_per_year / config.dropout_rate_shape, n
        )
        / DAYS_PER_YEAR
        * np.asarray(config.acquisition_channel_dropout_factors)[acq_channel]
        * np.where(is_vip, config.vip_dropout_factor, 1.0)
    )
    spend_mean = rng_cust.gamma(config.spend_shape, config.spend_per_order / config.spend_shape, n)
    spend_mean *= np.where(discount_sensitive, 0.85, 1.0)
    rate_growth = np.where(is_vip, rng_cust.uniform(*config.vip_rate_growth, n), 1.0)
    spend_growth = np.where(is_vip, rng_cust.uniform(*config.vip_spend_growth, n), 1.0)
    ramp_days = np.where(is_vip, rng_cust.uniform(*config.vip_ramp_days, n), 1.0)
    first_leave = acquired + rng_cust.exponential(1.0, n) / dropout_rate
    shift_day, shift_dropout = _shift_latent(config, discount_sensitive)
    if shift_dropout is not None:  # memoryless: the time left after the shift scales by 1/factor
        pivot = np.maximum(acquired, shift_day)
        first_leave = np.where(
            first_leave > pivot, pivot + (first_leave - pivot) / shift_dropout, first_leave
        )
    stage_gaps = rng_cust.exponential(config.decline_stage_days, (n, 3))
    stage_at = np.full((n, 3), np.inf)
    stage_at[:, 0] = np.where(is_decliner, first_leave, np.inf)
    stage_at[:, 1] = stage_at[:, 0] + stage_gaps[:, 0]
    stage_at[:, 2] = stage_at[:, 1] + stage_gaps[:, 1]
    dropout = np.where(is_decliner, stage_at[:, 2] + stage_gaps[:, 2], first_leave)
    dropout = np.where(dropout < period_end, dropout, np.inf)
    stage_at = np.where(stage_at < period_end, stage_at, np.inf)
    is_advocate = rng_cust.random(n) < np.where(
        is_vip, config.vip_advocate_share, config.advocate_share
    )
    return_mean = config.return_rate
    return_propensity = rng_cust.beta(1.5, 1.5 * (1 - return_mean) / max(return_mean, 1e-9), n)
    ticket_rate = rng_cust.gamma(2.0, config.ticket_rate_per_year / 2.0, n) / DAYS_PER_YEAR
    review_propensity = rng_cust.beta(
        1.0, (1 - config.review_share) / max(config.review_share, 1e-9), n
    )
    rating_mean = rng_cust.normal(4.3, 0.35, n)
    movable = rng_cust.random(n) < config.movable_share
    favourite_category = rng_cust.choice(
        len(config.categories),
        size=n,
        p=np.asarray(config.category_popularity) / sum(config.category_popularity),
    )
    channel_p3 = np.asarray(config.channel_shares) / sum(config.channel_shares)
    preferred_channel = rng_cust.choice(len(CHANNELS), size=n, p=channel_p3)
    lat = _Latent(
        acquired=acquired,
        dropout=dropout,
        purchase_rate=purchase_rate,
        dropout_rate=dropout_rate,
        is_decliner=is_decliner,
        stage_at=stage_at,
        rate_growth=rate_growth,
        spend_growth=spend_growth,
        ramp_days=ramp_days,
        shift_day=shift_day,
        shift_dropout=shift_dropout,
    )

    # ---- natural orders: first order at acquisition, then thinned Poisson candidates
    alive_end = np.minimum(dropout, period_end)
    peak = season.max()
    if shift_dropout is not None:
        peak *= max(1.0, config.shift_purchase_rate_factor)
    max_rate = purchase_rate * peak * rate_growth
    owner, times = _poisson_times(rng_orders, acquired, alive_end, max_rate)
    day = np.minimum(times.astype(np.int64), config.days - 1)
    intensity = (
        season[day]
        * _growth(lat, owner, day + 0.5, rate_growth)
        * _stage_factors(config)[_stage(lat, owner, times)]
        * _purchase_shift(config, lat, times)
    )
    keep = rng_orders.random(len(owner)) * peak * rate_growth[owner] < intensity
    nat_cust = np.concatenate((np.arange(n, dtype=np.int64), owner[keep]))
    nat_t = np.concatenate((acquired, times[keep]))
    del owner, times, day, intensity, keep

    # ---- win-back campaigns, in date order
    contact_parts, burst_cust, burst_t, burst_offer = [], [], [], []
    last_burst = np.full(n, -np.inf)
    for k, cdate in enumerate(sorted(config.campaign_dates)):
        contact_at = (cdate - config.start).days + 0.375  # 09:00 UTC
        offer_idx = k % len(config.campaign_offers)
        offer = config.campaign_offers[offer_idx]
        cand = np.flatnonzero(acquired < contact_at)
        last_all = last_burst.copy()
        before = nat_t < contact_at
        np.maximum.at(last_all, nat_cust[before], nat_t[before])
        last = last_all[cand]
        recency = contact_at - last
        sel = (recency >= config.lapse_days) & (recency <= config.max_lapse_days)
        idx, recency = cand[sel], recency[sel]
        m = len(idx)
        treated = rng_camp.random(m) >= config.control_share
        ds = discount_sensitive[idx]
        offer_factor = np.where(offer.startswith("discount") & ds, 1.3, 1.0)
        beta = (
            movable[idx]
            * config.treatment_rate
            * np.where(
                ds, config.discount_sensitive_treatment_factor, config.full_price_treatment_factor
            )
            * offer_factor
            * np.exp(-(recency - config.lapse_days) / config.treatment_recency_days)
        )
        window = min(contact_at + config.response_days, period_end) - contact_at
        n_burst = rng_camp.poisson(beta * window / config.response_days)
        b_owner = np.repeat(np.arange(m), n_burst)
        b_t = contact_at + rng_camp.random(len(b_owner)) * window
        p0 = 1.0 - _no_purchase_probability(
            lat, idx, contact_at, min(contact_at + config.reactivation_days, period_end), config
        )
        p1 = 1.0 - (1.0 - p0) * np.exp(-beta * window / config.response_days)
        in_window = (nat_t > contact_at) & (nat_t <= contact_at + config.reactivation_days)
        y0 = np.bincount(nat_cust[in_window], minlength=n)[idx] > 0
        y1 = y0 | (n_burst > 0)
        t_owner = treated[b_owner]
        burst_cust.append(idx[b_owner[t_owner]])
        burst_t.append(b_t[t_owner])
        burst_offer.append(np.full(int(t_owner.sum()), offer_idx))
        np.maximum.at(last_burst, idx[b_owner[t_owner]], b_t[t_owner])
        contact_parts.append(
            {
                "customer": idx,
                "campaign": np.full(m, k),
                "contacted_at": np.full(m, contact_at),
                "treated": treated,
                "offer": np.full(m, offer_idx),
                "alive_at_contact": dropout[idx] > contact_at,
                "days_since_last_order": recency,
                "treatment_rate": beta,
                "probability_control": p0,
                "probability_treatment": p1,
                "outcome_control": y0,
                "outcome_treatment": y1,
            }
        )

    # ---- all orders, in time order
    b_cust = np.concatenate(burst_cust) if burst_cust else np.zeros(0, np.int64)
    b_t = np.concatenate(burst_t) if burst_t else np.zeros(0)
    b_off = np.concatenate(burst_offer) if burst_offer else np.zeros(0, np.int64)
    o_cust = np.concatenate((nat_cust, b_cust))
    o_t = np.concatenate((nat_t, b_t))
    o_offer = np.concatenate((np.full(len(nat_cust), -1), b_off))
    order = np.argsort(o_t, kind="stable")
    o_cust, o_t, o_offer = o_cust[order], o_t[order], o_offer[order]
    n_orders = len(o_cust)
    spend_factor = _growth(lat, o_cust, o_t, spend_growth)
    order_value = rng_lines.gamma(config.order_value_shape, 1.0, n_orders) * (
        spend_mean[o_cust] * spend_factor / config.order_value_shape
    )
    n_lines = 1 + rng_lines.binomial(4, 0.25, n_orders)
    o_channel = np.where(
        rng_lines.random(n_orders) < config.preferred_channel_share,
        preferred_channel[o_cust],
        rng_lines.choice(len(CHANNELS), size=n_orders, p=channel_p3),
    )

    # ---- order lines
    l_order = np.repeat(np.arange(n_orders, dtype=np.int64), n_lines)
    n_l = len(l_order)
    l_cust = o_cust[l_order]
    share = rng_lines.gamma(2.0, 1.0, n_l)
    starts = np.concatenate(([0], np.cumsum(n_lines)[:-1]))
    share /= np.add.reduceat(share, starts)[l_order]
    list_value = order_value[l_order] * share
    n_cat = len(config.categories)
    cat_p = np.asarray(config.category_popularity) / sum(config.category_popularity)
    category = favourite_category[l_cust]
    other = np.flatnonzero(rng_lines.random(n_l) >= config.favourite_category_share)
    category[other] = rng_lines.choice(n_cat, size=len(other), p=cat_p)
    rank_w = 1.0 / np.arange(1, config.products_per_category + 1)
    rank_cdf = np.cumsum(rank_w) / rank_w.sum()
    rank = np.minimum(
        np.searchsorted(rank_cdf, rng_lines.random(n_l)), config.products_per_category - 1
    )
    product = category * config.products_per_category + rank
    # one line per product and order: move a repeated product to the next one
    for _ in range(config.products_per_category):
        repeated = np.zeros(n_l, dtype=bool)
        for lag in range(1, 5):
            repeated[lag:] |= (product[lag:] == product[:-lag]) & (l_order[lag:] == l_order[:-lag])
        if not repeated.any():
            break
        rank[repeated] = (rank[repeated] + 1) % config.products_per_category
        product = category * config.products_per_category + rank
    quantity = 1 + rng_lines.poisson(0.4, n_l)
    ds_line = discount_sensitive[l_cust]
    discounted = rng_lines.random(n_l) < np.where(ds_line, 0.75, 0.12)
    disc_rate = rng_lines.random(n_l)
    disc_rate = np.where(ds_line, 0.15 + 0.25 * disc_rate, 0.05 + 0.15 * disc_rate)
    l_offer = o_offer[l_order]
    offer_disc = np.array(
        [0.2 if o.startswith("discount") else 0.0 for o in config.campaign_offers] + [0.0]
    )[l_offer]
    disc_rate = np.where(l_offer >= 0, offer_disc, np.where(discounted, disc_rate, 0.0))
    margin_rate = np.asarray(config.category_margin_rates)[category]
    amount = np.round(list_value * (1 - disc_rate), 2)
    discount_amount = np.round(list_value * disc_rate, 2)
    margin_amount = np.round(list_value * (margin_rate - disc_rate), 2)
    l_t = o_t[l_order]

    # ---- returns: separate lines, a few days to a month later, inside the period
    ret_p = np.minimum(
        return_propensity[l_cust] * np.asarray(config.category_return_factors)[category], 0.95
    )
    r = np.flatnonzero(rng_ret.random(n_l) < ret_p)
    r_t = l_t[r] + rng_ret.uniform(2.0, 30.0, len(r))
    r, r_t = r[r_t < period_end], r_t[r_t < period_end]
    by_time = np.argsort(r_t, kind="stable")
    r, r_t = r[by_time], r_t[by_time]
    # merge the (few) return lines into the time-ordered purchase lines
    insert_at = np.searchsorted(l_t, r_t, side="right")
    pos_r = insert_at + np.arange(len(r))
    pos_p = np.arange(n_l) + np.cumsum(np.bincount(insert_at, minlength=n_l + 1))[:n_l]
    n_tx = n_l + len(r)

    positions = (pos_p, pos_r, n_tx)
    all_line = _interleave(np.arange(n_l), r, *positions)
    all_t = _interleave(l_t, r_t, *positions)
    all_ret = _interleave(np.zeros(n_l, bool), np.ones(len(r), bool), *positions)
    all_amount = _interleave(amount, amount[r], *positions)
    all_margin = _interleave(
        margin_amount,
        np.round(-margin_amount[r] - config.return_handling_share * amount[r], 2),
        *positions,
    )
    all_discount = _interleave(discount_amount, np.zeros(len(r)), *positions)
    del share, list_value, discounted, disc_rate, margin_rate, ds_line, l_offer, offer_disc
    del positions, pos_p, pos_r
    del rank, ret_p, insert_at, amount, discount_amount, margin_amount, l_t

    # ---- ids and categorical labels as Arrow strings
    cust_width = max(7, len(str(n)))
    customer_ids = _ids("C", np.arange(1, n + 1), cust_width)
    order_ids = _ids("O", np.arange(1, n_orders + 1), max(8, len(str(n_orders))))
    cat_codes = [c[:3].upper() for c in config.categories]
    product_labels = _ids(
        "",
        np.arange(config.products_per_category * n_cat) % config.products_per_category + 1,
        3,
    )
    product_labels = pc.binary_join_element_wise(
        pa.array(np.repeat(cat_codes, config.products_per_category)), product_labels, "-"
    )
    tx_cust = l_cust[all_line]
    transactions = pd.DataFrame(
        {
            "customer_id": _take(customer_ids, tx_cust),
            "order_id": _take(order_ids, l_order[all_line]),
            "ordered_at": _timestamps(config, all_t),
            "amount": all_amount,
            "is_return": all_ret,
            "margin_amount": all_margin,
            "discount_amount": all_discount,
            "quantity": quantity[all_line].astype(np.int64),
            "product_id": _take(product_labels, product[all_line]),
            "category": _take(pa.array(config.categories), category[all_line]),
            "channel": _take(pa.array(CHANNELS), o_channel[l_order[all_line]]),
        }
    )
    del all_t, all_amount, all_margin, all_discount, all_ret
    del tx_cust, all_line

    customers = pd.DataFrame(
        {
            "customer_id": _string_array(customer_ids),
            "first_seen_at": _timestamps(config, acquired),
            "region": _take(pa.array(REGIONS), region),
            "acquisition_channel": _take(pa.array(ACQUISITION_CHANNELS), acq_channel),
        }
    )

    # ---- support tickets: more of them while declining
    tf = config.ticket_decline_factor
    t_owner, t_times = _poisson_times(
        rng_tick, acquired, alive_end, ticket_rate * np.where(is_decliner, tf, 1.0)
    )
    t_stage = _stage(lat, t_owner, t_times)
    t_keep = rng_tick.random(len(t_owner)) * np.where(is_decliner[t_owner], tf, 1.0) < np.where(
        t_stage > 0, tf, 1.0
    )
    t_owner, t_times, t_stage = t_owner[t_keep], t_times[t_keep], t_stage[t_keep]
    t_sort = np.argsort(t_times, kind="stable")
    t_owner, t_times, t_stage = t_owner[t_sort], t_times[t_sort], t_stage[t_sort]
    topic_p = np.where(
        t_stage[:, None] > 0, [0.3, 0.35, 0.1, 0.2, 0.05], [0.3, 0.15, 0.2, 0.15, 0.2]
    )
    topic = (rng_tick.random(len(t_owner))[:, None] > np.cumsum(topic_p, axis=1)).sum(axis=1)
    topic = np.minimum(topic, len(TICKET_TOPICS) - 1)
    support_tickets = pd.DataFrame(
        {
            "customer_id": _take(customer_ids, t_owner),
            "ticket_id": _string_array(_ids("T", np.arange(1, len(t_owner) + 1), 8)),
            "opened_at": _timestamps(config, t_times),
            "topic": _take(pa.array(TICKET_TOPICS), topic),
        }
    )

    # ---- reviews after some purchases; lower ratings while declining
    o_stage = _stage(lat, o_cust, o_t)
    review_p = review_propensity[o_cust] * np.where(o_stage > 0, config.review_decline_factor, 1.0)
    purchase_orders = np.flatnonzero(rng_rev.random(n_orders) < review_p)
    rv_cust = o_cust[purchase_orders]
    rv_t = o_t[purchase_orders] + rng_rev.uniform(1.0, 21.0, len(purchase_orders))
    rv_stage = o_stage[purchase_orders]
    rv_ok = rv_t < period_end
    rv_cust, rv_t, rv_stage = rv_cust[rv_ok], rv_t[rv_ok], rv_stage[rv_ok]
    rv_mean = rating_mean[rv_cust] - np.where(rv_stage > 0, config.rating_decline_drop, 0.0)
    rating = np.clip(np.round(rng_rev.normal(rv_mean, 0.8)), 1, 5)
    rv_sort = np.argsort(rv_t, kind="stable")
    reviews = pd.DataFrame(
        {
            "customer_id": _take(customer_ids, rv_cust[rv_sort]),
            "reviewed_at": _timestamps(config, rv_t[rv_sort]),
            "rating": rating[rv_sort].astype(np.float64),
        }
    )

    # ---- referrals: referred customers get a living advocate acquired before them
    referral = ACQUISITION_CHANNELS.index("referral")
    referred = np.flatnonzero(acq_channel == referral)
    advocates = np.flatnonzero(is_advocate)  # sorted by acquisition (customers are)
    referrer = np.full(len(referred), -1)
    n_before = np.searchsorted(acquired[advocates], acquired[referred], side="left")
    for _ in range(20):
        todo = np.flatnonzero((referrer < 0) & (n_before > 0))
        if len(todo) == 0:
            break
        pick = advocates[(rng_ref.random(len(todo)) * n_before[todo]).astype(np.int64)]
        ok = dropout[pick] > acquired[referred[todo]]
        referrer[todo[ok]] = pick[ok]
    has_ref = referrer >= 0
    ref_sort = np.argsort(acquired[referred[has_ref]], kind="stable")
    referrals = pd.DataFrame(
        {
            "customer_id": _take(customer_ids, referrer[has_ref][ref_sort]),
            "referred_at": _timestamps(config, acquired[referred[has_ref]][ref_sort]),
            "referred_customer_id": _take(customer_ids, referred[has_ref][ref_sort]),
        }
    )
    referred_by = np.full(n, -1)
    referred_by[referred[has_ref]] = referrer[has_ref]

    # ---- campaign contacts and their truth
    if contact_parts:
        cp = {key: np.concatenate([p[key] for p in contact_parts]) for key in contact_parts[0]}
    else:
        cp = {
            "customer": np.zeros(0, np.int64),
            "campaign": np.zeros(0, np.int64),
            "contacted_at": np.zeros(0),
            "treated": np.zeros(0, bool),
            "offer": np.zeros(0, np.int64),
        }
    campaign_labels = pa.array([f"WB{d:%Y%m%d}" for d in sorted(config.campaign_dates)] or [""])
    contact_cols = {
        "customer_id": _take(customer_ids, cp["customer"]),
        "campaign_id": _take(campaign_labels, cp["campaign"]),
        "contacted_at": _timestamps(config, cp["contacted_at"]),
        "group": _take(pa.array(["control", "treatment"]), cp["treated"].astype(np.int64)),
        "offer": _take(pa.array(list(config.campaign_offers)), cp["offer"]),
    }
    campaign_contacts = pd.DataFrame(contact_cols)
    contact_truth = pd.DataFrame(dict(contact_cols))
    for key in (
        "alive_at_contact",
        "days_since_last_order",
        "treatment_rate",
        "probability_control",
        "probability_treatment",
        "outcome_control",
        "outcome_treatment",
    ):
        contact_truth[key] = cp.get(key, np.zeros(0))
    contact_truth["alive_at_contact"] = contact_truth["alive_at_contact"].astype(bool)
    contact_truth["outcome_control"] = contact_truth["outcome_control"].astype(bool)
    contact_truth["outcome_treatment"] = contact_truth["outcome_treatment"].astype(bool)
    contact_truth["true_uplift"] = (
        contact_truth["probability_treatment"] - contact_truth["probability_control"]
    )
    contact_truth["reactivated"] = np.where(
        cp["treated"], contact_truth["outcome_treatment"], contact_truth["outcome_control"]
    )

    # ---- digital engagement: sessions, opens and clicks
    engagement_ratio = _engagement_ratio(config, rng_eng, n)
    engagement_events = None
    if config.engagement:
        contacts = {
            "customer": cp["customer"],
            "contacted_at": cp["contacted_at"],
            "treated": cp["treated"],
            "treatment_rate": cp.get("treatment_rate", np.zeros(0)),
        }
        e_owner, e_t, e_type = _engagement_times(
            config, rng_eng, lat, engagement_ratio, season, peak, contacts
        )
        e_sort = np.argsort(e_t, kind="stable")
        engagement_events = pd.DataFrame(
            {
                "customer_id": _take(customer_ids, e_owner[e_sort]),
                "occurred_at": _timestamps(config, e_t[e_sort]),
                "event_type": _take(pa.array(EVENT_TYPES), e_type[e_sort]),
            }
        )
        del e_owner, e_t, e_type, e_sort

    # ---- per-customer truth
    truth = pd.DataFrame(
        {
            "customer_id": _string_array(customer_ids),
            "acquired_at": _timestamps(config, acquired),
            "dropout_at": _timestamps(config, dropout),
            "purchase_rate_per_year": purchase_rate * DAYS_PER_YEAR,
            "dropout_rate_per_year": dropout_rate * DAYS_PER_YEAR,
            "spend_mean_amount": spend_mean,
            "discount_sensitive": discount_sensitive,
            "is_vip_grower": is_vip,
            "rate_growth": rate_growth,
            "spend_growth": spend_growth,
            "ramp_days": ramp_days,
            "is_decliner": is_decliner,
            "decline_stage_1_at": _timestamps(config, stage_at[:, 0]),
            "decline_stage_2_at": _timestamps(config, stage_at[:, 1]),
            "decline_stage_3_at": _timestamps(config, stage_at[:, 2]),
            "is_advocate": is_advocate,
            "referred_by": _string_array(
                customer_ids.take(pa.array(referred_by, mask=referred_by < 0))
            ),
            "movable": movable,
            "return_propensity": return_propensity,
            "ticket_rate_per_year": ticket_rate * DAYS_PER_YEAR,
            "review_propensity": review_propensity,
            "rating_mean": rating_mean,
            "favourite_category": _take(pa.array(config.categories), favourite_category),
            "preferred_channel": _take(pa.array(CHANNELS), preferred_channel),
            "engagement_per_order": engagement_ratio,
        }
    )
    truth = truth.set_index("customer_id")
    truth.attrs["simulation_config"] = config

    tables = ShopTables(
        transactions=transactions,
        customers=customers,
        support_tickets=support_tickets,
        referrals=referrals,
        reviews=reviews,
        campaign_contacts=campaign_contacts,
        engagement_events=engagement_events,
        source=f"simulated(seed={config.seed}, customers={n})",
    )
    return SimulatedShop(tables=tables, truth=truth, contact_truth=contact_truth, config=config)


# --------------------------------------------------------------------------- oracle


def _latent_from_truth(truth: pd.DataFrame, config: SimulationConfig) -> _Latent:
    """Rebuild the latent parameters (in days) from a truth frame."""
    stage_at = np.column_stack([_days(config, truth[f"decline_stage_{k}_at"]) for k in (1, 2, 3)])
    sensitive = (
        truth["discount_sensitive"].to_numpy(bool) if config.shift_date is not None else None
    )
    shift_day, shift_dropout = _shift_latent(config, sensitive)
    return _Latent(
        shift_day=shift_day,
        shift_dropout=shift_dropout,
        acquired=_days(config, truth["acquired_at"]),
        dropout=_days(config, truth["dropout_at"]),
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
    lat = _latent_from_truth(truth, config)
    start = float((cutoff - config.start).days + 1)
    stop = start + horizon_days
    idx = np.flatnonzero(lat.acquired < start)
    prob = _no_purchase_probability(lat, idx, start, stop, config)
    if contact_truth is not None and len(contact_truth):
        treated = contact_truth[contact_truth["group"] == "treatment"]
        t0 = _days(config, treated["contacted_at"])
        t1 = np.minimum(t0 + config.response_days, float(config.days))
        overlap = np.clip(np.minimum(t1, stop) - np.maximum(t0, start), 0.0, None)
        burst = treated["treatment_rate"].to_numpy(float) * overlap / config.response_days
        pos = pd.Index(truth.index).get_indexer(treated["customer_id"])
        exposure = np.bincount(pos, weights=burst, minlength=len(truth))
        prob = prob * np.exp(-exposure[idx])
    return pd.Series(
        prob, index=pd.Index(truth.index[idx], name="customer_id"), name="oracle_churn_probability"
    )


# --------------------------------------------------------------------------- files


def _arrow_table(frame: pd.DataFrame, *, keep_index: bool = False) -> pa.Table:
    """``frame`` as an Arrow table with pandas metadata (dtypes survive a round trip)."""
    with warnings.catch_warnings():
        # pyarrow 25 reads Series.values of tz-aware columns, deprecated in pandas 3.1
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return pa.Table.from_pandas(frame, preserve_index=keep_index)


def _write_atomic(table: pa.Table, path: Path) -> None:
    publish_file(path, lambda p: pq.write_table(table, p))


def write_shop(shop: SimulatedShop, out_dir: Path) -> dict[str, Path]:
    """Write every table, the truth and the config to ``out_dir`` (atomically).

    One Parquet file per contract table (``transactions.parquet``, ...), plus
    ``truth.parquet``, ``contact_truth.parquet`` and ``simulation.json``. The
    same shop always gives the same bytes.

    Returns
    -------
    dict[str, Path]
        Path of each written file by name (table name, ``truth``,
        ``contact_truth``, ``simulation``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in shop.tables.present().items():
        path = out_dir / TABLE_FILES[name]
        _write_atomic(_arrow_table(frame), path)
        paths[name] = path
    truth = shop.truth.copy(deep=False)
    truth.attrs = {}
    for name, frame, keep_index in (
        ("truth", truth, True),
        ("contact_truth", shop.contact_truth, False),
    ):
        path = out_dir / f"{name}.parquet"
        _write_atomic(_arrow_table(frame, keep_index=keep_index), path)
        paths[name] = path
    path = out_dir / "simulation.json"
    payload = {"config": shop.config.to_dict(), "source": shop.tables.source}
    publish_text(path, json.dumps(payload, indent=2, sort_keys=True))
    paths["simulation"] = path
    return paths


def read_config(directory: Path) -> SimulationConfig:
    """The :class:`SimulationConfig` saved in ``directory/simulation.json``."""
    path = Path(directory) / "simulation.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: write the shop with write_shop first")
    return SimulationConfig.from_dict(json.loads(path.read_text())["config"])


def read_truth(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(truth, contact_truth)`` written by :func:`write_shop`.

    ``truth.attrs["simulation_config"]`` holds the config, so the truth frame
    can be passed to :func:`oracle_churn_probability` directly.
    """
    directory = Path(directory)
    config = read_config(directory)
    truth = pd.read_parquet(directory / "truth.parquet")
    truth.index = truth.index.astype("string")
    contact_truth = pd.read_parquet(directory / "contact_truth.parquet")
    truth.attrs["simulation_config"] = config
    return truth, contact_truth


def read_shop(directory: Path) -> SimulatedShop:
    """The whole :class:`SimulatedShop` written by :func:`write_shop`."""
    directory = Path(directory)
    truth, contact_truth = read_truth(directory)
    config = truth.attrs["simulation_config"]
    source = json.loads((directory / "simulation.json").read_text()).get("source", "")
    frames = {
        name: pd.read_parquet(directory / file)
        for name, file in TABLE_FILES.items()
        if (directory / file).exists()
    }
    if "transactions" not in frames:
        raise FileNotFoundError(f"{directory / TABLE_FILES['transactions']} not found")
    return SimulatedShop(
        tables=ShopTables(**frames, source=source),
        truth=truth,
        contact_truth=contact_truth,
        config=config,
    )


__all__ = [
    "SimulatedShop",
    "SimulationConfig",
    "oracle_churn_probability",
    "read_config",
    "read_shop",
    "read_truth",
    "simulate_shop",
    "write_shop",
]
