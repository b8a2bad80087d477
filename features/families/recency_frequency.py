"""Recency, tenure, order frequency, its trend, and the gaps between purchases.

Relations (built by ``features.build``): ``orders`` has one row per purchase
order (an ``order_id`` with a non-return line) with ``order_amount_e4`` and
``order_age_days`` (whole days from the date of the order's purchase lines to the
cutoff, 0 on the cutoff day; the oldest line's when they differ); ``order_days`` is
the same rows in time order with ``gap_days``, the days since the previous
purchase order (0 for a second order the same day), so the non-zero gaps are
the gaps between distinct purchase days.
A window of ``w`` days holds the events with ``0 <= age_days < w``.
"""

from __future__ import annotations

from functools import partial

from features.definitions import FeatureDefinition
from features.families import exact_stddev_samp

FAMILY = "recency_frequency"
WINDOWS_DAYS = (30, 90, 180, 365)


def orders_within(days: int) -> str:
    """SQL counting purchase orders placed in the last ``days`` days."""
    return f"COUNT(CASE WHEN order_age_days < {days} THEN 1 END)"


_feature = partial(FeatureDefinition.numeric, FAMILY)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature(
        "days_since_last_order",
        "orders",
        "MIN(order_age_days)",
        "Whole days from the last purchase order's date to the cutoff (recency).",
    ),
    _feature(
        "tenure_days",
        "orders",
        "MAX(order_age_days)",
        "Whole days from the first purchase order's date to the cutoff.",
    ),
    _feature(
        "order_count",
        "orders",
        "COUNT(*)",
        "Distinct purchase orders (order_id with a non-return line), all history.",
    ),
    *(
        _feature(
            f"order_count_{days}d",
            "orders",
            orders_within(days),
            f"Distinct purchase orders in the last {days} days.",
        )
        for days in WINDOWS_DAYS
    ),
    _feature(
        "order_count_trend_90d",
        "orders",
        f"(365.0 / 90.0) * {orders_within(90)} / NULLIF({orders_within(365)}, 0)",
        "Order rate of the last 90 days over the 365-day average rate (1 = steady); "
        "missing without orders in 365 days.",
    ),
    _feature(
        "order_count_share_90d_of_180d",
        "orders",
        f"{orders_within(90)} / NULLIF({orders_within(180)}, 0)",
        "Share of the last 6 months' orders placed in the last 3 months; "
        "missing without orders in 180 days.",
    ),
    _feature(
        "order_count_share_180d_of_365d",
        "orders",
        f"{orders_within(180)} / NULLIF({orders_within(365)}, 0)",
        "Share of the last 12 months' orders placed in the last 6 months; "
        "missing without orders in 365 days.",
    ),
    _feature(
        "purchase_day_count",
        "order_days",
        "1 + COUNT(CASE WHEN gap_days > 0 THEN 1 END)",
        "Distinct days with a purchase order.",
    ),
    _feature(
        "purchase_gap_mean_days",
        "order_days",
        "AVG(CASE WHEN gap_days > 0 THEN gap_days END)",
        "Mean days between consecutive purchase days, (last - first) / (days - 1); "
        "missing with one purchase day.",
    ),
    _feature(
        "purchase_gap_std_days",
        "order_days",
        exact_stddev_samp("CASE WHEN gap_days > 0 THEN gap_days END"),
        "Sample standard deviation of the days between purchase days; "
        "missing with fewer than three purchase days.",
    ),
    _feature(
        "overdue_ratio",
        "derived",
        "days_since_last_order / NULLIF(purchase_gap_mean_days, 0)",
        "Days since the last order over the mean purchase gap (> 1: later than usual); "
        "missing with one purchase day.",
        depends_on=("days_since_last_order", "purchase_gap_mean_days"),
    ),
)
