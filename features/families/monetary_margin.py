"""Spend, its trend, order values, margin and discount behaviour.

Relations: ``orders`` (one row per purchase order: ``order_amount`` = value of
its non-return lines, ``order_age_days``, and ``order_discounted`` = 1 when one
of them has a discount, where ``discount_amount`` exists); ``lines`` (one row per
order line: ``age_days``, ``amount``, ``is_return``, and where the optional
columns exist ``margin_amount`` and ``discount_amount``, missing discounts as 0),
for the sums that need no order grouping; ``customer_categories`` (spend per customer and category, with
``high_margin`` = 1 when the category's shop-wide margin rate up to the cutoff
is above the shop's overall margin rate up to the cutoff).
"""

from __future__ import annotations

from functools import partial

from features.registry import FeatureDefinition

FAMILY = "monetary_margin"
WINDOWS_DAYS = (30, 90, 180, 365)

#: Value of the purchased lines, over the ``lines`` relation.
SPEND = "SUM(CASE WHEN is_return THEN 0.0 ELSE amount END)"
MARGIN_SUM = "SUM(CASE WHEN is_return THEN 0.0 ELSE margin_amount END)"
DISCOUNT_SUM = "SUM(CASE WHEN is_return THEN 0.0 ELSE discount_amount END)"
MARGIN = "transactions.margin_amount"
DISCOUNT = "transactions.discount_amount"


def spend_within(days: int) -> str:
    """SQL summing purchase value of the orders placed in the last ``days`` days."""
    return f"SUM(CASE WHEN order_age_days < {days} THEN order_amount ELSE 0 END)"


_feature = partial(FeatureDefinition.numeric, FAMILY)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature("spend_amount", "lines", SPEND, "Value of all purchased (non-return) lines."),
    *(
        _feature(
            f"spend_{days}d_amount",
            "orders",
            spend_within(days),
            f"Value of purchased lines of orders placed in the last {days} days.",
        )
        for days in WINDOWS_DAYS
    ),
    _feature(
        "spend_trend_90d",
        "orders",
        f"(365.0 / 90.0) * {spend_within(90)} / NULLIF({spend_within(365)}, 0)",
        "Spend rate of the last 90 days over the 365-day average rate (1 = steady); "
        "missing without spend in 365 days.",
    ),
    _feature(
        "spend_share_90d_of_180d",
        "orders",
        f"{spend_within(90)} / NULLIF({spend_within(180)}, 0)",
        "Share of the last 6 months' spend in the last 3 months; missing without spend in 180 days.",
    ),
    _feature(
        "spend_share_180d_of_365d",
        "orders",
        f"{spend_within(180)} / NULLIF({spend_within(365)}, 0)",
        "Share of the last 12 months' spend in the last 6 months; "
        "missing without spend in 365 days.",
    ),
    _feature(
        "order_value_mean_amount",
        "orders",
        "AVG(order_amount)",
        "Mean value of a purchase order.",
    ),
    _feature(
        "order_value_max_amount",
        "orders",
        "MAX(order_amount)",
        "Largest purchase order value.",
    ),
    _feature(
        "order_value_std_amount",
        "orders",
        "STDDEV_SAMP(order_amount)",
        "Sample standard deviation of purchase order values; missing with one order.",
    ),
    _feature(
        "total_margin_amount",
        "lines",
        MARGIN_SUM,
        "Gross margin of all purchased lines.",
        columns=(MARGIN,),
    ),
    _feature(
        "margin_365d_amount",
        "lines",
        "SUM(CASE WHEN is_return OR age_days >= 365 THEN 0.0 ELSE margin_amount END)",
        "Gross margin of purchased lines in the last 365 days.",
        columns=(MARGIN,),
    ),
    _feature(
        "margin_rate",
        "lines",
        f"{MARGIN_SUM} / NULLIF({SPEND}, 0)",
        "Gross margin over spend; missing when spend is 0.",
        columns=(MARGIN,),
    ),
    _feature(
        "full_price_spend_share",
        "lines",
        "SUM(CASE WHEN NOT is_return AND discount_amount = 0 THEN amount ELSE 0.0 END)"
        f" / NULLIF({SPEND}, 0)",
        "Share of spend on lines bought without discount; missing when spend is 0.",
        columns=(DISCOUNT,),
    ),
    _feature(
        "discount_rate",
        "lines",
        f"{DISCOUNT_SUM} / NULLIF({SPEND} + {DISCOUNT_SUM}, 0)",
        "Discount given over list value (spend + discount) of purchased lines.",
        columns=(DISCOUNT,),
    ),
    _feature(
        "discounted_order_share",
        "orders",
        "COUNT(CASE WHEN order_discounted = 1 THEN 1 END) / NULLIF(COUNT(*), 0)",
        "Share of purchase orders with a discounted line (1 = discount-only buyer).",
        columns=(DISCOUNT,),
    ),
    _feature(
        "high_margin_spend_share",
        "customer_categories",
        "SUM(CASE WHEN high_margin = 1 THEN category_amount ELSE 0 END)"
        " / NULLIF(SUM(category_amount), 0)",
        "Share of spend in high-margin categories (shop-wide category margin rate up to the "
        "cutoff above the shop's overall rate); missing without categorised spend.",
        columns=(MARGIN, "transactions.category"),
    ),
)
