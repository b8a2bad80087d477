"""Shared fixtures of the scoring tests: a small simulated shop and real LightGBM models."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import (
    CHURN_FEATURES_V1,
    REACTIVATION_FEATURES_V1,
    VIP_FEATURES_V1,
)
from features.simulation import SimulationConfig, simulate_shop
from features.training_table import build_scoring_frame
from serving.config import ServingConfig
from serving.scoring.models import ServedModel, ServedModels
from serving.scoring.table import score_customers
from training.model.classifier import WinbackClassifier

AS_OF = dt.date(2025, 6, 30)
SCORED_AT = dt.datetime(2025, 7, 1, 6, 0, tzinfo=dt.UTC)
SETS = {
    "churn": CHURN_FEATURES_V1,
    "vip": VIP_FEATURES_V1,
    "reactivation": REACTIVATION_FEATURES_V1,
}


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(SimulationConfig(customers=400, seed=11))


@pytest.fixture(scope="module")
def frame(shop) -> pd.DataFrame:
    return build_scoring_frame(shop.tables, AS_OF)


@pytest.fixture(scope="module")
def models(frame) -> ServedModels:
    """Small real LightGBM models (labels from recency plus noise: behaviour is not the point)."""
    rng = np.random.default_rng(0)
    recency = frame["days_since_last_order"].fillna(999).to_numpy()
    loaded = {}
    for i, (target, feature_set) in enumerate(SETS.items()):
        y = (recency + rng.normal(0, 80, len(frame)) > 100 + 40 * i).astype(int)
        model = WinbackClassifier(
            feature_set, n_estimators=10, min_child_samples=5, calibration="none", num_threads=1
        ).fit(frame[feature_set.names], y)
        loaded[target] = ServedModel(target, model, f"winback-{target}", str(i + 1))
    return ServedModels(loaded)


@pytest.fixture(scope="module")
def memory_score_dir(shop, models, tmp_path_factory) -> Path:
    """The score store written by the in-process path from pandas tables (the reference)."""
    out = tmp_path_factory.mktemp("memory-scores")
    score_customers(shop.tables, AS_OF, models, ServingConfig(score_dir=out), scored_at=SCORED_AT)
    return out
