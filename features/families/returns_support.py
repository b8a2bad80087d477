"""Indirect costs: returned lines and support tickets.

Relations: ``returned_lines`` (one row per returned order line, ``is_return``,
with ``age_days`` and ``amount_e4``, its value in ten-thousandths), ``orders`` for the spend a return rate
divides by, and
``support_tickets`` (one row per ticket opened by the cutoff, ``age_days``).
"""

from __future__ import annotations

from functools import partial

from features.definitions import FeatureDefinition
from features.families import money

FAMILY = "returns_support"
IS_RETURN = "transactions.is_return"


_feature = partial(FeatureDefinition.numeric, FAMILY)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature(
        "returned_line_count",
        "returned_lines",
        "COUNT(*)",
        "Returned order lines (is_return), all history.",
        columns=(IS_RETURN,),
        zero_when_absent=True,
    ),
    _feature(
        "returned_line_count_365d",
        "returned_lines",
        "COUNT(CASE WHEN age_days < 365 THEN 1 END)",
        "Returned order lines in the last 365 days.",
        columns=(IS_RETURN,),
        zero_when_absent=True,
    ),
    _feature(
        "returned_amount",
        "returned_lines",
        money("SUM(amount_e4)"),
        "Value of returned lines.",
        columns=(IS_RETURN,),
        zero_when_absent=True,
    ),
    _feature(
        "return_rate",
        "derived",
        "returned_amount / NULLIF(spend_amount, 0)",
        "Returned value over purchased value; missing when spend is 0.",
        columns=(IS_RETURN,),
        depends_on=("returned_amount", "spend_amount"),
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
