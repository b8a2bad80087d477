"""Value tiers: who the shop's most valuable customers are at a date.

One definition of "VIP" for the whole system: labels (``became_vip``) and
serving (tiers on the score table, "how much more margin reaches the next
tier") both use this module.

A customer's value is their **trailing-12-month margin**: the summed
``margin_amount`` of their purchase and return lines (a return line's margin is
its signed effect, usually negative), over the ``window_days`` days up to
and including the date. Tiers are percentile bands of that value among the
customers *active at the date*, i.e. those with at least one purchase in the same
window. Margin, not revenue, so a heavy discounter or returner is not a VIP.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.engines.base import Engine
from features.engines.duckdb_engine import connect
from features.inputs.schema import ShopTables

#: dtype of the ``cutoff`` index level, the same as ``features.build`` uses.
CUTOFF_DTYPE = "datetime64[s]"

#: What tiers can be ranked by (see :class:`TierConfig`).
TIER_BASES = ("trailing", "predicted")

#: The default bands: (name, cumulative top fraction of active customers).
DEFAULT_BANDS: tuple[tuple[str, float], ...] = (
    ("platinum", 0.01),
    ("gold", 0.05),
    ("silver", 0.10),
    ("bronze", 0.25),
)


@dataclass(frozen=True)
class TierConfig:
    """Named percentile bands of trailing margin, best first.

    Parameters
    ----------
    bands
        ``(name, top_fraction)`` pairs, best band first; ``top_fraction`` is
        cumulative: ``("gold", 0.05)`` after ``("platinum", 0.01)`` means the
        customers from the top 1% to the top 5%.
    rest
        Tier name of every active customer below the last band.
    vip_tiers
        The bands that count as VIP: a best-first prefix of ``bands``
        (default platinum + gold, i.e. the top 5%).
    window_days
        Length of the trailing window for value and for "active at the date".
    basis
        What lists rank tiers by: ``"trailing"`` margin (the default, and always
        for labels), or ``"predicted"``: the value champion's ``predicted_value``
        where the score table has it, so tomorrow's VIPs get a VIP tier today.
    """

    bands: tuple[tuple[str, float], ...] = DEFAULT_BANDS
    rest: str = "standard"
    vip_tiers: tuple[str, ...] = ("platinum", "gold")
    window_days: int = 365
    basis: str = "trailing"

    def __post_init__(self) -> None:
        if self.basis not in TIER_BASES:
            raise ValueError(f"TierConfig.basis must be one of {TIER_BASES}, got {self.basis!r}")
        if not self.bands:
            raise ValueError("TierConfig.bands is empty: give at least one (name, fraction) pair")
        names = [name for name, _ in self.bands]
        if len(set(names)) != len(names) or self.rest in names:
            raise ValueError(
                f"TierConfig tier names must be unique, got bands {names} and rest {self.rest!r}"
            )
        previous = 0.0
        for name, fraction in self.bands:
            if not previous < fraction <= 1.0:
                raise ValueError(
                    f"TierConfig band {name!r} has top_fraction {fraction}: fractions are "
                    f"cumulative, must increase and lie in (0, 1] (previous band: {previous})"
                )
            previous = fraction
        if tuple(self.vip_tiers) != tuple(names[: len(self.vip_tiers)]):
            raise ValueError(
                f"TierConfig.vip_tiers {list(self.vip_tiers)} must be the best bands in order, "
                f"a prefix of {names}"
            )
        if self.window_days < 1:
            raise ValueError(f"TierConfig.window_days must be >= 1, got {self.window_days}")

    @property
    def names(self) -> tuple[str, ...]:
        """All tier names, best first, ending with ``rest``."""
        return (*(name for name, _ in self.bands), self.rest)

    @property
    def vip_fraction(self) -> float:
        """The top fraction of active customers that is VIP (0 when no band is VIP)."""
        return dict(self.bands)[self.vip_tiers[-1]] if self.vip_tiers else 0.0


#: Retail A/B/C/D grading: A the top 5%, B to 20%, C to 50%, D the rest; VIP = A.
ABCD_GRADES = TierConfig(
    bands=(("A", 0.05), ("B", 0.20), ("C", 0.50)),
    rest="D",
    vip_tiers=("A",),
)


def as_dates(values: Iterable[object] | object) -> list[dt.date]:
    """Sorted, unique calendar dates (UTC) from dates, timestamps or ISO strings."""
    if isinstance(values, str | dt.date | pd.Timestamp):
        values = [values]
    out = set()
    for value in values:  # type: ignore[union-attr]
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise ValueError(f"cutoff {value!r} is not a date; give dates like '2024-01-31'")
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC")
        out.add(ts.date())
    return sorted(out)


def register_cutoffs(con: Engine, dates: Iterable[dt.date]) -> None:
    """(Re)create the temp table ``cutoffs`` (one column ``cutoff DATE``) holding ``dates``.

    The same relation ``features.build`` queries, so both can share a connection.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE cutoffs (cutoff DATE)")
    con.executemany("INSERT INTO cutoffs VALUES (?)", [(d,) for d in dates])


