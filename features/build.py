"""Build point-in-time features for one or many cutoffs in one DuckDB query.

The definitions in ``features.families`` are portable SQL aggregates; this
module composes the ones requested into a single query over the contract views
registered by ``features.engine`` and a ``cutoffs`` relation (one ``DATE``
column), so a training table over 30 cutoffs is one query, not 30.

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
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.engine import connect, table_columns
from features.feature_sets import FeatureSet
from features.registry import RELATIONS, FeatureDefinition, resolve
from features.schema import SCHEMAS, ShopTables

logger = logging.getLogger(__name__)

KEYS = ("cutoff", "customer_id")

# Relations in dependency order; each is a CTE named ``rel_<name>``.
_EVENT_TABLES = {
    "support_tickets": ("opened_at", ()),
    "referrals": ("referred_at", ()),
    "reviews": ("reviewed_at", ("rating",)),
    "engagement_events": ("occurred_at", ("event_type",)),
}


class _Shape:
    """How the relations meet the cutoffs: a join with ``cutoffs``, or one literal date.

    With one cutoff the events are filtered against a literal date and every
    grouping, window and join is by ``customer_id`` alone (no join with the
    ``cutoffs`` relation, one key less to hash and sort).
    """

    def __init__(self, cutoff: date | None) -> None:
        self.single = cutoff is not None
        self.cutoff = f"DATE '{cutoff.isoformat()}'" if cutoff is not None else "c.cutoff"
        self.keys: tuple[str, ...] = ("customer_id",) if cutoff is not None else KEYS
        self.by = ", ".join(self.keys)

    def age_days(self, column: str) -> str:
        return f"date_diff('day', CAST({column} AS DATE), {self.cutoff})"

    def events(self, table: str, alias: str, time_column: str) -> str:
        """``FROM`` (and ``WHERE``) of ``table``'s events on or before the cutoff(s)."""
        before = f"{alias}.{time_column} < CAST({self.cutoff} AS TIMESTAMP) + INTERVAL 1 DAY"
        if self.single:
            return f"FROM {table} AS {alias} WHERE {before}"
        return f"FROM {table} AS {alias} JOIN cutoffs AS c ON {before}"

    def select_keys(self, alias: str) -> str:
        return f"{alias}.customer_id" if self.single else f"c.cutoff, {alias}.customer_id"


def _is_return(tx_columns: Collection[str], alias: str) -> str:
    return f"COALESCE({alias}.is_return, FALSE)" if "is_return" in tx_columns else "FALSE"


def _lines_sql(tx_columns: Collection[str], shape: _Shape) -> str:
    """Every line on or before the cutoff, for the additive line sums (relation ``lines``).

    Spend, margin, discount and returns are sums over lines, so they are aggregated
    from the lines straight to the customer: no order grouping carries them.
    """
    extra = ""
    if "margin_amount" in tx_columns:
        extra += ", t.margin_amount"
    if "discount_amount" in tx_columns:
        extra += ", COALESCE(t.discount_amount, 0.0) AS discount_amount"
    return (
        f"SELECT {shape.select_keys('t')}, {shape.age_days('t.ordered_at')} AS age_days,"
        f" t.amount, {_is_return(tx_columns, 't')} AS is_return{extra}\n"
        f"  {shape.events('transactions', 't', 'ordered_at')}"
    )


def _orders_sql(tx_columns: Collection[str], shape: _Shape) -> str:
    """One narrow row per purchase order: its value, age and whether a line was discounted.

    Only the purchase (non-return) lines are read, so every order row is a purchase
    order and the customers with one are the population. The row carries only what
    needs the order level (counts, order values, gaps); the line sums live in ``lines``.
    """
    parts = [
        "SUM(t.amount) AS order_amount",
        f"MAX({shape.age_days('t.ordered_at')}) AS order_age_days",
    ]
    if "discount_amount" in tx_columns:
        parts.append(
            "MAX(CASE WHEN COALESCE(t.discount_amount, 0.0) > 0 THEN 1 ELSE 0 END)"
            " AS order_discounted"
        )
    purchased = f" AND NOT {_is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    keys = shape.select_keys("t")
    return (
        f"SELECT {keys}, t.order_id,\n    "
        + ",\n    ".join(parts)
        + f"\n  {shape.events('transactions', 't', 'ordered_at')}{purchased}"
        + f"\n  GROUP BY {keys}, t.order_id"
    )


