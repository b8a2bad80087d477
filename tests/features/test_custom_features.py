"""User-defined features: hand-computed values, validation, versions and the leakage check."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.custom.active import active_custom_features, use_custom_features
from features.custom.leakage import check_leakage
from features.custom.spec import CustomFeature, custom_definitions
from features.feature_sets import (
    CHURN_FEATURES_V3,
    FeatureSet,
    get_feature_set,
    latest_feature_set,
    union_feature_sets,
)
from features.inputs.schema import ShopTables
from tests.features.reference_features import canonical, random_shop
from tests.features.test_features_hand import line as hand_line

CUTOFF = date(2024, 6, 30)


def line(customer, order, at, amount, product, *, ret=False):
    return {**hand_line(customer, order, at, amount, ret=ret), "product_id": product}


def tiny_shop() -> ShopTables:
    """A buys p1 twice, p2 and p3 (one returned), p4 a day late; B bought p1 a year ago."""
    tx = [
        line("A", "a1", "2024-06-30T23:59:59Z", 10.0, "p1"),  # age 0
        line("A", "a1", "2024-06-30T23:59:59Z", 20.0, "p2"),  # age 0
        line("A", "a2", "2024-04-02T08:00:00Z", 30.0, "p1"),  # age 89: inside 90 days
        line("A", "a3", "2024-04-01T08:00:00Z", 40.0, "p3"),  # age 90: outside 90 days
        line("A", "r1", "2024-06-10T09:00:00Z", 20.0, "p2", ret=True),  # a return
        line("A", "a4", "2024-07-01T00:00:00Z", 99.0, "p4"),  # after the cutoff
        line("B", "b1", "2023-06-30T10:00:00Z", 50.0, "p1"),  # age 366
    ]
    return ShopTables(transactions=canonical("transactions", tx))


def entry(**kw) -> CustomFeature:
    values = {"name": "my_feature", "expression": "count(*)", "description": "a test feature"}
    return CustomFeature(**{**values, **kw})


ENTRIES = (
    entry(
        name="distinct_products_90d",
        expression="count(distinct product_id)",
        window_days=90,
        fill=0,
    ),
    entry(name="spend_30d", expression="sum(amount) filter (where not is_return)", window_days=30),
    entry(name="days_since_first_line", expression="max(age_days)"),
    entry(name="returned_share", expression="avg(CASE WHEN is_return THEN 1.0 ELSE 0.0 END)"),
)


def test_custom_and_product_features_on_a_hand_computed_shop():
    definitions = custom_definitions(ENTRIES)
    fs = CHURN_FEATURES_V3.subset([]).with_custom(definitions)
    got = build_features(tiny_shop(), CUTOFF, feature_set=fs)
    assert list(got.index) == ["A", "B"]
    a, b = got.loc["A"], got.loc["B"]
    # lines of the last 90 days: p1, p2 (age 0), p1 (age 89), p2 returned (age 20)
    assert (a["distinct_products_90d"], b["distinct_products_90d"]) == (2.0, 0.0)  # B: fill 0
    assert a["spend_30d"] == 30.0 and pd.isna(b["spend_30d"])  # no fill: missing
    assert (a["days_since_first_line"], b["days_since_first_line"]) == (90.0, 366.0)
    assert a["returned_share"] == pytest.approx(1 / 5) and b["returned_share"] == 0.0

    products = build_features(tiny_shop(), CUTOFF, feature_set=CHURN_FEATURES_V3)
    a, b = products.loc["A"], products.loc["B"]
    # purchased (not returned) products: 90 days p1, p2; 365 days p1, p2, p1, p3
    assert (a["distinct_product_count_90d"], a["distinct_product_count_365d"]) == (2.0, 3.0)
    assert a["repeat_product_line_share_365d"] == pytest.approx(1 - 3 / 4)
    assert b["distinct_product_count_365d"] == 0.0 and pd.isna(b["repeat_product_line_share_365d"])


def test_a_shop_without_the_column_omits_the_feature_with_a_note():
    tables = tiny_shop()
    no_products = ShopTables(transactions=tables.transactions.drop(columns="product_id"))
    got = build_features(no_products, CUTOFF, feature_set=CHURN_FEATURES_V3)
    assert "distinct_product_count_90d" not in got.columns and "order_count" in got.columns
    assert any(
        "distinct_product_count_90d: omitted, column 'transactions.product_id'" in note
        for note in got.attrs["omitted_features"]
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"expression": "amount"}, "no aggregate function"),
        ({"expression": "count(*); drop table transactions"}, "got 2 statements"),
        ({"expression": "sum(amount) over ()"}, "window function"),
        ({"expression": "(select count(*) from transactions)"}, "subquery"),
        ({"expression": "count(*) + (select 1)"}, "subquery"),
        ({"expression": "max(amount) + amount"}, "'amount' is outside an aggregate"),
        ({"expression": "count(stock_code)"}, "'stock_code' is not in the transactions contract"),
        ({"expression": "sum(t.amount)"}, "no table prefix"),
        ({"expression": "sum(product_id)"}, "fails on the transactions contract table"),
        ({"expression": "max(ordered_at)"}, "gives TIMESTAMP, not a number"),
        ({"expression": "count(read_csv('x.csv'))"}, "file-reading function"),
        ({"expression": "my_udf(amount)"}, "does not know"),
        ({"expression": "sum(amount"}, "does not parse"),
        ({"name": "order_count"}, "already a built-in feature"),
        ({"name": "cutoff"}, "already a built-in feature or column"),
        ({"name": "Distinct Products"}, "not a valid feature name"),
        ({"name": "from"}, "SQL keyword"),
        ({"table": "customers"}, "unknown table 'customers'"),
        ({"window_days": 0}, "greater than or equal to 1"),
        ({"fill": float("nan")}, "finite"),
        ({"description": ""}, "at least 1 character"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        entry(**changes)


def test_a_ticket_feature_reads_its_own_table():
    tickets = entry(name="tickets_30d", table="support_tickets", window_days=30, fill=0)
    assert tickets.definition().tables == ("transactions", "support_tickets")
    with pytest.raises(ValueError, match="'amount' is not in the support_tickets contract"):
        entry(table="support_tickets", expression="sum(amount)")


def test_the_config_file_refuses_a_bad_entry_naming_its_key_and_a_name_twice():
    import tomllib

    from features.config_file import ConfigError
    from winback.config import config_as_toml, config_from_dict

    good = {"name": "n90", "expression": "count(*)", "window_days": 90, "description": "d"}
    config = config_from_dict({"features": {"custom": [good]}})
    assert [d.name for d in config.features.definitions()] == ["n90"]
    assert config_from_dict(tomllib.loads(config_as_toml(config))) == config  # `config show`
    with pytest.raises(ConfigError, match=r"features\.custom\.1\.expression|features\.custom\.1"):
        config_from_dict({"features": {"custom": [good, {**good, "expression": "amount"}]}})
    with pytest.raises(ConfigError, match=r"\['n90'\] are defined twice"):
        config_from_dict({"features": {"custom": [good, good]}})


def test_the_feature_set_version_follows_the_definitions():
    base = latest_feature_set("churn")
    assert base is CHURN_FEATURES_V3 and active_custom_features() == ()
    first = custom_definitions(ENTRIES[:1])
    changed = custom_definitions([entry(**{**ENTRIES[0].model_dump(), "window_days": 91})])
    with use_custom_features(first):
        with_first = latest_feature_set("churn")
        assert get_feature_set(with_first.name) == with_first
        assert get_feature_set("churn_features_v3") == with_first
    with use_custom_features(custom_definitions(ENTRIES[:1])):
        assert latest_feature_set("churn").name == with_first.name  # same definitions, same name
    with use_custom_features(changed):
        with_changed = latest_feature_set("churn")
        with pytest.raises(KeyError, match="differ from those configured now"):
            get_feature_set(with_first.name)
    assert with_first.name.startswith("churn_features_v3_custom_")
    assert with_first.name != with_changed.name != base.name
    assert with_first.names == [*base.names, "distinct_products_90d"]
    assert latest_feature_set("churn") is CHURN_FEATURES_V3  # the context is over
    # a model records the definitions, and reads them back
    restored = FeatureSet.from_dict(with_first.to_dict())
    assert restored == with_first and restored.custom == first
    assert restored.subset(["order_count", "distinct_products_90d"]).custom == first
    assert restored.subset(["order_count"]).custom == ()


def test_served_models_with_two_definitions_of_one_name_are_refused():
    first = FeatureSet("a", ()).with_custom(custom_definitions(ENTRIES[:1]))
    other = entry(**{**ENTRIES[0].model_dump(), "expression": "count(product_id)"})
    second = FeatureSet("b", ()).with_custom(custom_definitions([other]))
    assert union_feature_sets([first, first], "a+a").custom == first.custom
    with pytest.raises(ValueError, match="'distinct_products_90d' has two definitions"):
        union_feature_sets([first, second], "a+b")


@pytest.fixture(scope="module")
def shop() -> ShopTables:
    return random_shop(customers=40, seed=11, days=540)


def test_the_leakage_check_passes_point_in_time_features(shop):
    definitions = custom_definitions(ENTRIES)
    results = check_leakage(shop, definitions, [date(2022, 12, 31), date(2023, 3, 31)])
    assert {r.feature for r in results} == {e.name for e in ENTRIES}
    assert all(r.ok and r.customers > 10 for r in results)


def test_the_leakage_check_catches_a_feature_that_sees_past_the_cutoff(shop, monkeypatch):
    """Without winback's cutoff filter the same expression leaks, and the check says so."""
    from features.custom import windowed

    monkeypatch.setattr(
        windowed.Shape,
        "events",
        lambda self, table, alias, column: f"FROM {table} AS {alias} WHERE TRUE",
    )
    definitions = custom_definitions(ENTRIES[:1])
    results = check_leakage(shop, definitions, [date(2022, 6, 30)])
    assert results and not results[0].ok and results[0].changed > 0


