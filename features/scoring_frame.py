"""Scoring frames: features of every customer at one date, with the status serving needs.

The status (active, lapsed, VIP, tier, trailing margin; ``features.labels.customer_status``)
and, for a value champion, the BG/NBD purchase summary come with the features
from the feature query itself on DuckDB (``features.status_features``), so
the lines are not read again. When an order's lines fall on two dates, or the
tier window has no margin parts in the query, the status comes from one more
scan of the lines (``features.labels.scoring_status_sql``); off DuckDB from
``customer_status`` and a join.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import build_feature_table_from, custom_of
from features.definitions import FeatureDefinition, registry, resolve
from features.engines.base import Engine
from features.engines.duckdb_engine import connect, has_customer_keys, outline, table_columns
from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.labels import (
    STATUS_COLUMNS,
    SUMMARY_COLUMNS,
    LabelConfig,
    customer_status,
    scoring_status_sql,
)
from features.status_features import (
    STATUS_FLAGS,
    status_columns,
    status_definitions,
    status_from_features,
)
from features.tiers import TierConfig, as_dates


@dataclass(frozen=True)
class FrameAhead:
    """A scoring frame of every feature the shop's tables give, built before the models are known.

    ``winback score`` builds it while the models load (:func:`scoring_frame_ahead`);
    :func:`build_scoring_frame_from` then takes the models' features from it.
    ``custom``: the user-defined features it was built with.
    """

    frame: pd.DataFrame
    custom: tuple[FeatureDefinition, ...]


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
    return _scoring_frame(con, tables, dates[0], label_config, feature_set, summary)


def build_scoring_frame_from(
    con: Engine,
    as_of: dt.date | str,
    feature_set: FeatureSet | None = None,
    *,
    tables: ShopTables | None = None,
    label_config: LabelConfig = LabelConfig(),
    summary: bool = False,
    ahead: FrameAhead | None = None,
) -> pd.DataFrame:
    """:func:`build_scoring_frame` from contract views already registered on ``con``.

    With ``features.engines.duckdb_engine.connect_parquet`` (or a ``SparkConnection``)
    the tables are read in place and never become pandas frames (a million
    customers' 23M events take about 3 GB as frames). ``tables`` is the outline
    of ``con`` (``features.engines.duckdb_engine.outline``; made when not given):
    only its columns are read. With ``summary`` the frame also gets the purchase
    summary (``features.labels.SUMMARY_COLUMNS``) when DuckDB can give it; the
    caller checks for the columns. ``ahead``: what :func:`scoring_frame_ahead`
    returned for the same date and options, when the caller ran it already;
    only the features it lacks are queried.
    """
    dates = one_date(as_of)
    if ahead is not None:
        return _from_ahead(ahead, con, dates[0], feature_set)
    tables = outline(con) if tables is None else tables
    return _scoring_frame(con, tables, dates[0], label_config, feature_set, summary)


def scoring_frame_ahead(
    con: Engine,
    as_of: dt.date | str,
    *,
    tables: ShopTables | None = None,
    label_config: LabelConfig = LabelConfig(),
    summary: bool = False,
) -> FrameAhead | None:
    """The scoring frame of every feature the tables give, with the status; ``None`` off DuckDB.

    It needs no model, so a caller can build it while something else runs
    beside it (``winback score`` loads the models meanwhile), and hand it to
    :func:`build_scoring_frame_from` as ``ahead``. The user-defined features
    active in this context are among its features.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return None
    tables = outline(con) if tables is None else tables
    frame = _scoring_frame(con, tables, one_date(as_of)[0], label_config, None, summary)
    return FrameAhead(frame, tuple(custom_of(None)))


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
    frame.attrs = _scoring_attrs(features.attrs, as_of, feature_set)
    return frame


def _scoring_attrs(
    attrs: dict, as_of: dt.date, feature_set: FeatureSet | None
) -> dict[str, object]:
    """What a scoring frame says about itself: its date, feature set and omitted features."""
    return {
        "as_of": str(as_of),
        "feature_set": None if feature_set is None else feature_set.name,
        "omitted_features": list(attrs.get("omitted_features", [])),
    }


def _scoring_frame(
    con: Engine,
    tables: ShopTables,
    as_of: dt.date,
    label_config: LabelConfig,
    feature_set: FeatureSet | None,
    summary: bool,
) -> pd.DataFrame:
    """Features of ``feature_set`` (every one when ``None``) at ``as_of`` and the status.

    On DuckDB the query computes the status parts too (``features.status_features``);
    when they cannot give the status, or on another engine, :func:`_with_status` does.
    The rows are sorted after the fetch (``sort_in_query=False`` of
    ``features.build.build_feature_table_from``, the default for one cutoff): the
    window and category features come from a second query (``features.late_features``).
    """
    parts = None
    if isinstance(con, duckdb.DuckDBPyConnection):
        columns = tables.transactions.columns
        parts = status_definitions(columns, label_config, summary=summary)
    if parts is None:
        features = build_feature_table_from(
            con, [as_of], feature_set=feature_set, sort_in_query=False
        )
        return _with_status(features, tables, as_of, label_config, con, feature_set, summary)
    requested = set(_with_parts(feature_set, ()).names)
    wanted = _with_parts(feature_set, parts)
    features = build_feature_table_from(con, [as_of], feature_set=wanted, sort_in_query=False)
    status = status_from_features(features, label_config)
    features = features.drop(columns=[d.name for d in parts if d.name not in requested])
    if status is None:  # an order's lines on two dates: the line query gives the status
        return _with_status(features, tables, as_of, label_config, con, feature_set, summary)
    if not summary:  # its parts can be among the requested features
        status = {name: v for name, v in status.items() if name not in SUMMARY_COLUMNS}
    frame = features.droplevel("cutoff")
    frame = pd.concat([frame, pd.DataFrame(status, index=frame.index)], axis=1)
    frame.attrs = _scoring_attrs(features.attrs, as_of, feature_set)
    return frame


def _with_parts(feature_set: FeatureSet | None, parts: tuple[FeatureDefinition, ...]) -> FeatureSet:
    """``feature_set`` (every registered and active user-defined feature when ``None``)
    with ``parts`` computed beside it (registered features by name, the others as
    user-defined ones)."""
    if feature_set is None:
        every = (*registry().values(), *custom_of(None))
        feature_set = FeatureSet("all", tuple((d.name, d.dtype) for d in every), custom_of(None))
    more = [d for d in parts if d.name not in feature_set.names]
    columns = feature_set.columns + tuple((d.name, d.dtype) for d in more)
    custom = (*feature_set.custom, *(d for d in more if d.name not in registry()))
    return FeatureSet(feature_set.name, columns, custom)


def _from_ahead(
    ahead: FrameAhead, con: Engine, as_of: dt.date, feature_set: FeatureSet | None
) -> pd.DataFrame:
    """The scoring frame of ``feature_set`` from ``ahead``, querying only the features it lacks.

    A user-defined feature is taken from it only when built from the same
    definition; the features ``feature_set`` does not name are left out.
    """
    given, feature_set = feature_set, feature_set or _with_parts(None, ())
    custom = custom_of(feature_set)
    available, omitted = resolve(feature_set.names, table_columns(con), extra=custom)
    redo = {d.name for d in custom if d not in ahead.custom}
    frame = ahead.frame
    missing = [d.name for d in available if d.name in redo or d.name not in frame.columns]
    context = (*STATUS_COLUMNS, *SUMMARY_COLUMNS)
    wanted = set(feature_set.names) - set(missing)
    frame = frame[[c for c in frame.columns if c in wanted or c in context]]
    if missing:
        extra = build_feature_table_from(con, [as_of], feature_set=feature_set.subset(missing))
        extra = extra.droplevel("cutoff")
        if not extra.index.equals(frame.index):
            raise ValueError("the features queried after the others list other customers")
        frame = pd.concat([frame, extra], axis=1)
    frame.attrs = _scoring_attrs({"omitted_features": omitted}, as_of, given)
    return frame


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
    frame.attrs = _scoring_attrs(features.attrs, as_of, feature_set)
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
    flags = {c: status.column(c).to_numpy(zero_copy_only=False).astype(bool) for c in STATUS_FLAGS}
    summary = {c: status.column(c).to_numpy() for c in SUMMARY_COLUMNS if c in status.column_names}
    return status_columns(flags, ranked, np.nan_to_num(margin, nan=0.0), tiers, summary)
