"""Value baselines: the point-in-time summary by hand, the trailing rule, BG/NBD x Gamma-Gamma."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given

from features.inputs.schema import ShopTables
from tests.features.test_labels import FASTER, P_CUTOFF, shop, transactions
from training.evaluation.bgnbd import simulate_bgnbd
from training.evaluation.gamma_gamma import simulate_gamma_gamma
from training.evaluation.value_baselines import (
    BTYD_FEATURES,
    BtydValueBaseline,
    TrailingValueBaseline,
    value_summary_at_cutoffs,
)


def _tables(rows, *, margin: bool = True) -> ShopTables:
    frame = pd.DataFrame(
        rows, columns=["customer_id", "ordered_at", "amount", "margin", "is_return"]
    )
    transactions = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("string"),
            "order_id": pd.Series([f"o{i}" for i in range(len(frame))], dtype="string"),
            "ordered_at": pd.to_datetime(frame["ordered_at"], utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "amount": frame["amount"].astype(float),
            "margin_amount": frame["margin"].astype(float),
            "is_return": frame["is_return"].astype(bool),
        }
    )
    if not margin:
        transactions = transactions.drop(columns="margin_amount")
    return ShopTables(transactions=transactions)


ROWS = [
    ("A", "2024-01-01 09:00", 100.0, 30.0, False),
    ("A", "2024-01-01 17:00", 50.0, 10.0, False),  # same day: one purchase day worth 40
    ("A", "2024-01-05 12:00", 20.0, 6.0, False),
    ("A", "2024-01-08 12:00", 20.0, -6.0, True),  # a return is not spend
    ("A", "2024-01-20 12:00", 999.0, 999.0, False),  # after the cutoff
    ("C", "2024-01-10 23:59", 8.0, 2.0, False),
]


def test_summary_by_hand():
    summary = value_summary_at_cutoffs(_tables(ROWS), ["2024-01-10"]).droplevel("cutoff")
    assert summary.index.tolist() == ["A", "C"]
    assert summary.loc["A"].tolist() == [1.0, 4.0, 9.0, 23.0]  # (40 + 6) / 2 purchase days
    assert summary.loc["C"].tolist() == [0.0, 0.0, 0.0, 2.0]
    revenue = value_summary_at_cutoffs(_tables(ROWS, margin=False), ["2024-01-10"])
    assert revenue.loc[(pd.Timestamp("2024-01-10"), "A"), "monetary_value"] == 85.0


def test_trailing_value_is_carried_forward():
    index = pd.MultiIndex.from_tuples(
        [(pd.Timestamp("2024-01-10"), "A"), (pd.Timestamp("2024-01-10"), "C")],
        names=["cutoff", "customer_id"],
    )
    table = pd.DataFrame({"trailing_margin": [365.0, 0.0]}, index=index)
    baseline = TrailingValueBaseline(90).fit(table)
    assert baseline.predict(table).tolist() == [90.0, 0.0]
    with pytest.raises(ValueError, match="trailing_margin"):
        TrailingValueBaseline(90).fit(table.rename(columns={"trailing_margin": "x"}))


def _simulated_summary(n: int, cutoff: str, seed: int) -> pd.DataFrame:
    rfm = simulate_bgnbd(n, 300.0, r=0.8, alpha=40.0, a=0.9, b=3.0, seed=seed)
    spend = simulate_gamma_gamma(n, rfm["frequency"] + 1, p=6.0, q=4.0, gamma=20.0, seed=seed)
    frame = rfm[["frequency", "recency", "T"]].assign(monetary_value=spend["monetary_value"])
    frame.index = pd.MultiIndex.from_product(
        [[pd.Timestamp(cutoff)], [f"c{i}" for i in range(n)]], names=["cutoff", "customer_id"]
    )
    return frame


def test_btyd_fits_on_training_cutoffs_and_multiplies_purchases_by_spend():
    train_summary = _simulated_summary(4000, "2024-01-01", seed=1)
    test_summary = _simulated_summary(500, "2024-06-01", seed=2)
    summary = pd.concat([train_summary, test_summary])
    train = pd.DataFrame(index=train_summary.index)
    test = pd.DataFrame(index=test_summary.index)
    baseline = BtydValueBaseline(90, summary).fit(train)
    assert baseline.gamma_gamma_.params_.p == pytest.approx(6.0, rel=0.3)
    features = baseline.features(test)
    assert list(features.columns) == list(BTYD_FEATURES)
    np.testing.assert_allclose(
        features["btyd_expected_value"],
        features["btyd_expected_purchases"] * features["btyd_expected_spend"],
    )
    np.testing.assert_allclose(baseline.predict(test), features["btyd_expected_value"])
    # the test cutoff's summaries never inform the parameters
    changed = pd.concat([train_summary, test_summary.assign(monetary_value=1.0)])
    refit = BtydValueBaseline(90, changed).fit(train)
    assert refit.gamma_gamma_.params_ == baseline.gamma_gamma_.params_
    assert refit.bgnbd_.params_ == baseline.bgnbd_.params_
    # a customer unknown to the summary is worth nothing
    stranger = pd.DataFrame(
        index=pd.MultiIndex.from_tuples(
            [(pd.Timestamp("2024-06-01"), "zz")], names=["cutoff", "customer_id"]
        )
    )
    assert baseline.predict(stranger).tolist() == [0.0]
    with pytest.raises(ValueError, match="no rows at the train cutoffs"):
        BtydValueBaseline(90, test_summary).fit(train)


@FASTER
@given(transactions(), transactions())
def test_summary_ignores_everything_after_the_cutoff(rows, other):
    end = pd.Timestamp(P_CUTOFF, tz="UTC") + pd.Timedelta(days=1)
    kept = [r for r in rows if r[2] < end]
    later = [r for r in other if r[2] >= end]
    if not kept:
        return
    base = value_summary_at_cutoffs(shop(kept), [P_CUTOFF])
    pd.testing.assert_frame_equal(value_summary_at_cutoffs(shop(kept + later), [P_CUTOFF]), base)
