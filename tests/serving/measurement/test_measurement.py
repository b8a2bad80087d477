"""Campaign measurement: interval formulas, coverage on simulated campaigns, Hillstrom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.inputs.schema import ShopTables
from serving.measurement.campaign import (
    compare_groups,
    group_intervals,
    hillstrom_arm_results,
    hillstrom_effects,
    list_outcomes,
    load_hillstrom,
    measure_list,
    newcombe_interval,
    plot_measurement,
    welch_interval,
    wilson_interval,
)

HILLSTROM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hillstrom.csv.gz"


def test_wilson_and_newcombe_match_published_values() -> None:
    # Newcombe (1998), Stat Med 17:857-872, tables I and II
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)


def test_welch_matches_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.exponential(2.0, 40), rng.exponential(1.0, 25)
    low, high, p = welch_interval(a, b)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert p == pytest.approx(result.pvalue)


def _campaign(rng: np.random.Generator, n: int, p_control: float, p_treatment: float):
    treated = rng.random(n) >= 0.2
    p = np.where(treated, p_treatment, p_control)
    bought = rng.random(n) < p
    spend = np.where(bought, rng.gamma(2.0, 30.0, n), 0.0)
    return pd.DataFrame(
        {"group": np.where(treated, "treatment", "control"), "bought": bought, "spend": spend}
    )


def test_true_effect_inside_the_95_ci_in_most_repeated_campaigns() -> None:
    rng = np.random.default_rng(7)
    p_c, p_t, mean_spend = 0.08, 0.12, 60.0
    rate_hits = spend_hits = 0
    repeats = 300
    for _ in range(repeats):
        table = compare_groups(
            _campaign(rng, 2_000, p_c, p_t), rates=("bought",), means=("spend",)
        ).set_index("metric")
        true_rate, true_spend = p_t - p_c, (p_t - p_c) * mean_spend
        rate_hits += table.at["bought", "ci_low"] <= true_rate <= table.at["bought", "ci_high"]
        spend_hits += table.at["spend", "ci_low"] <= true_spend <= table.at["spend", "ci_high"]
    # nominal 95%; 300 repeats put the observed share within about +-3.5 points of it
    assert rate_hits / repeats >= 0.9
    assert spend_hits / repeats >= 0.9


def test_list_outcomes_hand_computed() -> None:
    ts = pd.to_datetime(
        ["2024-01-10", "2024-02-02", "2024-02-03", "2024-02-03", "2024-03-05", "2024-02-10"],
        utc=True,
    ).as_unit("us")
    tx = pd.DataFrame(
        {
            "customer_id": pd.array(["a", "a", "b", "b", "b", "z"], dtype="string"),
            "order_id": pd.array(["o1", "o2", "o3", "o3", "o4", "o5"], dtype="string"),
            "ordered_at": ts,
            "amount": [10.0, 20.0, 30.0, 5.0, 40.0, 99.0],
            "is_return": [False, False, False, True, False, False],
            "margin_amount": [3.0, 6.0, 9.0, -2.0, 12.0, 30.0],
        }
    )
    listed = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "group": ["treatment", "control", "treatment"]}
    )
    out = list_outcomes(ShopTables(transactions=tx), listed, "2024-01-31", "2024-02-29")
    out = out.set_index("customer_id")
    # a: o2 only (o1 is before the list date); b: o3 with its return (o4 after as_of); c: nothing
    assert out["orders"].tolist() == [1, 1, 0]
    assert out["ordered"].tolist() == [True, True, False]
    assert out["revenue"].tolist() == [20.0, 25.0, 0.0]
    assert out["margin"].tolist() == [6.0, 7.0, 0.0]
    with pytest.raises(ValueError, match="after the list date"):
        list_outcomes(ShopTables(transactions=tx), listed, "2024-01-31", "2024-01-31")


def test_measure_list_on_simulated_campaigns_covers_the_true_effect(small_shop) -> None:
    contacts = small_shop.contact_truth
    config = small_shop.config
    hits = 0
    campaigns = sorted(contacts["campaign_id"].unique())
    for campaign in campaigns:
        part = contacts[contacts["campaign_id"] == campaign]
        contact_day = part["contacted_at"].iloc[0].date()
        list_date = contact_day - pd.Timedelta(days=1)
        as_of = contact_day + pd.Timedelta(days=config.reactivation_days - 1)
        report = measure_list(
            small_shop.tables,
            part[["customer_id", "group"]],
            list_id=campaign,
            kind="winback",
            list_date=list_date,
            as_of=as_of,
        )
        row = report.comparison.set_index("metric").loc["reactivation_rate"]
        true_effect = float(part["true_uplift"].mean())
        hits += row["ci_low"] <= true_effect <= row["ci_high"]
        assert row["difference"] > 0  # the simulator's campaigns work
    assert hits >= len(campaigns) - 1


def test_plot_returns_a_figure_with_one_panel_per_metric() -> None:
    rng = np.random.default_rng(1)
    outcomes = _campaign(rng, 500, 0.1, 0.2)
    groups = group_intervals(outcomes, rates=("bought",), means=("spend",))
    fig = plot_measurement(groups, title="test")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["bought", "spend"]


def test_compare_groups_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="both groups"):
        compare_groups(pd.DataFrame({"group": ["treatment"], "x": [True]}), rates=("x",))
    with pytest.raises(ValueError, match="lacks the columns"):
        compare_groups(pd.DataFrame({"group": ["treatment"]}), rates=("x",))


@pytest.mark.realdata
@pytest.mark.skipif(not HILLSTROM.is_file(), reason="../shared/data/hillstrom.csv.gz is absent")
def test_hillstrom_published_arm_results_are_reproduced() -> None:
    frame = load_hillstrom(HILLSTROM)
    arms = hillstrom_arm_results(frame).set_index("arm")
    assert arms["customers"].tolist() == [21307, 21387, 21306]
    assert arms["visit_rate"].round(4).tolist() == [0.1828, 0.1514, 0.1062]
    assert arms["conversion_rate"].round(4).tolist() == [0.0125, 0.0088, 0.0057]
    assert arms["spend_per_customer"].round(2).tolist() == [1.42, 1.08, 0.65]
    effects = hillstrom_effects(frame, "Mens E-Mail").set_index("metric")
    assert effects.at["visit_rate", "ci_low"] > 0
    assert effects.at["spend_per_customer", "ci_low"] > 0
