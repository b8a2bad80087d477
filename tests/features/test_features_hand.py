"""Features on a tiny hand-built shop, against answers worked out by hand."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from features.build import available_features, build_feature_table, build_features
from features.inputs.schema import ShopTables
from tests.features.reference_features import canonical

CUTOFF = date(2024, 6, 30)


def line(customer, order, at, amount, *, ret=False, margin=0.0, discount=0.0, category="x"):
    return {
        "customer_id": customer,
        "order_id": order,
        "ordered_at": at,
        "amount": amount,
        "is_return": ret,
        "margin_amount": margin,
        "discount_amount": discount,
        "category": category,
        "product_id": f"{category}-1",  # one product per category
    }


def tiny_shop() -> ShopTables:
    """A (4 orders, 1 return, 1 late order), B (1 old order), C (return only), D (after cutoff)."""
    tx = [
        line("A", "a1", "2024-06-30T23:59:59Z", 10.0, margin=4.0),
        line("A", "a1", "2024-06-30T23:59:59Z", 20.0, margin=2.0, discount=5.0, category="y"),
        line("A", "a2", "2024-06-01T08:00:00Z", 30.0, margin=3.0),
        line("A", "a3", "2024-01-02T12:00:00Z", 40.0, margin=10.0),
        line("A", "r1", "2024-06-10T09:00:00Z", 30.0, ret=True, margin=-3.0),
        line("A", "a4", "2024-07-01T00:00:00Z", 99.0, margin=50.0),
        line("B", "b1", "2023-06-30T10:00:00Z", 50.0, margin=5.0, category="y"),
        line("C", "c1", "2024-03-01T10:00:00Z", 15.0, ret=True),
        line("D", "d1", "2024-07-02T10:00:00Z", 15.0, margin=1.0),
    ]
    return ShopTables(
        transactions=canonical("transactions", tx),
        customers=canonical(
            "customers", [{"customer_id": "A", "region": "north", "acquisition_channel": "ads"}]
        ),
        support_tickets=canonical(
            "support_tickets",
            [
                {"customer_id": "A", "ticket_id": "t1", "opened_at": "2024-06-15T10:00:00Z"},
                {"customer_id": "A", "ticket_id": "t2", "opened_at": "2024-07-01T00:00:00Z"},
            ],
        ),
        referrals=canonical(
            "referrals", [{"customer_id": "B", "referred_at": "2023-01-01T10:00:00Z"}]
        ),
        reviews=canonical(
            "reviews",
            [
                {"customer_id": "A", "reviewed_at": "2024-05-01T10:00:00Z", "rating": 4.0},
                {"customer_id": "A", "reviewed_at": "2024-07-02T10:00:00Z", "rating": 2.0},
            ],
        ),
        engagement_events=canonical(
            "engagement_events",
            [
                engagement("A", "2024-06-30T23:59:59Z", "site_visit"),  # age 0
                engagement("A", "2024-06-20T10:00:00Z", "email_open"),  # age 10
                engagement("A", "2024-05-15T10:00:00Z", "email_click"),  # age 46
                engagement("A", "2024-04-10T10:00:00Z", "app_session"),  # age 81
                engagement("A", "2023-12-01T10:00:00Z", "email_open"),  # age 212
                engagement("A", "2024-07-01T00:00:00Z", "site_visit"),  # after the cutoff
                engagement("B", "2023-07-01T10:00:00Z", "email_open"),  # age 365: outside 365d
                engagement("B", "2023-07-02T10:00:00Z", "email_open"),  # age 364
                engagement("C", "2024-06-29T10:00:00Z", "site_visit"),  # C never bought
            ],
        ),
    )


def engagement(customer: str, at: str, event_type: str) -> dict:
    return {"customer_id": customer, "occurred_at": at, "event_type": event_type}


NAN = math.nan
EXPECTED = {
    # feature: (A, B)
    "days_since_last_order": (0, 366),
    "tenure_days": (180, 366),
    "order_count": (3, 1),
    "order_count_30d": (2, 0),
    "order_count_90d": (2, 0),
    "order_count_180d": (2, 0),
    "order_count_365d": (3, 0),
    "order_count_trend_90d": ((2 / 90) / (3 / 365), NAN),
    "order_count_share_90d_of_180d": (1.0, NAN),
    "order_count_share_180d_of_365d": (2 / 3, NAN),
    "purchase_day_count": (3, 1),
    "purchase_gap_mean_days": (90.0, NAN),
    "purchase_gap_std_days": (122 / math.sqrt(2), NAN),
    "overdue_ratio": (0.0, NAN),
    "spend_amount": (100.0, 50.0),
    "spend_30d_amount": (60.0, 0.0),
    "spend_90d_amount": (60.0, 0.0),
    "spend_180d_amount": (60.0, 0.0),
    "spend_365d_amount": (100.0, 0.0),
    "spend_trend_90d": ((60 / 90) / (100 / 365), NAN),
    "spend_share_90d_of_180d": (1.0, NAN),
    "spend_share_180d_of_365d": (0.6, NAN),
    "spend_365d_rank_share": (0.0, NAN),  # A is the only customer with spend in 365 days
    # net of the return r1 (30, margin -3); every line of A is younger than 275 days, B's is 366
    "net_spend_275d_amount": (70.0, 0.0),
    "net_spend_365d_amount": (70.0, 0.0),
    "net_margin_275d_amount": (16.0, 0.0),
    "net_margin_365d_amount": (16.0, 0.0),
    # relative to the mean over the customers with spend in 365 days: A alone
    "net_spend_275d_mean_share": (1.0, NAN),
    "net_spend_365d_mean_share": (1.0, NAN),
    "net_margin_275d_mean_share": (1.0, NAN),
    "net_margin_365d_mean_share": (1.0, NAN),
    "order_value_mean_amount": (100 / 3, 50.0),
    "order_value_max_amount": (40.0, 50.0),
    "order_value_std_amount": (math.sqrt(100 / 3), NAN),
    "total_margin_amount": (19.0, 5.0),
    "margin_365d_amount": (19.0, 0.0),
    "margin_rate": (0.19, 0.1),
    "full_price_spend_share": (0.8, 1.0),
    "discount_rate": (5 / 105, 0.0),
    "discounted_order_share": (1 / 3, 0.0),
    # x: margin 17 / 80 = 0.2125, y: 7 / 70 = 0.1, shop 24 / 150 = 0.16 -> x is high-margin
    "high_margin_spend_share": (0.8, 0.0),
    "category_count": (2, 1),
    "top_category_spend_share": (0.8, 1.0),
    "category_concentration_share": (0.68, 1.0),
    "returned_line_count": (1, 0),
    "returned_line_count_365d": (1, 0),
    "returned_amount": (30.0, 0.0),
    "return_rate": (0.3, 0.0),
    "support_ticket_count": (1, 0),
    "support_ticket_count_90d": (1, 0),
    "days_since_last_support_ticket": (15, NAN),
    "referral_count": (0, 1),
    "referral_count_365d": (0, 0),
    "review_count": (1, 0),
    "review_rating_mean": (4.0, NAN),
    "days_since_last_review": (60, NAN),
    "days_since_last_engagement": (0, 364),
    "engagement_count_30d": (2, 0),
    "engagement_count_90d": (4, 0),
    "engagement_count_365d": (5, 1),
    "engagement_trend_30d": ((2 / 30) / (5 / 365), 0.0),
    "site_visit_count_90d": (2, 0),
    "email_open_count_90d": (1, 0),
    "email_click_count_90d": (1, 0),
    "engagement_per_order_90d": (4 / 2, NAN),
    # purchased products: 90 days x-1, y-1 (a1), x-1 (a2); 365 days also x-1 (a3); B is 366 old
    "distinct_product_count_90d": (2, 0),
    "distinct_product_count_365d": (2, 0),
    "repeat_product_line_share_365d": (1 - 2 / 4, NAN),
}


@pytest.fixture(scope="module")
def built() -> pd.DataFrame:
    return build_features(tiny_shop(), CUTOFF)


def test_population_is_customers_with_a_purchase_on_or_before_the_cutoff(built):
    assert list(built.index) == ["A", "B"]
    assert built.index.name == "customer_id"
    assert built.index.dtype == "string"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_matches_hand_computed_value(built, name):
    got = built[name].tolist()
    for value, expected in zip(got, EXPECTED[name], strict=True):
        if math.isnan(expected):
            assert math.isnan(value), f"{name}: expected missing, got {value}"
        else:
            assert value == pytest.approx(expected, rel=1e-12), name


def test_static_attributes_are_categoricals_missing_without_a_row(built):
    assert isinstance(built["region"].dtype, pd.CategoricalDtype)
    assert built["region"].iloc[0] == "north"
    assert pd.isna(built["region"].iloc[1])
    assert built["acquisition_channel"].iloc[0] == "ads"


def test_every_feature_is_computed_when_every_table_is_present(built):
    assert set(built.columns) == set(EXPECTED) | {"region", "acquisition_channel"}
    assert built.attrs["omitted_features"] == []


def test_absent_tables_and_columns_omit_their_features_with_a_note():
    shop = tiny_shop()
    bare = ShopTables(
        transactions=shop.transactions[["customer_id", "order_id", "ordered_at", "amount"]]
    )
    names, notes = available_features(bare)
    built = build_features(bare, CUTOFF)
    assert list(built.columns) == names
    for gone in ("support_ticket_count", "review_rating_mean", "region", "margin_rate"):
        assert gone not in names
        assert any(n.startswith(f"{gone}:") for n in notes)
    assert "support_ticket_count: omitted, table 'support_tickets' is absent" in notes
    assert "margin_rate: omitted, column 'transactions.margin_amount' is absent" in notes
    assert "returned_amount: omitted, column 'transactions.is_return' is absent" in notes
    assert built.attrs["omitted_features"] == notes
    # Without is_return every line is a purchase: C's return counts as an order here.
    assert list(built.index) == ["A", "B", "C"]
    assert built.loc["A", "order_count"] == 4


def test_present_but_empty_event_table_gives_zero_counts_and_missing_recency():
    shop = tiny_shop()
    empty = ShopTables(
        transactions=shop.transactions,
        support_tickets=shop.support_tickets.iloc[0:0],
    )
    built = build_features(empty, CUTOFF)
    assert built["support_ticket_count"].tolist() == [0.0, 0.0]
    assert built["days_since_last_support_ticket"].isna().all()


def test_feature_table_over_cutoffs_equals_one_build_per_cutoff():
    shop = tiny_shop()
    cutoffs = [date(2023, 12, 31), CUTOFF]
    table = build_feature_table(shop, cutoffs)
    assert table.index.names == ["cutoff", "customer_id"]
    assert str(table.index.dtypes["cutoff"]) == "datetime64[s]"
    for cutoff in cutoffs:
        single = build_features(shop, cutoff)
        part = table.xs(pd.Timestamp(cutoff), level="cutoff")
        pd.testing.assert_frame_equal(part, single, check_categorical=False)


def test_cutoff_with_a_time_of_day_is_refused():
    with pytest.raises(ValueError, match="time of day"):
        build_features(tiny_shop(), pd.Timestamp("2024-06-30 12:00"))


def test_large_amounts_are_squared_without_overflow():
    """¥300,000 of orders: the squares of money pass 10^10 (a DECIMAL(18, 8) overflowed)."""
    tx = [
        line("J", "j1", "2024-05-01T10:00:00Z", 200_000.0, category="tv"),
        line("J", "j2", "2024-06-01T10:00:00Z", 100_000.0, category="audio"),
        line("J", "j2", "2024-06-01T10:00:00Z", 0.5, category="audio"),
    ]
    tables = ShopTables(transactions=canonical("transactions", tx))
    row = build_feature_table(tables, [CUTOFF]).loc[(pd.Timestamp(CUTOFF), "J")]
    assert row["category_concentration_share"] == pytest.approx(
        (200_000**2 + 100_000.5**2) / 300_000.5**2, rel=1e-15
    )
    assert row["order_value_std_amount"] == pytest.approx(abs(200_000 - 100_000.5) / math.sqrt(2))
