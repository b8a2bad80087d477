"""Product diversity: how many different products a customer buys, and how often again.

Relation ``customer_products`` (``features.relations.product_sql``): one row per
(customer, product) bought in the last 365 days, over the purchased lines of
``transactions`` that carry a ``product_id`` (returns left out), with
``product_line_count`` (its lines in those days) and ``bought_recently`` (1 when
one of them is of the last 90 days). A shop without a ``product_id`` column gets
none of them (omitted with a note); the Online Retail mapping maps ``StockCode``
to it. Broad baskets and repeat purchases of the same products both mark a
customer who has settled into a habit.
"""

from __future__ import annotations

from functools import partial

from features.definitions import FeatureDefinition
from features.relations import PRODUCT_RECENT_DAYS, PRODUCT_WINDOW_DAYS

FAMILY = "products"
PRODUCT = "transactions.product_id"

_feature = partial(FeatureDefinition.numeric, FAMILY, columns=(PRODUCT,))


def distinct_products(days: int, expression: str) -> FeatureDefinition:
    """Distinct products bought in the last ``days`` days (0 without a purchase in them)."""
    return _feature(
        f"distinct_product_count_{days}d",
        "customer_products",
        expression,
        f"Distinct products (product_id) on purchased lines in the last {days} days; "
        "0 without one.",
        zero_when_absent=True,
    )


FEATURES: tuple[FeatureDefinition, ...] = (
    distinct_products(PRODUCT_RECENT_DAYS, "COUNT(CASE WHEN bought_recently = 1 THEN 1 END)"),
    distinct_products(PRODUCT_WINDOW_DAYS, "COUNT(*)"),
    _feature(
        "repeat_product_line_share_365d",
        "customer_products",
        "1 - COUNT(*) / CAST(SUM(product_line_count) AS BIGINT)",
        "Share of purchased product lines in the last 365 days that repeat a product of "
        "another line in that window (1 - distinct products / lines); missing without one.",
    ),
)
