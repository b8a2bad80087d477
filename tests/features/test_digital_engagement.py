"""The optional engagement_events table: contract, loading, simulation and omission."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features.build import available_features, build_feature_table, build_features
from features.families import digital_engagement
from features.feature_sets import CHURN_FEATURES_V1, CHURN_FEATURES_V2
from features.inputs.contracts import validate_shop, validate_table
from features.inputs.schema import EVENT_TYPES, ShopTables
from features.inputs.sources import load_shop
from features.simulation import SimulatedShop, SimulationConfig, simulate_shop
from tests.features.reference_features import random_shop

NOW = pd.Timestamp("2025-01-01", tz="UTC")
ENGAGEMENT_FEATURES = [d.name for d in digital_engagement.FEATURES]


# --------------------------------------------------------------------------- contract


def raw_events() -> pd.DataFrame:
    """Ten raw rows: four clean (one in odd case), six each failing one check."""
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c3", None, "c4", "c5", "c1", "c6", "c7"],
            "occurred_at": [
                "2024-01-01 10:00:00+00:00",
                "2024-01-02 10:00:00+00:00",
                "2024-01-03 10:00:00+00:00",
                "2024-01-04",
                "2024-01-05 10:00:00+00:00",
                "not a time",
                "2026-01-01 10:00:00+00:00",
                "2024-01-01 10:00:00+00:00",
                "2024-01-06 10:00:00+00:00",
                "2024-01-07 10:00:00+00:00",
            ],
            "event_type": [
                "site_visit",
                " Email_Open ",
                "app_session",
                "email_click",
                "site_visit",
                "site_visit",
                "site_visit",
                "site_visit",
                "push_notification",
                None,
            ],
            "channel": ["web", "web", "app", None, "web", "web", "web", "web", "app", "web"],
        }
    )


def test_engagement_events_quarantine_names_each_reason_with_exact_counts():
    result = validate_table(raw_events(), "engagement_events", now=NOW)
    report = result.report
    assert report.by_reason == {
        "missing_customer_id": 1,
        "missing_event_type": 1,
        "unparseable_occurred_at": 1,
        "future_occurred_at": 1,
        "invalid_event_type": 1,
        "duplicate_row": 1,
    }
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (10, 4, 6)
    assert result.quarantine["source_row"].tolist() == [4, 5, 6, 7, 8, 9]
    table = result.table
    assert table["event_type"].tolist() == [
        "site_visit",
        "email_open",
        "app_session",
        "email_click",
    ]
    assert table.dtypes.astype(str).to_dict() == {
        "customer_id": "string",
        "occurred_at": "datetime64[us, UTC]",
        "event_type": "string",
        "channel": "string",
    }
    detail = result.quarantine.set_index("reason").loc["invalid_event_type", "detail"]
    assert "push_notification" in detail and "site_visit" in detail


def test_engagement_events_need_their_required_columns():
    from features.inputs.contracts import ContractError

    frame = raw_events().drop(columns="event_type")
    with pytest.raises(ContractError, match=r"missing required column\(s\) \['event_type'\]"):
        validate_table(frame, "engagement_events", now=NOW)


def test_validate_shop_keeps_engagement_events_optional():
    tx = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "order_id": ["o1"],
            "ordered_at": ["2024-01-01 10:00:00+00:00"],
            "amount": [10.0],
        }
    )
    without = validate_shop({"transactions": tx}, now=NOW)
    assert without.tables.engagement_events is None
    with_events = validate_shop({"transactions": tx, "engagement_events": raw_events()}, now=NOW)
    assert len(with_events.tables.engagement_events) == 4
    assert "engagement_events" in with_events.tables.present()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_folder_with_an_engagement_events_file_loads_it(tmp_path, suffix):
    tx = pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "order_id": ["o1", "o2"],
            "ordered_at": ["2024-01-01 10:00:00", "2024-01-02 10:00:00"],
            "amount": [10.0, 20.0],
        }
    )
    tx.to_csv(tmp_path / "transactions.csv", index=False)
    events = raw_events()
    if suffix == "csv":
        events.to_csv(tmp_path / "engagement_events.csv", index=False)
    else:
        events.to_parquet(tmp_path / "engagement_events.parquet")
    validation = load_shop(tmp_path, now=NOW)
    result = validation.results["engagement_events"]
    assert (result.report.rows_accepted, result.report.rows_quarantined) == (4, 6)
    assert validation.tables.engagement_events["customer_id"].tolist() == ["c1", "c1", "c2", "c3"]


# --------------------------------------------------------------------------- features


def test_absent_engagement_table_omits_every_engagement_feature_with_a_note():
    shop = random_shop(customers=30, seed=3)
    bare = dataclasses.replace(shop, engagement_events=None)
    names, notes = available_features(bare)
    assert not set(ENGAGEMENT_FEATURES) & set(names)
    for name in ENGAGEMENT_FEATURES[:-1]:
        assert f"{name}: omitted, table 'engagement_events' is absent" in notes
    assert any(
        n.startswith("engagement_per_order_90d: omitted, it needs 'engagement_count_90d'")
        for n in notes
    )
    built = build_feature_table(bare, [date(2023, 6, 30)], feature_set=CHURN_FEATURES_V2)
    assert list(built.columns) == CHURN_FEATURES_V1.names
    # every other feature is unchanged by the engagement table's absence
    full = build_features(shop, date(2023, 6, 30))
    pd.testing.assert_frame_equal(
        built.droplevel("cutoff"), full[CHURN_FEATURES_V1.names], check_categorical=False
    )


def test_present_but_empty_engagement_table_gives_zero_counts_and_missing_recency():
    shop = random_shop(customers=30, seed=3)
    empty = dataclasses.replace(shop, engagement_events=shop.engagement_events.iloc[0:0])
    built = build_features(empty, date(2023, 6, 30))
    for name in ("engagement_count_90d", "site_visit_count_90d", "email_click_count_90d"):
        assert (built[name] == 0).all(), name
    assert built["days_since_last_engagement"].isna().all()
    assert built["engagement_trend_30d"].isna().all()


def test_training_falls_back_to_the_v1_columns_without_the_table():
    from features.training_table import build_training_table, monthly_cutoffs
    from training.pipeline import table_feature_set

    shop = simulate_shop(SimulationConfig(customers=400, seed=2, engagement=False))
    assert shop.tables.engagement_events is None
    cutoffs = monthly_cutoffs(shop.tables, 90, 30, count=3)
    table = build_training_table(shop.tables, "churn", cutoffs, feature_set=CHURN_FEATURES_V2)
    used = table_feature_set(table, CHURN_FEATURES_V2, "churn")
    assert used.names == CHURN_FEATURES_V1.names
    assert used.name == "churn_features_v2"


# --------------------------------------------------------------------------- simulator


@pytest.fixture(scope="module")
def shop() -> SimulatedShop:
    """20,000 customers: enough for the statistics below, under a second."""
    return simulate_shop(SimulationConfig(customers=20_000, seed=23))


def _days(stamps: pd.Series, start: date) -> np.ndarray:
    """Timestamps as days since ``start`` (NaT -> inf)."""
    delta = (stamps - pd.Timestamp(start, tz="UTC")).dt.total_seconds().to_numpy() / 86_400
    return np.where(np.isnan(delta), np.inf, delta)


def _event_days(shop: SimulatedShop, frame: pd.DataFrame, column: str) -> tuple:
    """Days since start of every event and, per event, its customer's truth row position."""
    pos = shop.truth.index.get_indexer(frame["customer_id"])
    return _days(frame[column], shop.config.start), pos


