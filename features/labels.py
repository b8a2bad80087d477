"""Labels: what each customer did in the horizon after a cutoff.

Everything here follows the cutoff convention of ``features.inputs.schema``: a
customer's *status* (active, lapsed, VIP) uses events on or before the cutoff
day (``ordered_at < cutoff + 1 day``); *outcomes* use events in
``(cutoff, cutoff + horizon_days]``, i.e. ``cutoff + 1 day <= ordered_at <
cutoff + horizon_days + 1 day``. Nothing after ``cutoff + horizon_days`` is read.

Definitions (all windows in whole days, ending on the cutoff day):

* an *order* is a distinct ``order_id`` with at least one non-return line; a
  return alone is not an order;
* the customers labelled at a cutoff are those with at least one order on or
  before it;
* ``is_active``: ordered in the last ``active_window_days`` days,
  ``(cutoff - active_window_days, cutoff]``;
* ``is_lapsed``: no order in the last ``lapsed_after_days`` days (but one
  before). ``lapsed_after_days >= active_window_days`` is required, so no
  customer is both; with the defaults (180 and 180) active and lapsed partition
  the customers with history, with a larger ``lapsed_after_days`` the customers
  in between are neither;
* ``is_vip`` / ``tier``: see ``features.tiers`` (trailing-12-month margin);
* ``churned``: an active customer with no order in the horizon;
* ``reactivated``: a lapsed customer with an order in the horizon;
* ``became_vip``: an active, non-VIP customer who is VIP at ``cutoff +
  horizon_days`` (tiers recomputed at that date among the customers active then);
* ``future_revenue``: ``amount`` of purchase lines minus ``amount`` of returned
  lines in the horizon; ``future_margin``: the sum of ``margin_amount`` over the
  same lines (a return line's margin is already signed, usually negative: the
  margin given back plus handling). Without a ``margin_amount`` column it falls
  back to revenue, with a warning;
* ``future_orders``: orders in the horizon.

Each label is a nullable boolean that is ``<NA>`` outside its population, so the
population of a model is ``frame[label].notna()``.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from features.engines.base import Engine
from features.engines.duckdb_engine import connect
from features.inputs.keys import CUSTOMER_KEY, KEYS_TABLE
from features.inputs.schema import ShopTables
from features.tiers import (
    CUTOFF_DTYPE,
    TierConfig,
    as_dates,
    day_start,
    purchase_expressions,
    register_cutoffs,
    tiers_by_cutoff,
    trailing_value,
)

#: The label columns and the status column that defines each one's population.
LABEL_COLUMNS = ("churned", "became_vip", "reactivated")
OUTCOME_COLUMNS = ("future_revenue", "future_margin", "future_orders")
STATUS_COLUMNS = ("is_active", "is_lapsed", "is_vip", "tier", "trailing_margin")


@dataclass(frozen=True)
class LabelConfig:
    """Windows and tiers that define the labels.

    Parameters
    ----------
    horizon_days
        Length of the outcome window after the cutoff.
    active_window_days
        A customer is active if they ordered in the last this many days.
    lapsed_after_days
        A customer is lapsed if they have not ordered for this many days; must be
        ``>= active_window_days`` so that nobody is both active and lapsed.
    tiers
        The value tiers that define VIP.
    """

    horizon_days: int = 90
    active_window_days: int = 180
    lapsed_after_days: int = 180
    tiers: TierConfig = field(default_factory=TierConfig)

    def __post_init__(self) -> None:
        for name in ("horizon_days", "active_window_days", "lapsed_after_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LabelConfig.{name} must be a whole number >= 1, got {value!r}")
        if self.lapsed_after_days < self.active_window_days:
            raise ValueError(
                f"LabelConfig.lapsed_after_days ({self.lapsed_after_days}) is shorter than "
                f"active_window_days ({self.active_window_days}): a customer would be both "
                "active and lapsed; make lapsed_after_days >= active_window_days"
            )


def status_sql(tables: ShopTables, config: LabelConfig) -> str:
    """SQL for each customer's status at each cutoff (relations ``transactions``, ``cutoffs``)."""
    is_return, _ = purchase_expressions(tables)
    return f"""
WITH bounds AS (
    SELECT
        cutoff,
        {day_start(1)} AS history_end,
        {day_start(1 - config.active_window_days)} AS active_start,
        {day_start(1 - config.lapsed_after_days)} AS lapsed_start
    FROM cutoffs
),
history AS (
    SELECT b.cutoff AS cutoff, t.customer_id AS customer_id, MAX(t.ordered_at) AS last_order_at
    FROM bounds AS b
    JOIN transactions AS t ON t.ordered_at < b.history_end
    WHERE NOT ({is_return})
    GROUP BY b.cutoff, t.customer_id
)
SELECT
    h.cutoff AS cutoff,
    h.customer_id AS customer_id,
    h.last_order_at >= b.active_start AS is_active,
    h.last_order_at < b.lapsed_start AS is_lapsed
FROM history AS h
JOIN bounds AS b ON b.cutoff = h.cutoff
"""


