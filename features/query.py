"""The SQL text of a feature build: the definitions composed into one DuckDB query.

The definitions in ``features.families`` are portable SQL aggregates; this
module composes the ones requested into a single query over the contract views
registered by ``features.engines.duckdb_engine`` and a ``cutoffs`` relation (one ``DATE``
column): one CTE per relation (``features.relations``), one grouping per relation by
the keys, the groupings joined to the population (``agg_orders``), the window
features on narrow rows, and the output columns. ``features.build`` runs it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from features.custom.windowed import windowed_sql
from features.definitions import RELATIONS, FeatureDefinition, dependency
from features.inputs.keys import CUSTOMER_KEY, KEYS_TABLE, ORDERS_TABLE
from features.relations import (
    EVENT_TABLES,
    RETURNED_LINES_TABLE,
    Shape,
    category_sql,
    event_sql,
    lines_sql,
    order_gaps_sql,
    orders_sql,
    product_sql,
    returned_lines_sql,
)


@dataclass(frozen=True)
class Sources:
    """Tables derived from the lines that a keyed query reads instead of grouping the lines.

    ``order_table``: the order rows and their gaps from the registered ``purchase_orders``
    (``features.inputs.order_table``). ``category_sums``: the two groupings of the
    ``customer_categories`` relation from the tables ``features.engines.line_sums``
    registers (one cutoff only). Either way the values are the same. ``population``: a
    registered table of the population's rows (keys and the features a first query
    computed, ``features.late_features``) standing in for the orders relation: what the
    definitions read that they do not compute themselves is read from its columns.
    ``returned_lines``: the ``returned_lines`` rows from the table
    ``features.engines.line_sums`` registers (one cutoff only).
    """

    order_table: bool = False
    category_sums: bool = False
    population: str | None = None
    returned_lines: bool = False


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
    if sources.population is not None:
        pass  # the population's rows stand in for the order relation (:func:`_aggregates`)
    elif sources.order_table:
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
        table = RETURNED_LINES_TABLE if sources.returned_lines else None
        ctes.append(("rel_returned_lines", returned_lines_sql(tx, shape, table=table)))
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
        ``features.engines.line_sums``.
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
    derived = sources.order_table or sources.category_sums or sources.returned_lines
    if (derived or sources.population) and not keyed:
        raise ValueError("derived tables are keyed: pass keyed=True with sources")
    by_relation = _by_relation(definitions, sources.population is not None)
    if not (sort or by_key):
        raise ValueError("only rows by key can be sorted after the fetch: pass by_key=True")
    shape = Shape(cutoff, keyed=keyed)
    ctes = _relation_ctes(by_relation, tx, shape, sources)
    aggregates = _aggregates(by_relation, shape, sources.population)
    # Windowed aggregates (user-defined features among them) bring their own CTEs and joins.
    extra = windowed_sql(by_relation["windowed"], columns, shape)  # type: ignore[arg-type]
    ctes += aggregates.ctes + extra.ctes
    names = [d.name for defs in by_relation.values() for d in defs if d.name in aggregates.columns]
    ctes.append(("joined", _joined_sql(aggregates, names, shape, extra.columns, extra.joins)))
    windowed = [d for d in definitions if is_window_feature(d)]
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


def is_window_feature(definition: FeatureDefinition) -> bool:
    """A derived feature with a window function: it reads the whole population at its cutoff."""
    return definition.relation == "derived" and bool(_WINDOW.search(definition.expression))


@dataclass(frozen=True)
class _Aggregates:
    """The ``agg_<relation>`` CTEs, and for each aggregate its relation and column in ``joined``."""

    ctes: list[tuple[str, str]]
    columns: dict[str, tuple[str, str]]
    joins: dict[str, str]


def _by_relation(
    definitions: Sequence[FeatureDefinition], population: bool
) -> dict[str, list[FeatureDefinition]]:
    """The definitions by the relation they aggregate, with the ones they depend on.

    Dependencies of derived features (features or parts) are computed, not returned;
    with ``population`` those not computed here are read from the population's rows.
    """
    by_relation: dict[str, list[FeatureDefinition]] = {r: [] for r in RELATIONS}
    for d in definitions:
        by_relation[d.relation].append(d)
    chosen = {d.name for d in definitions}
    for d in definitions:
        for dep in d.depends_on:
            if dep not in chosen:
                chosen.add(dep)
                by_relation[dependency(dep).relation].insert(0, dependency(dep))
    return _read_from_population(by_relation, definitions) if population else by_relation


def _read_from_population(
    by_relation: dict[str, list[FeatureDefinition]], definitions: Sequence[FeatureDefinition]
) -> dict[str, list[FeatureDefinition]]:
    """``by_relation`` with every feature the definitions read but do not compute moved to
    ``orders``: they are columns of the population's rows (``Sources.population``)."""
    computed = {d.name for d in definitions}
    out: dict[str, list[FeatureDefinition]] = {r: [] for r in by_relation}
    for relation, defs in by_relation.items():
        for d in defs:
            here = d.name in computed or relation == "customer_categories"
            out[relation if here else "orders"].append(d)
    return out


def _aggregates(
    by_relation: dict[str, list[FeatureDefinition]], shape: Shape, population: str | None = None
) -> _Aggregates:
    """One grouping per relation by the keys; every relation is left-joined to ``agg_orders``.

    With ``population``, ``agg_orders`` is that table's rows, its columns the ``orders`` features.
    """
    out = _Aggregates([], {}, {})
    for relation, defs in by_relation.items():
        if relation in ("derived", "windowed") or (not defs and relation != "orders"):
            continue
        keys = (shape.customer,) if relation == "customers" else shape.keys
        source = "customers" if relation == "customers" else f"rel_{relation}"
        select = ", ".join(keys) + "".join(f",\n    {d.expression} AS {d.name}" for d in defs)
        group = ", ".join(keys)
        sql = f"SELECT {select}\n  FROM {source} GROUP BY {group}"
        if relation == "orders" and population is not None:
            sql = f"SELECT {', '.join([*keys, *(d.name for d in defs)])} FROM {population}"
        out.ctes.append((f"agg_{relation}", sql))
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
