"""Reason codes: hand-written sentences, selection rules and a brute-force property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from features.registry import feature_names
from training.reasons import (
    REASON_TEMPLATES,
    customer_reasons,
    generic_reason,
    reason_codes,
    reason_frequencies,
)

FEATURES = pd.DataFrame(
    {
        "days_since_last_order": [140.0, 10.0, 30.0],
        "purchase_gap_mean_days": [140.0 / 3, 20.0, np.nan],
        "support_ticket_count_90d": [3.0, 0.0, 1.0],
        "spend_trend_90d": [0.55, 1.2, 1.0],
        "overdue_ratio": [3.0, 0.5, np.nan],
        "region": pd.Categorical(["north", "south", None]),
    },
    index=pd.Index(["c1", "c2", "c3"], name="customer_id"),
)
REFERENCE = {
    "days_since_last_order": 60.0,
    "purchase_gap_mean_days": 30.0,
    "support_ticket_count_90d": 0.5,
    "spend_trend_90d": 1.0,
    "overdue_ratio": 1.0,
}


def _contributions(rows):
    return pd.DataFrame(rows, columns=[*FEATURES.columns, "bias"], index=FEATURES.index)


def test_hand_written_sentences():
    contributions = _contributions(
        [
            [0.9, 0.0, 0.5, 0.3, -0.2, 0.0, -1.0],
            [-0.4, 0.0, 0.0, 0.0, 0.0, 0.2, -1.0],
            [0.0, 0.3, 0.0, 0.0, 0.3, 0.0, 5.0],
        ]
    )
    codes = reason_codes(contributions, FEATURES, reference=REFERENCE)
    assert codes.loc["c1", ["reason_1", "reason_2", "reason_3"]].tolist() == [
        "no order for 140 days, 3.0x the usual gap",
        "support tickets up (3 in the last 90 days)",
        "spend falling vs last year (-45%)",
    ]
    assert codes.loc["c1", "reason_code_1"] == "days_since_last_order"
    # only features pushing toward the class count; the bias never does
    assert codes.loc["c2"].tolist() == ["region: south", None, None, "region", None, None]
    # gap and overdue ratio say the same thing for a one-purchase-day customer: said once
    assert codes.loc["c3", "reason_1"] == "only one purchase day so far"
    assert codes.loc["c3", "reason_2"] is None


def test_direction_minus_one_explains_low_scores():
    contributions = _contributions(
        [
            [0.9, 0.0, 0.5, 0.3, -0.2, 0.0, 0.0],
            [-0.4, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    reasons = customer_reasons(contributions, FEATURES, direction=-1, reference=REFERENCE)
    assert [r.code for r in reasons[0]] == ["overdue_ratio"]
    assert reasons[1][0].text == "ordered recently (10 days ago)"
    assert reasons[1][0].contribution == pytest.approx(-0.4)
    assert reasons[2] == []


def test_ties_break_by_column_order():
    contributions = _contributions([[0.2] * 6 + [0.0]] * 3)
    codes = reason_codes(contributions, FEATURES, templates={})
    assert codes["reason_code_1"].tolist() == ["days_since_last_order"] * 3
    assert codes.loc["c1", "reason_code_2"] == "purchase_gap_mean_days"


def test_generic_fallback():
    assert (
        generic_reason("order_value_max_amount", 1250.4, True)
        == "order value max amount is high (1,250)"
    )
    assert generic_reason("margin_rate", 0.1, False) == "margin rate is low (10%)"
    assert generic_reason("full_price_spend_share", 0.25, False) == "full price spend is low (25%)"
    assert (
        generic_reason("purchase_gap_std_days", 41.6, True) == "purchase gap std is high (42 days)"
    )
    assert generic_reason("review_count", 3.0, True) == "review count is high (3)"
    assert generic_reason("review_rating_mean", np.nan, False) == "no review rating mean on record"
    assert generic_reason("region", "north", False) == "region: north"


def test_every_template_is_a_registered_feature_and_speaks():
    registered = set(feature_names())
    assert set(REASON_TEMPLATES) <= registered, set(REASON_TEMPLATES) - registered
    for name, template in REASON_TEMPLATES.items():
        for value in (0.0, 1.0, 7.0, 400.0):
            row = {**{n: 2.0 for n in REASON_TEMPLATES}, name: value}
            for high in (True, False):
                text = template(row, high)
                assert text is None or (isinstance(text, str) and text), name
        missing = template({name: np.nan}, False)
        assert missing is None or (isinstance(missing, str) and missing), name


def test_bad_inputs_are_named():
    contributions = _contributions([[0.0] * 7] * 3)
    with pytest.raises(ValueError, match="3 rows but features 2"):
        reason_codes(contributions, FEATURES.iloc[:2])
    with pytest.raises(ValueError, match=r"lack the contribution columns \['region'\]"):
        reason_codes(contributions, FEATURES.drop(columns="region"))
    with pytest.raises(ValueError, match="direction"):
        reason_codes(contributions, FEATURES, direction=0)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(float, (5, 6), elements=st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])),
    st.integers(1, 4),
    st.sampled_from([1, -1]),
)
def test_selection_matches_brute_force(values, top, direction):
    names = [f"f{j}" for j in range(values.shape[1])]
    contributions = pd.DataFrame(values, columns=names)
    features = pd.DataFrame(
        np.arange(values.size, dtype=float).reshape(values.shape), columns=names
    )
    got = customer_reasons(contributions, features, top=top, direction=direction, templates={})
    for i in range(values.shape[0]):
        candidates = [(-direction * values[i, j], j) for j in range(values.shape[1])]
        expected = [names[j] for key, j in sorted(candidates) if key < 0][:top]
        assert [r.code for r in got[i]] == expected


def test_reason_frequencies():
    codes = pd.DataFrame({"reason_code_1": ["a", "b", "a", None]})
    table = reason_frequencies(codes)
    assert table.loc["a", "customers"] == 2
    assert table.loc["a", "share"] == 0.5
