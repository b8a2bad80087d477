"""Drift: PSI by hand and against a brute-force loop, shifted vs unchanged populations."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.feature_sets import CHURN_FEATURES_V1
from serving.monitoring.drift import (
    DriftConfig,
    column_psi,
    drift_table,
    population_stability_index,
    score_table_drift,
)
from training.tracking.reference import (
    ColumnBins,
    ReferenceBins,
    bin_counts,
    column_bins,
    quantile_edges,
    reference_bins,
)

# ---------------------------------------------------------------- by hand


def test_psi_of_two_bins_by_hand():
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert population_stability_index([10, 10], [5, 15]) == pytest.approx(expected)  # counts
    assert population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_empty_bin_gives_a_large_finite_psi():
    psi = population_stability_index([0.5, 0.5, 0.0], [0.4, 0.4, 0.2], epsilon=1e-4)
    assert math.isfinite(psi) and psi > 1.0


def test_quantile_bins_and_counts_by_hand():
    values = pd.Series([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, None])
    assert quantile_edges(values, 2) == (5.5,)
    bins = column_bins("x", values, n_bins=2)
    # (-inf, 5.5], (5.5, inf], missing
    assert bins.proportions == pytest.approx((5 / 11, 5 / 11, 1 / 11))
    assert bins.labels == ["(-inf, 5.5]", "(5.5, inf]", "(missing)"]
    # a value on an edge falls in the lower bin; many zeros collapse edges
    assert list(bin_counts(pd.Series([5.5, 5.6, np.nan]), bins)) == [1, 1, 1]
    assert quantile_edges(pd.Series([0.0] * 9 + [3.0]), 4) == (0.0,)


def test_categorical_bins_count_unseen_levels_as_other():
    bins = column_bins("region", pd.Series(["north", "south", "north", None]), categorical=True)
    assert bins.levels == ("north", "south")
    assert bins.proportions == pytest.approx((0.5, 0.25, 0.0, 0.25))
    counts = bin_counts(pd.Series(["south", "west", "west", None], dtype="string"), bins)
    assert list(counts) == [0, 1, 2, 1]


def test_config_validates_thresholds_and_flags():
    with pytest.raises(ValueError, match="warn_psi"):
        DriftConfig(warn_psi=0.3, alert_psi=0.2)
    config = DriftConfig()
    assert [config.status(v) for v in (0.05, 0.1, 0.2, 0.25, float("nan"))] == [
        "ok", "warn", "warn", "alert", "no data",
    ]  # fmt: skip


# ---------------------------------------------------------------- brute force


def brute_force_psi(reference: list[float], current: list[float], n_bins: int, eps: float):
    """A slow reference: quantile cut points, a loop per value, a loop per bin."""
    ref = sorted(v for v in reference if not math.isnan(v))
    cuts = []
    for k in range(1, n_bins):  # linear-interpolated quantile k / n_bins
        pos = (len(ref) - 1) * k / n_bins
        lo = math.floor(pos)
        cut = ref[lo] + (ref[min(lo + 1, len(ref) - 1)] - ref[lo]) * (pos - lo)
        if cut < ref[-1] and cut not in cuts:
            cuts.append(cut)

    def shares(values):
        counts = [0] * (len(cuts) + 2)
        for v in values:
            if math.isnan(v):
                counts[-1] += 1
                continue
            i = 0
            while i < len(cuts) and v > cuts[i]:
                i += 1
            counts[i] += 1
        total = sum(counts)
        clipped = [max(c / total, eps) for c in counts]
        return [c / sum(clipped) for c in clipped]

    r, c = shares(reference), shares(current)
    return sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))


values = st.lists(
    st.one_of(st.integers(0, 30).map(float), st.just(float("nan"))), min_size=5, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(reference=values, current=values, n_bins=st.integers(2, 8))
def test_psi_matches_a_brute_force_loop(reference, current, n_bins):
    if all(math.isnan(v) for v in reference):
        reference = [*reference, 1.0]
    bins = column_bins("x", pd.Series(reference), n_bins=n_bins)
    psi, _ = column_psi(bins, pd.Series(current), epsilon=1e-4)
    assert psi == pytest.approx(brute_force_psi(reference, current, n_bins, 1e-4), rel=1e-9)


def test_a_quantile_equal_to_a_value_is_that_value_not_a_rounding_below_it():
    """Position 7 * 5 / 7 is exactly 5: the 5/7 quantile of these values is 1.0, so no cut at 1.

    np.quantile computes 7 * (5 / 7) = 4.9999999999 and cut at 0.9999999999 (an empty bin
    that moved the PSI in the fourth digit; Hypothesis found it).
    """
    reference = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert quantile_edges(pd.Series(reference), n_bins=7) == (0.0,)
    bins = column_bins("x", pd.Series(reference), n_bins=7)
    current = [1.0, 6.0, float("nan"), 0.0, 0.0]
    psi, _ = column_psi(bins, pd.Series(current), epsilon=1e-4)
    assert psi == pytest.approx(brute_force_psi(reference, current, 7, 1e-4), rel=1e-9)


# ---------------------------------------------------------------- simulated populations


def active_features(shop, as_of: dt.date) -> pd.DataFrame:
    from features.training_table import build_scoring_frame

    frame = build_scoring_frame(shop.tables, as_of, CHURN_FEATURES_V1)
    return frame[frame["is_active"].fillna(False)]


@pytest.fixture(scope="module")
def shifted_shop(small_shop):
    from dataclasses import replace

    from features.simulation import simulate_shop

    config = replace(
        small_shop.config,
        shift_date=dt.date(2025, 1, 1),
        shift_purchase_rate_factor=0.3,
        shift_dropout_factor=2.0,
        shift_discount_sensitive_dropout_factor=5.0,
    )
    return simulate_shop(config)


def test_drift_flagged_on_a_shifted_population_not_on_an_unchanged_one(small_shop, shifted_shop):
    as_of = dt.date(2025, 9, 30)
    unchanged = active_features(small_shop, as_of)
    shifted = active_features(shifted_shop, as_of)
    reference = reference_bins(unchanged, CHURN_FEATURES_V1, target="churn")

    drifted = drift_table(reference, shifted)
    assert (drifted["status"] == "alert").any()
    assert drifted["psi"].iloc[0] >= 0.25  # sorted: most shifted first
    assert drifted.iloc[0]["column"] in {c for c, _ in CHURN_FEATURES_V1.columns}

    # two random halves of the same population at the same date: no alert
    halves = np.random.default_rng(0).permutation(len(unchanged))
    first, second = unchanged.iloc[halves[::2]], unchanged.iloc[halves[1::2]]
    same = drift_table(reference_bins(first, CHURN_FEATURES_V1, target="churn"), second)
    assert not (same["status"] == "alert").any(), same.head()
    assert same["psi"].max() < drifted["psi"].max() / 3

    # before the shift the shifted shop is another sample of the same process: no alert
    before = dt.date(2024, 9, 30)
    past = reference_bins(active_features(small_shop, before), CHURN_FEATURES_V1, target="churn")
    not_yet = drift_table(past, active_features(shifted_shop, before))
    assert not (not_yet["status"] == "alert").any(), not_yet.head()


def test_score_table_drift_uses_each_targets_population_and_renders():
    features = pd.DataFrame(
        {"x": [1.0, 2, 3, 4, 50, 60], "region": ["a", "a", "b", "b", "c", "c"]},
        index=pd.Index([f"C{i}" for i in range(6)], name="customer_id"),
    )
    scores = pd.DataFrame(
        {
            "customer_id": features.index,
            "churn_risk": [0.1, 0.2, 0.3, 0.4, np.nan, np.nan],  # C4, C5 are not in the population
            "churn_model_version": "3",
        }
    )
    fs_bins = {
        "x": column_bins("x", pd.Series([1.0, 2, 3, 4]), n_bins=2),
        "region": column_bins("region", pd.Series(["a", "a", "b", "b"]), categorical=True),
    }
    score_bins = column_bins("churn_risk", pd.Series([0.1, 0.2, 0.3, 0.4]), n_bins=2)
    reference = ReferenceBins("churn", "tiny", fs_bins, score_bins, 2)
    report = score_table_drift(
        scores,
        features,
        {"churn": reference},
        as_of=dt.date(2025, 1, 31),
        model_versions={"churn": "3"},
    )
    assert list(report.table["kind"]) == ["score", "feature", "feature"]
    assert (report.table["psi"] == 0).all() and not report.flagged  # same distribution
    assert report.table["current_rows"].tolist() == [4, 4, 4]
    assert "| churn |" in report.to_markdown() and "<table>" in report.to_html()
    payload = report.to_dict()
    assert payload["flagged"] is False and payload["summary"][0]["status"] == "ok"
    # everyone scored now (the 'c' level was never seen): the categorical alerts
    scores["churn_risk"] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    moved = score_table_drift(scores, features, {"churn": reference}, as_of=dt.date(2025, 1, 31))
    region = moved.table.set_index("column").loc["region"]
    assert region["status"] == "alert" and region["top_bin"] == "(other)"


def test_reference_bins_round_trip_through_a_dict():
    bins = ColumnBins("x", "numeric", (0.5, 0.5, 0.0), 4, edges=(2.5,))
    reference = ReferenceBins("churn", "fs", {"x": bins}, None, 2, "why")
    assert ReferenceBins.from_dict(reference.to_dict()) == reference
    with pytest.raises(ValueError, match="lack"):
        reference_bins(pd.DataFrame({"y": [1.0]}), CHURN_FEATURES_V1, target="churn")
