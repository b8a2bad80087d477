"""Reasons on request take LightGBM's pred_contrib on the model matrix: the same texts as the
model's own ``contributions`` through ``training.model.reasons.reason_codes``."""

from __future__ import annotations

import numpy as np

from serving.config import ServingConfig
from serving.scoring.lookup import ScoreLookup
from serving.scoring.models import load_served_models
from serving.scoring.predict import FeatureColumns
from serving.scoring.reasons import reason_texts
from training.model.reasons import reason_codes


def slow_reason_texts(model, frame, reference) -> list[list[str]]:
    X = frame[model.feature_set_.names]
    codes = reason_codes(model.contributions(X), X, top=3, reference=reference)
    columns = ["reason_1", "reason_2", "reason_3"]
    return [[v for v in row if v is not None] for row in codes[columns].to_numpy(dtype=object)]


def test_fast_reasons_equal_the_models_own_contributions(serving_home) -> None:
    config = ServingConfig(home=serving_home)
    models = load_served_models(config)
    lookup = ScoreLookup.load(config.score_path, with_features=True)
    features = lookup.feature_frame()
    frame = features.iloc[:40]
    for target in models.targets:
        model = models[target].model
        expected = slow_reason_texts(model, frame, lookup.reference)
        assert any(expected)  # the check compares real reasons, not empty lists
        assert reason_texts(model, frame, reference=lookup.reference) == expected
        columns = FeatureColumns(features).take(np.arange(40), model.feature_set_)
        assert reason_texts(model, columns, reference=lookup.reference) == expected
