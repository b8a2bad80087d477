"""The lines' sums taken with NumPy from keyed Parquet lines give the SQL's frame, to the bit.

``features.engines.line_sums`` reads the lines of a keyed, clustered folder one
row group at a time and registers the two groupings the ``customer_categories``
relation starts from; the build must give exactly the frame it gives when DuckDB
groups the lines, and fall back to SQL whenever the files are not as it expects.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import features.engines.line_sums as line_sums
from features.build import build_feature_table_from
from features.engines.duckdb_engine import connect_parquet
from features.inputs.table_files import write_tables
from features.simulation import SimulationConfig, simulate_shop
from tests.features.reference_features import random_shop

#: The function itself (a test may build several times, each time replacing it).
_LINE_SUMS = line_sums.line_sums
CATEGORY_FEATURES = [
    "category_count",
    "top_category_spend_share",
    "category_concentration_share",
    "high_margin_spend_share",
]


def _builds(
    folder: Path, cutoffs: list[date], monkeypatch: pytest.MonkeyPatch, **connect: object
) -> tuple[list[pd.DataFrame], list[bool]]:
    """The frames of the default build (with one cutoff: two queries, the category sums
    taken before the first), of one sorted query with the sums, and of the SQL alone;
    and, for each time the sums were tried, whether they were taken."""
    taken: list[bool] = []
    real = _LINE_SUMS

    def spy(*args: object, **options: object) -> object:
        sums = real(*args, **options)  # type: ignore[arg-type]
        taken.append(sums is not None)
        return sums

    def build(**options: object) -> pd.DataFrame:
        con = connect_parquet(folder, threads=2, **connect)  # type: ignore[arg-type]
        return build_feature_table_from(con, cutoffs, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(line_sums, "line_sums", spy)
    frames = [build(), build(sort_in_query=True)]
    monkeypatch.setattr(line_sums, "line_sums", lambda *args, **options: None)
    frames.append(build(sort_in_query=True))
    return frames, taken


def _same(frames: list[pd.DataFrame]) -> None:
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], frame, check_exact=True)


def _rewrite(path: Path, table: pa.Table, **options: object) -> None:
    """Write ``table`` over ``path`` keeping its metadata (the key set's digest)."""
    pq.write_table(table, path, **options)


@pytest.mark.parametrize("cutoff", [date(2023, 6, 30), date(2024, 6, 17), date(2030, 1, 1)])
def test_the_sums_give_the_frame_of_the_sql_on_a_random_shop(tmp_path, monkeypatch, cutoff):
    write_tables(random_shop(customers=150, seed=21).present(), tmp_path)
    frames, taken = _builds(tmp_path, [cutoff], monkeypatch)
    assert taken == [True, True]
    assert frames[0]["category_count"].gt(1).sum() > 20
    _same(frames)


def test_the_sums_give_the_frame_of_the_sql_on_a_simulated_shop(tmp_path, monkeypatch):
    write_tables(simulate_shop(SimulationConfig(customers=500, seed=3)).tables.present(), tmp_path)
    frames, taken = _builds(tmp_path, [date(2025, 6, 30)], monkeypatch)
    assert taken == [True, True] and frames[0]["high_margin_spend_share"].notna().sum() > 100
    _same(frames)


def _hand_lines() -> pd.DataFrame:
    """Lines at the edges: day boundaries, money ties, missing values, a large spender."""
    rows = [
        # customer, order, time (UTC), amount, return, margin, category
        ("a", "o1", "2024-03-31 23:59:59.999999", 10.00005, False, 2.0, "toys"),
        ("a", "o2", "2024-04-01 00:00:00", 99.0, False, 50.0, "toys"),  # the day after
        ("a", "o1", "2024-03-31 10:00", 0.00005, False, None, "books"),
        ("a", "o3", "2024-03-02 10:00", 7.5, True, 1.0, "books"),  # a return
        ("a", "o3", "2024-03-02 10:00", 2.00015, False, -1.0, None),  # no category
        ("b", "o4", "2024-01-01 00:00", 0.0, False, 0.0, "garden"),  # zero spend
        ("b", "o5", "2024-02-01 08:00", 3.99995, False, None, "nomargin"),
        ("c", "o6", "2023-12-31 12:00", 90_000_000.1234, False, -5_000_000.0, "toys"),
        ("c", "o7", "2024-01-02 12:00", 12_345_678.5678, False, 1.5, "books"),
        ("d", "o8", "2024-02-02 12:00", 1.0, True, 0.5, "toys"),  # returns only
        ("e", "o9", "2024-02-03 12:00", 4.0, False, 0.5, None),  # purchases, no category
        ("b", "o5", "2024-03-31 23:59:59.999999", 2.5, True, None, "garden"),  # no margin
        ("b", "o5", "2024-04-01 00:00", 1.0, True, 0.1, "garden"),  # returned the day after
        ("e", "o9", "2023-06-03 12:00", 1.5, True, -0.25, None),  # an old return
        # returns at each window's edge before 2024-03-31 (ages 89, 90, 274, 275, 364, 365)
        ("a", "r1", "2024-01-02 08:00", 1.25, True, 0.5, "toys"),
        ("a", "r2", "2024-01-01 08:00", 2.25, True, None, "toys"),
        ("a", "r3", "2023-07-01 08:00", 3.25, True, 1.5, "books"),
        ("a", "r4", "2023-06-30 08:00", 4.25, True, -0.5, "books"),
        ("a", "r5", "2023-04-02 08:00", 5.25, True, None, None),
        ("a", "r6", "2023-04-01 08:00", 6.25, True, 2.5, None),
        # returns at midnight, the first instant of the window's last day (ages 274, 364)
        ("b", "r7", "2023-07-01 00:00", 0.75, True, 0.25, "toys"),
        ("b", "r8", "2023-04-02 00:00", 1.75, True, None, None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "order_id",
            "ordered_at",
            "amount",
            "is_return",
            "margin_amount",
            "category",
        ],
    )
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    return frame


def test_lines_at_the_edges_give_the_frame_of_the_sql(tmp_path, monkeypatch):
    write_tables({"transactions": _hand_lines()}, tmp_path)
    for cutoff in (date(2024, 3, 31), date(2024, 1, 1), date(2023, 12, 31)):
        frames, taken = _builds(tmp_path, [cutoff], monkeypatch)
        assert taken == [True, True]
        _same(frames)
    fast = _builds(tmp_path, [date(2024, 3, 31)], monkeypatch)[0][0]
    assert fast.loc[(pd.Timestamp("2024-03-31"), "a"), "category_count"] == 2  # not o2, not o3
    assert fast.loc[(pd.Timestamp("2024-03-31"), "e"), "category_count"] == 0
    assert np.isnan(fast.loc[(pd.Timestamp("2024-03-31"), "e"), "top_category_spend_share"])


def test_customers_across_row_groups_and_files_give_the_frame_of_the_sql(tmp_path, monkeypatch):
    write_tables(random_shop(customers=60, seed=5).present(), tmp_path)
    lines = pq.read_table(tmp_path / "transactions.parquet")
    _rewrite(tmp_path / "transactions.parquet", lines, row_group_size=7)  # customers split
    cutoff = [date(2024, 6, 17)]
    frames, taken = _builds(tmp_path, cutoff, monkeypatch)
    assert taken == [True, True]
    _same(frames)
    # the same lines as two files, the second starting inside a customer
    (tmp_path / "transactions.parquet").unlink()
    (tmp_path / "transactions").mkdir()
    half = lines.num_rows // 2 + 1
    _rewrite(tmp_path / "transactions" / "part-0.parquet", lines.slice(0, half))
    _rewrite(tmp_path / "transactions" / "part-1.parquet", lines.slice(half), row_group_size=5)
    (tmp_path / "purchase_orders.parquet").unlink()  # it counts the lines of one file
    parts, taken = _builds(tmp_path, cutoff, monkeypatch)
    assert taken == [True, True]
    _same(parts)
    pd.testing.assert_frame_equal(parts[0][CATEGORY_FEATURES], frames[0][CATEGORY_FEATURES])


def test_pairs_beyond_the_dense_array_are_sorted_to_the_same_sums(tmp_path, monkeypatch):
    write_tables(random_shop(customers=80, seed=8).present(), tmp_path)
    monkeypatch.setattr(line_sums, "_DENSE_CELLS", 3)
    frames, taken = _builds(tmp_path, [date(2024, 6, 17)], monkeypatch)
    assert taken == [True, True]
    _same(frames)


def test_the_sums_do_not_depend_on_the_threads(tmp_path):
    write_tables(random_shop(customers=80, seed=9).present(), tmp_path)
    lines = pq.read_table(tmp_path / "transactions.parquet")
    _rewrite(tmp_path / "transactions.parquet", lines, row_group_size=11)
    files = [tmp_path / "transactions.parquet"]
    one = line_sums.line_sums(files, date(2024, 6, 17), margin=True, returns=True)
    two = line_sums.line_sums(files, date(2024, 6, 17), margin=True, returns=True, threads=2)
    assert one is not None and two is not None
    assert one.spend.equals(two.spend)
    assert one.totals is not None and one.totals.equals(two.totals)
    assert one.returned is not None and one.returned.num_rows > 10
    assert one.returned.equals(two.returned)


def test_files_the_sums_cannot_read_as_the_view_does_fall_back_to_sql(tmp_path, monkeypatch):
    shop = random_shop(customers=60, seed=13)
    write_tables(shop.present(), tmp_path)
    path = tmp_path / "transactions.parquet"
    lines = pq.read_table(path)
    cutoff = [date(2024, 6, 17)]
    # rows out of customer order, the metadata (and so the keys) kept
    shuffled = lines.take(np.random.default_rng(0).permutation(lines.num_rows))
    _rewrite(path, shuffled)
    frames, taken = _builds(tmp_path, cutoff, monkeypatch)
    assert taken == [False, False]
    _same(frames)
    # a NaN amount: the view refuses to cast it, so must the build
    amounts = lines.column("amount").to_numpy().copy()
    amounts[3] = np.nan
    _rewrite(path, lines.set_column(lines.schema.get_field_index("amount"), "amount", [amounts]))
    assert line_sums.line_sums([path], cutoff[0], margin=True, returns=True) is None
    _rewrite(path, lines)
    # customers left out of every view (erased since written): the files are not read
    erased = str(shop.transactions["customer_id"].iloc[0])
    frames, taken = _builds(tmp_path, cutoff, monkeypatch, exclude=[erased])
    assert taken == [] and erased not in frames[0].index.get_level_values("customer_id")
    _same(frames)


def test_many_cutoffs_group_in_sql(tmp_path, monkeypatch):
    write_tables(random_shop(customers=40, seed=14).present(), tmp_path)
    frames, taken = _builds(tmp_path, [date(2023, 6, 30), date(2024, 6, 17)], monkeypatch)
    assert taken == []
    _same(frames)
