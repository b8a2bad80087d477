"""Each customer's status and purchase summary at a scoring date, from the feature query itself.

``features.labels.scoring_status_sql`` reads every line once more for the
status (active, lapsed, in the tier ranking, trailing margin) and the BG/NBD
summary (``features.labels.SUMMARY_COLUMNS``). The feature query already groups
the purchase lines by order, the orders by customer, and sums the trailing
margin of each window (the net value parts of
``features.families.monetary_margin``). :func:`status_definitions` are a few
aggregates more over those relations, returned with the features, and
:func:`status_from_features` makes of them the same values as that query.

They are the same as the line-level definitions while no order's purchase lines
fall on two dates: the last purchase line's date is then the last order's, and
the distinct purchase dates are the orders' distinct dates. The definitions
count the orders whose lines do (:data:`SPANNING`); when a customer has one,
:func:`status_from_features` returns ``None`` and the caller asks the line query.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from features.definitions import FeatureDefinition, get_feature
from features.families.monetary_margin import NET_WINDOWS_DAYS
from features.labels import SUMMARY_COLUMNS, LabelConfig
from features.relations import MONEY_SCALE
from features.tiers import TierConfig, assign_tiers

FAMILY = "status"
#: Days from the last purchase order's date to the cutoff (its oldest line's date).
LAST = "days_since_last_order"
#: Days from the first purchase line's date to the cutoff.
FIRST = "tenure_days"
#: Distinct dates of the purchase orders.
DAYS = "purchase_day_count"
#: Value of every purchase line: margin, or amount in a shop without margins.
VALUES = {True: "total_margin_amount", False: "spend_amount"}
#: Purchase orders whose lines fall on more than one date.
SPANNING = "_status_spanning_order_count"
#: Signed margin of every line in the tier window (revenue without margins), ten-thousandths.
TRAILING = "_status_trailing_margin_e4"
#: Status columns that are flags of the last purchase's age (the rest come from the tiers).
STATUS_FLAGS = ("is_active", "is_lapsed")


def _definition(name: str, relation: str, expression: str, **kw) -> FeatureDefinition:
    return FeatureDefinition.numeric(
        FAMILY, name, relation, expression, "A part of the scoring status.", **kw
    )


def status_definitions(
    tx_columns: Collection[str], config: LabelConfig, *, summary: bool = False
) -> tuple[FeatureDefinition, ...] | None:
    """The aggregates :func:`status_from_features` reads, for a shop with ``tx_columns``.

    Registered features where one is the aggregate (recency, and with ``summary``
    tenure, purchase days and the value of the purchase lines), and two of their
    own (names starting with ``_status_``). ``None`` when the tier window has no
    net margin parts in the feature query (only the windows of
    ``NET_WINDOWS_DAYS`` have them).
    """
    days = config.tiers.window_days
    if days not in NET_WINDOWS_DAYS:
        return None
    margin = "margin_amount" in tx_columns
    if margin:
        trailing = f"COALESCE(_purchase_margin_{days}d_e4, 0) + _return_margin_{days}d_e4"
        parts: tuple[str, ...] = (f"_purchase_margin_{days}d_e4", f"_return_margin_{days}d_e4")
    else:
        trailing = f"_purchase_{days}d_e4 - _return_{days}d_e4"
        parts = (f"_purchase_{days}d_e4", f"_return_{days}d_e4")
    out = [
        get_feature(LAST),
        _definition(SPANNING, "orders", "COUNT(CASE WHEN order_span_days > 0 THEN 1 END)"),
        _definition(TRAILING, "derived", trailing, depends_on=parts),
    ]
    if summary:
        out += [get_feature(FIRST), get_feature(DAYS), get_feature(VALUES[margin])]
    return tuple(out)


def status_from_features(
    frame: pd.DataFrame, config: LabelConfig
) -> dict[str, np.ndarray | pd.api.extensions.ExtensionArray] | None:
    """The status columns (and summary, when its parts are there) of ``frame``'s customers.

    ``frame`` holds the columns of :func:`status_definitions`. The values are
    those of ``features.labels.scoring_status_sql`` as ``features.training_table``
    turns them into columns; ``None`` when an order spans two dates (see the module).
    """
    if frame[SPANNING].to_numpy().any():
        return None
    last = frame[LAST].to_numpy()
    ranked = last < config.tiers.window_days
    # The line query's margin is an exact decimal that Arrow converts as ``x * 1e-4``.
    margin = np.nan_to_num(frame[TRAILING].to_numpy() * (1 / MONEY_SCALE), nan=0.0)
    flags = {
        "is_active": last < config.active_window_days,
        "is_lapsed": last >= config.lapsed_after_days,
    }
    return status_columns(flags, ranked, margin, config.tiers, _summary(frame))


def _summary(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """BG/NBD's summary from the purchase days, first and last order and purchase value."""
    value = next((frame[v] for v in VALUES.values() if v in frame.columns), None)
    if DAYS not in frame.columns or FIRST not in frame.columns or value is None:
        return {}
    days, first = frame[DAYS].to_numpy(), frame[FIRST].to_numpy()
    # the exact sum over 10^4 (``features.families.money``): DuckDB's cast of the decimal sum
    value = np.nan_to_num(value.to_numpy(), nan=0.0)
    values = (days - 1, first - frame[LAST].to_numpy(), first, value / days)
    return dict(zip(SUMMARY_COLUMNS, values, strict=True))


def status_columns(
    flags: dict[str, np.ndarray],
    ranked: np.ndarray,
    margin: np.ndarray,
    tiers: TierConfig,
    summary: dict[str, np.ndarray],
) -> dict[str, object]:
    """The ``features.labels.STATUS_COLUMNS`` as ``customer_status`` gives them, then ``summary``.

    ``ranked``: a purchase inside the tier window (the tiers rank those
    customers by ``margin``; the others are unranked, with 0 margin).
    """
    margin = np.where(ranked, margin, 0.0)
    names = np.full(len(margin), None, dtype=object)
    rows = np.flatnonzero(ranked)
    if len(rows):
        names[rows] = assign_tiers(pd.Series(margin[rows]), tiers).to_numpy(object)
    return {
        **flags,
        "is_vip": np.isin(names, list(tiers.vip_tiers)),
        "tier": pd.array(names, dtype="string"),
        "trailing_margin": margin,
        **summary,
    }