later = st.integers(min_value=0, max_value=300 * 86_400).map(
    lambda s: pd.Timestamp("2022-10-01T00:00:00Z") + pd.Timedelta(seconds=s)
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 39),
            later,
            st.floats(0, 500),
            st.booleans(),
            st.sampled_from(["p1", "p7", "new_product"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_lines_after_the_cutoff_never_change_a_custom_feature(shop, added):
    """Hypothesis: later lines (new customers, products, returns) leave every value as it was."""
    definitions = custom_definitions(ENTRIES)
    fs = FeatureSet("custom_only", ()).with_custom(definitions)
    cutoff = date(2022, 9, 30)
    before = build_features(shop, cutoff, feature_set=fs)
    rows = shop.transactions.iloc[[0] * len(added)].copy()
    rows["customer_id"] = [f"c{c:05d}" for c, *_ in added]
    rows["order_id"] = [f"late{i}" for i in range(len(added))]
    rows["ordered_at"] = [at for _, at, *_ in added]
    rows["amount"] = [amount for *_, amount, _, _ in added]
    rows["is_return"] = [r for *_, r, _ in added]
    rows["product_id"] = [p for *_, p in added]
    tx = pd.concat([shop.transactions, rows], ignore_index=True).astype(shop.transactions.dtypes)
    after = build_features(
        ShopTables(**{**shop.present(), "transactions": tx}), cutoff, feature_set=fs
    )
    pd.testing.assert_frame_equal(before, after)
