"""Build point-in-time features for one or many cutoffs in one DuckDB query.

The definitions in ``features.families`` are portable SQL aggregates; this
module composes the ones requested into a single query over the contract views
registered by ``features.engines.duckdb_engine`` and a ``cutoffs`` relation (one ``DATE``
column), so a training table over 30 cutoffs is one query, not 30.

Point in time: an event belongs to a cutoff when its timestamp is before the
start of the day after the cutoff (``*_at < cutoff + 1 day``); ``age_days``
is the whole number of days from the event's date to the cutoff date. The
population of a cutoff is every customer with at least one purchase
(non-return) line on or before it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pandas as pd

from features.custom.windowed import windowed_sql
from features.definitions import RELATIONS, FeatureDefinition, dependency, resolve
from features.engines.base import Engine
from features.engines.category_sums import register_category_sums, unregister_category_sums
from features.engines.duckdb_engine import (
    connect,
    has_customer_keys,
    has_order_table,
    table_columns,
)
from features.feature_sets import FeatureSet
from features.inputs.keys import CUSTOMER_KEY, KEYS_TABLE, ORDERS_TABLE
from features.inputs.schema import SCHEMAS, ShopTables
from features.relations import (
    EVENT_TABLES,
    Shape,
    category_sql,
    event_sql,
    lines_sql,
    order_gaps_sql,
    orders_sql,
    product_sql,
    returned_lines_sql,
)
from features.result_frame import (
    canonical_frame,
    frame_from_arrow,
    ids_by_key,
    release_cached_memory,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """Tables derived from the lines that a keyed query reads instead of grouping the lines.

    ``order_table``: the order rows and their gaps from the registered ``purchase_orders``
    (``features.inputs.order_table``). ``category_sums``: the two groupings of the
    ``customer_categories`` relation from the tables ``features.engines.category_sums``
    registers (one cutoff only). Either way the values are the same.
    """

    order_table: bool = False
    category_sums: bool = False


def _relation_ctes(
    by_relation: dict[str, list[FeatureDefinition]],
    tx: Collection[str],
    shape: Shape,
    sources: Sources = Sources(),
) -> list[tuple[str, str]]:
    """The ``rel_<name>`` CTEs of the relations the definitions use, in dependency order.

    The ``order_days`` definitions join the ``orders`` ones (one grouping over the
    order rows with their gaps); ``by_relation`` is updated to say so. ``sources``
    says which groupings are read from derived tables instead.
    """
    ctes: list[tuple[str, str]] = []
    on_orders = [d.expression for d in by_relation["orders"] + by_relation["order_days"]]
    gaps = bool(by_relation["order_days"])
    by_relation["orders"] += by_relation.pop("order_days")
    if sources.order_table:
        sql = orders_sql(tx, shape, on_orders, order_table=ORDERS_TABLE, gaps=gaps)
        ctes.append(("rel_orders", sql))
    elif gaps:
        ctes += [
            ("rel_order_rows", orders_sql(tx, shape, on_orders)),
            ("rel_orders", order_gaps_sql(shape)),
        ]
    else:
        ctes.append(("rel_orders", orders_sql(tx, shape, on_orders)))
    if by_relation["lines"]:
        ctes.append(("rel_lines", lines_sql(tx, shape)))
    if by_relation["returned_lines"]:
        ctes.append(("rel_returned_lines", returned_lines_sql(tx, shape)))
    if by_relation["customer_categories"]:
        ctes += category_sql(tx, shape, sums=sources.category_sums)
    if by_relation["customer_products"]:
        ctes.append(("rel_customer_products", product_sql(tx, shape)))
    for table in EVENT_TABLES:
        if by_relation[table]:
            ctes.append((f"rel_{table}", event_sql(table, shape)))
    return ctes


def feature_query(
    definitions: Sequence[FeatureDefinition],
    columns: Mapping[str, Collection[str]],
    *,
    cutoff: date | None = None,
    keyed: bool = False,
    by_key: bool = False,
    sources: Sources = Sources(),
    sort: bool = True,
) -> str:
    """The SQL text computing ``definitions`` for every cutoff in the ``cutoffs`` relation.

    Parameters
    ----------
    definitions
        Features to compute, all computable from ``columns`` (``features.definitions.resolve``).
    columns
        Column names of each present contract table.
    cutoff
        One cutoff date to compute instead: the query then reads no ``cutoffs``
        relation, filters the events against this date and groups by
        ``customer_id`` alone (faster; same values and columns).
    keyed
        Group and join by the integer ``customer_key`` and ``order_key`` that
        every table carries (``features.inputs.keys``), mapping back to
        ``customer_id`` through the ``customer_keys`` relation for the output
        (faster; same values and columns). See
        ``features.engines.duckdb_engine.has_customer_keys``.
    by_key
        With ``keyed``: return ``customer_key`` in place of ``customer_id`` (sorted
        the same way); the build looks the ids up by key after the fetch.
    sources
        With ``keyed``: the derived tables registered on the connection to read
        instead of grouping the lines (:class:`Sources`; same values and
        columns). See ``features.engines.duckdb_engine.has_order_table`` and
        ``features.engines.category_sums``.
    sort
        Sort the rows; only with ``by_key`` may it be ``False``: the fetch then
        sorts them by key (``features.result_frame.frame_from_arrow``).

    Returns
    -------
    str
        One ``SELECT`` returning ``cutoff``, ``customer_id`` (``customer_key``
        with ``by_key``) and one column per feature in the given order, sorted
        by ``(cutoff, customer_id)`` (unsorted without ``sort``). It is
        DuckDB SQL that ``sqlglot.transpile(sql, read="duckdb", write="spark")``
        turns into Spark SQL.
    """
    tx = columns["transactions"]
    by_relation: dict[str, list[FeatureDefinition]] = {r: [] for r in RELATIONS}
    for d in definitions:
        by_relation[d.relation].append(d)
    # Dependencies of derived features (features or parts) are computed, not returned.
    chosen = {d.name for d in definitions}
    for d in definitions:
        for dep in d.depends_on:
            if dep not in chosen:
                chosen.add(dep)
                by_relation[dependency(dep).relation].insert(0, dependency(dep))

    if (sources.order_table or sources.category_sums) and not keyed:
        raise ValueError("derived tables are keyed: pass keyed=True with sources")
    if not (sort or by_key):
        raise ValueError("only rows by key can be sorted after the fetch: pass by_key=True")
    shape = Shape(cutoff, keyed=keyed)
    ctes = _relation_ctes(by_relation, tx, shape, sources)
    aggregates = _aggregates(by_relation, shape)
    # Windowed aggregates (user-defined features among them) bring their own CTEs and joins.
    extra = windowed_sql(by_relation["windowed"], columns, shape)  # type: ignore[arg-type]
    ctes += aggregates.ctes + extra.ctes
    names = [d.name for defs in by_relation.values() for d in defs if d.name in aggregates.columns]
    ctes.append(("joined", _joined_sql(aggregates, names, shape, extra.columns, extra.joins)))
    windowed = [d for d in definitions if d.relation == "derived" and _WINDOW.search(d.expression)]
    if windowed:
        ctes += _window_ctes(windowed, aggregates, shape)
    outputs = [_output_column(d, windowed=d in windowed) for d in definitions]
    body = ",\n".join(f"{name} AS (\n  {sql}\n)" for name, sql in ctes)
    select = _output_sql(shape, outputs, windows=bool(windowed), by_key=by_key, sort=sort)
    return f"WITH {body}\n" + select


def _output_column(definition: FeatureDefinition, *, windowed: bool) -> str:
    """A feature's column in the final ``SELECT``; numbers as ``DOUBLE``.

    Sums of money are exact up to here (integers of ten-thousandths,
    ``features.relations.money_e4``, or decimals: the same bits whatever the
    thread count); as doubles the sorted result and its Arrow copy take half the
    memory of 16-byte decimals, and the frame needs no conversion.
    """
    name = definition.name
    if windowed:
        value = f"windows.{name}"
    else:
        value = definition.expression if definition.relation == "derived" else name
    if definition.relation == "windowed" or definition.dtype == "category":
        # a windowed (e.g. user-defined) aggregate keeps its type: its check reads it
        return value if value == name else f"{value} AS {name}"
    return f"CAST({value} AS DOUBLE) AS {name}"


#: A window function (``... OVER (...)``) in a derived feature's expression.
_WINDOW = re.compile(r"\bOVER\s*\(", re.IGNORECASE)


@dataclass(frozen=True)
class _Aggregates:
    """The ``agg_<relation>`` CTEs, and for each aggregate its relation and column in ``joined``."""

    ctes: list[tuple[str, str]]
    columns: dict[str, tuple[str, str]]
    joins: dict[str, str]


def _aggregates(by_relation: dict[str, list[FeatureDefinition]], shape: Shape) -> _Aggregates:
    """One grouping per relation by the keys; every relation is left-joined to ``agg_orders``."""
    out = _Aggregates([], {}, {})
    for relation, defs in by_relation.items():
        if relation in ("derived", "windowed") or (not defs and relation != "orders"):
            continue
        keys = (shape.customer,) if relation == "customers" else shape.keys
        source = "customers" if relation == "customers" else f"rel_{relation}"
        select = ", ".join(keys) + "".join(f",\n    {d.expression} AS {d.name}" for d in defs)
        group = ", ".join(keys)
        out.ctes.append((f"agg_{relation}", f"SELECT {select}\n  FROM {source} GROUP BY {group}"))
        for d in defs:
            col = f"agg_{relation}.{d.name}"
            col = f"COALESCE({col}, 0) AS {d.name}" if d.zero_when_absent else col
            out.columns[d.name] = (relation, col)
        if relation != "orders":
            on = " AND ".join(f"agg_{relation}.{k} = agg_orders.{k}" for k in keys)
            out.joins[relation] = f"  LEFT JOIN agg_{relation} ON {on}"
    return out


def _joined_sql(
    aggregates: _Aggregates,
    names: Sequence[str],
    shape: Shape,
    extra_columns: Sequence[str] = (),
    extra_joins: Sequence[str] = (),
) -> str:
    """The population's rows (``agg_orders``) with the aggregates ``names`` joined on."""
    used = [aggregates.columns[n] for n in names]
    relations = dict.fromkeys(r for r, _ in used if r != "orders")
    select = [f"agg_orders.{k}" for k in shape.keys] + [c for _, c in used] + list(extra_columns)
    joins = [aggregates.joins[r] for r in relations] + list(extra_joins)
    return "SELECT " + ",\n    ".join(select) + "\n  FROM agg_orders\n" + "\n".join(joins)


