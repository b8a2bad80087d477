"""The simulated shop: contract, determinism, realism and the oracle."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.inputs.schema import GROUPS, SCHEMAS
from features.simulation import (
    SimulatedShop,
    SimulationConfig,
    oracle_churn_probability,
    read_config,
    read_shop,
    read_truth,
    simulate_shop,
    write_shop,
)

TIME_COLUMNS = {name: schema.time_column for name, schema in SCHEMAS.items()}


@pytest.fixture(scope="module")
def medium_shop() -> SimulatedShop:
    """20,000 customers: enough for statistical checks, ~1.5 s."""
    return simulate_shop(SimulationConfig(customers=20_000, seed=11))


def _purchases(shop: SimulatedShop) -> pd.DataFrame:
    tx = shop.tables.transactions
    return tx[~tx["is_return"]]


def _utc(d: date) -> pd.Timestamp:
    return pd.Timestamp(d, tz="UTC")


def _naive(stamps: pd.Series) -> np.ndarray:
    """UTC timestamps as a naive ``datetime64[us]`` array (NaT kept)."""
    return stamps.dt.tz_convert(None).to_numpy()


def _check_contract(shop: SimulatedShop) -> None:
    present = shop.tables.present()
    assert set(present) == set(SCHEMAS) - {"suppressions"}  # the simulator has no opt-outs
    for name, frame in present.items():
        schema = SCHEMAS[name]
        assert set(schema.required) <= set(frame.columns), name
        assert set(frame.columns) <= set(schema.names), name
        assert {c: str(t) for c, t in frame.dtypes.items()} == schema.dtypes(list(frame.columns))
        for column in schema.required:
            assert not frame[column].isna().any(), f"{name}.{column} has missing values"


def _check_time_bounds(shop: SimulatedShop) -> None:
    """No event after ``end``; none before its customer's acquisition."""
    end = _utc(shop.config.end + timedelta(days=1))
    start = _utc(shop.config.start)
    first_seen = shop.tables.customers.set_index("customer_id")["first_seen_at"]
    for name, frame in shop.tables.present().items():
        column = TIME_COLUMNS[name]
        if len(frame) == 0:
            continue
        assert frame[column].max() < end, name
        assert frame[column].min() >= start, name
        acquired = _naive(first_seen.reindex(frame["customer_id"]))
        assert (_naive(frame[column]) >= acquired).all(), name


# --------------------------------------------------------------------------- contract


def test_tables_follow_the_contract_with_canonical_dtypes(small_shop):
    _check_contract(small_shop)
    contacts = small_shop.tables.campaign_contacts
    assert set(contacts["group"].unique()) == set(GROUPS)
    tx = small_shop.tables.transactions
    assert (tx["amount"] >= 0).all() and (tx["discount_amount"] >= 0).all()
    assert (tx["quantity"] >= 1).all()
    assert set(tx["channel"].unique()) == {"web", "app", "store"}
    assert 5 <= tx["category"].nunique() <= 8
    assert small_shop.tables.reviews["rating"].between(1, 5).all()
    assert small_shop.tables.customers["customer_id"].is_unique
    assert small_shop.tables.support_tickets["ticket_id"].is_unique


def test_no_event_after_end_or_before_acquisition(small_shop):
    _check_time_bounds(small_shop)


def test_first_seen_is_the_first_order_and_orders_have_one_to_five_lines(small_shop):
    purchases = _purchases(small_shop)
    first = purchases.groupby("customer_id")["ordered_at"].min()
    customers = small_shop.tables.customers.set_index("customer_id")
    pd.testing.assert_series_equal(
        first.sort_index(), customers["first_seen_at"].sort_index(), check_names=False
    )
    lines = purchases.groupby("order_id").size()
    assert lines.between(1, 5).all()
    assert set(lines.unique()) == {1, 2, 3, 4, 5}
    owners = purchases.groupby("order_id")["customer_id"].nunique()
    assert (owners == 1).all()
    assert not purchases.duplicated(["order_id", "product_id"]).any()
    assert not small_shop.tables.transactions.duplicated().any()


