"""Product diversity: how many different products a customer buys, and how often again.

Windowed aggregates (``features.custom.windowed``) over the purchased lines of
``transactions`` that carry a ``product_id`` (returns left out). A shop without
a ``product_id`` column gets none of them (omitted with a note); the Online
Retail mapping maps ``StockCode`` to it. Broad baskets and repeat purchases of
the same products both mark a customer who has settled into a habit.
"""

from __future__ import annotations

from features.custom.windowed import Window, WindowedFeature, windowed

FAMILY = "products"

#: Purchased (non-return) lines' product, NULL otherwise.
_PURCHASED_PRODUCT = "CASE WHEN NOT is_return THEN product_id END"
_READS = ("product_id", "is_return")


def distinct_products(days: int) -> WindowedFeature:
    """Distinct products bought in the last ``days`` days (0 without a purchase in them)."""
    return windowed(
        f"distinct_product_count_{days}d",
        f"COUNT(DISTINCT {_PURCHASED_PRODUCT})",
        f"Distinct products (product_id) on purchased lines in the last {days} days; "
        "0 without one.",
        Window("transactions", days, fill=0),
        family=FAMILY,
        reads=_READS,
    )


FEATURES: tuple[WindowedFeature, ...] = (
    distinct_products(90),
    distinct_products(365),
    windowed(
        "repeat_product_line_share_365d",
        f"1 - COUNT(DISTINCT {_PURCHASED_PRODUCT}) / NULLIF(COUNT({_PURCHASED_PRODUCT}), 0)",
        "Share of purchased product lines in the last 365 days that repeat a product of "
        "another line in that window (1 - distinct products / lines); missing without one.",
        Window("transactions", 365),
        family=FAMILY,
        reads=_READS,
    ),
)
