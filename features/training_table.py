"""Training tables: features at each cutoff joined with labels from the horizon after it.

A model for one target learns from many cutoffs at once (e.g. every 30 days),
each row being one customer at one cutoff, with features from on or before the
cutoff and the label from ``(cutoff, cutoff + horizon_days]``. Only cutoffs
whose whole horizon is inside the data are usable: a horizon that runs past the
last event would count customers as churned who simply have not been observed
yet. Each target has its own population: ``churn`` and ``vip`` the customers
active at the cutoff (``vip``: those not VIP yet), ``reactivation`` the lapsed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import build_feature_table_from
from features.engines.base import Engine
from features.engines.duckdb_engine import connect, has_customer_keys, outline, table_columns
from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.labels import (
    SUMMARY_COLUMNS,
    LabelConfig,
    build_labels,
    customer_status,
    scoring_status_sql,
)
from features.targets import TARGETS as TARGET_TABLE
from features.tiers import (
    TierConfig,
    as_dates,
    assign_tiers,
)

#: Status columns that come straight from the status query (the rest from the tiers).
STATUS_FLAGS = ("is_active", "is_lapsed")

#: Target name -> label column of ``features.labels.build_labels``.
TARGETS: dict[str, str] = {name: t.label for name, t in TARGET_TABLE.items()}

#: Who each target's rows are (the label is ``<NA>`` for everyone else).
POPULATIONS: dict[str, str] = {name: t.population for name, t in TARGET_TABLE.items()}

#: Outcome columns carried into every training table (for value weighting).
VALUE_COLUMNS = ("future_margin", "future_revenue")


def data_dates(tables: ShopTables) -> tuple[dt.date, dt.date]:
    """The first and last calendar dates (UTC) with a transaction."""
    ordered_at = tables.transactions["ordered_at"]
    if ordered_at.empty or ordered_at.isna().all():
        raise ValueError("transactions is empty: no dates to place cutoffs in")
    first, last = pd.Timestamp(ordered_at.min()), pd.Timestamp(ordered_at.max())
    if first.tzinfo is not None:
        first, last = first.tz_convert("UTC"), last.tz_convert("UTC")
    return first.date(), last.date()


def monthly_cutoffs(
    tables: ShopTables,
    horizon_days: int,
    every_days: int = 30,
    *,
    count: int | None = None,
    first: dt.date | str | None = None,
) -> list[dt.date]:
    """Cutoffs every ``every_days`` days whose whole horizon is in the data, oldest first.

    The latest is ``last data date - horizon_days`` (so ``cutoff + horizon_days <=
    last data date``); the others step back from it, stopping after ``count``
    cutoffs, before ``first``, or before the first data date, whichever comes first.

    Raises
    ------
    ValueError
        When the data is shorter than the horizon, or the limits leave no cutoff.
    """
    if horizon_days < 1 or every_days < 1:
        raise ValueError(
            f"horizon_days and every_days must be >= 1, got {horizon_days} and {every_days}"
        )
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1 (or None for all), got {count}")
    data_first, data_last = data_dates(tables)
    earliest = data_first if first is None else max(data_first, as_dates(first)[0])
    cutoff = data_last - dt.timedelta(days=horizon_days)
    out: list[dt.date] = []
    while cutoff >= earliest and (count is None or len(out) < count):
        out.append(cutoff)
        cutoff -= dt.timedelta(days=every_days)
    if not out:
        raise ValueError(
            f"no cutoff with a full {horizon_days}-day horizon between {earliest} and the last "
            f"data date {data_last}: use a shorter horizon or more data"
        )
    return sorted(out)


def unobserved_cutoffs(
    tables: ShopTables, cutoffs: Iterable[object], horizon_days: int
) -> list[dt.date]:
    """The cutoffs whose horizon runs past the last data date."""
    _, data_last = data_dates(tables)
    return [c for c in as_dates(cutoffs) if c + dt.timedelta(days=horizon_days) > data_last]


def check_observed(tables: ShopTables, dates: list[dt.date], horizon_days: int) -> None:
    """Raise a ``ValueError`` naming the cutoffs whose horizon runs past the last data date."""
    unobserved = unobserved_cutoffs(tables, dates, horizon_days)
    if unobserved:
        raise ValueError(
            f"{len(unobserved)} cutoff(s) {[str(d) for d in unobserved]} have a "
            f"{horizon_days}-day horizon that runs past the last data date "
            f"{data_dates(tables)[1]}: drop them or use monthly_cutoffs()"
        )


def check_features_cover(labelled: pd.Index, features: pd.DataFrame) -> None:
    """Raise a ``ValueError`` when labelled (cutoff, customer_id) rows have no features."""
    missing = labelled.difference(features.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} labelled (cutoff, customer_id) rows have no features, e.g. "
            f"{missing[0]}: features and labels disagree on who is known at a cutoff"
        )


def build_training_table(
    tables: ShopTables,
    target: str,
    cutoffs: Iterable[object],
    *,
    feature_set: FeatureSet | None = None,
    label_config: LabelConfig = LabelConfig(),
    con: Engine | None = None,
) -> pd.DataFrame:
    """Features and the target's label for its population at every cutoff.

    Parameters
    ----------
    tables
        The shop's validated tables (with ``con``: their outline,
        ``features.engines.duckdb_engine.outline``, is enough).
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"`` (see :data:`TARGETS`).
    cutoffs
        Calendar dates; each one's horizon must be inside the data
        (:func:`monthly_cutoffs` makes such a series).
    feature_set
        Features to compute (in its order); every registered feature when ``None``.
    label_config
        Windows and tiers defining the labels and populations.
    con
        The engine where ``tables`` are registered (``features.engines.base``): a
        DuckDB connection or a ``SparkConnection``; a new DuckDB connection by default.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)``, one row per customer in the target's
        population at each cutoff; the feature columns, then the label column
        (``churned``, ``became_vip`` or ``reactivated``, bool), ``future_margin`` and
        ``future_revenue``. ``attrs`` holds ``target``, ``label``, ``population``, ``horizon_days``,
        ``feature_set`` and ``omitted_features``.

    Raises
    ------
    ValueError
        For an unknown target, or cutoffs whose horizon is not fully observed
        (named, with the last data date).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: choose one of {sorted(TARGETS)}")
    dates = as_dates(cutoffs)
    if not dates:
        raise ValueError("no cutoffs given: pass at least one date (see monthly_cutoffs)")
    check_observed(tables, dates, label_config.horizon_days)
    con = connect(tables) if con is None else con
    labels = build_labels(tables, dates, label_config, con=con)
    features = build_feature_table_from(con, dates, feature_set=feature_set)
    return join_training_table(features, labels, target, label_config, feature_set)


