"""Indirect costs: returned lines and support tickets.

Relations: ``lines`` (one row per order line with ``age_days``, ``amount`` and
``is_return``) and
``support_tickets`` (one row per ticket opened by the cutoff, ``age_days``).
"""

from __future__ import annotations

from functools import partial

from features.registry import FeatureDefinition

FAMILY = "returns_support"
IS_RETURN = "transactions.is_return"
RETURNED = "SUM(CASE WHEN is_return THEN amount ELSE 0.0 END)"


_feature = partial(FeatureDefinition.numeric, FAMILY)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature(
        "returned_line_count",
        "lines",
        "COUNT(CASE WHEN is_return THEN 1 END)",
        "Returned order lines (is_return), all history.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "returned_line_count_365d",
        "lines",
        "COUNT(CASE WHEN is_return AND age_days < 365 THEN 1 END)",
        "Returned order lines in the last 365 days.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "returned_amount",
        "lines",
        RETURNED,
        "Value of returned lines.",
        columns=(IS_RETURN,),
    ),
    _feature(
        "return_rate",
        "lines",
        f"{RETURNED} / NULLIF(SUM(CASE WHEN is_return THEN 0.0 ELSE amount END), 0)",
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
