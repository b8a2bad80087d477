"""Reason codes: hand-written sentences, selection rules and a brute-force property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from features.definitions import feature_names
from training.model.reason_templates import (
    ENGAGEMENT_FEATURES,
    REASON_TEMPLATES,
    RECENT_DAYS,
    generic_reason,
)
from training.model.reasons import customer_reasons, reason_codes, reason_frequencies

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


def test_a_score_nothing_pushes_up_is_explained_by_what_holds_it_down():
    contributions = _contributions(
        [
            [-0.1, 0.0, -0.5, -0.3, 0.0, 0.0, 0.0],
            [0.2, 0.0, -0.5, -0.3, 0.0, 0.0, 0.0],
            [0.0] * 7,
        ]
    )
    reasons = customer_reasons(contributions, FEATURES, reference=REFERENCE)
    held_down = reasons[0]
    assert [r.contribution for r in held_down] == pytest.approx([-0.5, -0.3, -0.1])
    assert [r.code for r in held_down] == [
        FEATURES.columns[2],
        FEATURES.columns[3],
        FEATURES.columns[0],
    ]
    # one feature pushing up is reason enough: nothing holding the score down is added
    assert [r.contribution for r in reasons[1]] == pytest.approx([0.2])
    assert reasons[2] == []  # nothing moved the score: nothing to say


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
    assert set(ENGAGEMENT_FEATURES) <= set(REASON_TEMPLATES)
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
        if not expected:  # nothing pushes toward the class: what pushes away, largest first
            held = sorted(candidates, key=lambda kj: (-kj[0], kj[1]))
            expected = [names[j] for key, j in held if key > 0][:top]
        assert [r.code for r in got[i]] == expected


def test_reason_frequencies():
    codes = pd.DataFrame({"reason_code_1": ["a", "b", "a", None]})
    table = reason_frequencies(codes)
    assert table.loc["a", "customers"] == 2
    assert table.loc["a", "share"] == 0.5


# ---------------------------------------------------------------- lapsed customers


LAPSED = pd.DataFrame(
    {
        "days_since_last_order": [181.0, 250.0, 400.0, 200.0],
        "purchase_gap_mean_days": [60.0, 50.0, 100.0, 220.0],
    },
    index=pd.Index(["l1", "l2", "l3", "l4"], name="customer_id"),
)


def test_a_lapsed_customer_below_the_median_is_not_called_recent():
    # a win-back list: every customer lapsed; the reactivation model is pushed up by the
    # shorter absences, which sit below the list's own median (225 days) -> "low"
    contributions = pd.DataFrame(
        {"days_since_last_order": [0.8, 0.1, -0.5, 0.4], "purchase_gap_mean_days": 0.0},
        index=LAPSED.index,
    )
    codes = reason_codes(contributions, LAPSED, top=1)
    assert codes["reason_1"].tolist() == [
        "last order 181 days ago",
        "no order for 250 days, 5.0x the usual gap",
        "no order for 400 days, 4.0x the usual gap",  # what holds its score down
        "last order 200 days ago, within their usual gap",
    ]
    # judged against the whole base (median 60 days) the same customers read as overdue
    codes = reason_codes(contributions, LAPSED, top=1, reference={"days_since_last_order": 60.0})
    assert codes.loc["l1", "reason_1"] == "no order for 181 days, 3.0x the usual gap"


def test_recent_means_at_most_recent_days_whatever_the_reference():
    template = REASON_TEMPLATES["days_since_last_order"]
    assert template({"days_since_last_order": 12.0}, False) == "ordered recently (12 days ago)"
    assert template({"days_since_last_order": 12.0}, True) == "ordered recently (12 days ago)"
    assert template({"days_since_last_order": 1.0}, False) == "ordered recently (1 day ago)"
    assert template({"days_since_last_order": 31.0}, False) == "last order 31 days ago"


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 2000, allow_nan=False),
    st.one_of(st.just(float("nan")), st.floats(1, 400, allow_nan=False)),
    st.booleans(),
)
def test_recency_words_are_true_for_any_gap(days, gap, high):
    row = {"days_since_last_order": days, "purchase_gap_mean_days": gap}
    text = REASON_TEMPLATES["days_since_last_order"](row, high)
    assert ("recent" in text) == (days <= RECENT_DAYS)
    assert str(round(days)) in text
    if "usual gap" in text and "within" in text:
        assert days <= gap
    engagement = REASON_TEMPLATES["days_since_last_engagement"](
        {"days_since_last_engagement": days}, high
    )
    assert ("recent" in engagement) == (days <= RECENT_DAYS)


# ---------------------------------------------------------------- digital engagement


@pytest.mark.parametrize(
    ("feature", "value", "high", "expected"),
    [
        ("days_since_last_engagement", 75.0, True, "no site visit or e-mail open for 75 days"),
        ("days_since_last_engagement", 75.0, False, "last site visit or e-mail open 75 days ago"),
        (
            "days_since_last_engagement",
            3.0,
            False,
            "visited or opened an e-mail recently (3 days ago)",
        ),
        ("days_since_last_engagement", np.nan, False, "no site visit or e-mail open on record"),
        ("engagement_count_30d", 0.0, False, "no site visits or e-mail opens in the last 30 days"),
        (
            "engagement_count_90d",
            14.0,
            True,
            "engaged often (14 site, app or e-mail interactions in the last 90 days)",
        ),
        (
            "engagement_count_365d",
            1.0,
            False,
            "engaged little (1 site, app or e-mail interaction in the last 365 days)",
        ),
        (
            "engagement_trend_30d",
            0.6,
            False,
            "visits and e-mail opens falling vs their yearly average (-40%)",
        ),
        (
            "engagement_trend_30d",
            1.25,
            True,
            "visits and e-mail opens rising vs their yearly average (+25%)",
        ),
        ("engagement_trend_30d", np.nan, False, "no site visits or e-mail opens in the last year"),
        ("site_visit_count_90d", 0.0, False, "no site visits in the last 90 days"),
        ("site_visit_count_90d", 9.0, True, "9 site visits in the last 90 days"),
        ("email_open_count_90d", 2.0, False, "few e-mail opens (2 in the last 90 days)"),
        ("email_open_count_90d", 1.0, True, "1 e-mail open in the last 90 days"),
        ("email_click_count_90d", 0.0, True, "no e-mail clicks in the last 90 days"),
        (
            "engagement_per_order_90d",
            12.0,
            True,
            "browses without buying (12.0 visits or opens per order in the last 90 days)",
        ),
        (
            "engagement_per_order_90d",
            0.5,
            False,
            "buys on few visits (0.5 visits or opens per order in the last 90 days)",
        ),
        ("engagement_per_order_90d", np.nan, True, None),
    ],
)
def test_engagement_sentences(feature, value, high, expected):
    assert REASON_TEMPLATES[feature]({feature: value}, high) == expected


def test_engagement_reasons_through_customer_reasons():
    features = pd.DataFrame(
        {"days_since_last_engagement": [75.0, 5.0], "engagement_trend_30d": [0.5, 1.0]},
        index=pd.Index(["e1", "e2"], name="customer_id"),
    )
    contributions = pd.DataFrame(
        {"days_since_last_engagement": [0.7, 0.0], "engagement_trend_30d": [0.3, 0.0]},
        index=features.index,
    )
    codes = reason_codes(contributions, features, top=2)
    assert codes.loc["e1", ["reason_1", "reason_2"]].tolist() == [
        "no site visit or e-mail open for 75 days",
        "visits and e-mail opens falling vs their yearly average (-50%)",
    ]
    assert codes.loc["e2", "reason_1"] is None
