"""Labels: a hand-computed shop, window edges, a brute-force reference and leakage properties."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.inputs.schema import ShopTables
from features.labels import LabelConfig, build_labels, customer_status, outcomes_sql, status_sql
from features.tiers import TierConfig, trailing_value_sql

CUTOFF = dt.date(2024, 3, 31)
#: Small windows so the hand example stays readable: horizon 30 days, active and
#: lapsed 60 days, VIP = top 25% by 90-day trailing margin.
CONFIG = LabelConfig(
    horizon_days=30,
    active_window_days=60,
    lapsed_after_days=60,
    tiers=TierConfig(bands=(("gold", 0.25),), vip_tiers=("gold",), window_days=90),
)


def shop(rows: list[tuple], *, margin: bool = True) -> ShopTables:
    """Contract-typed transactions from (customer, order, ordered_at, amount, margin, is_return)."""
    frame = pd.DataFrame(
        rows,
        columns=["customer_id", "order_id", "ordered_at", "amount", "margin_amount", "is_return"],
    )
    frame = frame.astype(
        {
            "customer_id": "string",
            "order_id": "string",
            "amount": "float64",
            "margin_amount": "float64",
            "is_return": "bool",
        }
    )
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    if not margin:
        frame = frame.drop(columns="margin_amount")
    return ShopTables(transactions=frame)


# Cutoff 2024-03-31: history is ordered_at < 2024-04-01 00:00, the horizon is
# [2024-04-01 00:00, 2024-05-01 00:00), the 60-day active window starts 2024-02-01
# 00:00 and the 90-day tier window at the cutoff starts 2024-01-02 (at the end of
# the horizon, 2024-04-30, it is [2024-02-01, 2024-05-01)).
HAND_ROWS = [
    # A: active (ordered 03-21), VIP (margin 100); only a return in the horizon -> churned.
    ("A", "a1", "2024-03-21 10:00", 200.0, 100.0, False),
    ("A", "a1", "2024-04-10 10:00", 5.0, -2.0, True),
    # B: active; orders at the very first instant of the horizon -> not churned; becomes VIP.
    ("B", "b1", "2024-03-21 10:00", 80.0, 50.0, False),
    ("B", "b2", "2024-04-01 00:00", 900.0, 500.0, False),
    # C: active; orders at the very last instant of the horizon -> not churned.
    ("C", "c1", "2024-03-21 10:00", 20.0, 10.0, False),
    ("C", "c2", "2024-04-30 23:59:59", 3.0, 0.0, False),
    # D: active; next order the instant after the horizon -> churned.
    ("D", "d1", "2024-03-21 10:00", 20.0, 10.0, False),
    ("D", "d2", "2024-05-01 00:00", 999.0, 999.0, False),
    # E: orders at the last instant of the cutoff day -> known and active, churned.
    ("E", "e1", "2024-03-31 23:59:59", 8.0, 5.0, False),
    # F: first order after the cutoff -> not labelled at this cutoff, but VIP at the end.
    ("F", "f1", "2024-04-01 00:00", 400.0, 300.0, False),
    # G: last order at the first instant of the active window -> active; orders again.
    ("G", "g1", "2024-02-01 00:00", 2.0, 1.0, False),
    ("G", "g2", "2024-04-20 12:00", 6.0, 3.0, False),
    # H: last order the instant before the active window -> lapsed (and VIP by margin);
    #    orders in the horizon -> reactivated.
    ("H", "h1", "2024-01-31 23:59:59", 300.0, 200.0, False),
    ("H", "h2", "2024-04-15 09:00", 30.0, 20.0, False),
    # I: lapsed, nothing in the horizon -> not reactivated.
    ("I", "i1", "2023-12-01 09:00", 50.0, 20.0, False),
    # J: lapsed, only a return in the horizon -> not reactivated, negative revenue.
    ("J", "j1", "2023-11-15 09:00", 50.0, 20.0, False),
    ("J", "j1", "2024-04-05 09:00", 50.0, -20.0, True),
]


def hand_labels() -> pd.DataFrame:
    return build_labels(shop(HAND_ROWS), [CUTOFF], CONFIG).loc[pd.Timestamp(CUTOFF)]


def test_population_is_customers_with_an_order_on_or_before_the_cutoff():
    labels = hand_labels()
    assert list(labels.index) == ["A", "B", "C", "D", "E", "G", "H", "I", "J"]
    assert labels["is_active"].to_dict() == {
        "A": True, "B": True, "C": True, "D": True, "E": True, "G": True,
        "H": False, "I": False, "J": False,
    }  # fmt: skip
    assert (labels["is_lapsed"] == ~labels["is_active"]).all()


def test_churned_by_hand():
    churned = hand_labels()["churned"]
    expected = {"A": True, "B": False, "C": False, "D": True, "E": True, "G": False}
    assert churned[list(expected)].to_dict() == expected
    assert churned[["H", "I", "J"]].isna().all()
    assert churned.dtype == "boolean"


def test_reactivated_by_hand():
    reactivated = hand_labels()["reactivated"]
    assert reactivated[["H", "I", "J"]].tolist() == [True, False, False]
    assert reactivated[["A", "B", "C", "D", "E", "G"]].isna().all()


def test_vip_and_became_vip_by_hand():
    labels = hand_labels()
    # Tier population at the cutoff: purchases in [01-02, 03-31] -> A B C D E G H (7);
    # gold = fewer than 0.25 * 7 customers above -> H (200) and A (100).
    assert labels.index[labels["is_vip"]].tolist() == ["A", "H"]
    assert labels["tier"].isna().tolist() == [False] * 7 + [True, True]  # I, J unranked
    # At 04-30 (window from 02-01): B 550, F 300, A 98, H 20, C 10, D 10, E 5, G 4 -> gold B, F.
    became = labels["became_vip"]
    assert became[["B", "C", "D", "E", "G"]].tolist() == [True, False, False, False, False]
    assert became[["A", "H", "I", "J"]].isna().all()  # VIP already, or not active


def test_future_outcomes_by_hand():
    labels = hand_labels()
    assert labels["future_revenue"].to_dict() == {
        "A": -5.0, "B": 900.0, "C": 3.0, "D": 0.0, "E": 0.0, "G": 6.0,
        "H": 30.0, "I": 0.0, "J": -50.0,
    }  # fmt: skip
    assert labels["future_margin"][["A", "B", "H", "J"]].tolist() == [-2.0, 500.0, 20.0, -20.0]
    assert labels["future_orders"].tolist() == [0, 1, 1, 0, 0, 1, 1, 0, 0]
    assert labels["trailing_margin"][["A", "H", "I"]].tolist() == [100.0, 200.0, 0.0]


def test_without_margin_column_future_margin_is_revenue_with_a_warning():
    with pytest.warns(UserWarning, match="margin_amount"):
        labels = build_labels(shop(HAND_ROWS, margin=False), [CUTOFF], CONFIG)
    assert labels["future_margin"].equals(labels["future_revenue"])


def test_many_cutoffs_in_one_call_match_one_at_a_time():
    cutoffs = [dt.date(2024, 2, 15), CUTOFF, dt.date(2024, 4, 10)]
    together = build_labels(shop(HAND_ROWS), cutoffs, CONFIG)
    apart = pd.concat([build_labels(shop(HAND_ROWS), [c], CONFIG) for c in cutoffs])
    pd.testing.assert_frame_equal(together, apart)
    assert together.index.is_unique
    assert together.index.get_level_values("cutoff").unique().tolist() == [
        pd.Timestamp(c) for c in cutoffs
    ]


def test_label_config_validation_names_the_field():
    with pytest.raises(ValueError, match="horizon_days"):
        LabelConfig(horizon_days=0)
    with pytest.raises(ValueError, match="lapsed_after_days"):
        LabelConfig(active_window_days=365, lapsed_after_days=180)
    wider = LabelConfig(active_window_days=60, lapsed_after_days=120, tiers=CONFIG.tiers)
    status = customer_status(shop(HAND_ROWS), [CUTOFF], wider).loc[pd.Timestamp(CUTOFF)]
    # H last ordered 60 days + 1 s before the window end: neither active nor lapsed.
    assert not status.loc["H", "is_active"] and not status.loc["H", "is_lapsed"]
    assert status.loc["I", "is_lapsed"]


def test_sql_transpiles_to_spark():
    tables = shop(HAND_ROWS)
    for sql in (
        status_sql(tables, CONFIG),
        outcomes_sql(tables, CONFIG),
        trailing_value_sql(tables),
    ):
        spark = sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level="raise")[0]
        assert "INTERVAL" in spark and "transactions" in spark


# --- brute force and properties -------------------------------------------------------------

PROPERTY_CONFIG = LabelConfig(
    horizon_days=20,
    active_window_days=15,
    lapsed_after_days=25,
    tiers=TierConfig(bands=(("gold", 0.3), ("silver", 0.6)), vip_tiers=("gold",), window_days=30),
)
P_CUTOFF = dt.date(2024, 2, 10)
START = pd.Timestamp("2024-01-01", tz="UTC")


def brute_force_labels(tables: ShopTables, cutoff: dt.date, config: LabelConfig) -> pd.DataFrame:
    """The label definitions as a slow per-customer loop, straight from the docs."""
    tx = tables.transactions
    day = pd.Timestamp(cutoff, tz="UTC")
    end = day + pd.Timedelta(days=1)
    horizon_end = end + pd.Timedelta(days=config.horizon_days)

    def vip_at(until: pd.Timestamp) -> set[str]:
        window = tx[(tx.ordered_at >= until - pd.Timedelta(days=config.tiers.window_days))
                    & (tx.ordered_at < until)]  # fmt: skip
        margins = {}
        for cid, g in window.groupby("customer_id"):
            if (~g.is_return).any():
                margins[cid] = float(g.margin_amount.sum())
        n = len(margins)
        vip_share = dict(config.tiers.bands)[config.tiers.vip_tiers[-1]]
        return {
            c for c, m in margins.items() if sum(v > m for v in margins.values()) / n < vip_share
        }

    vip_now, vip_end = vip_at(end), vip_at(horizon_end)
    rows = {}
    for cid, g in tx.groupby("customer_id"):
        buys = g[~g.is_return]
        past = buys[buys.ordered_at < end]
        if past.empty:
            continue
        last = past.ordered_at.max()
        active = last >= end - pd.Timedelta(days=config.active_window_days)
        lapsed = last < end - pd.Timedelta(days=config.lapsed_after_days)
        future = g[(g.ordered_at >= end) & (g.ordered_at < horizon_end)]
        orders = future[~future.is_return].order_id.nunique()
        sign = np.where(future.is_return, -1.0, 1.0)
        rows[cid] = {
            "churned": (orders == 0) if active else pd.NA,
            "reactivated": (orders > 0) if lapsed else pd.NA,
            "became_vip": (cid in vip_end) if active and cid not in vip_now else pd.NA,
            "is_vip": cid in vip_now,
            "future_revenue": float((sign * future.amount).sum()),
            "future_margin": float(future.margin_amount.sum()),
            "future_orders": orders,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@st.composite
def transactions(draw) -> list[tuple]:
    """Up to 40 lines of 6 customers over 80 days around the cutoff, some returns."""
    n = draw(st.integers(1, 40))
    rows = []
    for i in range(n):
        customer = draw(st.sampled_from("UVWXYZ"))
        minutes = draw(st.integers(0, 80 * 24 * 60 - 1))
        # Half the lines fall on whole days, to hit the window edges exactly.
        if draw(st.booleans()):
            minutes -= minutes % (24 * 60)
        rows.append(
            (
                customer,
                f"{customer}{draw(st.integers(0, 4))}" if draw(st.booleans()) else f"o{i}",
                START + pd.Timedelta(minutes=minutes),
                float(draw(st.integers(0, 100))),
                float(draw(st.integers(-20, 60))),
                draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return rows


LABELS = ["churned", "reactivated", "became_vip"]
OUTCOMES = ["future_revenue", "future_margin", "future_orders"]
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FASTER = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(transactions())
def test_matches_brute_force(rows):
    tables = shop(rows)
    labels = build_labels(tables, [P_CUTOFF], PROPERTY_CONFIG)
    expected = brute_force_labels(tables, P_CUTOFF, PROPERTY_CONFIG)
    if expected.empty:
        assert labels.empty
        return
    got = labels.loc[pd.Timestamp(P_CUTOFF)]
    assert sorted(got.index) == sorted(expected.index)
    expected = expected.loc[got.index]
    for name in LABELS:
        assert got[name].astype(object).where(got[name].notna(), None).tolist() == [
            None if pd.isna(v) else bool(v) for v in expected[name]
        ], name
    assert got["is_vip"].tolist() == expected["is_vip"].astype(bool).tolist()
    np.testing.assert_allclose(got["future_revenue"], expected["future_revenue"].astype(float))
    np.testing.assert_allclose(got["future_margin"], expected["future_margin"].astype(float))
    assert got["future_orders"].tolist() == expected["future_orders"].astype(int).tolist()


def _split(rows: list[tuple], at: pd.Timestamp) -> tuple[list[tuple], list[tuple]]:
    return [r for r in rows if r[2] < at], [r for r in rows if r[2] >= at]


@FASTER
@given(transactions(), transactions())
def test_data_after_the_horizon_changes_no_label(rows, other):
    horizon_end = pd.Timestamp(P_CUTOFF, tz="UTC") + pd.Timedelta(
        days=PROPERTY_CONFIG.horizon_days + 1
    )
    kept, _ = _split(rows, horizon_end)
    _, replaced = _split(other, horizon_end)
    if not kept:
        return
    base = build_labels(shop(kept), [P_CUTOFF], PROPERTY_CONFIG)
    changed = build_labels(shop(kept + replaced), [P_CUTOFF], PROPERTY_CONFIG)
    pd.testing.assert_frame_equal(base, changed)


@FASTER
@given(transactions(), transactions())
def test_data_on_or_before_the_cutoff_changes_no_outcome_given_the_population(rows, other):
    end = pd.Timestamp(P_CUTOFF, tz="UTC") + pd.Timedelta(days=1)
    _, future = _split(rows, end)
    past_a, _ = _split(rows, end)
    past_b, _ = _split(other, end)
    # Distinct order ids on each side of the cutoff: an order is placed at one time.
    future = [(c, f"late-{o}", *rest) for c, o, *rest in future]
    if not (past_a + future) or not (past_b + future):
        return
    a = build_labels(shop(past_a + future), [P_CUTOFF], PROPERTY_CONFIG)
    b = build_labels(shop(past_b + future), [P_CUTOFF], PROPERTY_CONFIG)
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    same = (a["is_active"] == b["is_active"]) & (a["is_lapsed"] == b["is_lapsed"])
    pd.testing.assert_frame_equal(a.loc[same, OUTCOMES], b.loc[same, OUTCOMES])
    for name in ("churned", "reactivated"):
        pd.testing.assert_series_equal(a.loc[same, name], b.loc[same, name])