def _window_ctes(
    windowed: Sequence[FeatureDefinition], aggregates: _Aggregates, shape: Shape
) -> list[tuple[str, str]]:
    """The ``windows`` CTE: derived features with a window function, on narrow rows.

    A window buffers every column of its input, and on the ``joined`` rows
    (every feature) that took a quarter of the query at a million customers and
    pushed it past its memory limit. These rows hold only what the windows read.
    """
    needed = list(dict.fromkeys(n for d in windowed for n in d.depends_on))
    inputs = _joined_sql(aggregates, needed, shape)
    if shape.single:  # the windows partition by cutoff, a constant here
        inputs = inputs.replace("SELECT ", f"SELECT {shape.cutoff} AS cutoff, ", 1)
    select = ", ".join(shape.keys) + "".join(f",\n    {d.expression} AS {d.name}" for d in windowed)
    return [("window_inputs", inputs), ("windows", f"SELECT {select}\n  FROM window_inputs")]


def _output_sql(
    shape: Shape,
    outputs: Sequence[str],
    *,
    windows: bool = False,
    by_key: bool = False,
    sort: bool = True,
) -> str:
    """The final ``SELECT`` of ``cutoff``, the customer and the features, sorted by both.

    Keyed, the rows are sorted by ``customer_key``: the keys are assigned in the
    ids' sorted order, so that sorts by ``customer_id`` (integers compare faster
    than strings), and ``customer_id`` comes from ``customer_keys``; with
    ``by_key`` the rows keep ``customer_key`` instead, and the fetch looks the
    ids up by key (no join of a million strings in SQL). Without ``sort`` there
    is no ``ORDER BY`` (see :func:`build_feature_table_from`). With ``windows``
    the ``windows`` CTE is joined on.
    """
    cutoff = f"{shape.cutoff} AS cutoff" if shape.single else "joined.cutoff"
    source, customer = "joined", f"joined.{shape.customer}"
    if windows:
        on = " AND ".join(f"windows.{k} = joined.{k}" for k in shape.keys)
        source += f"\n  LEFT JOIN windows ON {on}"
    if shape.keyed and not by_key:
        source += f"\n  LEFT JOIN {KEYS_TABLE} AS k ON k.{CUSTOMER_KEY} = joined.{CUSTOMER_KEY}"
        customer = "k.customer_id"
    order = ", ".join(f"joined.{k}" for k in shape.keys)
    return (
        f"SELECT {cutoff}, {customer}"
        + "".join(f",\n  {o}" for o in outputs)
        + f"\nFROM {source}"
        + (f"\nORDER BY {order}" if sort else "")
    )


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
    without a set, those active in this context (``features.custom.use_custom_features``).
    """
    from features.custom.spec import active_custom_features

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
    sort_in_query: bool = True,
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
    buffers and the whole result then sit in memory at once: ~180 MiB more at
    the peak. DuckDB's sort spills; the result beside its buffers cannot.
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
    sources = Sources(
        order_table=has_order_table(con, columns),
        category_sums=keyed and register_category_sums(con, definitions, single, columns),
    )
    sql = feature_query(
        definitions,
        columns,
        cutoff=single,
        keyed=keyed,
        by_key=keyed,
        sources=sources,
        sort=sort_in_query or not keyed,
    )
    try:
        out = _fetch(con, sql, definitions, by_key=keyed)
    finally:
        if sources.category_sums:
            unregister_category_sums(con)  # type: ignore[arg-type]
    out.attrs["omitted_features"] = list(notes)
    return out


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
