"""Advocacy: referrals made and reviews written.

Relations ``referrals`` and ``reviews``: one row per event on or before the
cutoff with ``age_days`` (and ``rating`` for reviews).
"""

from __future__ import annotations

from functools import partial

from features.definitions import FeatureDefinition

FAMILY = "engagement_advocacy"


_feature = partial(FeatureDefinition.numeric, FAMILY)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature(
        "referral_count",
        "referrals",
        "COUNT(*)",
        "Referrals made, all history.",
        zero_when_absent=True,
    ),
    _feature(
        "referral_count_365d",
        "referrals",
        "COUNT(CASE WHEN age_days < 365 THEN 1 END)",
        "Referrals made in the last 365 days.",
        zero_when_absent=True,
    ),
    _feature(
        "review_count",
        "reviews",
        "COUNT(*)",
        "Reviews written, all history.",
        zero_when_absent=True,
    ),
    _feature(
        "review_rating_mean",
        "reviews",
        "AVG(rating)",
        "Mean star rating (1-5) of the customer's reviews; missing without reviews.",
    ),
    _feature(
        "days_since_last_review",
        "reviews",
        "MIN(age_days)",
        "Whole days since the last review; missing without reviews.",
    ),
)