def _order_gaps_sql(shape: _Shape) -> str:
    """Orders in time order with the days since the previous purchase order (``gap_days``).

    0 for another order the same day, so the non-zero gaps are the gaps between
    distinct purchase days. The window runs over the narrow order rows themselves,
    so ``order_days`` features are aggregated with the ``orders`` ones: no second
    grouping, no extra join, and the order relation is streamed once.
    """
    return (
        "SELECT *,\n"
        f"    LAG(order_age_days) OVER (PARTITION BY {shape.by}"
        " ORDER BY order_age_days DESC) - order_age_days AS gap_days\n"
        "  FROM rel_order_rows"
    )


def _category_sql(tx_columns: Collection[str], shape: _Shape) -> list[tuple[str, str]]:
    margin = "margin_amount" in tx_columns
    # Narrow scans of the purchased, categorised lines (filter pushed into the scan).
    # The shop-wide category margin rates get a scan of their own rather than a second
    # reader of the (customer, category) grouping: a relation read twice is
    # materialised, and that grouping has millions of rows.
    purchased = f" AND NOT {_is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    scan = (
        f"{shape.events('transactions', 't', 'ordered_at')}{purchased} AND t.category IS NOT NULL"
    )
    keys = shape.select_keys("t")
    spend = (
        f"SELECT {keys}, t.category, SUM(t.amount) AS category_amount\n"
        f"  {scan}\n  GROUP BY {keys}, t.category"
    )
    if not margin:
        return [("rel_customer_categories", spend)]
    cutoff_key = "" if shape.single else "c.cutoff, "
    totals = (
        f"SELECT {cutoff_key}t.category, SUM(t.amount) AS category_amount,"
        " SUM(t.margin_amount) AS category_margin_amount\n"
        f"  {scan}\n  GROUP BY {cutoff_key}t.category"
    )
    if shape.single:
        rates = (
            "SELECT r.category, CASE WHEN r.rate > s.rate THEN 1 ELSE 0 END AS high_margin\n"
            "  FROM (SELECT category, SUM(category_margin_amount)"
            " / NULLIF(SUM(category_amount), 0) AS rate\n"
            "        FROM rel_category_totals GROUP BY category) AS r\n"
            "  CROSS JOIN (SELECT SUM(category_margin_amount) / NULLIF(SUM(category_amount), 0)"
            " AS rate\n"
            "        FROM rel_category_totals) AS s"
        )
        on = "m.category = p.category"
    else:
        rates = (
            "SELECT r.cutoff, r.category,"
            " CASE WHEN r.rate > s.rate THEN 1 ELSE 0 END AS high_margin\n"
            "  FROM (SELECT cutoff, category, SUM(category_margin_amount)"
            " / NULLIF(SUM(category_amount), 0) AS rate\n"
            "        FROM rel_category_totals GROUP BY cutoff, category) AS r\n"
            "  JOIN (SELECT cutoff, SUM(category_margin_amount) / NULLIF(SUM(category_amount), 0)"
            " AS rate\n"
            "        FROM rel_category_totals GROUP BY cutoff) AS s ON s.cutoff = r.cutoff"
        )
        on = "m.cutoff = p.cutoff AND m.category = p.category"
    joined = (
        f"SELECT {', '.join('p.' + k for k in shape.keys)}, p.category, p.category_amount,"
        " m.high_margin\n"
        f"  FROM rel_category_spend AS p JOIN rel_category_margin AS m ON {on}"
    )
    return [
        ("rel_category_totals", totals),
        ("rel_category_margin", rates),
        ("rel_category_spend", spend),
        ("rel_customer_categories", joined),
    ]


def _event_sql(table: str, shape: _Shape) -> str:
    time_column, extra = _EVENT_TABLES[table]
    cols = "".join(f", e.{c}" for c in extra)
    return (
        f"SELECT {shape.select_keys('e')}, {shape.age_days('e.' + time_column)} AS age_days{cols}\n"
        f"  {shape.events(table, 'e', time_column)}"
    )


