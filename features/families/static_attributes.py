"""Optional static attributes from the ``customers`` table, as categoricals.

They are the values as stored now (no history), so they are only as
point-in-time as the source keeps them; the smallest value wins when a
customer has several rows.
"""

from __future__ import annotations

from features.definitions import FeatureDefinition

FAMILY = "static_attributes"

FEATURES: tuple[FeatureDefinition, ...] = (
    FeatureDefinition(
        "region",
        FAMILY,
        "category",
        "customers",
        "MIN(region)",
        "The customer's region (categorical); missing when not recorded.",
        columns=("customers.region",),
    ),
    FeatureDefinition(
        "acquisition_channel",
        FAMILY,
        "category",
        "customers",
        "MIN(acquisition_channel)",
        "The channel the customer was acquired through (categorical); missing when not recorded.",
        columns=("customers.acquisition_channel",),
    ),
)
