"""Rolling-origin value evaluation: origins by hand, the hold-out, and the model on a simulated shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import VALUE_FEATURES_V1
from features.training_table import data_dates
from features.value_table import build_value_table
from training.evaluation.value_baselines import value_summary_at_cutoffs
from training.evaluation.value_evaluation import (
    customer_holdout,
    evaluate_value_models,
    value_cutoffs,
    value_origins,
)
from training.model.value_model import VALUE_MODEL_VARIANTS, WinbackValueRegressor


def _table(cutoffs: list[str], customers: int = 4) -> pd.DataFrame:
    index = pd.MultiIndex.from_product(
        [pd.to_datetime(cutoffs), [f"c{i}" for i in range(customers)]],
        names=["cutoff", "customer_id"],
    )
    return pd.DataFrame({"future_value": 1.0}, index=index)


def test_origins_train_a_full_horizon_before_the_test_cutoff():
    monthly = [f"2024-{m:02d}-01" for m in range(1, 13)]
    origins = value_origins(_table(monthly), horizon_days=91, test_origins=2, train_cutoffs=3)
    assert [o.test_cutoff for o in origins] == pd.to_datetime(["2024-11-01", "2024-12-01"]).tolist()
    # 2024-12-01 minus 91 days is 2024-09-01: training ends there, the latest three
    assert origins[1].train_cutoffs == tuple(
        pd.to_datetime(["2024-07-01", "2024-08-01", "2024-09-01"])
    )
    assert origins[0].train_cutoffs[-1] == pd.Timestamp("2024-08-01")
    with pytest.raises(ValueError, match="at least 400 days before"):
        value_origins(_table(monthly), horizon_days=400)


def test_holdout_keeps_every_customer_on_one_side():
    table = _table(["2024-01-01", "2024-02-01"], customers=500)
    mask = customer_holdout(table)
    by_customer = pd.Series(mask, index=table.index).groupby("customer_id").nunique()
    assert (by_customer == 1).all()
    assert 0.12 < mask.mean() < 0.28


def test_value_model_beats_both_baselines_on_the_simulated_shop(small_shop):
    tables = small_shop.tables
    horizon = 365
    cutoffs = value_cutoffs(tables, horizon, test_origins=2, train_cutoffs=6)
    assert str(cutoffs[-1]) == str(
        data_dates(tables)[1] - pd.Timedelta(days=horizon).to_pytimedelta()
    )
    table = build_value_table(tables, cutoffs, horizon_days=horizon, feature_set=VALUE_FEATURES_V1)
    result = evaluate_value_models(
        table,
        VALUE_FEATURES_V1,
        summary=value_summary_at_cutoffs(tables, cutoffs),
        variants=("tweedie_btyd",),
        test_origins=2,
        factory=lambda variant, used: WinbackValueRegressor(
            used, num_threads=1, **VALUE_MODEL_VARIANTS[variant]
        ),
        n_boot=100,
    )
    deltas = result.deltas.set_index("baseline")
    assert set(deltas.index) == {"trailing", "btyd"}
    assert (deltas["ci_low"] > 0).all(), deltas
    model = result.mean.loc["tweedie_btyd"]
    # sized better than BG/NBD x Gamma-Gamma, which over-predicts older customers here; the 15%
    # bar is met on the demo-size shop (benchmarks/value_quality.py), not on 2,000 customers
    assert model["decile_calibration_error"] < result.mean.loc["btyd", "decile_calibration_error"]
    assert model["decile_calibration_error"] < 0.3
    assert model["normalized_gini"] > result.mean.loc[["trailing", "btyd"], "normalized_gini"].max()
    assert np.isfinite(result.per_origin["spearman"]).all()
