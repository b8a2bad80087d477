"""Build point-in-time features for one or many cutoffs: the query run and its result fetched.

``features.query`` composes the requested definitions into one DuckDB query over the
contract views registered by ``features.engines.duckdb_engine`` and a ``cutoffs``
relation (one ``DATE`` column), so a training table over 30 cutoffs is one query, not
30; a keyed build of one cutoff runs two (``features.late_features``).

Point in time: an event belongs to a cutoff when its timestamp is before the
start of the day after the cutoff (``*_at < cutoff + 1 day``); ``age_days``
is the whole number of days from the event's date to the cutoff date. The
population of a cutoff is every customer with at least one purchase
(non-return) line on or before it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime

import duckdb
import pandas as pd

from features.definitions import FeatureDefinition, resolve
from features.engines.base import Engine
from features.engines.duckdb_engine import (
    connect,
    has_customer_keys,
    has_order_table,
    table_columns,
)
from features.engines.line_sums import register_line_sums_for, unregister_line_sums
from features.feature_sets import FeatureSet
from features.inputs.schema import SCHEMAS, ShopTables
from features.late_features import build_in_two_stages
from features.query import Sources, feature_query
from features.result_frame import (
    canonical_frame,
    frame_from_arrow,
    ids_by_key,
    release_cached_memory,
)

logger = logging.getLogger(__name__)


def _as_dates(cutoffs: Sequence[date]) -> list[date]:
    out = []
    for cutoff in cutoffs:
        if isinstance(cutoff, datetime):
            if (cutoff.hour, cutoff.minute, cutoff.second, cutoff.microsecond) != (0, 0, 0, 0):
                raise ValueError(
                    f"cutoff {cutoff!r} has a time of day; a cutoff is a calendar date "
                    "(pass cutoff.date())"
                )
            cutoff = cutoff.date()
        if not isinstance(cutoff, date):
            raise TypeError(f"cutoff {cutoff!r} is not a datetime.date")
        out.append(cutoff)
    if not out:
        raise ValueError("no cutoffs given: pass at least one datetime.date")
    return sorted(set(out))


def _requested(feature_set: FeatureSet | None) -> list[str] | None:
    return None if feature_set is None else feature_set.names


def custom_of(feature_set: FeatureSet | None) -> tuple[FeatureDefinition, ...]:
    """The user-defined features a build computes besides the registry's.

    Those the feature set carries (a model's, so it is built exactly as trained);
    without a set, those active in this context (``features.custom.active.use_custom_features``).
    """
    from features.custom.active import active_custom_features

    return active_custom_features() if feature_set is None else feature_set.custom


def _fetch(
    con: Engine, sql: str, definitions: Sequence[FeatureDefinition], *, by_key: bool = False
) -> pd.DataFrame:
    """The query's result as the canonical frame, sorted by ``(cutoff, customer_id)``.

    On DuckDB it comes through Arrow (``features.result_frame``, no Python string
    objects); other connections (``features.engines.spark_engine``) give a pandas frame
    (``canonical_frame``). With ``by_key`` (a query made with ``by_key``) the
    rows carry ``customer_key``, and the ids are looked up by key; such rows may
    come unsorted (a query made without ``sort``): the conversion sorts them by key.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return canonical_frame(con.execute(sql).df(), definitions)
    ids = ids_by_key(con) if by_key else None
    result = con.sql(sql).to_arrow_table()
    release_cached_memory(con)
    return frame_from_arrow(result, definitions, ids)


def build_feature_table_from(
    con: Engine,
    cutoffs: Sequence[date],
    *,
    feature_set: FeatureSet | None = None,
    sort_in_query: bool | None = None,
) -> pd.DataFrame:
    """Features for every cutoff from contract views already registered on ``con``.

    ``con`` is any engine (``features.engines.base``): use this with
    ``features.engines.duckdb_engine.connect_parquet`` to read Parquet files
    directly, or with a ``SparkConnection`` to run on Spark;
    :func:`build_feature_table` registers pandas tables first. Omitted
    features (absent table or column) are logged and listed in
    ``frame.attrs["omitted_features"]``.

    ``sort_in_query=False`` trades memory for CPU on a keyed DuckDB build
    (elsewhere the query sorts): the rows are sorted after the fetch, by the
    key column, each fetched column taken in that order. At a million customers
    that saves the query's sort of the wide rows (2-3 CPU s on one thread, and
    at a limit of about 1GB it spills them to disk), but the finished query's
    buffers and the whole result then sit in memory at once. With one cutoff the
    window and category features then come from a second query over the first's
    rows (``features.late_features``), which keeps the first query's memory down.
    ``None`` (the default): sorted after the fetch for a keyed build of one cutoff,
    in the query otherwise.
    """
    dates = _as_dates(cutoffs)
    columns = table_columns(con)
    if "transactions" not in columns:
        raise ValueError(
            "no 'transactions' view on the connection: register the tables with "
            "features.engines.duckdb_engine.connect or connect_parquet first"
        )
    definitions, notes = resolve(_requested(feature_set), columns, extra=custom_of(feature_set))
    for note in notes:
        logger.warning(note)
    con.execute("CREATE OR REPLACE TEMP TABLE cutoffs (cutoff DATE)")
    con.executemany("INSERT INTO cutoffs VALUES (?)", [(d,) for d in dates])
    single = dates[0] if len(dates) == 1 else None
    keyed = has_customer_keys(con, columns)
    order_table = has_order_table(con, columns)
    sort = (single is None) if sort_in_query is None else sort_in_query
    out = None
    if keyed and single is not None and not sort and isinstance(con, duckdb.DuckDBPyConnection):
        out = build_in_two_stages(con, definitions, columns, single, order_table=order_table)
    if out is None:
        out = _one_query(
            con, definitions, columns, single, keyed=keyed, order_table=order_table, sort=sort
        )
    out.attrs["omitted_features"] = list(notes)
    return out


def _one_query(
    con: Engine,
    definitions: Sequence[FeatureDefinition],
    columns: Mapping[str, Collection[str]],
    cutoff: date | None,
    *,
    keyed: bool,
    order_table: bool,
    sort: bool,
) -> pd.DataFrame:
    """The frame of ``definitions`` from one query (sorted in it unless keyed and not ``sort``)."""
    categories, returned = (
        register_line_sums_for(con, definitions, cutoff, columns) if keyed else (False, False)
    )
    sources = Sources(order_table=order_table, category_sums=categories, returned_lines=returned)
    sql = feature_query(
        definitions,
        columns,
        cutoff=cutoff,
        keyed=keyed,
        by_key=keyed,
        sources=sources,
        sort=sort or not keyed,
    )
    try:
        return _fetch(con, sql, definitions, by_key=keyed)
    finally:
        if sources.category_sums:
            unregister_line_sums(con)  # type: ignore[arg-type]


def build_feature_table(
    tables: ShopTables,
    cutoffs: Sequence[date],
    *,
    feature_set: FeatureSet | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Features of every customer at every cutoff: a training table in one query.

    Parameters
    ----------
    tables
        Validated shop tables; absent tables omit their features (with a note).
    cutoffs
        Calendar dates; features use events on or before each.
    feature_set
        The features to compute; every registered one when ``None``. Columns come
        out in registry order (select by name, e.g. ``frame[feature_set.names]``).
    con
        DuckDB connection to register the tables on; a new one by default.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(cutoff, customer_id)`` (``datetime64[s]``, string), sorted,
        one ``float64`` or ``category`` column per feature. Undefined values
        (e.g. gap spread with one purchase day) are NaN, never a fake 0.
    """
    return build_feature_table_from(connect(tables, con), cutoffs, feature_set=feature_set)


def build_features(
    tables: ShopTables,
    cutoff: date,
    *,
    feature_set: FeatureSet | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Features of every customer as of one cutoff, indexed by ``customer_id``.

    See :func:`build_feature_table`; this is the same for a single cutoff.
    """
    table = build_feature_table(tables, [cutoff], feature_set=feature_set, con=con)
    out = table.droplevel("cutoff")
    out.attrs = dict(table.attrs)
    return out


def available_features(tables: ShopTables) -> tuple[list[str], list[str]]:
    """Registered features computable from ``tables``, and a note per omitted one.

    Returns
    -------
    (names, notes)
        Available feature names in registry order, and one line per omitted
        feature naming the absent table or column.
    """
    columns = {
        name: [str(c) for c in frame.columns]
        for name, frame in tables.present().items()
        if name in SCHEMAS
    }
    definitions, notes = resolve(None, columns)
    return [d.name for d in definitions], notes