def test_a_quarter_of_customers_never_engage_and_have_no_events(shop):
    ratio = shop.truth["engagement_per_order"]
    never = ratio == 0
    assert abs(never.mean() - shop.config.engagement_none_share) < 0.015
    engaged_ids = set(shop.tables.engagement_events["customer_id"].unique())
    assert not engaged_ids & set(ratio.index[never])
    # among the engaged, the browse-to-buy ratio has the configured mean
    assert abs(ratio[~never].mean() - shop.config.engagement_per_order) < 0.1


def test_healthy_customers_engage_about_ratio_times_per_order(shop):
    truth = shop.truth
    steady = (
        truth["dropout_at"].isna()
        & ~truth["is_decliner"]
        & ~truth["is_vip_grower"]
        & (truth["engagement_per_order"] > 0)
    )
    events = shop.tables.engagement_events
    orders = shop.tables.transactions.query("~is_return").drop_duplicates("order_id")
    n_events = events["customer_id"].value_counts().reindex(truth.index, fill_value=0)
    # the first order is the acquisition, not part of the Poisson process
    n_repeat = orders["customer_id"].value_counts().reindex(truth.index, fill_value=0) - 1
    expected = (truth["engagement_per_order"] * n_repeat)[steady].sum()
    assert n_events[steady].sum() / expected == pytest.approx(1.0, abs=0.08)