def test_returns_refer_to_earlier_purchases_of_the_same_order(small_shop):
    tx = small_shop.tables.transactions
    returns = tx[tx["is_return"]]
    bought = (
        _purchases(small_shop)
        .groupby("order_id")
        .agg(customer_id=("customer_id", "first"), ordered_at=("ordered_at", "min"))
    )
    joined = returns.merge(bought, left_on="order_id", right_index=True, suffixes=("", "_purchase"))
    assert (joined["customer_id"] == joined["customer_id_purchase"]).all()
    assert (joined["ordered_at"] > joined["ordered_at_purchase"]).all()


def test_referrers_are_alive_customers_acquired_before_the_referred(small_shop):
    referrals = small_shop.tables.referrals
    truth = small_shop.truth
    assert len(referrals) > 0
    referrer = truth.reindex(referrals["customer_id"])
    referred = truth.reindex(referrals["referred_customer_id"])
    assert (_naive(referrer["acquired_at"]) < _naive(referred["acquired_at"])).all()
    dropout = _naive(referrer["dropout_at"])
    alive = np.isnat(dropout) | (dropout > _naive(referrals["referred_at"]))
    assert alive.all()
    assert referrer["is_advocate"].all()
    channel = small_shop.tables.customers.set_index("customer_id")["acquisition_channel"]
    assert (channel.reindex(referrals["referred_customer_id"]) == "referral").all()


def test_contacted_customers_had_lapsed(small_shop):
    config = small_shop.config
    contacts = small_shop.tables.campaign_contacts
    purchases = _purchases(small_shop)
    merged = contacts.merge(purchases[["customer_id", "ordered_at"]], on="customer_id")
    before = merged[merged["ordered_at"] < merged["contacted_at"]]
    last = before.groupby(["customer_id", "campaign_id"])["ordered_at"].max()
    at = contacts.set_index(["customer_id", "campaign_id"])["contacted_at"].reindex(last.index)
    gap_days = (at - last).dt.total_seconds() / 86_400
    assert len(gap_days) == len(contacts)
    assert (gap_days >= config.lapse_days).all()
    assert (gap_days <= config.max_lapse_days).all()
    control = (contacts["group"] == "control").mean()
    assert abs(control - config.control_share) < 0.05


def test_truth_is_keyed_by_customer_id_and_consistent(small_shop):
    truth, tables = small_shop.truth, small_shop.tables
    assert truth.index.name == "customer_id"
    assert truth.index.equals(pd.Index(tables.customers["customer_id"]))
    assert not (truth["is_vip_grower"] & truth["is_decliner"]).any()
    dropped = truth["dropout_at"].notna()
    assert (truth.loc[dropped, "dropout_at"] > truth.loc[dropped, "acquired_at"]).all()
    decliners = truth[truth["is_decliner"] & dropped]
    assert (decliners["decline_stage_3_at"] < decliners["dropout_at"]).all()
    last_order = _purchases(small_shop).groupby("customer_id")["ordered_at"].max()
    contacted = set(small_shop.tables.campaign_contacts["customer_id"])
    quiet = truth[dropped & ~truth.index.isin(list(contacted))]
    # without a win-back burst nobody orders after dropping out
    assert (last_order.reindex(quiet.index) <= quiet["dropout_at"]).all()


def test_contact_truth_potential_outcomes(small_shop):
    ct = small_shop.contact_truth
    contacts = small_shop.tables.campaign_contacts
    pd.testing.assert_frame_equal(ct[list(contacts.columns)], contacts)
    assert (ct["probability_treatment"] >= ct["probability_control"] - 1e-12).all()
    assert ct["true_uplift"].between(0, 1).all()
    assert (ct["outcome_treatment"] | ~ct["outcome_control"]).all()
    movable = small_shop.truth["movable"].reindex(ct["customer_id"]).to_numpy()
    assert (ct.loc[~movable, "true_uplift"] == 0).all()
    assert ct.loc[movable, "true_uplift"].mean() > 0.05
    observed = np.where(ct["group"] == "treatment", ct["outcome_treatment"], ct["outcome_control"])
    assert (ct["reactivated"].to_numpy() == observed).all()


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames_and_bytes(small_shop, small_shop_dir, tmp_path):
    again = simulate_shop(small_shop.config)
    for name, frame in small_shop.tables.present().items():
        pd.testing.assert_frame_equal(getattr(again.tables, name), frame)
    pd.testing.assert_frame_equal(again.truth, small_shop.truth)
    pd.testing.assert_frame_equal(again.contact_truth, small_shop.contact_truth)
    paths = write_shop(again, tmp_path)
    for name, path in paths.items():
        assert path.read_bytes() == (small_shop_dir / path.name).read_bytes(), name


