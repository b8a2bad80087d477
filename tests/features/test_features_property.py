"""Hypothesis: events strictly after the cutoff day never change any feature.

Edits touch transactions, tickets, referrals, reviews and engagement events (added, moved to
another later time, or given another event type), always after the cutoff. The build runs
on the tables in memory (string ids and integer keys) and on a keyed folder with its
purchase-order table.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_feature_table_from, build_features
from features.engines.duckdb_engine import connect, connect_parquet, has_order_table, table_columns
from features.inputs.schema import EVENT_TYPES, SCHEMAS, ShopTables
from features.inputs.table_files import write_tables
from tests.features.reference_features import random_shop

CUTOFF = date(2022, 9, 30)
AFTER = pd.Timestamp("2022-10-01T00:00:00Z")  # the first instant that is not on or before CUTOFF


@pytest.fixture(scope="module")
def shop() -> ShopTables:
    return random_shop(customers=40, seed=5, days=540)


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    return connection


@pytest.fixture(scope="module")
def baseline(shop, con) -> pd.DataFrame:
    return build_features(shop, CUTOFF, con=con)


later = st.integers(min_value=0, max_value=400 * 86_400).map(
    lambda s: AFTER + pd.Timedelta(seconds=s)
)
edit = st.one_of(
    st.tuples(st.just("add_line"), st.integers(0, 60), later, st.floats(0, 500), st.booleans()),
    st.tuples(st.just("change_line"), st.integers(0, 10_000), st.floats(0, 500), st.booleans()),
    st.tuples(st.just("drop_line"), st.integers(0, 10_000)),
    st.tuples(
        st.just("add_event"),
        st.sampled_from(["support_tickets", "referrals", "reviews", "engagement_events"]),
        st.integers(0, 60),
        later,
    ),
    st.tuples(
        st.just("move_event"),
        st.sampled_from(["support_tickets", "reviews", "engagement_events"]),
        later,
    ),
    st.tuples(st.just("retype_engagement"), st.sampled_from(EVENT_TYPES)),
)


def edited_shops(examples: int):
    """Hypothesis over ``examples`` lists of one to six edits after the cutoff (``edits``)."""

    def decorate(test):
        examples_of = settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        return examples_of(given(edits=st.lists(edit, min_size=1, max_size=6))(test))

    return decorate


def apply(shop: ShopTables, edits: list[tuple]) -> ShopTables:
    """The shop with every edit applied; each one touches only events after the cutoff."""
    tx = shop.transactions.copy()
    names = ("support_tickets", "referrals", "reviews", "engagement_events")
    others = {n: getattr(shop, n).copy() for n in names}
    time_of = {n: SCHEMAS[n].time_column for n in names}
    for kind, *args in edits:
        late = tx.index[tx["ordered_at"] >= AFTER]
        if kind == "add_line":
            customer, at, amount, is_return = args
            row = tx.iloc[[0]].copy()
            row["customer_id"] = f"c{customer:05d}"
            row["order_id"] = f"new{len(tx)}"
            row["ordered_at"] = at
            row["amount"] = amount
            row["is_return"] = is_return
            row["category"] = "brand_new_category"
            row["margin_amount"] = amount * 0.9
            tx = pd.concat([tx, row], ignore_index=True)
        elif kind == "change_line" and len(late):
            index, amount, is_return = args
            target = late[index % len(late)]
            tx.loc[target, ["amount", "is_return"]] = [amount, is_return]
            tx.loc[target, "order_id"] = tx.loc[tx.index[0], "order_id"]  # join an earlier order
        elif kind == "drop_line" and len(late):
            tx = tx.drop(index=late[args[0] % len(late)])
        elif kind == "add_event":
            name, customer, at = args
            frame = others[name]
            row = frame.iloc[[0]].copy()
            row["customer_id"] = f"c{customer:05d}"
            row[time_of[name]] = at
            others[name] = pd.concat([frame, row], ignore_index=True)
        elif kind == "move_event":
            name, at = args
            frame = others[name]
            frame.loc[frame[time_of[name]] >= AFTER, time_of[name]] = at
        elif kind == "retype_engagement":
            frame = others["engagement_events"]
            frame.loc[frame["occurred_at"] >= AFTER, "event_type"] = args[0]
    return ShopTables(transactions=tx, customers=shop.customers, **others)


@edited_shops(examples=25)
def test_events_after_the_cutoff_never_change_a_feature(shop, con, baseline, edits):
    changed = build_features(apply(shop, edits), CUTOFF, con=con)
    pd.testing.assert_frame_equal(changed, baseline, check_categorical=False, rtol=1e-12)


@edited_shops(examples=15)
def test_events_after_the_cutoff_never_change_a_feature_built_by_integer_keys(
    shop, baseline, edits
):
    """The same with keys assigned to the edited tables (new customers move every later key)."""
    con = connect(apply(shop, edits), threads=1, customer_keys=True)
    changed = build_feature_table_from(con, [CUTOFF]).droplevel("cutoff")
    pd.testing.assert_frame_equal(changed, baseline, check_categorical=False, rtol=1e-12)


@edited_shops(examples=12)
def test_events_after_the_cutoff_never_change_a_feature_read_from_the_order_table(
    shop, baseline, edits, tmp_path_factory
):
    """The same from a keyed folder with its purchase-order table, as ``write_tables`` writes it.

    One cutoff from a keyed folder also takes the category sums with NumPy
    (``features.engines.line_sums``) instead of grouping the lines in SQL.

    The table is written when every order's purchase lines fall on one day; an edit
    that adds a late line to an earlier order of the same customer leaves it out,
    and the build groups the lines.
    """
    edited = apply(shop, edits)
    folder = tmp_path_factory.mktemp("keyed")
    write_tables(edited.present(), folder)
    purchases = edited.transactions[~edited.transactions["is_return"].astype(bool)]
    days = (
        purchases["ordered_at"]
        .dt.floor("D")
        .groupby([purchases["customer_id"], purchases["order_id"]])
    )
    con = connect_parquet(folder, threads=1)
    assert has_order_table(con, table_columns(con)) == bool((days.nunique() == 1).all())
    changed = build_feature_table_from(con, [CUTOFF]).droplevel("cutoff")
    pd.testing.assert_frame_equal(changed, baseline, check_categorical=False, rtol=1e-12)