def test_a_residual_of_email_engagement_continues_after_dropout(shop):
    truth, cfg = shop.truth, shop.config
    events = shop.tables.engagement_events
    at, pos = _event_days(shop, events, "occurred_at")
    dropout = _days(truth["dropout_at"], cfg.start)
    after = at >= dropout[pos]
    assert after.sum() > 500
    # a treated win-back contact brings a customer back to look, alive or not; the rest is e-mail
    late = events[after].reset_index(names="row")
    treated = shop.tables.campaign_contacts.query("group == 'treatment'")
    pairs = late.merge(treated[["customer_id", "contacted_at"]], on="customer_id")
    in_window = (pairs["occurred_at"] >= pairs["contacted_at"]) & (
        pairs["occurred_at"] <= pairs["contacted_at"] + pd.Timedelta(days=cfg.response_days)
    )
    looked = np.zeros(len(events), dtype=bool)
    looked[pairs.loc[in_window, "row"].to_numpy()] = True
    residual = after & ~looked
    assert set(events.loc[residual, "event_type"].unique()) == {"email_open", "email_click"}
    # residual rate over (ratio x healthy purchase rate), per day after dropout, ~ 7%
    dead_days = np.clip(cfg.days - dropout, 0.0, None)
    base = truth["engagement_per_order"].to_numpy() * truth["purchase_rate_per_year"].to_numpy()
    expected_at_full_rate = (base / 365.25 * dead_days).sum()
    share = residual.sum() / expected_at_full_rate
    assert share == pytest.approx(cfg.engagement_residual_share, abs=0.015)


def test_disengagement_leads_purchases_in_decline(shop):
    truth, cfg = shop.truth, shop.config
    engaged = truth["engagement_per_order"].to_numpy() > 0
    decline_start = _days(truth["decline_stage_1_at"], cfg.start)
    dropout = _days(truth["dropout_at"], cfg.start)

    def declining(frame: pd.DataFrame, column: str) -> tuple[int, int]:
        at, pos = _event_days(shop, frame, column)
        mine = engaged[pos] & np.isfinite(decline_start[pos])
        in_decline = mine & (at >= decline_start[pos]) & (at < dropout[pos])
        healthy = mine & (at < decline_start[pos])
        return int(in_decline.sum()), int(healthy.sum())

    orders = shop.tables.transactions.query("~is_return").drop_duplicates("order_id")
    acquired = truth["acquired_at"].reindex(orders["customer_id"]).to_numpy()
    orders = orders[orders["ordered_at"].to_numpy() > acquired]  # repeat orders: the process
    e_decline, e_healthy = declining(shop.tables.engagement_events, "occurred_at")
    o_decline, o_healthy = declining(orders, "ordered_at")
    per_order_decline = e_decline / o_decline
    per_order_healthy = e_healthy / o_healthy
    assert per_order_decline < 0.85 * per_order_healthy


