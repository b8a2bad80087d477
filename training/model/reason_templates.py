"""The sentences of reason codes: one template per feature, and the generic fallback.

A template turns one customer's feature values into a plain-language sentence
("no order for 140 days, 3.0x the usual gap", "support tickets up (3 in the
last 90 days)"); ``high`` says whether the feature's value is above its
reference (the population median). ``training.model.reasons`` picks which features
speak; ``training.model.value_reasons`` adds the sentences of customer value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pandas as pd

#: A template turns one customer's feature values into a sentence. ``high`` says
#: whether the feature's value is above the reference (median) value. Returning
#: ``None`` falls back to the generic sentence.
Template = Callable[[Mapping[str, object], bool], "str | None"]


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _num(value: object) -> float:
    return float("nan") if _missing(value) else float(value)


def _count(n: float, noun: str, plural: str | None = None) -> str:
    n = round(n)
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _pct_change(ratio: float) -> str:
    return f"{ratio - 1:+.0%}"


def humanize(feature: str) -> str:
    """``order_count_90d`` -> ``order count 90d``; the unit words ``_days``/``_share`` dropped
    (the value's formatting shows the unit)."""
    words = feature.split("_")
    if words[-1] in ("days", "share") and len(words) > 1:
        words = words[:-1]
    return " ".join(words)


def format_value(feature: str, value: float) -> str:
    """A value in its feature's unit: shares and rates as %, days whole, amounts without cents."""
    if feature.endswith(("_rate", "_share")):
        return f"{value:.0%}"
    if feature.endswith("_days"):
        return _count(value, "day")
    if feature.endswith("_amount"):
        return f"{value:,.0f}"
    return f"{value:,.3g}"


#: The longest gap a reason calls "recent" (an order or a visit), whatever the population.
#: "High" and "low" are judged against a reference (the scored population's medians), but a
#: win-back list holds only lapsed customers: there a 181-day gap is below the reference
#: and yet nobody would call it recent, so recency words use this absolute bound instead.
RECENT_DAYS = 30


def _days_since_last_order(row, high):
    days = _num(row.get("days_since_last_order"))
    if math.isnan(days):
        return None
    if days <= RECENT_DAYS:
        return f"ordered recently ({_count(days, 'day')} ago)"
    gap = _num(row.get("purchase_gap_mean_days"))
    if not high:
        text = f"last order {_count(days, 'day')} ago"
        if gap > 0 and days <= gap:
            text += ", within their usual gap"
        return text
    text = f"no order for {_count(days, 'day')}"
    if gap > 0:
        text += f", {days / gap:.1f}x the usual gap"
    return text


def when_known(
    column: str, sentence: Callable[[float, bool], str | None], missing: str | None = None
) -> Template:
    """A template saying ``sentence(value, high)`` of ``column``, or ``missing`` when it has none.

    The shape of most templates: one numeric feature, one sentence when it is
    known, a fixed sentence (or the generic one, for ``None``) when it is not.
    """

    def template(row: Mapping[str, object], high: bool) -> str | None:
        value = _num(row.get(column))
        return missing if math.isnan(value) else sentence(value, high)

    return template


#: What gap-based features say of a customer with a single purchase day.
ONE_PURCHASE_DAY = "only one purchase day so far"


def _period(window: str | None) -> str:
    return "in total" if window is None else f"in the last {window[:-1]} days"


def _order_count(window: str | None) -> Template:
    period = _period(window)
    return when_known(
        "order_count" if window is None else f"order_count_{window}",
        lambda n, high: (
            f"{_count(n, 'order')} {period}" if high else f"few orders ({round(n)} {period})"
        ),
    )


def _spend(window: str | None) -> Template:
    period = _period(window)
    return when_known(
        "spend_amount" if window is None else f"spend_{window}_amount",
        lambda amount, high: f"{'high' if high else 'low'} spend ({amount:,.0f} {period})",
    )


def _rising(ratio: float) -> str:
    return f"{'rising' if ratio >= 1 else 'falling'}"


def _trend(column: str, noun: str) -> Template:
    return when_known(
        column,
        lambda ratio, high: f"{noun} {_rising(ratio)} vs last year ({_pct_change(ratio)})",
        missing=f"no {noun} in the last year",
    )


#: The digital-engagement features (site visits, e-mail opens and clicks) with templates.
ENGAGEMENT_FEATURES = (
    "days_since_last_engagement",
    "engagement_count_30d",
    "engagement_count_90d",
    "engagement_count_365d",
    "engagement_trend_30d",
    "site_visit_count_90d",
    "email_open_count_90d",
    "email_click_count_90d",
    "engagement_per_order_90d",
)


def _days_since_last_engagement(days: float, high: bool) -> str:
    if days <= RECENT_DAYS:
        return f"visited or opened an e-mail recently ({_count(days, 'day')} ago)"
    if high:
        return f"no site visit or e-mail open for {_count(days, 'day')}"
    return f"last site visit or e-mail open {_count(days, 'day')} ago"


def _engagement_count(window: str) -> Template:
    period = f"in the last {window[:-1]} days"

    def sentence(n: float, high: bool) -> str:
        if round(n) == 0:
            return f"no site visits or e-mail opens {period}"
        events = _count(n, "site, app or e-mail interaction", "site, app or e-mail interactions")
        return f"engaged {'often' if high else 'little'} ({events} {period})"

    return when_known(f"engagement_count_{window}", sentence)


def _engagement_per_order(ratio: float, high: bool) -> str:
    per_order = f"{ratio:.1f} visits or opens per order in the last 90 days"
    return f"browses without buying ({per_order})" if high else f"buys on few visits ({per_order})"


def _digital_count(column: str, noun: str, plural: str) -> Template:
    period = "in the last 90 days"

    def sentence(n: float, high: bool) -> str:
        if round(n) == 0:
            return f"no {plural} {period}"
        if high:
            return f"{_count(n, noun, plural)} {period}"
        return f"few {plural} ({round(n)} {period})"

    return when_known(column, sentence)


#: Sentences per feature; features not listed get :func:`generic_reason`.
REASON_TEMPLATES: dict[str, Template] = {
    "days_since_last_order": _days_since_last_order,
    "overdue_ratio": when_known(
        "overdue_ratio",
        lambda ratio, high: (
            f"{ratio:.1f}x later than their usual gap between orders"
            if high
            else "ordering on their usual rhythm"
        ),
        missing=ONE_PURCHASE_DAY,
    ),
    "purchase_gap_mean_days": when_known(
        "purchase_gap_mean_days",
        lambda gap, high: (
            f"orders {'rarely' if high else 'often'} (every {gap:.0f} days on average)"
        ),
        missing=ONE_PURCHASE_DAY,
    ),
    "order_count": _order_count(None),
    "order_count_30d": _order_count("30d"),
    "order_count_90d": _order_count("90d"),
    "order_count_180d": _order_count("180d"),
    "order_count_365d": _order_count("365d"),
    "order_count_trend_90d": _trend("order_count_trend_90d", "orders"),
    "spend_amount": _spend(None),
    "spend_30d_amount": _spend("30d"),
    "spend_90d_amount": _spend("90d"),
    "spend_180d_amount": _spend("180d"),
    "spend_365d_amount": _spend("365d"),
    "spend_trend_90d": _trend("spend_trend_90d", "spend"),
    "support_ticket_count_90d": when_known(
        "support_ticket_count_90d",
        lambda n, high: (
            f"support tickets up ({round(n)} in the last 90 days)"
            if high and n > 0
            else f"few support tickets ({round(n)} in the last 90 days)"
        ),
    ),
    "support_ticket_count": when_known(
        "support_ticket_count", lambda n, high: f"{_count(n, 'support ticket')} in total"
    ),
    "days_since_last_support_ticket": when_known(
        "days_since_last_support_ticket",
        lambda days, high: f"{'no' if high else 'a'} support ticket in {_count(days, 'day')}",
        missing="never contacted support",
    ),
    "return_rate": when_known(
        "return_rate",
        lambda rate, high: (
            f"returns {rate:.0%} of what they buy" if high else f"rarely returns ({rate:.0%})"
        ),
    ),
    "returned_line_count_365d": when_known(
        "returned_line_count_365d",
        lambda n, high: f"{_count(n, 'returned item')} in the last year",
    ),
    "returned_amount": when_known(
        "returned_amount",
        lambda amount, high: (
            f"{'returned a lot' if high else 'returned little'} ({amount:,.0f} in returns)"
        ),
    ),
    "discounted_order_share": when_known(
        "discounted_order_share",
        lambda share, high: (
            f"buys mostly on discount ({share:.0%} of orders)"
            if high
            else f"rarely needs a discount ({share:.0%} of orders)"
        ),
    ),
    "review_rating_mean": when_known(
        "review_rating_mean",
        lambda rating, high: (
            f"{'good' if high else 'low'} review ratings ({rating:.1f} stars on average)"
        ),
        missing="no reviews written",
    ),
    "referral_count_365d": when_known(
        "referral_count_365d",
        lambda n, high: (
            f"referred {_count(n, 'customer')} in the last year" if n > 0 else "no referrals"
        ),
    ),
    "tenure_days": when_known(
        "tenure_days",
        lambda days, high: (
            f"customer for {_count(days, 'day')}" if high else f"new customer ({days:.0f} days)"
        ),
    ),
    "category_count": when_known(
        "category_count", lambda n, high: f"buys in {_count(n, 'category', 'categories')}"
    ),
    "days_since_last_engagement": when_known(
        "days_since_last_engagement",
        _days_since_last_engagement,
        missing="no site visit or e-mail open on record",
    ),
    "engagement_count_30d": _engagement_count("30d"),
    "engagement_count_90d": _engagement_count("90d"),
    "engagement_count_365d": _engagement_count("365d"),
    "engagement_trend_30d": when_known(
        "engagement_trend_30d",
        lambda ratio, high: (
            f"visits and e-mail opens {_rising(ratio)} vs their yearly average "
            f"({_pct_change(ratio)})"
        ),
        missing="no site visits or e-mail opens in the last year",
    ),
    # no order in 90 days: the order features say it
    "engagement_per_order_90d": when_known("engagement_per_order_90d", _engagement_per_order),
    "site_visit_count_90d": _digital_count("site_visit_count_90d", "site visit", "site visits"),
    "email_open_count_90d": _digital_count("email_open_count_90d", "e-mail open", "e-mail opens"),
    "email_click_count_90d": _digital_count(
        "email_click_count_90d", "e-mail click", "e-mail clicks"
    ),
}


def generic_reason(feature: str, value: object, high: bool) -> str:
    """The fallback sentence: ``"<feature> is high (12.5)"``, or ``"region: north"``."""
    name = humanize(feature)
    if _missing(value):
        return f"no {name} on record"
    if isinstance(value, str):
        return f"{name}: {value}"
    return f"{name} is {'high' if high else 'low'} ({format_value(feature, _num(value))})"