def join_training_table(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    target: str,
    label_config: LabelConfig,
    feature_set: FeatureSet | None = None,
) -> pd.DataFrame:
    """Features of the target's labelled population joined with its label and future value.

    The last step of :func:`build_training_table`.
    """
    label = TARGETS[target]
    population = labels.loc[labels[label].notna(), [label, *VALUE_COLUMNS]]
    check_features_cover(population.index, features)
    table = features.loc[population.index].copy()
    table[label] = population[label].astype("bool")
    for name in VALUE_COLUMNS:
        table[name] = population[name]
    table.attrs = {
        "target": target,
        "label": label,
        "population": POPULATIONS[target],
        "horizon_days": label_config.horizon_days,
        "feature_set": None if feature_set is None else feature_set.name,
        "omitted_features": list(features.attrs.get("omitted_features", [])),
    }
    return table


def build_scoring_frame(
    tables: ShopTables,
    as_of: dt.date | str,
    feature_set: FeatureSet | None = None,
    *,
    label_config: LabelConfig = LabelConfig(),
    con: Engine | None = None,
    summary: bool = False,
) -> pd.DataFrame:
    """Features of every known customer at ``as_of``, with their status, for scoring.

    ``con`` is the engine where ``tables`` are registered; a new DuckDB
    connection by default (see :func:`build_scoring_frame_from` for an engine
    whose tables are not in memory, and for ``summary``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``: the feature columns, then ``is_active``,
        ``is_lapsed``, ``is_vip``, ``tier`` and ``trailing_margin`` (see
        ``features.labels.customer_status``), so serving can pick each model's
        population and show tiers with the same definitions training used.
    """
    dates = one_date(as_of)
    con = connect(tables) if con is None else con
    features = build_feature_table_from(con, dates, feature_set=feature_set)
    return _with_status(features, tables, dates[0], label_config, con, feature_set, summary)