#: The point-in-time purchase summary of BG/NBD and Gamma-Gamma, in their vocabulary.
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")


def summary_select(day: str, *, rows: str = "p", purchase: str | None = None) -> str:
    """The SQL of :data:`SUMMARY_COLUMNS` over purchase days (``{rows}.day``, ``{rows}.value``).

    ``day`` is the cutoff date's SQL; ``purchase``, when given, is the condition
    that picks the purchase days among the rows (other days are left out).
    """
    only = f" FILTER (WHERE {purchase})" if purchase else ""
    first, last = f"min({rows}.day){only}", f"max({rows}.day){only}"
    return (
        f"CAST(count(*){only} - 1 AS DOUBLE) AS frequency,"
        f" CAST(date_diff('day', {first}, {last}) AS DOUBLE) AS recency,"
        f" CAST(date_diff('day', {first}, {day}) AS DOUBLE) AS \"T\","
        f" CAST(sum({rows}.value){only} AS DOUBLE) / count(*){only} AS monetary_value"
    )


def scoring_status_sql(
    tables: ShopTables,
    as_of: dt.date,
    config: LabelConfig,
    *,
    summary: bool = False,
    keyed: bool = False,
) -> str:
    """Status, trailing margin and (``summary``) purchase summary at ``as_of``, in one scan.

    What :func:`status_sql`, ``features.tiers.trailing_value_sql`` and
    ``features.value_table.value_summary_sql`` give for one date, from one grouping
    of the lines by customer instead of three passes over them: the sums are
    exact decimals, so every value is the same. One row per customer with a
    purchase on or before ``as_of``, sorted by ``customer_id``: ``is_active``,
    ``is_lapsed``, ``trailing_margin`` (window sum, NULL for a customer without
    lines in the window), ``ranked`` (a purchase in the tier window), then
    :data:`SUMMARY_COLUMNS` with ``summary`` (purchase days counted distinct:
    one grouping of the lines, where grouping by customer and day first took
    half again the time and memory). ``keyed`` groups by the integer
    ``customer_key`` of ``features.inputs.keys`` (integers hash and compare
    faster than string ids) and maps it back to ``customer_id`` through
    ``customer_keys``.
    """
    is_return, margin = purchase_expressions(tables)
    columns = set(tables.transactions.columns)
    value = "t.margin_amount" if "margin_amount" in columns else "t.amount"
    cutoff = f"DATE '{as_of.isoformat()}'"

    def since(days: int) -> str:
        return f"DATE '{(as_of + dt.timedelta(days=1 - days)).isoformat()}'"

    day = "CAST(t.ordered_at AS DATE)"
    bought = f"NOT ({is_return})"
    first, last = (f"{f}({day}) FILTER (WHERE {bought})" for f in ("min", "max"))
    window = f"{day} >= {since(config.tiers.window_days)}"
    extra = ""
    if summary:
        days = f"count(DISTINCT {day}) FILTER (WHERE {bought})"
        extra = (
            f",\n    CAST({days} - 1 AS DOUBLE) AS frequency,"
            f"\n    CAST(date_diff('day', {first}, {last}) AS DOUBLE) AS recency,"
            f"\n    CAST(date_diff('day', {first}, {cutoff}) AS DOUBLE) AS \"T\","
            f"\n    CAST(SUM(coalesce({value}, 0)) FILTER (WHERE {bought}) AS DOUBLE) / {days}"
            " AS monetary_value"
        )
    customer = CUSTOMER_KEY if keyed else "customer_id"
    status = f"""
SELECT
    t.{customer} AS {customer},
    {last} >= {since(config.active_window_days)} AS is_active,
    {last} < {since(config.lapsed_after_days)} AS is_lapsed,
    SUM({margin}) FILTER (WHERE {window}) AS trailing_margin,
    coalesce(bool_or({bought} AND {window}), FALSE) AS ranked{extra}
FROM transactions AS t
WHERE t.ordered_at < {day_start(1, cutoff)}
GROUP BY t.{customer}
HAVING {last} IS NOT NULL
"""
    if not keyed:
        return status + "ORDER BY t.customer_id\n"
    return f"""
WITH status AS ({status})
SELECT k.customer_id AS customer_id, s.* EXCLUDE ({CUSTOMER_KEY})
FROM status AS s
LEFT JOIN {KEYS_TABLE} AS k ON k.{CUSTOMER_KEY} = s.{CUSTOMER_KEY}
ORDER BY s.{CUSTOMER_KEY}
"""