def test_different_seed_gives_a_different_shop(small_shop):
    other = simulate_shop(dataclasses.replace(small_shop.config, seed=small_shop.config.seed + 1))
    a, b = small_shop.tables.transactions, other.tables.transactions
    assert len(a) != len(b) or not a["amount"].equals(b["amount"])


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s rows in one canonical order (sorted by every column)."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def test_write_and_read_round_trip(small_shop, small_shop_dir):
    names = {p.name for p in small_shop_dir.iterdir()}
    assert {
        "transactions.parquet",
        "customers.parquet",
        "support_tickets.parquet",
        "referrals.parquet",
        "reviews.parquet",
        "campaign_contacts.parquet",
        "engagement_events.parquet",
        "customer_keys.parquet",
        "purchase_orders.parquet",
        "truth.parquet",
        "contact_truth.parquet",
        "simulation.json",
    } == names
    loaded = read_shop(small_shop_dir)
    assert loaded.config == small_shop.config
    assert read_config(small_shop_dir) == small_shop.config
    for name, frame in small_shop.tables.present().items():
        # the same rows; the keyed files cluster them by customer and time
        pd.testing.assert_frame_equal(_rows(getattr(loaded.tables, name)), _rows(frame))
    truth, contact_truth = read_truth(small_shop_dir)
    pd.testing.assert_frame_equal(truth, small_shop.truth)
    pd.testing.assert_frame_equal(contact_truth, small_shop.contact_truth)
    cutoff = date(2025, 6, 30)
    pd.testing.assert_series_equal(
        oracle_churn_probability(truth, cutoff, 90, contact_truth=contact_truth),
        oracle_churn_probability(small_shop, cutoff, 90),
    )


def test_read_config_names_the_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="simulation.json"):
        read_config(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": date(2022, 1, 1)}, "end"),
        ({"customers": 0}, "customers"),
        ({"control_share": 1.5}, "control_share"),
        ({"campaign_dates": (date(2030, 1, 1),)}, "campaign date 2030-01-01"),
        ({"monthly_seasonality": (1.0,) * 11}, "monthly_seasonality"),
    ],
)
def test_invalid_config_is_rejected_with_the_field_named(change, message):
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**change)