def build_scoring_frame_from(
    con: Engine,
    as_of: dt.date | str,
    feature_set: FeatureSet | None = None,
    *,
    tables: ShopTables | None = None,
    label_config: LabelConfig = LabelConfig(),
    summary: bool = False,
    status: pa.Table | None = None,
) -> pd.DataFrame:
    """:func:`build_scoring_frame` from contract views already registered on ``con``.

    With ``features.engines.duckdb_engine.connect_parquet`` (or a ``SparkConnection``)
    the tables are read in place and never become pandas frames (a million
    customers' 23M events take about 3 GB as frames). ``tables`` is the outline
    of ``con`` (``features.engines.duckdb_engine.outline``; made when not given):
    only its columns are read. With ``summary`` the frame also gets the purchase
    summary (``features.labels.SUMMARY_COLUMNS``) when the status query can give
    it (DuckDB, same customers); the caller checks for the columns. ``status``:
    what :func:`scoring_status` returned for the same date and options, when the
    caller ran it already.
    """
    dates = one_date(as_of)
    features = build_feature_table_from(con, dates, feature_set=feature_set)
    tables = outline(con) if tables is None else tables
    if status is None:
        return _with_status(features, tables, dates[0], label_config, con, feature_set, summary)
    return _attach_status(features, status, tables, dates[0], label_config, con, feature_set)