def purchase_expressions(tables: ShopTables) -> tuple[str, str]:
    """SQL for "this line is a return" and "this line's signed margin", given the columns present.

    Return lines carry a positive ``amount`` (subtracted from revenue) but a
    ``margin_amount`` that is already the line's effect on margin (usually
    negative: the margin given back, plus handling), so margin is summed as is,
    as the simulator writes it. Without ``is_return`` every line is a purchase;
    without ``margin_amount`` margin falls back to signed revenue, which callers
    should say when they report.
    """
    columns = set(tables.transactions.columns)
    is_return = "COALESCE(t.is_return, FALSE)" if "is_return" in columns else "FALSE"
    if "margin_amount" in columns:
        margin = "COALESCE(t.margin_amount, 0.0)"
    else:
        margin = f"CASE WHEN {is_return} THEN -t.amount ELSE t.amount END"
    return is_return, margin


def day_start(days: int, column: str = "cutoff") -> str:
    """Portable SQL for midnight ``days`` days after the date ``column`` (negative: before)."""
    sign = "+" if days >= 0 else "-"
    return f"CAST({column} AS TIMESTAMP) {sign} INTERVAL {abs(int(days))} DAY"


def trailing_value_sql(tables: ShopTables, window_days: int = 365) -> str:
    """The SQL behind :func:`trailing_value`, over the relations ``transactions`` and ``cutoffs``.

    Lines are summed per customer and day first, so the range join with the
    cutoffs touches one row per customer-day instead of one per line; only the
    lines between the earliest window start and the latest window end are read
    (the rest join no cutoff).
    """
    is_return, margin = purchase_expressions(tables)
    return f"""
WITH bounds AS (
    SELECT
        cutoff,
        {day_start(1 - int(window_days))} AS window_start,
        {day_start(1)} AS window_end
    FROM cutoffs
),
daily AS (
    SELECT
        t.customer_id AS customer_id,
        CAST(CAST(t.ordered_at AS DATE) AS TIMESTAMP) AS day_start,
        SUM(CASE WHEN {is_return} THEN -t.amount ELSE t.amount END) AS revenue,
        SUM({margin}) AS margin,
        SUM(CASE WHEN {is_return} THEN 0 ELSE 1 END) AS purchase_lines
    FROM transactions AS t
    WHERE t.ordered_at >= (SELECT MIN(window_start) FROM bounds)
        AND t.ordered_at < (SELECT MAX(window_end) FROM bounds)
    GROUP BY t.customer_id, CAST(CAST(t.ordered_at AS DATE) AS TIMESTAMP)
)
SELECT
    b.cutoff AS cutoff,
    d.customer_id AS customer_id,
    SUM(d.revenue) AS trailing_revenue,
    SUM(d.margin) AS trailing_margin
FROM bounds AS b
JOIN daily AS d
    ON d.day_start >= b.window_start AND d.day_start < b.window_end
GROUP BY b.cutoff, d.customer_id
HAVING SUM(d.purchase_lines) > 0
"""


def trailing_value(
    tables: ShopTables,
    dates: Iterable[object],
    window_days: int = 365,
    *,
    con: Engine | None = None,
) -> pd.DataFrame:
    """Trailing margin and revenue of every customer active at each date.

    Parameters
    ----------
    tables
        The shop's validated tables.
    dates
        The dates (cutoffs) to value customers at; data up to and including each.
    window_days
        The trailing window: events with ``date + 1 - window_days <= day <= date``.
    con
        The engine where ``tables`` are registered (``features.engines.base``);
        a new one by default.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)`` (cutoff as midnight ``datetime64[s]``),
        columns ``trailing_margin`` (summed signed margin) and ``trailing_revenue``
        (purchases minus returns), one row per customer with at least one purchase
        in the window: the population tiers are ranked in.
    """
    if window_days < 1:
        raise ValueError(f"window_days must be >= 1, got {window_days}")
    con = connect(tables) if con is None else con
    register_cutoffs(con, as_dates(dates))
    frame = con.sql(trailing_value_sql(tables, window_days)).df()
    frame["cutoff"] = frame["cutoff"].astype(CUTOFF_DTYPE)
    frame["customer_id"] = frame["customer_id"].astype("string")
    for name in ("trailing_margin", "trailing_revenue"):
        frame[name] = frame[name].astype("float64").fillna(0.0)
    frame = frame.set_index(["cutoff", "customer_id"]).sort_index()
    return frame[["trailing_margin", "trailing_revenue"]]


