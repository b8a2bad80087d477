"""Digital engagement: identified site visits, app sessions, e-mail opens and clicks.

Relation ``engagement_events``: one row per event on or before the cutoff with
``age_days`` (whole days from the event's date to the cutoff, 0 on the cutoff
day) and ``event_type``. Disengagement precedes churn: a customer who still
browses and opens but has not bought lately is lapsing, one who has gone quiet
everywhere has likely left. The table is optional; without it these features
are omitted, never filled with zeros.
"""

from __future__ import annotations

from functools import partial

from features.definitions import FeatureDefinition

FAMILY = "digital_engagement"
RELATION = "engagement_events"
WINDOWS_DAYS = (30, 90, 365)


def events_within(days: int, types: tuple[str, ...] = ()) -> str:
    """SQL counting engagement events (of ``types``, all when empty) in the last ``days`` days."""
    condition = f"age_days < {days}"
    if types:
        condition += " AND event_type IN (" + ", ".join(f"'{t}'" for t in types) + ")"
    return f"COUNT(CASE WHEN {condition} THEN 1 END)"


_feature = partial(FeatureDefinition.numeric, FAMILY)


FEATURES: tuple[FeatureDefinition, ...] = (
    _feature(
        "days_since_last_engagement",
        RELATION,
        "MIN(age_days)",
        "Whole days since the last identified visit, session, open or click;"
        " missing without engagement events.",
    ),
    *(
        _feature(
            f"engagement_count_{days}d",
            RELATION,
            events_within(days),
            f"Engagement events (visits, sessions, opens, clicks) in the last {days} days.",
            zero_when_absent=True,
        )
        for days in WINDOWS_DAYS
    ),
    _feature(
        "engagement_trend_30d",
        RELATION,
        f"(365.0 / 30.0) * {events_within(30)} / NULLIF({events_within(365)}, 0)",
        "Engagement rate of the last 30 days over the 365-day average rate (1 = steady);"
        " missing without engagement in 365 days.",
    ),
    _feature(
        "site_visit_count_90d",
        RELATION,
        events_within(90, ("site_visit", "app_session")),
        "Logged-in site visits and app sessions in the last 90 days.",
        zero_when_absent=True,
    ),
    _feature(
        "email_open_count_90d",
        RELATION,
        events_within(90, ("email_open",)),
        "E-mails opened in the last 90 days.",
        zero_when_absent=True,
    ),
    _feature(
        "email_click_count_90d",
        RELATION,
        events_within(90, ("email_click",)),
        "E-mail links clicked in the last 90 days.",
        zero_when_absent=True,
    ),
    _feature(
        "engagement_per_order_90d",
        "derived",
        "engagement_count_90d / NULLIF(order_count_90d, 0)",
        "Engagement events per purchase order in the last 90 days (browsing without buying"
        " is high); missing without orders in 90 days.",
        depends_on=("engagement_count_90d", "order_count_90d"),
    ),
)