def test_event_types_follow_the_configured_shares(shop):
    events = shop.tables.engagement_events
    shares = events["event_type"].value_counts(normalize=True)
    config = dict(zip(EVENT_TYPES, shop.config.engagement_type_shares, strict=True))
    assert set(shares.index) == set(EVENT_TYPES)
    for kind in ("site_visit", "app_session"):
        assert shares[kind] == pytest.approx(config[kind], abs=0.03), kind
    # residual events are e-mail only, so e-mail is slightly over its alive share
    assert shares["email_open"] >= config["email_open"] - 0.01
    assert events["occurred_at"].is_monotonic_increasing


def test_engagement_switch_leaves_every_other_table_unchanged():
    config = SimulationConfig(customers=800, seed=4)
    on = simulate_shop(config)
    off = simulate_shop(dataclasses.replace(config, engagement=False))
    assert off.tables.engagement_events is None and len(on.tables.engagement_events) > 0
    for name, frame in off.tables.present().items():
        pd.testing.assert_frame_equal(frame, getattr(on.tables, name), obj=name)
    assert (off.truth["engagement_per_order"] == 0).all()
    again = simulate_shop(config)
    pd.testing.assert_frame_equal(again.tables.engagement_events, on.tables.engagement_events)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engagement_decline_stage_factors": (0.7, 0.2, 0.06)}, "disengagement leads"),
        ({"engagement_type_shares": (0.5, 0.5, 0.0, 0.0)}, "some e-mail share"),
        ({"engagement_none_share": 1.5}, "engagement_none_share must be in"),
        ({"engagement_per_order": 0.0}, "engagement_per_order"),
    ],
)
def test_invalid_engagement_config_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**change)


def test_engagement_features_are_only_from_events_on_or_before_the_cutoff(shop):
    cutoff = date(2025, 3, 31)
    end = pd.Timestamp(cutoff + timedelta(days=1), tz="UTC")
    events = shop.tables.engagement_events
    cut = ShopTables(transactions=shop.tables.transactions, engagement_events=events)
    early = ShopTables(
        transactions=shop.tables.transactions,
        engagement_events=events[events["occurred_at"] < end],
    )
    names = CHURN_FEATURES_V2.subset(ENGAGEMENT_FEATURES)
    pd.testing.assert_frame_equal(
        build_features(cut, cutoff, feature_set=names),
        build_features(early, cutoff, feature_set=names),
    )


ENGAGEMENT_MAPPING = """
name = "crm-export"
[tables.transactions]
source = "orders.csv"
[tables.engagement_events]
source = "web_log*.csv"
[tables.engagement_events.columns]
customer_id = "user"
occurred_at = "ts"
[tables.engagement_events.expressions]
event_type = "CASE kind WHEN 'pageview' THEN 'site_visit' WHEN 'open' THEN 'email_open' ELSE kind END"
"""


def test_a_column_mapping_can_bring_engagement_events_into_the_contract(tmp_path):
    (tmp_path / "crm.toml").write_text(ENGAGEMENT_MAPPING)
    pd.DataFrame(
        {
            "customer_id": ["u1"],
            "order_id": ["o1"],
            "ordered_at": ["2024-01-01 10:00:00"],
            "amount": [5.0],
        }
    ).to_csv(tmp_path / "orders.csv", index=False)
    pd.DataFrame(
        {
            "user": ["u1", "u1", "u2"],
            "ts": ["2024-01-02 10:00:00", "2024-01-03 10:00:00", "2024-01-04 10:00:00"],
            "kind": ["pageview", "open", "sms"],
        }
    ).to_csv(tmp_path / "web_log_2024.csv", index=False)
    validation = load_shop(tmp_path, tmp_path / "crm.toml", now=NOW)
    result = validation.results["engagement_events"]
    assert result.report.by_reason == {"invalid_event_type": 1}
    assert result.table["event_type"].tolist() == ["site_visit", "email_open"]