def _check_values(trailing: pd.Series) -> np.ndarray:
    values = trailing.to_numpy(dtype="float64", na_value=np.nan)
    missing = int(np.isnan(values).sum())
    if missing:
        raise ValueError(
            f"trailing margin has {missing} missing value(s) (e.g. customer "
            f"{trailing.index[np.isnan(values)][0]!r}); fill them (0 for no margin) before tiering"
        )
    return values


def assign_tiers(trailing: pd.Series, config: TierConfig = TierConfig()) -> pd.Series:
    """The tier of each customer from their trailing margin, among the customers given.

    A customer is in the best band whose ``top_fraction`` exceeds the share of
    customers with *strictly more* margin than theirs. So, without ties, the top
    ``ceil(top_fraction * n)`` customers are in a band or better (the single best
    customer is always in the first band). Ties share the better band: equal
    margin means equal tier, whatever the order or ids, so a band may hold more
    than its share when values tie at its edge.

    Parameters
    ----------
    trailing
        Trailing margin of every customer active at one date (one ranking
        population; group by cutoff first when there are several).
    config
        The bands.

    Returns
    -------
    pandas.Series
        Tier names (``string`` dtype) with the index of ``trailing``.
    """
    values = _check_values(trailing)
    n = len(values)
    # Number of customers with strictly more margin: position among the distinct values.
    ordered = np.sort(values)
    strictly_more = n - np.searchsorted(ordered, values, side="right")
    share_above = strictly_more / n if n else strictly_more.astype("float64")
    tiers = np.full(n, config.rest, dtype=object)
    for name, fraction in reversed(config.bands):
        tiers[share_above < fraction] = name
    return pd.Series(tiers, index=trailing.index, dtype="string", name="tier")


def tier_thresholds(trailing: pd.Series, config: TierConfig = TierConfig()) -> pd.Series:
    """The least trailing margin that is in each band (or a better one) at present.

    This is the margin of the ``ceil(top_fraction * n)``-th best customer. A band
    that is empty because ties pushed everyone up gets the threshold of the band
    above it; every band is NaN when ``trailing`` is empty. The "near-VIP" nudge
    (how much more margin reaches the next tier) is ``threshold - margin``;
    reaching it is approximate because the customer's own move shifts the ranks.

    Returns
    -------
    pandas.Series
        Float thresholds indexed by band name, best first (``rest`` excluded).
    """
    values = _check_values(trailing)
    n = len(values)
    descending = np.sort(values)[::-1]
    out = {}
    positions = np.arange(n) / n if n else np.zeros(0)
    for name, fraction in config.bands:
        # Same comparison as assign_tiers, so float rounding cannot make them disagree.
        count = int(np.count_nonzero(positions < fraction))
        out[name] = float(descending[count - 1]) if n else np.nan
    return pd.Series(out, dtype="float64", name="threshold_margin")


def margin_to_next_tier(trailing: pd.Series, config: TierConfig = TierConfig()) -> pd.DataFrame:
    """For each customer, the next better tier and the extra trailing margin that reaches it.

    The "near-VIP" nudge: ``margin_to_next_tier = threshold(next_tier) - margin``
    from :func:`tier_thresholds`, always > 0; ``<NA>``/NaN for the best band.

    Returns
    -------
    pandas.DataFrame
        With the index of ``trailing``: ``tier``, ``next_tier`` (string) and
        ``margin_to_next_tier`` (float).
    """
    tiers = assign_tiers(trailing, config)
    thresholds = tier_thresholds(trailing, config)
    names = config.names
    better = {names[i + 1]: names[i] for i in range(len(names) - 1)}
    next_tier = tiers.map(better).astype("string")
    needed = next_tier.map(thresholds.to_dict()).astype("float64")
    return pd.DataFrame(
        {
            "tier": tiers,
            "next_tier": next_tier,
            "margin_to_next_tier": needed - trailing.astype("float64"),
        },
        index=trailing.index,
    )


def tiers_by_cutoff(trailing: pd.DataFrame, config: TierConfig = TierConfig()) -> pd.DataFrame:
    """Tier and VIP flag of every row of a :func:`trailing_value` frame, ranked per cutoff."""
    if trailing.empty:
        tier = pd.Series(index=trailing.index, dtype="string", name="tier")
    else:
        tier = trailing.groupby(level="cutoff", group_keys=False)["trailing_margin"].apply(
            lambda s: assign_tiers(s, config)
        )
    out = pd.DataFrame({"tier": tier.reindex(trailing.index).astype("string")})
    out["is_vip"] = out["tier"].isin(list(config.vip_tiers)).astype("bool")
    return out