def test_config_round_trips_through_dict():
    config = SimulationConfig(customers=123, seed=9, campaign_dates=(date(2024, 5, 1),))
    assert SimulationConfig.from_dict(config.to_dict()) == config


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    customers=st.integers(min_value=1, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    days=st.integers(min_value=200, max_value=900),
)
def test_any_small_shop_keeps_the_contract(customers, seed, days):
    start = date(2023, 1, 1)
    end = start + timedelta(days=days)
    campaign = start + timedelta(days=days // 2)
    config = SimulationConfig(
        customers=customers, seed=seed, start=start, end=end, campaign_dates=(campaign,)
    )
    shop = simulate_shop(config)
    _check_contract(shop)
    _check_time_bounds(shop)
    assert shop.tables.customers["customer_id"].nunique() == customers


# --------------------------------------------------------------------------- realism


def test_purchase_frequency_and_one_time_buyers_are_plausible(medium_shop):
    purchases = _purchases(medium_shop)
    orders = purchases.groupby("customer_id")["order_id"].nunique()
    assert 0.2 <= (orders == 1).mean() <= 0.5
    assert 3.0 <= orders.mean() <= 9.0
    assert orders.max() >= 30  # heavy buyers exist
    lines_per_order = len(purchases) / purchases["order_id"].nunique()
    assert 1.6 <= lines_per_order <= 2.5
    return_rate = medium_shop.tables.transactions["is_return"].sum() / len(purchases)
    assert 0.03 <= return_rate <= 0.1


def test_more_customers_join_later_and_older_cohorts_churned_more(medium_shop):
    truth = medium_shop.truth
    cohort = truth["acquired_at"].dt.year
    sizes = cohort.value_counts().sort_index()
    assert sizes.is_monotonic_increasing
    last = _purchases(medium_shop).groupby("customer_id")["ordered_at"].max()
    inactive = last < _utc(medium_shop.config.end) - pd.Timedelta(days=180)
    churn_by_cohort = inactive.groupby(cohort.reindex(inactive.index)).mean()
    assert churn_by_cohort.loc[2023] > churn_by_cohort.loc[2024] > 0.3
    assert churn_by_cohort.loc[2023] < 0.95


def test_orders_peak_in_november_and_december(medium_shop):
    purchases = _purchases(medium_shop)
    orders = purchases.drop_duplicates("order_id")
    in_2024 = orders[orders["ordered_at"].dt.year == 2024]
    per_month = in_2024.groupby(in_2024["ordered_at"].dt.month).size()
    per_day = per_month / pd.Series(
        [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], index=range(1, 13)
    )
    assert per_day.idxmax() in (11, 12)
    assert per_day.loc[[11, 12]].mean() > 1.25 * per_day.loc[[1, 2, 3, 4, 5, 6]].mean()


def test_discount_sensitive_buyers_buy_on_discount_at_lower_margin(medium_shop):
    purchases = _purchases(medium_shop)
    sensitive = medium_shop.truth["discount_sensitive"].reindex(purchases["customer_id"]).to_numpy()
    discounted = purchases["discount_amount"].to_numpy() > 0
    assert discounted[sensitive].mean() > 0.6
    assert discounted[~sensitive].mean() < 0.25
    margin_rate = purchases["margin_amount"] / (purchases["amount"] + purchases["discount_amount"])
    assert margin_rate[sensitive].mean() < margin_rate[~sensitive].mean() - 0.1


def test_categories_have_different_margin_rates(medium_shop):
    purchases = _purchases(medium_shop)
    full_price = purchases[purchases["discount_amount"] == 0]
    rate = (full_price["margin_amount"].groupby(full_price["category"]).sum()) / full_price[
        "amount"
    ].groupby(full_price["category"]).sum()
    config = medium_shop.config
    expected = pd.Series(config.category_margin_rates, index=list(config.categories))
    assert np.allclose(rate.reindex(expected.index), expected, atol=0.01)


def _rate_before_dropout(shop: SimulatedShop, events: pd.DataFrame, column: str):
    """Events per customer-day in the 90 days before dropout, and elsewhere while alive."""
    truth = shop.truth
    end = _utc(shop.config.end + timedelta(days=1))
    alive_until = truth["dropout_at"].fillna(end)
    window_start = (alive_until - pd.Timedelta(days=90)).where(truth["dropout_at"].notna(), end)
    window_start = np.maximum(window_start, truth["acquired_at"])
    at = _naive(events[column])
    start = _naive(window_start.reindex(events["customer_id"]))
    stop = _naive(alive_until.reindex(events["customer_id"]))
    before = (at >= start) & (at < stop)
    days_in = (alive_until - window_start).dt.total_seconds().sum() / 86_400
    days_out = (window_start - truth["acquired_at"]).dt.total_seconds().sum() / 86_400
    return before, days_in, days_out


def test_support_tickets_rise_before_dropout(medium_shop):
    tickets = medium_shop.tables.support_tickets
    before, days_in, days_out = _rate_before_dropout(medium_shop, tickets, "opened_at")
    rate_before = before.sum() / days_in
    rate_otherwise = (~before).sum() / days_out
    assert rate_before > 2.0 * rate_otherwise


def test_ratings_fall_before_dropout(medium_shop):
    reviews = medium_shop.tables.reviews
    purchases_before, _, _ = _rate_before_dropout(medium_shop, reviews, "reviewed_at")
    ratings = reviews["rating"].to_numpy()
    assert ratings[purchases_before].mean() < ratings[~purchases_before].mean() - 0.2


def test_vip_growers_buy_more_over_time_and_decliners_less(medium_shop):
    truth = medium_shop.truth
    purchases = _purchases(medium_shop).drop_duplicates("order_id")
    early = truth[(truth["acquired_at"] < _utc(date(2023, 7, 1))) & truth["dropout_at"].isna()]
    age = _naive(purchases["ordered_at"]) - _naive(
        truth["acquired_at"].reindex(purchases["customer_id"])
    )
    mine = purchases["customer_id"].isin(list(early.index)).to_numpy()
    first_half_year = (age < np.timedelta64(183, "D")) & (age > np.timedelta64(0, "D"))
    last_half_year = (purchases["ordered_at"] >= _utc(date(2025, 7, 1))).to_numpy()
    grower = truth["is_vip_grower"].reindex(purchases["customer_id"]).to_numpy()
    ratio_growers = (mine & grower & last_half_year).sum() / (mine & grower & first_half_year).sum()
    ratio_others = (mine & ~grower & last_half_year).sum() / (
        mine & ~grower & first_half_year
    ).sum()
    assert ratio_growers > 1.5 * ratio_others
    spend = purchases.groupby("customer_id")["amount"].sum()
    assert spend[truth["is_vip_grower"]].mean() > 2 * spend[~truth["is_vip_grower"]].mean()


def test_treatment_really_revives_customers(medium_shop):
    ct = medium_shop.contact_truth
    treated = ct[ct["group"] == "treatment"]
    control = ct[ct["group"] == "control"]
    observed = treated["reactivated"].mean() - control["reactivated"].mean()
    se = np.sqrt(
        treated["reactivated"].var() / len(treated) + control["reactivated"].var() / len(control)
    )
    assert observed > 3 * se
    assert abs(observed - ct["true_uplift"].mean()) < 4 * se
    # heterogeneous: discount-sensitive customers are easier to win back
    sensitive = medium_shop.truth["discount_sensitive"].reindex(ct["customer_id"]).to_numpy()
    assert ct.loc[sensitive, "true_uplift"].mean() > 2 * ct.loc[~sensitive, "true_uplift"].mean()
    # the realised win-back orders are in the transactions
    purchases = _purchases(medium_shop)
    window = pd.Timedelta(days=medium_shop.config.reactivation_days)
    joined = ct.merge(purchases[["customer_id", "ordered_at"]], on="customer_id")
    hit = joined[
        (joined["ordered_at"] > joined["contacted_at"])
        & (joined["ordered_at"] <= joined["contacted_at"] + window)
    ]
    bought = ct.set_index(["customer_id", "campaign_id"]).index.isin(
        hit.set_index(["customer_id", "campaign_id"]).index
    )
    assert (bought == ct["reactivated"].to_numpy()).all()


# --------------------------------------------------------------------------- oracle


@pytest.mark.parametrize(
    ("cutoff", "horizon_days"), [(date(2024, 6, 30), 90), (date(2025, 9, 15), 60)]
)
def test_oracle_matches_realised_churn(medium_shop, cutoff, horizon_days):
    oracle = oracle_churn_probability(medium_shop, cutoff, horizon_days)
    assert oracle.index.name == "customer_id"
    assert oracle.between(0, 1).all()
    acquired = medium_shop.truth["acquired_at"]
    next_day = _utc(cutoff + timedelta(days=1))
    assert set(oracle.index) == set(acquired.index[acquired < next_day])
    purchases = _purchases(medium_shop)
    in_window = (purchases["ordered_at"] >= next_day) & (
        purchases["ordered_at"] < next_day + pd.Timedelta(days=horizon_days)
    )
    buyers = set(purchases.loc[in_window, "customer_id"])
    churned = ~oracle.index.isin(list(buyers))
    se = np.sqrt((oracle * (1 - oracle)).sum()) / len(oracle)
    assert abs(churned.mean() - oracle.mean()) < 4 * se
    # calibrated within deciles too, and informative
    bins = pd.qcut(oracle.rank(method="first"), 5, labels=False)
    for b in range(5):
        p = oracle[bins == b]
        se_b = np.sqrt((p * (1 - p)).sum()) / len(p) + 1e-3
        assert abs(churned[(bins == b).to_numpy()].mean() - p.mean()) < 4.5 * se_b
    assert oracle[churned].mean() > oracle[~churned].mean() + 0.2


def _one_customer_truth(config: SimulationConfig, **latent) -> pd.DataFrame:
    nat = pd.NaT
    row = {
        "acquired_at": _utc(config.start),
        "dropout_at": nat,
        "purchase_rate_per_year": 4.0,
        "dropout_rate_per_year": 1.0,
        "is_decliner": False,
        "rate_growth": 1.0,
        "spend_growth": 1.0,
        "ramp_days": 1.0,
        "decline_stage_1_at": nat,
        "decline_stage_2_at": nat,
        "decline_stage_3_at": nat,
    }
    row.update(latent)
    frame = pd.DataFrame([row], index=pd.Index(["C1"], name="customer_id", dtype="string"))
    for column in [c for c in frame.columns if c.endswith("_at")]:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame


def test_oracle_closed_form_for_a_healthy_customer():
    config = SimulationConfig(monthly_seasonality=(1.0,) * 12, campaign_dates=())
    truth = _one_customer_truth(config, purchase_rate_per_year=4.0, dropout_rate_per_year=1.0)
    lam, mu, h = 4.0 / 365.25, 1.0 / 365.25, 90
    expected = np.exp(-(lam + mu) * h) + mu / (lam + mu) * (1 - np.exp(-(lam + mu) * h))
    got = oracle_churn_probability(truth, date(2024, 1, 10), h, config=config)
    assert got.loc["C1"] == pytest.approx(expected, rel=1e-9)


def test_oracle_closed_form_for_a_customer_in_the_last_decline_stage():
    config = SimulationConfig(monthly_seasonality=(1.0,) * 12, campaign_dates=())
    truth = _one_customer_truth(
        config,
        is_decliner=True,
        decline_stage_1_at=_utc(date(2023, 6, 1)),
        decline_stage_2_at=_utc(date(2023, 7, 1)),
        decline_stage_3_at=_utc(date(2023, 8, 1)),
    )
    phi = 4.0 / 365.25 * config.decline_stage_factors[2]
    kappa, h = 1 / config.decline_stage_days, 60
    expected = np.exp(-(phi + kappa) * h) + kappa / (phi + kappa) * (1 - np.exp(-(phi + kappa) * h))
    got = oracle_churn_probability(truth, date(2023, 8, 15), h, config=config)
    assert got.loc["C1"] == pytest.approx(expected, rel=1e-6)
    dead = truth.assign(dropout_at=_utc(date(2023, 8, 10)))
    assert oracle_churn_probability(dead, date(2023, 8, 15), h, config=config).loc["C1"] == 1.0


def test_oracle_needs_a_config_for_a_bare_truth_frame(small_shop):
    bare = small_shop.truth.copy()
    bare.attrs = {}
    with pytest.raises(ValueError, match="config"):
        oracle_churn_probability(bare, date(2024, 6, 30), 90)


# --------------------------------------------------------------------------- command line


def test_simulate_command_writes_the_shop(tmp_path):
    import typer
    from typer.testing import CliRunner

    from winback.commands.simulate import simulate

    app = typer.Typer()
    app.command()(simulate)
    app.command("noop")(lambda: None)  # keep "simulate" as a named subcommand
    out = tmp_path / "shop"
    result = CliRunner().invoke(
        app, ["simulate", "--customers", "300", "--out", str(out), "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "one-time" in result.output
    shop = read_shop(out)
    assert len(shop.tables.customers) == 300
    assert shop.config.seed == 5