def outcomes_sql(tables: ShopTables, config: LabelConfig) -> str:
    """SQL for each customer's horizon outcomes (relations ``transactions``, ``cutoffs``).

    Only customers with some transaction in the horizon appear; the others have
    zero outcomes.
    """
    is_return, margin = purchase_expressions(tables)
    return f"""
WITH bounds AS (
    SELECT
        cutoff,
        {day_start(1)} AS horizon_start,
        {day_start(config.horizon_days + 1)} AS horizon_end
    FROM cutoffs
)
SELECT
    b.cutoff AS cutoff,
    t.customer_id AS customer_id,
    SUM(CASE WHEN {is_return} THEN -t.amount ELSE t.amount END) AS future_revenue,
    SUM({margin}) AS future_margin,
    COUNT(DISTINCT CASE WHEN {is_return} THEN NULL ELSE t.order_id END) AS future_orders
FROM bounds AS b
JOIN transactions AS t
    ON t.ordered_at >= b.horizon_start AND t.ordered_at < b.horizon_end
GROUP BY b.cutoff, t.customer_id
"""


def _connection(tables: ShopTables, con: Engine | None) -> Engine:
    return connect(tables) if con is None else con


def customer_status(
    tables: ShopTables,
    cutoffs: Iterable[object],
    config: LabelConfig = LabelConfig(),
    *,
    con: Engine | None = None,
) -> pd.DataFrame:
    """Who each customer is at each cutoff: active, lapsed, VIP, tier, trailing margin.

    Uses only events on or before each cutoff. Serving uses it (through
    ``features.training_table.build_scoring_frame``) to attach tiers to scores.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)`` over customers with an order on or
        before the cutoff; columns ``is_active``, ``is_lapsed``, ``is_vip`` (bool),
        ``tier`` (string, ``<NA>`` for a customer with no order in the trailing
        tier window, who is not ranked) and ``trailing_margin`` (0 when unranked).
    """
    con = _connection(tables, con)
    dates = as_dates(cutoffs)
    trailing = trailing_value(tables, dates, config.tiers.window_days, con=con)
    return _status(tables, dates, config, con, trailing, tiers_by_cutoff(trailing, config.tiers))


def _status(
    tables: ShopTables,
    dates: list[dt.date],
    config: LabelConfig,
    con: Engine,
    trailing: pd.DataFrame,
    tiers: pd.DataFrame,
) -> pd.DataFrame:
    """customer_status from trailing values and tiers already computed (for these dates or more)."""
    register_cutoffs(con, dates)
    status = con.sql(status_sql(tables, config)).df()
    status["cutoff"] = status["cutoff"].astype(CUTOFF_DTYPE)
    status["customer_id"] = status["customer_id"].astype("string")
    status = status.set_index(["cutoff", "customer_id"]).sort_index()
    status = status.astype({"is_active": "bool", "is_lapsed": "bool"})
    status["tier"] = tiers["tier"].reindex(status.index).astype("string")
    status["is_vip"] = tiers["is_vip"].reindex(status.index, fill_value=False).astype("bool")
    status["trailing_margin"] = (
        trailing["trailing_margin"].reindex(status.index, fill_value=0.0).astype("float64")
    )
    return status[list(STATUS_COLUMNS)]


