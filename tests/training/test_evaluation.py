"""Rolling origins, the paired bootstrap of ROC-AUC differences and the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.evaluation.compare import (
    OriginScores,
    evaluate_origins,
    origin_metric_names,
    paired_auc_deltas,
    verdict_line,
    weighted_roc_auc,
)
from training.origins import UnsupportedTargetError, origin_splits

RNG = np.random.default_rng(7)


def test_weighted_auc_is_sklearns_auc_of_the_resampled_rows():
    y = RNG.random(400) < 0.3
    score = np.round(y * 0.4 + RNG.random(400), 1)  # many ties
    draws = RNG.integers(0, 400, size=(5, 400))
    counts = np.stack([np.bincount(d, minlength=400) for d in draws])
    got = weighted_roc_auc(y, score, counts)
    expected = [roc_auc_score(y[d], score[d]) for d in draws]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def origin(seed: int, n: int = 1500, noise: float = 0.0) -> OriginScores:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    signal = y * 1.0 + rng.normal(0, 1, n)
    return OriginScores(
        test_cutoff=pd.Timestamp("2024-01-01") + pd.Timedelta(days=30 * seed),
        y=y,
        model=1 / (1 + np.exp(-signal)),
        baselines={
            "weaker": signal + rng.normal(0, 1.5, n),
            "same": signal + rng.normal(0, noise, n),
        },
    )


def test_paired_interval_separates_a_real_win_from_a_tie():
    deltas = paired_auc_deltas([origin(1), origin(2), origin(3)], resamples=300, seed=0)
    weaker, same = deltas.loc["weaker"], deltas.loc["same"]
    assert weaker["ci_low"] > 0 and weaker["ci_low"] <= weaker["delta"] <= weaker["ci_high"]
    # identical ranking: the paired difference is exactly zero in every resample
    assert same["delta"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0


def test_paired_interval_is_narrower_than_unpaired_noise():
    # a baseline that is the model plus a little noise: paired resampling sees a small,
    # tight difference; each AUC alone has a standard error near 0.013 at n=1500
    deltas = paired_auc_deltas([origin(4, noise=0.05)], resamples=300, seed=1)
    row = deltas.loc["same"]
    assert row["ci_high"] - row["ci_low"] < 0.01


def test_evaluation_means_per_origin_names_and_verdict():
    scores = [origin(1), origin(2)]
    evaluation = evaluate_origins(scores, probabilistic=set(), resamples=100)
    per_model = evaluation.per_origin.xs("model", level="scorer")["roc_auc"]
    assert evaluation.metrics["roc_auc"] == pytest.approx(per_model.mean())
    assert np.isnan(evaluation.baselines.loc["weaker", "log_loss"])  # rank-only baseline
    names = origin_metric_names(evaluation)
    newest = scores[-1].test_cutoff
    assert names["origin1_test_roc_auc"] == pytest.approx(per_model[newest])
    assert "origin2_baseline_weaker_roc_auc" in names
    assert evaluation.not_beaten == ["same"] and evaluation.loses_to == []
    assert evaluation.verdict.startswith("does not beat same (Δ +0.000")


def test_verdict_line_both_ways():
    deltas = pd.DataFrame(
        {"delta": [0.02, 0.01], "ci_low": [0.01, 0.002], "ci_high": [0.03, 0.02]},
        index=["rfm", "logistic"],
    )
    assert verdict_line(deltas) == (
        "beats every baseline (smallest win: logistic Δ +0.010 [+0.002, +0.020])"
    )
    deltas.loc["logistic"] = [-0.009, -0.02, 0.003]
    assert verdict_line(deltas) == "does not beat logistic (Δ -0.009 [-0.020, +0.003])"


def table_with_cutoffs(count: int) -> pd.DataFrame:
    cutoffs = pd.date_range("2024-01-01", periods=count, freq="30D")
    index = pd.MultiIndex.from_product([cutoffs, ["a", "b"]], names=["cutoff", "customer_id"])
    return pd.DataFrame({"x": np.arange(len(index)), "churned": [True, False] * count}, index=index)


def test_origins_step_back_one_test_period_each_with_their_own_gaps():
    origins = origin_splits(table_with_cutoffs(12), origins=3, gap_days=90)
    assert len(origins.splits) == 3 and origins.note is None
    tests = [s.test_cutoff for s in origins.splits]
    assert tests == sorted(tests, reverse=True) and (tests[0] - tests[1]).days == 30
    for split in origins.splits:
        assert split.validation_cutoffs[-1] + pd.Timedelta(days=90) <= split.test_cutoffs[0]
        assert split.train_cutoffs[-1] + pd.Timedelta(days=90) <= split.validation_cutoffs[0]
        assert split.test.index.get_level_values("cutoff").max() == split.test_cutoff


def test_short_history_gives_fewer_origins_with_a_note_or_a_clear_error():
    origins = origin_splits(table_with_cutoffs(8), origins=3, gap_days=90)
    assert len(origins.splits) == 2 and "2 test origin(s) instead of 3" in origins.note
    with pytest.raises(UnsupportedTargetError, match="no training cutoff"):
        origin_splits(table_with_cutoffs(5), origins=3, gap_days=90)