def scoring_status(
    con: Engine,
    as_of: dt.date | str,
    *,
    tables: ShopTables | None = None,
    label_config: LabelConfig = LabelConfig(),
    summary: bool = False,
) -> pa.Table | None:
    """The status query of :func:`build_scoring_frame_from` on its own; ``None`` off DuckDB.

    It reads only the lines, not the features, so a caller can run it before the
    feature query, while something else runs beside it (``winback score`` loads
    the models meanwhile), and hand the result to
    :func:`build_scoring_frame_from` as ``status``.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return None
    tables = outline(con) if tables is None else tables
    return _sorted_status(tables, one_date(as_of)[0], label_config, con, summary)


def one_date(as_of: object) -> list[dt.date]:
    """``as_of`` as a one-element list of dates; ``ValueError`` for anything else."""
    dates = as_dates(as_of)
    if len(dates) != 1:
        raise ValueError(f"as_of must be one date, got {as_of!r}")
    return dates


def join_scoring_frame(
    features: pd.DataFrame,
    status: pd.DataFrame,
    as_of: dt.date,
    feature_set: FeatureSet | None = None,
) -> pd.DataFrame:
    """Features at one cutoff joined with each customer's status, indexed by ``customer_id``.

    The last step of :func:`build_scoring_frame` when features and status list different customers.
    """
    frame = features.join(status, how="left").droplevel("cutoff")
    frame.attrs = _scoring_attrs(features, as_of, feature_set)
    return frame


def _scoring_attrs(
    features: pd.DataFrame, as_of: dt.date, feature_set: FeatureSet | None
) -> dict[str, object]:
    """What a scoring frame says about itself: its date, feature set and omitted features."""
    return {
        "as_of": str(as_of),
        "feature_set": None if feature_set is None else feature_set.name,
        "omitted_features": list(features.attrs.get("omitted_features", [])),
    }


def _with_status(
    features: pd.DataFrame,
    tables: ShopTables,
    as_of: dt.date,
    label_config: LabelConfig,
    con: Engine,
    feature_set: FeatureSet | None,
    summary: bool = False,
) -> pd.DataFrame:
    """The scoring frame: features of one date with each customer's status attached.

    The status of :func:`features.labels.customer_status`, computed by one query
    sorted like the features and attached by position when both list the same
    customers (they do: both are the customers with a purchase by ``as_of``), so
    a million customers' string ids are never indexed, sorted or aligned in
    pandas. Any other case, and any engine but DuckDB (the one query nests
    ``WITH`` clauses, which Spark SQL refuses), goes through ``customer_status``
    and a join.
    """
    fast = isinstance(con, duckdb.DuckDBPyConnection)
    status = _sorted_status(tables, as_of, label_config, con, summary) if fast else None
    return _attach_status(features, status, tables, as_of, label_config, con, feature_set)


def _attach_status(
    features: pd.DataFrame,
    status: pa.Table | None,
    tables: ShopTables,
    as_of: dt.date,
    label_config: LabelConfig,
    con: Engine,
    feature_set: FeatureSet | None,
) -> pd.DataFrame:
    """``status`` (:func:`_sorted_status`) put on by position when it lists the features'
    customers; otherwise ``customer_status`` joined by key."""
    ids = features.index.get_level_values("customer_id")
    same = (
        status is not None
        and len(ids) == status.num_rows
        and _large_strings(ids).equals(_large_strings(status.column("customer_id")))
    )
    if not same:
        joined = customer_status(tables, [as_of], label_config, con=con)
        return join_scoring_frame(features, joined, as_of, feature_set)
    frame = features.droplevel("cutoff")
    columns = _status_columns(status, label_config.tiers)
    frame = pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
    frame.attrs = _scoring_attrs(features, as_of, feature_set)
    return frame


def _large_strings(values: object) -> pa.Array:
    """``values`` (pandas strings or an Arrow column) as one Arrow ``large_string`` array."""
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def _sorted_status(
    tables: ShopTables,
    as_of: dt.date,
    config: LabelConfig,
    con: duckdb.DuckDBPyConnection,
    summary: bool = False,
) -> pa.Table:
    """Status and trailing margin of every customer at ``as_of``, sorted by ``customer_id``.

    The values of ``customer_status`` from one scan of the lines
    (``features.labels.scoring_status_sql``); ``ranked`` says whether the
    customer is in the tier ranking (a purchase inside the trailing window).
    With ``summary`` also the purchase summary of ``features.value_table``.
    Grouped by the integer customer keys when the tables carry them.
    """
    keyed = has_customer_keys(con, table_columns(con))
    sql = scoring_status_sql(tables, as_of, config, summary=summary, keyed=keyed)
    return con.sql(sql).to_arrow_table()


def _status_columns(status: pa.Table, tiers: TierConfig) -> dict[str, object]:
    """The ``STATUS_COLUMNS`` as ``customer_status`` gives them, from :func:`_sorted_status`."""
    ranked = status.column("ranked").to_numpy(zero_copy_only=False).astype(bool)
    margin = status.column("trailing_margin").cast(pa.float64()).fill_null(0.0).to_numpy()
    margin = np.where(ranked, np.nan_to_num(margin, nan=0.0), 0.0)
    names = np.full(len(margin), None, dtype=object)
    rows = np.flatnonzero(ranked)
    if len(rows):
        names[rows] = assign_tiers(pd.Series(margin[rows]), tiers).to_numpy(object)
    tier = pd.array(names, dtype="string")
    flags = {c: status.column(c).to_numpy(zero_copy_only=False).astype(bool) for c in STATUS_FLAGS}
    summary = {c: status.column(c).to_numpy() for c in SUMMARY_COLUMNS if c in status.column_names}
    return {
        **flags,
        "is_vip": np.isin(names, list(tiers.vip_tiers)),
        "tier": tier,
        "trailing_margin": margin,
        **summary,
    }