def _shift(index: pd.Index, days: int) -> pd.Index:
    return index + pd.Timedelta(days=days)


def build_labels(
    tables: ShopTables,
    cutoffs: Iterable[object],
    config: LabelConfig = LabelConfig(),
    *,
    con: Engine | None = None,
) -> pd.DataFrame:
    """Status at each cutoff and labels from the horizon after it, for many cutoffs at once.

    Parameters
    ----------
    tables
        The shop's validated tables (with ``con``: their outline,
        ``features.engines.duckdb_engine.outline``, is enough).
    cutoffs
        Calendar dates (UTC); dates, timestamps or ISO strings.
    config
        Windows and tiers (see :class:`LabelConfig`).
    con
        The engine where ``tables`` are registered (``features.engines.base``): a
        DuckDB connection (``features.engines.duckdb_engine.connect``) or a
        ``SparkConnection``; a new DuckDB connection by default.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)`` (cutoff as midnight ``datetime64[s]``)
        over customers with an order on or before the cutoff. Columns: the status
        columns of :func:`customer_status`; ``churned``, ``became_vip``,
        ``reactivated`` (nullable ``boolean``, ``<NA>`` outside their population);
        ``future_revenue``, ``future_margin`` (float) and ``future_orders`` (int).
        The caller decides whether the horizon is observed (see
        ``features.training_table.monthly_cutoffs``).
    """
    if "margin_amount" not in tables.transactions.columns:
        warnings.warn(
            "transactions has no margin_amount column: future_margin and tiers use "
            "revenue (amount) instead; map a margin column to rank customers by margin",
            UserWarning,
            stacklevel=2,
        )
    con = _connection(tables, con)
    dates = as_dates(cutoffs)
    # Values and tiers at each cutoff and at the end of its horizon, in one query.
    horizon = config.horizon_days
    end_dates = [d + dt.timedelta(days=horizon) for d in dates]
    trailing = trailing_value(tables, [*dates, *end_dates], config.tiers.window_days, con=con)
    tiers = tiers_by_cutoff(trailing, config.tiers)
    status = _status(tables, dates, config, con, trailing, tiers)

    register_cutoffs(con, dates)
    outcomes = con.sql(outcomes_sql(tables, config)).df()
    outcomes["cutoff"] = outcomes["cutoff"].astype(CUTOFF_DTYPE)
    outcomes["customer_id"] = outcomes["customer_id"].astype("string")
    outcomes = outcomes.set_index(["cutoff", "customer_id"])

    frame = status.copy()
    for name in ("future_revenue", "future_margin"):
        frame[name] = outcomes[name].reindex(frame.index).astype("float64").fillna(0.0)
    frame["future_orders"] = (
        outcomes["future_orders"].reindex(frame.index).fillna(0).astype("int64")
    )

    # VIP at the end of the horizon: tiers ranked among the customers active then.
    end_index = pd.MultiIndex.from_arrays(
        [
            _shift(frame.index.get_level_values("cutoff"), horizon),
            frame.index.get_level_values("customer_id"),
        ]
    )
    vip_at_end = tiers["is_vip"].reindex(end_index, fill_value=False).to_numpy(dtype=bool)

    ordered = frame["future_orders"].to_numpy() > 0
    active = frame["is_active"].to_numpy()
    lapsed = frame["is_lapsed"].to_numpy()
    vip = frame["is_vip"].to_numpy()
    frame["churned"] = _label(~ordered, active, frame.index)
    frame["became_vip"] = _label(vip_at_end, active & ~vip, frame.index)
    frame["reactivated"] = _label(ordered, lapsed, frame.index)
    return frame[[*STATUS_COLUMNS, *LABEL_COLUMNS, *OUTCOME_COLUMNS]]


def _label(values, population, index: pd.Index) -> pd.Series:
    """A nullable boolean: ``values`` inside ``population``, ``<NA>`` outside it."""
    out = pd.Series(values, index=index, dtype="boolean")
    out[~population] = pd.NA
    return out
