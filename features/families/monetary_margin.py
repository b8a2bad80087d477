"""Spend, its trend, order values, margin and discount behaviour.

Relations: ``orders`` (one row per purchase order: ``order_amount_e4`` = value of
its non-return lines, ``order_age_days``, and where the optional columns exist
the sums over its purchase lines ``order_margin_e4``,
``order_margin_365d_e4`` (lines of the last 365 days; ``_275d`` likewise),
``order_spend_275d_e4`` and ``order_spend_365d_e4``, ``order_discount_e4``
(missing discounts as 0) and ``order_full_price_e4`` (value of the lines
without discount), and ``order_discounted`` = 1 when one of them has a
discount); ``customer_categories`` (spend per customer and category, with
``high_margin`` = 1 when the category's shop-wide margin rate up to the cutoff
is above the shop's overall margin rate up to the cutoff); ``returned_lines``.
Money in the relations is counted in ten-thousandths of the currency unit
(``_e4``: exact integers as ``DOUBLE``, ``features.relations.money_e4``), and a
feature divides its sums once (``features.families.money``), so sums do not
depend on the thread count.
The line sums come to the customer through the orders (a sum of order sums), so
the lines are grouped once. The net value features are summed as
``features.tiers`` values customers, purchases minus returns and margin with a
return line's own signed margin: derived from the purchase sums of the orders
and the return sums of the returned lines (``PARTS``), so no grouping of every
line is needed for them.
"""

from __future__ import annotations

from functools import partial

from features.definitions import FeatureDefinition
from features.families import exact_stddev_samp, money
from features.relations import MONEY_SCALE

FAMILY = "monetary_margin"
WINDOWS_DAYS = (30, 90, 180, 365)

#: Value, margin and discount of the purchased lines, over the ``orders`` relation.
SPEND = money("SUM(order_amount_e4)")
MARGIN_SUM = money("SUM(order_margin_e4)")
DISCOUNT_SUM = money("SUM(order_discount_e4)")
MARGIN = "transactions.margin_amount"
DISCOUNT = "transactions.discount_amount"


#: The part of the 365-day tier window that still counts at the end of the default 90-day
#: horizon: VIP is the top of trailing-365-day value at ``cutoff + horizon_days``, so the
#: value of the last 275 days carries into it and the older value drops out of it.
KEPT_DAYS = 275
TIER_WINDOW_DAYS = 365
NET_WINDOWS_DAYS = (KEPT_DAYS, TIER_WINDOW_DAYS)


def spend_within(days: int) -> str:
    """SQL summing purchase value of the orders placed in the last ``days`` days."""
    return money(f"SUM(CASE WHEN order_age_days < {days} THEN order_amount_e4 ELSE 0 END)")


_feature = partial(FeatureDefinition.numeric, FAMILY)

#: ``spend_365d_amount`` rounded to the cent (half away from zero) exactly: back to its
#: exact ten-thousandths first (``x * 10^4`` rounds to them), then to hundredths, so a
#: value half a cent away rounds as the exact decimal does.
_CENTS_365D = f"ROUND(ROUND(spend_365d_amount * {MONEY_SCALE}) / 100)"


def _part(name: str, relation: str, expression: str, **kw) -> FeatureDefinition:
    return _feature(name, relation, expression, "A sum the net value features add up.", **kw)


def _net_parts(days: int) -> tuple[FeatureDefinition, ...]:
    """The purchase sums (through the orders) and return sums of the lines of the last ``days``.

    Each line counts by its own age; a line without margin counts 0 margin. The sums
    are in ten-thousandths (exact integers, ``features.relations.money_e4``), so the net
    values subtract them exactly.
    """
    returned = "CASE WHEN age_days < {days} THEN {value} ELSE 0 END"
    return (
        _part(f"_purchase_{days}d_e4", "orders", f"SUM(order_spend_{days}d_e4)"),
        _part(
            f"_return_{days}d_e4",
            "returned_lines",
            f"SUM({returned.format(days=days, value='amount_e4')})",
            zero_when_absent=True,
        ),
        _part(
            f"_purchase_margin_{days}d_e4",
            "orders",
            f"SUM(order_margin_{days}d_e4)",
            columns=(MARGIN,),
        ),
        _part(
            f"_return_margin_{days}d_e4",
            "returned_lines",
            f"SUM({returned.format(days=days, value='COALESCE(margin_e4, 0)')})",
            columns=(MARGIN,),
            zero_when_absent=True,
        ),
    )


PARTS: tuple[FeatureDefinition, ...] = tuple(p for d in NET_WINDOWS_DAYS for p in _net_parts(d))


def _net_sql(basis: str, days: int) -> tuple[str, tuple[str, ...]]:
    """SQL of the net spend (purchases minus returns) or net margin (purchase and return
    lines' signed margins) of the last ``days`` days in ten-thousandths (exact), and the
    parts it reads."""
    if basis == "spend":
        parts = (f"_purchase_{days}d_e4", f"_return_{days}d_e4")
        return f"({parts[0]} - {parts[1]})", parts
    parts = (f"_purchase_margin_{days}d_e4", f"_return_margin_{days}d_e4")
    return f"(COALESCE({parts[0]}, 0) + {parts[1]})", parts


