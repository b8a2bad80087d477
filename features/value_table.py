"""The customer-value label and training table: margin over a long horizon after each cutoff.

The value target is a regression: each customer's ``future_value`` over
``(cutoff, cutoff + horizon_days]`` (default 365 days) -- the sum of
``margin_amount`` over the lines in the horizon (returns signed, as in
``features.labels``), or signed revenue when the shop has no margin column
(``attrs["value_basis"]`` says which). Its population is every customer with an
order on or before the cutoff, active or lapsed: value is meant everywhere a
list is built, for customers at risk and for customers to win back.

The label follows the cutoff convention of ``features.labels``: it reads only
events in the horizon, features only events on or before the cutoff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import duckdb
import numpy as np
import pandas as pd

from features.build import build_feature_table
from features.engines.duckdb_engine import connect, table_columns
from features.feature_sets import MODEL_DERIVED_FEATURES, FeatureSet
from features.inputs.schema import ShopTables
from features.labels import (
    SUMMARY_COLUMNS,
    LabelConfig,
    customer_status,
    outcomes_sql,
    summary_select,
)
from features.tiers import CUTOFF_DTYPE, as_dates, register_cutoffs
from features.training_table import check_features_cover, check_observed, data_dates

#: The value label and the columns a value table carries next to it.
VALUE_LABEL = "future_value"
VALUE_HORIZON_DAYS = 365
VALUE_STATUS_COLUMNS = ("is_active", "is_lapsed", "trailing_margin")
VALUE_POPULATION = "customers with an order on or before the cutoff (active or lapsed)"


def value_basis(tables: ShopTables) -> str:
    """``"margin"`` when the transactions carry ``margin_amount``, else ``"revenue"``."""
    return "margin" if "margin_amount" in tables.transactions.columns else "revenue"


def value_summary_sql(tx_columns: Iterable[str], cutoff: dt.date | None = None) -> str:
    """The SQL of :func:`value_summary_from`: one grouping by purchase day, one by customer.

    With ``cutoff`` the lines are filtered against that date in the scan and
    the result has no ``cutoff`` column; otherwise every cutoff of the
    ``cutoffs`` relation gets its rows. Day values are exact decimal sums, so
    the mean does not depend on the order DuckDB's threads add them in.
    """
    columns = set(tx_columns)
    value = "t.margin_amount" if "margin_amount" in columns else "t.amount"
    where = ["NOT coalesce(t.is_return, false)"] if "is_return" in columns else []
    if cutoff is not None:
        where.append(f"t.ordered_at < TIMESTAMP '{cutoff.isoformat()}' + INTERVAL 1 DAY")
    filtered = f"WHERE {' AND '.join(where)}" if where else ""
    days = (
        "SELECT t.customer_id, CAST(t.ordered_at AS DATE) AS day,"
        f" SUM(coalesce({value}, 0)) AS value\n  FROM transactions AS t {filtered}\n"
        "  GROUP BY t.customer_id, CAST(t.ordered_at AS DATE)"
    )
    day = f"DATE '{cutoff.isoformat()}'" if cutoff is not None else "c.cutoff"
    summary = summary_select(day)
    if cutoff is not None:
        return (
            f"WITH purchase_days AS ({days})\nSELECT p.customer_id, {summary}\n"
            "FROM purchase_days AS p GROUP BY p.customer_id ORDER BY p.customer_id"
        )
    return (
        f"WITH purchase_days AS ({days})\nSELECT c.cutoff, p.customer_id, {summary}\n"
        "FROM cutoffs AS c JOIN purchase_days AS p ON p.day <= c.cutoff\n"
        "GROUP BY c.cutoff, p.customer_id ORDER BY c.cutoff, p.customer_id"
    )


def value_summary_from(con: duckdb.DuckDBPyConnection, cutoffs: Iterable[object]) -> pd.DataFrame:
    """Point-in-time BG/NBD and Gamma-Gamma summary of each customer at each cutoff.

    Over the contract views on ``con`` (registered from pandas or read in place
    from Parquet), in one query: ``frequency`` (purchase days on or before the
    cutoff day, minus one), ``recency`` (days from the first to the last),
    ``T`` (days from the first to the cutoff) and ``monetary_value``, the mean
    value of those purchase days -- margin of their purchase lines, or their
    amount when the shop has no margin column. Returns are left out (the
    Gamma-Gamma model needs positive spend). Indexed by (``cutoff``,
    ``customer_id``), sorted, cutoffs as naive midnight ``datetime64[us]``.
    """
    dates = as_dates(cutoffs)
    if not dates:
        raise ValueError("value_summary_from needs at least one cutoff")
    tx = table_columns(con).get("transactions", [])
    if "customer_id" not in tx or "ordered_at" not in tx:
        raise ValueError("transactions need 'customer_id' and 'ordered_at' columns for RFM")
    if len(dates) > 1:
        register_cutoffs(con, dates)
    single = dates[0] if len(dates) == 1 else None
    result = con.sql(value_summary_sql(tx, single)).to_arrow_table()
    customers = pd.Index(pd.array(result.column("customer_id"), dtype="string"))
    if single is not None:
        cutoff = pd.DatetimeIndex([pd.Timestamp(single)]).as_unit("us")
        index = pd.MultiIndex(
            levels=[cutoff, customers],
            codes=[np.zeros(len(customers), dtype="int8"), np.arange(len(customers))],
            names=["cutoff", "customer_id"],
            verify_integrity=False,
        )
    else:
        days = pd.DatetimeIndex(result.column("cutoff").to_numpy()).as_unit("us")
        index = pd.MultiIndex.from_arrays([days, customers], names=["cutoff", "customer_id"])
    data = {c: result.column(c).to_numpy() for c in SUMMARY_COLUMNS}
    return pd.DataFrame(data, index=index, copy=False)


def build_value_labels(
    tables: ShopTables,
    cutoffs: Iterable[object],
    *,
    horizon_days: int = VALUE_HORIZON_DAYS,
    label_config: LabelConfig = LabelConfig(),
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Each known customer's value over the horizon after each cutoff, and their status.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)`` over customers with an order on or
        before the cutoff; ``future_value`` (float, 0 without events in the
        horizon), ``future_orders`` (int), ``is_active``, ``is_lapsed`` and
        ``trailing_margin`` (see ``features.labels.customer_status``). ``attrs``
        holds ``horizon_days`` and ``value_basis``.
    """
    config = dataclasses.replace(label_config, horizon_days=horizon_days)
    con = connect(tables) if con is None else con
    dates = as_dates(cutoffs)
    status = customer_status(tables, dates, config, con=con)
    register_cutoffs(con, dates)
    outcomes = con.sql(outcomes_sql(tables, config)).df()
    outcomes["cutoff"] = outcomes["cutoff"].astype(CUTOFF_DTYPE)
    outcomes["customer_id"] = outcomes["customer_id"].astype("string")
    outcomes = outcomes.set_index(["cutoff", "customer_id"])
    frame = status[list(VALUE_STATUS_COLUMNS)].copy()
    # outcomes_sql's margin already falls back to signed revenue without a margin column
    frame[VALUE_LABEL] = (
        outcomes["future_margin"].reindex(frame.index).astype("float64").fillna(0.0)
    )
    frame["future_orders"] = (
        outcomes["future_orders"].reindex(frame.index).fillna(0).astype("int64")
    )
    frame.attrs = {"horizon_days": horizon_days, "value_basis": value_basis(tables)}
    return frame


