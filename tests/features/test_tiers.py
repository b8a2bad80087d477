"""Value tiers: hand-computed bands, ties, thresholds, the config checks and trailing value."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.inputs.schema import ShopTables
from features.tiers import (
    ABCD_GRADES,
    TierConfig,
    assign_tiers,
    margin_to_next_tier,
    tier_thresholds,
    tiers_by_cutoff,
    trailing_value,
)

#: 10 customers: top 10% platinum-ish "p", next to 20% "g", to 50% "s".
SMALL = TierConfig(bands=(("p", 0.1), ("g", 0.2), ("s", 0.5)), vip_tiers=("p", "g"))


def margins(values: dict[str, float]) -> pd.Series:
    return pd.Series(values, dtype="float64")


def test_assign_tiers_by_hand():
    trailing = margins(
        {"a": 10, "b": 9, "c": 8.5, "d": 5, "e": 1, "f": 0, "g": -3, "h": 8, "i": 7, "j": 6}
    )
    # Sorted: a 10, b 9, c 8.5, h 8, i 7 | j 6, d 5, e 1, f 0, g -3.
    tiers = assign_tiers(trailing, SMALL)
    assert tiers.to_dict() == {
        "a": "p", "b": "g", "c": "s", "d": "standard", "e": "standard",
        "f": "standard", "g": "standard", "h": "s", "i": "s", "j": "standard",
    }  # fmt: skip
    assert tiers.dtype == "string"
    assert tier_thresholds(trailing, SMALL).to_dict() == {"p": 10.0, "g": 9.0, "s": 7.0}
    gap = margin_to_next_tier(trailing, SMALL)
    assert gap.loc[["b", "c", "j", "g"], "next_tier"].tolist() == ["p", "g", "s", "s"]
    assert gap.loc[["b", "c", "j", "g"], "margin_to_next_tier"].tolist() == [1.0, 0.5, 1.0, 10.0]
    assert pd.isna(gap.loc["a", "next_tier"]) and np.isnan(gap.loc["a", "margin_to_next_tier"])


def test_ties_share_the_better_band_whatever_the_order():
    trailing = margins(
        {"a": 10, "b": 9, "c": 9, "d": 9, "e": 1, "f": 1, "g": 1, "h": 1, "i": 0, "j": 0}
    )
    tiers = assign_tiers(trailing, SMALL)
    # b, c, d tie with one customer above them (10% < 20%): all three are "g".
    assert tiers[["a", "b", "c", "d"]].tolist() == ["p", "g", "g", "g"]
    # e..h have 4 above (40% < 50%): all "s", though that makes "s" hold 4 instead of 3.
    assert tiers[["e", "f", "g", "h", "i", "j"]].tolist() == ["s"] * 4 + ["standard"] * 2
    shuffled = trailing.sample(frac=1.0, random_state=3)
    assert assign_tiers(shuffled, SMALL).to_dict() == tiers.to_dict()


def test_empty_band_takes_the_threshold_above_it():
    trailing = margins({"a": 5, "b": 5, "c": 1, "d": 1, "e": 0})
    # p: fewer than 0.5 above -> a, b (tied); g: fewer than 1 above -> also a, b: g is empty.
    assert assign_tiers(trailing, SMALL).tolist() == ["p", "p", "s", "s", "standard"]
    assert tier_thresholds(trailing, SMALL).to_dict() == {"p": 5.0, "g": 5.0, "s": 1.0}


def test_default_tiers_on_a_hundred_customers():
    trailing = pd.Series(np.arange(100, 0, -1, dtype=float), index=[f"c{i}" for i in range(100)])
    counts = assign_tiers(trailing).value_counts()
    assert counts.to_dict() == {"platinum": 1, "gold": 4, "silver": 5, "bronze": 15, "standard": 75}
    assert tier_thresholds(trailing).to_dict() == {
        "platinum": 100.0, "gold": 96.0, "silver": 91.0, "bronze": 76.0,
    }  # fmt: skip
    grades = assign_tiers(trailing, ABCD_GRADES).value_counts().to_dict()
    assert grades == {"A": 5, "B": 15, "C": 30, "D": 50}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=60))
def test_tiers_are_monotone_in_margin_and_agree_with_thresholds(values):
    trailing = pd.Series(values, index=[f"c{i}" for i in range(len(values))], dtype="float64")
    tiers = assign_tiers(trailing, SMALL)
    rank = tiers.map({name: i for i, name in enumerate(SMALL.names)}).astype(int)
    order = np.argsort(-trailing.to_numpy(), kind="stable")
    # More margin never means a worse tier.
    assert (np.diff(rank.to_numpy()[order]) >= 0).all()
    thresholds = tier_thresholds(trailing, SMALL)
    for name, threshold in thresholds.items():
        at_least = rank <= SMALL.names.index(name)
        assert at_least.equals(trailing >= threshold)
    # Everyone but the best band needs strictly more margin to move up.
    gap = margin_to_next_tier(trailing, SMALL)["margin_to_next_tier"]
    assert (gap[tiers != "p"] > 0).all() and gap[tiers == "p"].isna().all()
    # Without ties a band or better holds exactly ceil(fraction * n) customers.
    if trailing.is_unique:
        for name, fraction in SMALL.bands:
            assert (rank <= SMALL.names.index(name)).sum() == int(
                np.ceil(fraction * len(values) - 1e-9)
            )


def test_missing_margin_is_an_error_naming_the_customer():
    with pytest.raises(ValueError, match="'b'"):
        assign_tiers(margins({"a": 1.0, "b": np.nan}))


def test_empty_input():
    assert assign_tiers(margins({})).empty
    assert tier_thresholds(margins({})).isna().all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bands": ()}, "empty"),
        ({"bands": (("a", 0.2), ("b", 0.1))}, "increase"),
        ({"bands": (("a", 0.2), ("a", 0.3))}, "unique"),
        ({"rest": "gold"}, "unique"),
        ({"vip_tiers": ("gold",)}, "prefix"),
        ({"window_days": 0}, "window_days"),
    ],
)
def test_tier_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TierConfig(**kwargs)


def test_vip_fraction():
    assert TierConfig().vip_fraction == 0.05
    assert ABCD_GRADES.vip_fraction == 0.05
    assert TierConfig(vip_tiers=()).vip_fraction == 0.0


def _tables() -> ShopTables:
    rows = [
        # (customer, order, ordered_at, amount, margin, is_return)
        ("a", "1", "2024-01-01 00:00", 100.0, 40.0, False),  # first instant of a 31-day window
        ("a", "1", "2024-01-20 00:00", 10.0, -4.0, True),  # a return: margin signed
        ("b", "2", "2023-12-31 23:59", 500.0, 300.0, False),  # just before the window
        ("b", "3", "2024-01-31 23:59", 50.0, 20.0, False),  # last minute of the date
        ("c", "4", "2024-02-01 00:00", 70.0, 30.0, False),  # after the date
        ("d", "5", "2024-01-15 00:00", 70.0, -30.0, True),  # only a return: not active
    ]
    frame = pd.DataFrame(
        rows,
        columns=["customer_id", "order_id", "ordered_at", "amount", "margin_amount", "is_return"],
    ).astype({"customer_id": "string", "order_id": "string"})
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    return ShopTables(transactions=frame)


def test_trailing_value_by_hand():
    value = trailing_value(_tables(), [dt.date(2024, 1, 31)], window_days=31)
    day = pd.Timestamp("2024-01-31")
    assert value.index.tolist() == [(day, "a"), (day, "b")]
    assert value["trailing_margin"].tolist() == [36.0, 20.0]
    assert value["trailing_revenue"].tolist() == [90.0, 50.0]
    assert value.columns.tolist() == ["trailing_margin", "trailing_revenue"]
    two = trailing_value(_tables(), ["2024-01-31", "2024-02-01"], window_days=31)
    # On 02-01 the window starts 01-02: a's purchase drops out, leaving only a return.
    assert two.loc[pd.Timestamp("2024-02-01")].index.tolist() == ["b", "c"]
    tiers = tiers_by_cutoff(two, TierConfig(bands=(("top", 0.4),), vip_tiers=("top",)))
    # Ranked per date: on 01-31 a (36) beats b (20); on 02-01 c (30) beats b (20).
    assert tiers.loc[(day, "a"), "is_vip"] and not tiers.loc[(day, "b"), "is_vip"]
    assert tiers["tier"].tolist() == ["top", "standard", "standard", "top"]
