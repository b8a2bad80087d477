"""``/score_rows`` answers the value champion's predicted value when the rows carry its columns."""

from __future__ import annotations

import dataclasses

import anyio
import numpy as np

from features.feature_sets import FeatureSet
from serving.api.schemas import ScoreRowsRequest
from serving.api.scores import score_posted_rows
from serving.api.state import ServingState
from serving.config import ServingConfig
from serving.scoring.lookup import ScoreLookup
from serving.scoring.value import SUMMARY_COLUMNS, ServedValueModel


class _StubRegressor:
    def __init__(self, feature: str) -> None:
        self.feature_set_ = FeatureSet("value_stub", ((feature, "float64"),))


class _StubValueModel:
    """Value = 10 x (purchase days + 1) over 365 days: enough to check the wiring."""

    horizon_days = 365

    def __init__(self, feature: str) -> None:
        self.regressor = _StubRegressor(feature)

    def predict(self, features, summary):
        assert list(features.index) == list(summary.index)
        return 10.0 * (summary["frequency"].to_numpy() + 1)


def _columns(frame) -> dict[str, list]:
    return {c: [None if v != v else v for v in frame[c].tolist()] for c in frame.columns}


def test_score_rows_carry_the_value_champions_prediction(serving_home):
    config = ServingConfig(home=serving_home)
    state = ServingState.load(config)
    names = state.models.feature_set().names
    value = ServedValueModel(_StubValueModel(names[0]), "winback-value", "5")
    state.models = dataclasses.replace(state.models, value=value)
    features = ScoreLookup.load(config.score_path).feature_frame().iloc[:3][names]
    plain = _columns(features)
    summary = {"frequency": [0.0, 2.0, 5.0], "recency": [0.0, 30.0, 80.0],
               "T": [100.0, 200.0, 300.0], "monetary_value": [0.0, 12.0, 30.0]}  # fmt: skip
    assert set(summary) == set(SUMMARY_COLUMNS)

    answer = anyio.run(score_posted_rows, state, ScoreRowsRequest(columns={**plain, **summary}))
    assert answer.predicted_value == [10.0, 30.0, 60.0]
    assert answer.value_horizon_days == 365
    assert np.isfinite(answer.scores["churn_risk"]).all()

    scores_only = anyio.run(score_posted_rows, state, ScoreRowsRequest(columns=plain))
    assert scores_only.predicted_value is None and scores_only.value_horizon_days is None
    assert scores_only.scores == answer.scores