def supported_value_horizon(
    tables: ShopTables,
    requested_days: int = VALUE_HORIZON_DAYS,
    *,
    origins: int = 3,
    every_days: int = 30,
    min_history_days: int = 60,
    candidates: tuple[int, ...] = (365, 180, 90, 60, 30),
) -> int:
    """The longest horizon, at most ``requested_days``, that the history can evaluate.

    Each test origin's training cutoffs lie ``horizon_days`` before it (so no
    training label window overlaps the test period; validation is a customer
    hold-out of the training cutoffs), its own horizon must be observed, and the
    ``origins`` test cutoffs are ``every_days`` apart: that takes ``2 *
    horizon_days + (origins - 1) * every_days`` days after ``min_history_days``
    of history. A year-long horizon needs about two years and four months of
    data; shorter logs get the longest candidate that fits, which the caller reports.

    Raises
    ------
    ValueError
        When not even the shortest candidate fits, naming the history length.
    """
    first, last = data_dates(tables)
    history = (last - first).days
    spread = (origins - 1) * every_days + min_history_days
    shorter = [c for c in candidates if c < requested_days]
    for days in sorted({requested_days, *shorter}, reverse=True):
        if 2 * days + spread <= history:
            return days
    raise ValueError(
        f"the data covers {history} days ({first} .. {last}): too short for a value horizon of "
        f"even {min(candidates)} days with {origins} test origins {every_days} days apart and "
        f"{min_history_days} days of history before the first training cutoff"
    )


def build_value_table(
    tables: ShopTables,
    cutoffs: Iterable[object],
    *,
    horizon_days: int = VALUE_HORIZON_DAYS,
    feature_set: FeatureSet | None = None,
    label_config: LabelConfig = LabelConfig(),
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Features at every cutoff joined with the value label from the horizon after it.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)``: the feature columns (all but the
        model-derived ``btyd_*`` ones, which training adds per origin), then
        ``future_value`` and the columns of :func:`build_value_labels`. ``attrs``
        holds ``target`` (``"value"``), ``label``, ``population``,
        ``horizon_days``, ``value_basis``, ``feature_set`` and ``omitted_features``.

    Raises
    ------
    ValueError
        For no cutoffs, or cutoffs whose horizon runs past the last data date.
    """
    dates = as_dates(cutoffs)
    if not dates:
        raise ValueError("no cutoffs given: pass at least one date (see monthly_cutoffs)")
    check_observed(tables, dates, horizon_days)
    con = connect(tables) if con is None else con
    labels = build_value_labels(
        tables, dates, horizon_days=horizon_days, label_config=label_config, con=con
    )
    sql_set = None
    if feature_set is not None:  # model-derived columns are added later, by training
        sql_set = feature_set.subset(set(feature_set.names) - set(MODEL_DERIVED_FEATURES))
    features = build_feature_table(tables, dates, feature_set=sql_set, con=con)
    check_features_cover(labels.index, features)
    table = features.loc[labels.index].copy()
    for column in (VALUE_LABEL, "future_orders", *VALUE_STATUS_COLUMNS):
        table[column] = labels[column]
    table.attrs = {
        "target": "value",
        "label": VALUE_LABEL,
        "population": VALUE_POPULATION,
        "horizon_days": horizon_days,
        "value_basis": labels.attrs["value_basis"],
        "feature_set": None if feature_set is None else feature_set.name,
        "omitted_features": list(features.attrs.get("omitted_features", [])),
    }
    return table


def value_targets(table: pd.DataFrame) -> np.ndarray:
    """The ``future_value`` column of a value table as floats, with a clear error if absent."""
    if VALUE_LABEL not in table.columns:
        raise ValueError(
            f"the table has no {VALUE_LABEL!r} column: build it with build_value_table"
        )
    values = table[VALUE_LABEL].to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ValueError(f"{VALUE_LABEL} has {int(np.isnan(values).sum())} missing values")
    return values
