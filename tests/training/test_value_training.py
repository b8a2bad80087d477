"""Value training end to end on the small simulated shop: metric names, verdict, figure, notes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from training.value_training import ValueSettings, prepare_value_data, train_value


@pytest.fixture(scope="module")
def result(small_shop):
    settings = ValueSettings(test_origins=2, train_cutoffs=6, num_threads=1, n_boot=50)
    return train_value(small_shop.tables, settings)


def test_metrics_follow_the_classifier_names(result):
    metrics = result.metrics()
    for name in ("normalized_gini", "top_decile_capture", "decile_calibration_error", "rmse"):
        assert f"test_{name}" in metrics
        assert f"baseline_btyd_{name}" in metrics and f"baseline_trailing_{name}" in metrics
        assert f"origin_2_{name}" in metrics and "origin_3_" + name not in metrics
    low, high = (
        metrics["delta_normalized_gini_btyd_ci_low"],
        metrics["delta_normalized_gini_btyd_ci_high"],
    )
    assert low <= metrics["delta_normalized_gini_btyd"] <= high
    assert metrics["test_normalized_gini"] == pytest.approx(
        (metrics["origin_1_normalized_gini"] + metrics["origin_2_normalized_gini"]) / 2
    )


def test_verdict_and_notes(result):
    assert result.verdict() == "beats every baseline"
    assert result.loses_to() == []
    assert result.notes == []  # three years of margin data: a 365-day horizon, no fallback
    assert result.model.horizon_days == 365
    figure = result.figures()["value_deciles.png"]
    assert len(figure.axes[0].patches) == 30  # ten deciles for the model and both baselines


def test_short_history_falls_back_with_a_note(small_shop):
    tables = small_shop.tables
    recent = tables.transactions[tables.transactions["ordered_at"] >= "2024-06-01"]
    short = replace(tables, transactions=recent.reset_index(drop=True))
    data = prepare_value_data(short, ValueSettings(test_origins=2))
    assert data.horizon_days == 180
    assert "value horizon 180 days instead of 365" in data.notes[0]