def _active_mean(value_e4: str) -> str:
    """SQL of the mean of ``value_e4`` (ten-thousandths) over the customers with spend in the
    last 365 days at the same cutoff, in currency.

    The shop-wide sum is a ``BIGINT`` sum (exact at any size in DuckDB), divided once (as
    a windowed average of exact decimals is): the mean does not depend on the order the
    customers are added in.
    """
    active = "spend_365d_amount > 0"
    total = (
        f"SUM(CAST(CASE WHEN {active} THEN {value_e4} END AS BIGINT)) OVER (PARTITION BY cutoff)"
    )
    count = f"COUNT(CASE WHEN {active} THEN 1 END) OVER (PARTITION BY cutoff)"
    return f"CAST({total} AS DOUBLE) / NULLIF({count} * {MONEY_SCALE}, 0)"


def _net_value(basis: str, days: int) -> FeatureDefinition:
    """Net spend or net margin of the lines of the last ``days`` days, as tiers value it."""
    what = {
        "spend": ("Purchases minus returns", (), "of a shop without margins"),
        "margin": ("Signed margin of purchase and return lines", (MARGIN,), ""),
    }
    words, columns, whose = what[basis]
    meaning = (
        "the part of the tier value that still counts at the end of a 90-day horizon"
        if days == KEPT_DAYS
        else " ".join(("the tier value", whose)).strip()
    )
    value, parts = _net_sql(basis, days)
    return _feature(
        f"net_{basis}_{days}d_amount",
        "derived",
        money(value),
        f"{words} in the last {days} days: {meaning} (``features.tiers``).",
        columns=columns,
        depends_on=parts,
    )


def _mean_share(basis: str, days: int) -> FeatureDefinition:
    """Net value over the mean 365-day net value of the customers active at the cutoff."""
    name, whole = f"net_{basis}_{days}d_amount", f"net_{basis}_{TIER_WINDOW_DAYS}d_amount"
    (value, parts), (whole_value, whole_parts) = (
        _net_sql(basis, days),
        _net_sql(basis, TIER_WINDOW_DAYS),
    )
    return _feature(
        f"net_{basis}_{days}d_mean_share",
        "derived",
        f"CASE WHEN spend_365d_amount > 0 THEN {money(value)}"
        f" / NULLIF({_active_mean(whole_value)}, 0) END",
        f"{name} over the mean {whole} of the customers with spend in the last 365 days, at "
        "the same cutoff; missing without spend in 365 days. Value relative to the shop at the "
        "cutoff, as the VIP bar is, so it means the same in a young or growing shop.",
        depends_on=tuple(dict.fromkeys(("spend_365d_amount", *parts, *whole_parts))),
    )


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature("spend_amount", "orders", SPEND, "Value of all purchased (non-return) lines."),
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
        "spend_365d_rank_share",
        "derived",
        "CASE WHEN spend_365d_amount > 0 THEN PERCENT_RANK() OVER"
        f" (PARTITION BY cutoff, spend_365d_amount > 0 ORDER BY {_CENTS_365D}) END",
        "Share of the customers with spend in the last 365 days who spent less in them, "
        "at the same cutoff, to the cent (0 = least, 1 = most); missing without spend in 365 days. "
        "Relative to the shop at the cutoff, so it means the same in a young or growing shop.",
        depends_on=("spend_365d_amount",),
    ),
    *(_net_value(basis, days) for basis in ("spend", "margin") for days in NET_WINDOWS_DAYS),
    *(_mean_share(basis, days) for basis in ("spend", "margin") for days in NET_WINDOWS_DAYS),
    _feature(
        "order_value_mean_amount",
        "orders",
        f"{SPEND} / NULLIF(COUNT(order_amount_e4), 0)",
        "Mean value of a purchase order.",
    ),
    _feature(
        "order_value_max_amount",
        "orders",
        money("MAX(order_amount_e4)"),
        "Largest purchase order value.",
    ),
    _feature(
        "order_value_std_amount",
        "orders",
        exact_stddev_samp("CAST(order_amount_e4 AS DECIMAL(38, 0))", MONEY_SCALE),
        "Sample standard deviation of purchase order values; missing with one order.",
    ),
    _feature(
        "total_margin_amount",
        "orders",
        MARGIN_SUM,
        "Gross margin of all purchased lines.",
        columns=(MARGIN,),
    ),
    _feature(
        "margin_365d_amount",
        "orders",
        money("SUM(order_margin_365d_e4)"),
        "Gross margin of purchased lines in the last 365 days.",
        columns=(MARGIN,),
    ),
    _feature(
        "margin_rate",
        "orders",
        f"{MARGIN_SUM} / NULLIF({SPEND}, 0)",
        "Gross margin over spend; missing when spend is 0.",
        columns=(MARGIN,),
    ),
    _feature(
        "full_price_spend_share",
        "orders",
        f"{money('SUM(order_full_price_e4)')} / NULLIF({SPEND}, 0)",
        "Share of spend on lines bought without discount; missing when spend is 0.",
        columns=(DISCOUNT,),
    ),
    _feature(
        "discount_rate",
        "orders",
        f"{DISCOUNT_SUM} / NULLIF({money('SUM(order_amount_e4) + SUM(order_discount_e4)')}, 0)",
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
        "CAST(SUM(CASE WHEN high_margin = 1 THEN category_amount ELSE 0 END) AS DOUBLE)"
        " / NULLIF(CAST(SUM(category_amount) AS DOUBLE), 0)",
        "Share of spend in high-margin categories (shop-wide category margin rate up to the "
        "cutoff above the shop's overall rate); missing without categorised spend.",
        columns=(MARGIN, "transactions.category"),
    ),
)
