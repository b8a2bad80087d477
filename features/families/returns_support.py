"""Indirect costs: returned lines and support tickets.

Relations: ``orders`` (``order_returned_lines``, ``order_returned_lines_365d``,
``order_returned_amount``: the order's ``is_return`` lines) and
``support_tickets`` (one row per ticket opened by the cutoff, ``age_days``).
"""

from __future__ import annotations

from features.registry import FeatureDefinition

FAMILY = "returns_support"
IS_RETURN = "transactions.is_return"


def _feature(
    name: str, relation: str, expression: str, description: str, **kw
) -> FeatureDefinition:
    return FeatureDefinition(name, FAMILY, "float64", relation, expression, description, **kw)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature(
        "returned_line_count",
        "orders",
        "SUM(order_returned_lines)",
        "Returned order lines (is_return), all history.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "returned_line_count_365d",
        "orders",
        "SUM(order_returned_lines_365d)",
        "Returned order lines in the last 365 days.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "returned_amount",
        "orders",
        "SUM(order_returned_amount)",
        "Value of returned lines.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "return_rate",
        "orders",
        "SUM(order_returned_amount) / NULLIF(SUM(order_amount), 0)",
        "Returned value over purchased value; missing when spend is 0.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "support_ticket_count",
        "support_tickets",
        "COUNT(*)",
        "Support tickets opened, all history.",
        zero_when_absent=True,
    ),
    _feature(
        "support_ticket_count_90d",
        "support_tickets",
        "COUNT(CASE WHEN age_days < 90 THEN 1 END)",
        "Support tickets opened in the last 90 days.",
        zero_when_absent=True,
    ),
    _feature(
        "days_since_last_support_ticket",
        "support_tickets",
        "MIN(age_days)",
        "Whole days since the last support ticket; missing without tickets.",
    ),
)
