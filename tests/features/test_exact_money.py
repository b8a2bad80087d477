"""Money summed in ten-thousandths as ``DOUBLE``: the exact decimal sums, on any thread count.

The relations count money in ten-thousandths of the currency unit
(``features.relations.money_e4``): integers as ``DOUBLE``, whose sums are exact
(so the same in any order) while they stay below 2^53. These tests check the
round trip from the contract view's ``DECIMAL(18, 4)``, that the sums equal the
exact decimal sums cast to ``DOUBLE`` bit for bit at 1 and 8 threads, the
cent rounding of the spend rank, and that a line's window as a timestamp
comparison (``Shape.since``) is the same as its age in days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pytest

from features.engines.duckdb_engine import MONEY_TYPE
from features.families import money
from features.families.monetary_margin import _CENTS_365D
from features.relations import MONEY_SCALE, Shape, money_e4


def _values(seed: int, n: int) -> np.ndarray:
    """Amounts with up to 4 decimals over 13 orders of magnitude, signs and half cents.

    Up to 10^9 currency units each, so sums of 800 of them stay below 2^53 ten-thousandths.
    """
    rng = np.random.default_rng(seed)
    e4 = rng.integers(-(10**8), 10**8, n) * rng.choice([1, 10**3, 10**5], n)
    e4[: n // 10] = rng.integers(-(10**6), 10**6, n // 10) * 100 + 50  # half cents
    return e4 / MONEY_SCALE


def _connection(threads: int, **columns: np.ndarray) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("raw", columns)
    con.execute(f"CREATE VIEW v AS SELECT g, CAST(x AS {MONEY_TYPE}) AS x FROM raw")
    return con


def test_ten_thousandths_of_a_decimal_are_its_exact_integer():
    x = np.concatenate([_values(0, 50_000), [2**51 / MONEY_SCALE - 1, -(2**51) / MONEY_SCALE]])
    con = _connection(1, g=np.zeros(len(x), dtype="int64"), x=x)
    wrong = con.execute(
        f"SELECT count(*) FROM v WHERE {money_e4('x')} <> CAST(CAST(CAST(x AS DECIMAL(38, 4)) * 10000 AS HUGEINT) AS DOUBLE)"
        f" OR {money_e4('x')} <> ROUND({money_e4('x')})"
    ).fetchone()[0]
    assert wrong == 0


@pytest.mark.parametrize("threads", [1, 8])
def test_sums_in_ten_thousandths_are_the_exact_decimal_sums(threads):
    """Each group's sum, converted once, is the exact decimal sum cast to ``DOUBLE``; ratios too."""
    n = 400_000
    x = _values(1, n)
    groups = np.random.default_rng(2).integers(0, 500, n)
    con = _connection(threads, g=groups, x=x)
    total, largest = money(f"SUM({money_e4('x')})"), money(f"MAX({money_e4('x')})")
    rows = con.execute(
        f"SELECT g, {total}, CAST(SUM(x) AS DOUBLE), {total} / NULLIF({largest}, 0),"
        " SUM(x) / NULLIF(MAX(x), 0) FROM v GROUP BY g ORDER BY g"
    ).fetchall()
    got = np.array([r[1] for r in rows])
    exact = np.array([r[2] for r in rows])
    assert np.abs(got).max() > 10**10  # as currency doubles these sums would round
    np.testing.assert_array_equal(got, exact)
    np.testing.assert_array_equal([r[3] for r in rows], [r[4] for r in rows])


def test_spend_rank_rounds_half_cents_as_the_exact_decimal_does():
    x = np.abs(_values(3, 20_000))
    con = _connection(1, g=np.zeros(len(x), dtype="int64"), x=x)
    cents = _CENTS_365D.replace("spend_365d_amount", "CAST(x AS DOUBLE)")
    wrong = con.execute(
        f"SELECT count(*) FROM v WHERE {cents} <> CAST(ROUND(x, 2) * 100 AS DOUBLE)"
    ).fetchone()[0]
    assert wrong == 0


@pytest.mark.parametrize("single", [True, False])
def test_a_line_in_the_window_by_timestamp_is_one_younger_than_its_days(single):
    """``Shape.since`` (a timestamp comparison) equals ``age_days < days`` on or before the cutoff."""
    cutoff = date(2024, 12, 31)
    start = datetime(2023, 10, 1)
    stamps = [start + timedelta(minutes=37 * i) for i in range(0, 60_000)]
    stamps += [
        datetime.combine(cutoff - timedelta(days=d), datetime.min.time())
        + timedelta(microseconds=u)
        for d in (29, 30, 274, 275, 364, 365)
        for u in (-1, 0, 1)
    ]
    con = duckdb.connect()
    con.execute("CREATE TABLE e (seen_at TIMESTAMP)")
    # one insert of the whole column (an executemany inserts row by row: seconds per 10,000)
    con.register("stamps", {"seen_at": np.array(stamps, dtype="datetime64[us]")})
    con.execute("INSERT INTO e SELECT seen_at FROM stamps")
    assert con.execute("SELECT count(*), max(seen_at) FROM e").fetchone() == (
        len(stamps),
        max(stamps),
    )
    con.execute("CREATE TABLE cutoffs AS SELECT DATE '2024-12-31' AS cutoff")
    shape = Shape(cutoff if single else None)
    for days in (30, 275, 365):
        wrong = con.execute(
            f"SELECT count(*), count(CASE WHEN {shape.since('e.seen_at', days)} THEN 1 END)"
            f" {shape.events('e', 'e', 'seen_at')}"
            f" AND ({shape.since('e.seen_at', days)}) <> ({shape.age_days('e.seen_at')} < {days})"
        ).fetchone()
        assert wrong[0] == 0
    inside = con.execute(
        f"SELECT count(CASE WHEN {shape.since('e.seen_at', 275)} THEN 1 END) {shape.events('e', 'e', 'seen_at')}"
    ).fetchone()[0]
    assert 0 < inside < len(stamps)


@pytest.mark.parametrize("threads", [1, 8])
def test_order_value_spread_of_large_orders_is_exact_and_does_not_overflow(threads):
    """Orders up to 10^9 currency units (a square of 10^26 ten-thousandths squared)."""
    from features.families import exact_stddev_samp

    rng = np.random.default_rng(4)
    n = 60_000
    groups = rng.integers(0, 300, n)
    e4 = rng.integers(1, 10**13, n).astype("float64")  # up to 10^9 units, in ten-thousandths
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("orders", {"g": groups, "order_amount_e4": e4})
    sql = exact_stddev_samp("CAST(order_amount_e4 AS DECIMAL(38, 0))", MONEY_SCALE)
    got = dict(con.execute(f"SELECT g, {sql} FROM orders GROUP BY g").fetchall())
    for g in (0, 7, 299):
        values = [int(v) for v in e4[groups == g]]  # exact integers in Python
        k, s, q = len(values), sum(values), sum(v * v for v in values)
        exact = ((k * q - s * s) / 10**8 / (k * (k - 1))) ** 0.5
        assert got[g] == pytest.approx(exact, rel=1e-14)
