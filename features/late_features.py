"""Features of one cutoff computed after the feature query, from its rows, in a second query.

A keyed build of one cutoff whose rows are sorted after the fetch leaves two kinds of
feature out of its first query and computes them from that query's result:

* the window features (a rank and means over the whole population, ``OVER``). In one
  query DuckDB materialises the order aggregate for their second reader (35 columns,
  270 MB at a million customers), and the result is collected on top of it; from the
  first query's rows they read the few columns they need;
* the category features, when their sums are taken with NumPy
  (``features.engines.line_sums``).

That pass over the lines comes first, on DuckDB's threads, and also keeps the returned
lines, which the first query then reads from a small table instead of scanning every
line again (``Sources.returned_lines``). The first query returns the other features and
the inputs the late ones read; the second reads those rows as its population
(``Sources.population``) with the category sums, and returns the late features by key,
which are joined to the first result by key. Same values: the same SQL over the same
numbers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.definitions import FeatureDefinition, dependency
from features.engines.line_sums import (
    line_sums_on,
    register_line_sums,
    transactions_files,
    unregister_line_sums,
)
from features.inputs.keys import CUSTOMER_KEY
from features.query import Sources, feature_query, is_window_feature
from features.result_frame import frame_from_arrow, ids_by_key, release_cached_memory

#: The registered table of the first query's rows that the second reads.
POPULATION_TABLE = "_winback_population"


@dataclass(frozen=True)
class Stages:
    """The definitions of each query: ``first`` (the early features, then the inputs the
    late ones read, ``inputs`` by name) and ``late``."""

    first: list[FeatureDefinition]
    late: list[FeatureDefinition]
    inputs: list[str]


def stages(definitions: Sequence[FeatureDefinition], *, categories: bool) -> Stages | None:
    """Split ``definitions``; ``None`` when none is late (or a late one reads one not asked for).

    Late: the window features, with ``categories`` the ``customer_categories`` ones, and
    the derived features that read a late one.
    """
    late = {
        d.name
        for d in definitions
        if is_window_feature(d) or (categories and d.relation == "customer_categories")
    }
    grown = True
    while grown:
        more = {
            d.name
            for d in definitions
            if d.relation == "derived" and d.name not in late and late & set(d.depends_on)
        }
        grown, late = bool(more), late | more
    if not late:
        return None
    early = [d for d in definitions if d.name not in late]
    asked = {d.name for d in definitions}
    inputs = list(dict.fromkeys(n for d in definitions if d.name in late for n in d.depends_on))
    if any(n not in asked and is_window_feature(dependency(n)) for n in inputs):
        return None
    inputs = [n for n in inputs if n not in late]
    extra = [dependency(n) for n in inputs if n not in asked]
    return Stages(early + extra, [d for d in definitions if d.name in late], inputs)


def build_in_two_stages(
    con: duckdb.DuckDBPyConnection,
    definitions: Sequence[FeatureDefinition],
    columns: Mapping[str, Collection[str]],
    cutoff: date,
    *,
    order_table: bool,
) -> pd.DataFrame | None:
    """The frame of ``definitions`` at ``cutoff`` from two queries; ``None`` when none is late.

    ``con`` is a keyed DuckDB connection (``features.engines.duckdb_engine``).
    """
    tx = columns["transactions"]
    files = transactions_files(con) if "category" in tx else []
    plan = stages(definitions, categories=bool(files))
    if plan is None:
        return None
    ids = ids_by_key(con)
    # the lines' pass, before the first query and on DuckDB's threads
    taken = line_sums_on(con, files, cutoff, tx) if _reads_categories(plan) else None
    try:
        returned = taken is not None and register_line_sums(con, taken)
        sql = feature_query(
            plan.first, columns, cutoff=cutoff, keyed=True, by_key=True, sort=False,
            sources=Sources(order_table=order_table, returned_lines=returned),
        )  # fmt: skip
        first = con.sql(sql).to_arrow_table()
        release_cached_memory(con)  # what DuckDB kept of the first query: not under the second
        con.register(POPULATION_TABLE, first.select([CUSTOMER_KEY, *plan.inputs]))
        sql = feature_query(
            plan.late, columns, cutoff=cutoff, keyed=True, by_key=True, sort=False,
            sources=Sources(category_sums=taken is not None, population=POPULATION_TABLE),
        )  # fmt: skip
        second = con.sql(sql).to_arrow_table()
    finally:
        con.unregister(POPULATION_TABLE)
        unregister_line_sums(con)
    release_cached_memory(con)
    results = {"first": first, "second": second}
    del first, second, taken  # the conversion releases each column once converted
    return frame_from_arrow(_joined_by_key(results, plan.late), definitions, ids)


def _reads_categories(plan: Stages) -> bool:
    return any(d.relation == "customer_categories" for d in plan.late)


def _joined_by_key(results: dict[str, pa.Table], late: Sequence[FeatureDefinition]) -> pa.Table:
    """The ``first`` result with the ``late`` columns of the ``second`` (the same customers, in
    any order) beside it. Both are taken out of ``results``: the caller keeps no reference."""
    first, second = results.pop("first"), results.pop("second")
    key = first.column(CUSTOMER_KEY).to_numpy()
    other = second.column(CUSTOMER_KEY).to_numpy()
    # keys are positions among the shop's customers: a dense array maps each to its row
    row_of = np.full(int(max(key.max(initial=-1), other.max(initial=-1))) + 1, -1, np.int64)
    row_of[other] = np.arange(len(other))
    take = row_of[key]
    if len(other) != len(key) or (take < 0).any():
        raise RuntimeError("the second feature query returned other customers than the first")
    rows = pa.array(take)
    for d in late:
        first = first.append_column(d.name, second.column(d.name).take(rows))
    return first