def feature_query(
    definitions: Sequence[FeatureDefinition],
    columns: Mapping[str, Collection[str]],
    *,
    cutoff: date | None = None,
) -> str:
    """The SQL text computing ``definitions`` for every cutoff in the ``cutoffs`` relation.

    Parameters
    ----------
    definitions
        Features to compute (all computable from ``columns``; see ``registry.resolve``).
    columns
        Column names of each present contract table.
    cutoff
        One cutoff date to compute instead: the query then reads no ``cutoffs``
        relation, filters the events against this date and groups by
        ``customer_id`` alone (faster; same values and columns).

    Returns
    -------
    str
        One ``SELECT`` returning ``cutoff``, ``customer_id`` and one column per
        feature in the given order, sorted by ``(cutoff, customer_id)``. It is
        DuckDB SQL that ``sqlglot.transpile(sql, read="duckdb", write="spark")``
        turns into Spark SQL.
    """
    tx = columns["transactions"]
    by_relation: dict[str, list[FeatureDefinition]] = {r: [] for r in RELATIONS}
    for d in definitions:
        by_relation[d.relation].append(d)
    # Dependencies of derived features are computed (but not returned) as well.
    from features.registry import registry

    chosen = {d.name for d in definitions}
    for d in definitions:
        for dep in d.depends_on:
            if dep not in chosen:
                chosen.add(dep)
                by_relation[registry()[dep].relation].insert(0, registry()[dep])

    shape = _Shape(cutoff)
    ctes: list[tuple[str, str]] = []
    if by_relation["order_days"]:
        ctes += [
            ("rel_order_rows", _orders_sql(tx, shape)),
            ("rel_orders", _order_gaps_sql(shape)),
        ]
        by_relation["orders"] += by_relation.pop("order_days")
    else:
        ctes.append(("rel_orders", _orders_sql(tx, shape)))
        by_relation.pop("order_days")
    if by_relation["lines"]:
        ctes.append(("rel_lines", _lines_sql(tx, shape)))
    if by_relation["customer_categories"]:
        ctes += _category_sql(tx, shape)
    for table in _EVENT_TABLES:
        if by_relation[table]:
            ctes.append((f"rel_{table}", _event_sql(table, shape)))

    joined_cols = [f"agg_orders.{k}" for k in shape.keys]
    joins: list[str] = []
    for relation, defs in by_relation.items():
        if relation == "derived" or (not defs and relation != "orders"):
            continue
        keys = ("customer_id",) if relation == "customers" else shape.keys
        source = "customers" if relation == "customers" else f"rel_{relation}"
        select = ", ".join(keys) + "".join(f",\n    {d.expression} AS {d.name}" for d in defs)
        group = ", ".join(keys)
        ctes.append((f"agg_{relation}", f"SELECT {select}\n  FROM {source} GROUP BY {group}"))
        for d in defs:
            col = f"agg_{relation}.{d.name}"
            joined_cols.append(f"COALESCE({col}, 0) AS {d.name}" if d.zero_when_absent else col)
        if relation != "orders":
            on = " AND ".join(f"agg_{relation}.{k} = agg_orders.{k}" for k in keys)
            joins.append(f"  LEFT JOIN agg_{relation} ON {on}")
    ctes.append(
        (
            "joined",
            "SELECT " + ",\n    ".join(joined_cols) + "\n  FROM agg_orders\n" + "\n".join(joins),
        )
    )
    outputs = [
        f"{d.expression} AS {d.name}" if d.relation == "derived" else d.name for d in definitions
    ]
    body = ",\n".join(f"{name} AS (\n  {sql}\n)" for name, sql in ctes)
    head = f"{shape.cutoff} AS cutoff, customer_id" if shape.single else "cutoff, customer_id"
    return (
        f"WITH {body}\nSELECT {head}"
        + "".join(f",\n  {o}" for o in outputs)
        + "\nFROM joined"
        + f"\nORDER BY {shape.by}"
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


def _categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """A string column as a categorical with sorted categories, by dictionary encoding."""
    encoded = column.dictionary_encode().combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    values = pd.Categorical.from_codes(codes, categories=pd.Index(encoded.dictionary.to_pylist()))
    return values.set_categories(sorted(values.categories))


def _key_index(keys: pa.Table) -> pd.MultiIndex:
    """The ``(cutoff, customer_id)`` index of sorted key rows, built from levels and codes.

    Faster than ``set_index`` on a million rows (which factorises the strings):
    with one cutoff the sorted, distinct ``customer_id`` column is its own
    level; with several, the levels are the sorted distinct keys and the codes
    their positions (an Arrow hash lookup).
    """
    cutoffs = keys.column("cutoff")
    customers = keys.column("customer_id")
    cutoff_level = pc.unique(cutoffs).sort() if len(keys) else pa.array([], cutoffs.type)
    if len(cutoff_level) <= 1:
        customer_level: pa.Array | pa.ChunkedArray = customers
        codes = [np.zeros(len(keys), dtype="int8"), np.arange(len(keys))]
    else:
        customer_level = pc.unique(customers).sort()
        codes = [
            pc.index_in(cutoffs, value_set=cutoff_level).to_numpy(),
            pc.index_in(customers, value_set=customer_level).to_numpy(),
        ]
    levels = [
        pd.DatetimeIndex(cutoff_level.to_numpy(zero_copy_only=False)).astype("datetime64[s]"),
        pd.Index(pd.array(customer_level, dtype="string")),
    ]
    return pd.MultiIndex(levels=levels, codes=codes, names=list(KEYS), verify_integrity=False)


def _frame_from_arrow(table: pa.Table, definitions: Sequence[FeatureDefinition]) -> pd.DataFrame:
    """The canonical frame (as :func:`_canonical` makes) from the sorted Arrow result.

    Column by column, each Arrow column dropped once converted (``float64``
    NumPy, or a categorical with sorted categories), so the peak holds one copy
    of the result plus one column.
    """
    index = _key_index(table.select(list(KEYS)))
    table = table.drop_columns(list(KEYS))
    data: dict[str, object] = {}
    for d in definitions:
        column = table.column(d.name)
        table = table.drop_columns([d.name])
        if d.dtype == "category":
            data[d.name] = _categorical(column.cast(pa.string()))
        else:
            data[d.name] = column.cast(pa.float64()).to_numpy()
        del column
    return pd.DataFrame(data, index=index, copy=False)


def _canonical(frame: pd.DataFrame, definitions: Sequence[FeatureDefinition]) -> pd.DataFrame:
    """Canonical dtypes and index, in place on the (freshly fetched) result frame."""
    frame["cutoff"] = pd.to_datetime(frame["cutoff"]).astype("datetime64[s]")
    frame["customer_id"] = frame["customer_id"].astype("string")
    for d in definitions:
        if d.dtype == "category":
            values = frame[d.name].astype("string")
            categories = sorted(values.dropna().unique())
            frame[d.name] = pd.Categorical(values, categories=categories)
        elif frame[d.name].dtype != "float64":
            frame[d.name] = pd.to_numeric(frame[d.name]).astype("float64")
    return frame.set_index(list(KEYS))  # copy-on-write: the columns are not copied


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, definitions: Sequence[FeatureDefinition]
) -> pd.DataFrame:
    """The query's result as the canonical frame, sorted by ``(cutoff, customer_id)`` in SQL.

    On DuckDB it comes through Arrow (:func:`_frame_from_arrow`, no Python string
    objects); other connections (``features.spark_engine``) give a pandas frame
    (:func:`_canonical`). DuckDB's parallel sort of the result costs less than
    sorting the fetched columns afterwards: a gather of 1M random rows is one
    cache miss per value, column after column.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return _canonical(con.execute(sql).df(), definitions)
    return _frame_from_arrow(con.sql(sql).to_arrow_table(), definitions)


def build_feature_table_from(
    con: duckdb.DuckDBPyConnection,
    cutoffs: Sequence[date],
    *,
    feature_set: FeatureSet | None = None,
) -> pd.DataFrame:
    """Features for every cutoff from contract views already registered on ``con``.

    Use this with ``features.engine.connect_parquet`` to read Parquet files
    directly; :func:`build_feature_table` registers pandas tables first.
    Omitted features (absent table or column) are logged and listed in
    ``frame.attrs["omitted_features"]``.
    """
    dates = _as_dates(cutoffs)
    columns = table_columns(con)
    if "transactions" not in columns:
        raise ValueError(
            "no 'transactions' view on the connection: register the tables with "
            "features.engine.connect or connect_parquet first"
        )
    definitions, notes = resolve(_requested(feature_set), columns)
    for note in notes:
        logger.warning(note)
    con.execute("CREATE OR REPLACE TEMP TABLE cutoffs (cutoff DATE)")
    con.executemany("INSERT INTO cutoffs VALUES (?)", [(d,) for d in dates])
    single = dates[0] if len(dates) == 1 else None
    out = _fetch(con, feature_query(definitions, columns, cutoff=single), definitions)
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
