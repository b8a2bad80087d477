"""Reason codes: a customer's top SHAP contributions in plain language.

LightGBM's ``pred_contrib`` splits each customer's raw score into one
contribution per feature (plus a ``bias``). The features pushing hardest toward
the positive class (churn, VIP, coming back) become the reasons shown next to
a score in lists and the API: "no order for 140 days, 3.0x the usual gap",
"support tickets up (3 in the last 90 days)", "spend falling vs last year (-45%)".

Independent of MLflow and of the model class: serving imports it as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: A template turns one customer's feature values into a sentence. ``high`` says
#: whether the feature's value is above the reference (median) value. Returning
#: ``None`` falls back to the generic sentence.
Template = Callable[[Mapping[str, object], bool], "str | None"]


@dataclass(frozen=True)
class Reason:
    """One reason: the feature (``code``), its sentence and its contribution (raw-score units)."""

    code: str
    text: str
    contribution: float
    value: object


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


def _overdue_ratio(row, high):
    ratio = _num(row.get("overdue_ratio"))
    if math.isnan(ratio):
        return "only one purchase day so far"
    if high:
        return f"{ratio:.1f}x later than their usual gap between orders"
    return "ordering on their usual rhythm"


def _purchase_gap(row, high):
    gap = _num(row.get("purchase_gap_mean_days"))
    if math.isnan(gap):
        return "only one purchase day so far"
    return f"orders {'rarely' if high else 'often'} (every {gap:.0f} days on average)"


def _order_count(window: str | None):
    column = "order_count" if window is None else f"order_count_{window}"
    period = "in total" if window is None else f"in the last {window[:-1]} days"

    def template(row, high):
        n = _num(row.get(column))
        if math.isnan(n):
            return None
        if high:
            return f"{_count(n, 'order')} {period}"
        return f"few orders ({round(n)} {period})"

    return template


def _spend(window: str | None):
    column = "spend_amount" if window is None else f"spend_{window}_amount"
    period = "in total" if window is None else f"in the last {window[:-1]} days"

    def template(row, high):
        amount = _num(row.get(column))
        if math.isnan(amount):
            return None
        return f"{'high' if high else 'low'} spend ({amount:,.0f} {period})"

    return template


def _trend(column: str, noun: str):
    def template(row, high):
        ratio = _num(row.get(column))
        if math.isnan(ratio):
            return f"no {noun} in the last year"
        direction = "rising" if ratio >= 1 else "falling"
        return f"{noun} {direction} vs last year ({_pct_change(ratio)})"

    return template


def _support_tickets_90d(row, high):
    n = _num(row.get("support_ticket_count_90d"))
    if math.isnan(n):
        return None
    if high and n > 0:
        return f"support tickets up ({round(n)} in the last 90 days)"
    return f"few support tickets ({round(n)} in the last 90 days)"


def _support_tickets(row, high):
    n = _num(row.get("support_ticket_count"))
    return None if math.isnan(n) else f"{_count(n, 'support ticket')} in total"


def _last_ticket(row, high):
    days = _num(row.get("days_since_last_support_ticket"))
    if math.isnan(days):
        return "never contacted support"
    return f"{'no' if high else 'a'} support ticket in {_count(days, 'day')}"


def _return_rate(row, high):
    rate = _num(row.get("return_rate"))
    if math.isnan(rate):
        return None
    return f"returns {rate:.0%} of what they buy" if high else f"rarely returns ({rate:.0%})"


def _returned_lines(row, high):
    n = _num(row.get("returned_line_count_365d"))
    return None if math.isnan(n) else f"{_count(n, 'returned item')} in the last year"


def _returned_amount(row, high):
    amount = _num(row.get("returned_amount"))
    if math.isnan(amount):
        return None
    return f"{'returned a lot' if high else 'returned little'} ({amount:,.0f} in returns)"


def _discounted_orders(row, high):
    share = _num(row.get("discounted_order_share"))
    if math.isnan(share):
        return None
    if high:
        return f"buys mostly on discount ({share:.0%} of orders)"
    return f"rarely needs a discount ({share:.0%} of orders)"


def _review_rating(row, high):
    rating = _num(row.get("review_rating_mean"))
    if math.isnan(rating):
        return "no reviews written"
    return f"{'good' if high else 'low'} review ratings ({rating:.1f} stars on average)"


def _referrals(row, high):
    n = _num(row.get("referral_count_365d"))
    if math.isnan(n):
        return None
    return f"referred {_count(n, 'customer')} in the last year" if n > 0 else "no referrals"


def _tenure(row, high):
    days = _num(row.get("tenure_days"))
    if math.isnan(days):
        return None
    return f"customer for {_count(days, 'day')}" if high else f"new customer ({days:.0f} days)"


def _category_count(row, high):
    n = _num(row.get("category_count"))
    return None if math.isnan(n) else f"buys in {_count(n, 'category', 'categories')}"


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


def _days_since_last_engagement(row, high):
    days = _num(row.get("days_since_last_engagement"))
    if math.isnan(days):
        return "no site visit or e-mail open on record"
    if days <= RECENT_DAYS:
        return f"visited or opened an e-mail recently ({_count(days, 'day')} ago)"
    if high:
        return f"no site visit or e-mail open for {_count(days, 'day')}"
    return f"last site visit or e-mail open {_count(days, 'day')} ago"


def _engagement_count(window: str):
    column = f"engagement_count_{window}"
    period = f"in the last {window[:-1]} days"

    def template(row, high):
        n = _num(row.get(column))
        if math.isnan(n):
            return None
        if round(n) == 0:
            return f"no site visits or e-mail opens {period}"
        events = _count(n, "site, app or e-mail interaction", "site, app or e-mail interactions")
        return f"engaged {'often' if high else 'little'} ({events} {period})"

    return template


def _engagement_trend(row, high):
    ratio = _num(row.get("engagement_trend_30d"))
    if math.isnan(ratio):
        return "no site visits or e-mail opens in the last year"
    direction = "rising" if ratio >= 1 else "falling"
    return f"visits and e-mail opens {direction} vs their yearly average ({_pct_change(ratio)})"


def _engagement_per_order(row, high):
    ratio = _num(row.get("engagement_per_order_90d"))
    if math.isnan(ratio):
        return None  # no order in 90 days: the order features say it
    per_order = f"{ratio:.1f} visits or opens per order in the last 90 days"
    return f"browses without buying ({per_order})" if high else f"buys on few visits ({per_order})"


def _digital_count(column: str, noun: str, plural: str):
    period = "in the last 90 days"

    def template(row, high):
        n = _num(row.get(column))
        if math.isnan(n):
            return None
        if round(n) == 0:
            return f"no {plural} {period}"
        if high:
            return f"{_count(n, noun, plural)} {period}"
        return f"few {plural} ({round(n)} {period})"

    return template


#: Sentences per feature; features not listed get :func:`generic_reason`.
REASON_TEMPLATES: dict[str, Template] = {
    "days_since_last_order": _days_since_last_order,
    "overdue_ratio": _overdue_ratio,
    "purchase_gap_mean_days": _purchase_gap,
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
    "support_ticket_count_90d": _support_tickets_90d,
    "support_ticket_count": _support_tickets,
    "days_since_last_support_ticket": _last_ticket,
    "return_rate": _return_rate,
    "returned_line_count_365d": _returned_lines,
    "returned_amount": _returned_amount,
    "discounted_order_share": _discounted_orders,
    "review_rating_mean": _review_rating,
    "referral_count_365d": _referrals,
    "tenure_days": _tenure,
    "category_count": _category_count,
    "days_since_last_engagement": _days_since_last_engagement,
    "engagement_count_30d": _engagement_count("30d"),
    "engagement_count_90d": _engagement_count("90d"),
    "engagement_count_365d": _engagement_count("365d"),
    "engagement_trend_30d": _engagement_trend,
    "engagement_per_order_90d": _engagement_per_order,
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


class _Row(Mapping):
    """One customer's values, read lazily from column arrays (cheap for millions of rows)."""

    def __init__(self, columns: Mapping[str, np.ndarray], i: int):
        self._columns = columns
        self._i = i

    def __getitem__(self, key: str) -> object:
        return self._columns[key][self._i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def _reference(features: pd.DataFrame, reference: Mapping[str, float] | None) -> dict:
    out = {}
    dtypes = features.dtypes
    for column in features.columns:
        if reference is not None and column in reference:
            out[column] = reference[column]
        elif pd.api.types.is_numeric_dtype(dtypes[column]) and not isinstance(
            dtypes[column], pd.CategoricalDtype
        ):
            out[column] = float(features[column].astype(float).median())  # NaN when all missing
            if math.isnan(out[column]):
                out[column] = 0.0
    return out


def customer_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    top: int = 3,
    direction: int = 1,
    reference: Mapping[str, float] | None = None,
    templates: Mapping[str, Template] | None = None,
) -> list[list[Reason]]:
    """The top reasons per customer, from SHAP contributions and feature values.

    Parameters
    ----------
    contributions
        One column per feature (raw-score units, e.g. ``WinbackClassifier.contributions``);
        a ``bias`` column is ignored. Rows align with ``features`` by position.
    features
        The feature values the contributions were computed from.
    top
        Reasons per customer (fewer when fewer features push toward the class).
    direction
        ``+1``: reasons for a high score (contributions > 0); ``-1``: reasons for
        a low score (contributions < 0).
    reference
        Values a feature is "high" or "low" against; the medians of ``features``
        by default (pass training medians to make reasons independent of the batch).
    templates
        Sentences per feature; :data:`REASON_TEMPLATES` by default.

    Returns
    -------
    list of list of Reason
        Ordered by contribution (largest push first); ties go to the feature
        listed first in ``contributions``. Repeated sentences are skipped.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    names = [c for c in contributions.columns if c != "bias"]
    if len(contributions) != len(features):
        raise ValueError(
            f"contributions has {len(contributions)} rows but features {len(features)}; "
            "pass the frame the contributions were computed from"
        )
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise ValueError(f"features lack the contribution columns {missing}")
    templates = REASON_TEMPLATES if templates is None else templates
    # one conversion of the whole frame: per-column access costs ~0.1 ms a column, which
    # is most of the time when a service explains one customer
    values = dict(zip(features.columns, features.to_numpy(dtype=object).T, strict=True))
    refs = _reference(features[names], reference)

    push = contributions[names].to_numpy(dtype=float) * direction
    push = np.where(np.isnan(push), 0.0, push)
    order = np.argsort(-push, axis=1, kind="stable")
    out: list[list[Reason]] = []
    for i in range(push.shape[0]):
        row = _Row(values, i)
        reasons: list[Reason] = []
        seen: set[str] = set()
        for j in order[i]:
            if push[i, j] <= 0 or len(reasons) == top:
                break
            name = names[j]
            value = values[name][i]
            ref = refs.get(name)
            high = (
                ref is not None
                and not _missing(value)
                and not isinstance(value, str)
                and _num(value) > ref
            )
            template = templates.get(name)
            text = template(row, high) if template is not None else None
            if text is None:
                text = generic_reason(name, value, high)
            if text in seen:
                continue
            seen.add(text)
            reasons.append(Reason(name, text, float(push[i, j] * direction), value))
        out.append(reasons)
    return out


def reason_codes(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    top: int = 3,
    direction: int = 1,
    reference: Mapping[str, float] | None = None,
    templates: Mapping[str, Template] | None = None,
) -> pd.DataFrame:
    """:func:`customer_reasons` as a table: ``reason_1..top`` (sentences) and
    ``reason_code_1..top`` (feature names), indexed like ``contributions``;
    ``None`` where a customer has fewer reasons."""
    lists = customer_reasons(
        contributions,
        features,
        top=top,
        direction=direction,
        reference=reference,
        templates=templates,
    )
    data: dict[str, list] = {}
    for k in range(top):
        data[f"reason_{k + 1}"] = [r[k].text if len(r) > k else None for r in lists]
    for k in range(top):
        data[f"reason_code_{k + 1}"] = [r[k].code if len(r) > k else None for r in lists]
    return pd.DataFrame(data, index=contributions.index, dtype=object)


def reason_frequencies(codes: pd.DataFrame, *, column: str = "reason_code_1") -> pd.DataFrame:
    """How often each feature is a customer's first reason: ``customers`` and ``share``."""
    counts = codes[column].dropna().value_counts()
    out = pd.DataFrame({"customers": counts, "share": counts / max(len(codes), 1)})
    out.index.name = "reason_code"
    return out
