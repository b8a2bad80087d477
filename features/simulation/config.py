"""What goes into the simulated shop and what comes out: its config and its result.

:class:`SimulationConfig` holds every knob (validated on creation, with messages
naming the offending knob); :class:`SimulatedShop` holds the contract tables and
the truth behind them. The label sets and units every step shares live here too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from features.inputs.schema import EVENT_TYPES, SCHEMAS, ShopTables

DAY_US = 86_400_000_000
DAYS_PER_YEAR = 365.25
CHANNELS = ("web", "app", "store")
REGIONS = ("north", "south", "east", "west", "central")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "email", "referral")
TICKET_TOPICS = ("delivery", "product", "payment", "return", "account")
TABLE_FILES = {name: f"{name}.parquet" for name in SCHEMAS}

#: Knobs that are shares and must lie in [0, 1].
_SHARES = (
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
)

#: Behaviour-shift factors, each > 0.
_SHIFT_FACTORS = (
    "shift_purchase_rate_factor",
    "shift_dropout_factor",
    "shift_discount_sensitive_dropout_factor",
)


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
        problems = [
            *_period_problems(self),
            *_shape_problems(self),
            *_engagement_problems(self),
            *_campaign_problems(self),
            *_shift_problems(self),
        ]
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


# --------------------------------------------------------------------------- validation


def _period_problems(config: SimulationConfig) -> list[str]:
    """Size, period and seasonality problems."""
    problems = []
    if config.customers < 1:
        problems.append(f"customers must be >= 1, got {config.customers}")
    if config.end <= config.start:
        problems.append(f"end ({config.end}) must be after start ({config.start})")
    if len(config.monthly_seasonality) != 12 or min(config.monthly_seasonality) <= 0:
        problems.append("monthly_seasonality needs 12 positive factors (January first)")
    return problems


def _shape_problems(config: SimulationConfig) -> list[str]:
    """Per-category and per-channel lengths, shares outside [0, 1]."""
    problems = []
    n_cat = len(config.categories)
    for name in ("category_margin_rates", "category_popularity", "category_return_factors"):
        if len(getattr(config, name)) != n_cat:
            problems.append(f"{name} needs one value per category ({n_cat})")
    if len(config.acquisition_channel_shares) != len(ACQUISITION_CHANNELS) or len(
        config.acquisition_channel_dropout_factors
    ) != len(ACQUISITION_CHANNELS):
        problems.append(f"acquisition channel shares/factors need {len(ACQUISITION_CHANNELS)}")
    for name in _SHARES:
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be in [0, 1], got {value}")
    return problems


def _engagement_problems(config: SimulationConfig) -> list[str]:
    """Engagement ratio, decline factors (disengagement leads) and event-type shares."""
    problems = []
    if not (config.engagement_per_order > 0 and config.engagement_per_order_shape > 0):
        problems.append("engagement_per_order and engagement_per_order_shape must be > 0")
    if len(config.engagement_decline_stage_factors) != 3 or any(
        not 0.0 <= e <= p
        for e, p in zip(
            config.engagement_decline_stage_factors, config.decline_stage_factors, strict=False
        )
    ):
        problems.append(
            "engagement_decline_stage_factors needs 3 values, each in [0, the matching"
            f" decline_stage_factors {config.decline_stage_factors}] (disengagement leads),"
            f" got {config.engagement_decline_stage_factors}"
        )
    shares = config.engagement_type_shares
    if len(shares) != len(EVENT_TYPES) or min(shares) < 0 or sum(shares[2:]) <= 0:
        problems.append(
            f"engagement_type_shares needs {len(EVENT_TYPES)} non-negative shares"
            f" ({', '.join(EVENT_TYPES)}) with some e-mail share, got {shares}"
        )
    return problems


def _campaign_problems(config: SimulationConfig) -> list[str]:
    """Overlapping segments; campaign dates inside the period and far enough apart; offers."""
    problems = []
    if config.vip_grower_share + config.decliner_share > 1:
        problems.append("vip_grower_share + decliner_share must be <= 1")
    if config.reactivation_days < config.response_days:
        problems.append("reactivation_days must be >= response_days")
    dates = sorted(config.campaign_dates)
    for d in dates:
        if not config.start < d <= config.end:
            problems.append(f"campaign date {d} is outside ({config.start}, {config.end}]")
    for a, b in zip(dates, dates[1:], strict=False):
        if (b - a).days < config.response_days:
            problems.append(f"campaign dates {a} and {b} are closer than response_days")
    if not config.campaign_offers:
        problems.append("campaign_offers needs at least one offer")
    return problems


def _shift_problems(config: SimulationConfig) -> list[str]:
    """A behaviour shift inside the period with positive factors."""
    problems = []
    if config.shift_date is not None and not config.start < config.shift_date <= config.end:
        problems.append(f"shift_date {config.shift_date} is outside ({config.start}, {config.end}]")
    for name in _SHIFT_FACTORS:
        if not getattr(config, name) > 0:
            problems.append(f"{name} must be > 0, got {getattr(config, name)}")
    return problems
