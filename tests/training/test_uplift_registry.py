"""The uplift model in the registry: ``winback-uplift``, gated on held-out Qini."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training import test_tracking as shared
from tests.training.test_uplift import _synthetic
from training.tracking.model_list import champion_history, list_models
from training.tracking.model_registry import champion, load_champion
from training.uplift.fit import UpliftConfig, fit_uplift
from training.uplift.model import qini_coefficient
from training.uplift.record import (
    UpliftRows,
    champion_uplift_location,
    load_uplift_model,
    register_uplift,
)

empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking

X, T, Y, _ = _synthetic(2_000, seed=11)
IDS = pd.Series(range(len(X))).astype(str)


#: A model fitted on shuffled outcomes: it ranks the held-out contacts no better than chance.
NOISE = np.random.default_rng(0).permutation(Y)
GOOD = UpliftConfig(n_estimators=40)


def _register(config: UpliftConfig, tracking, *, fit_on=Y, **kwargs):
    result = fit_uplift(X, T, fit_on, IDS, config)
    return register_uplift(
        result, UpliftRows(X, T, Y), test_cutoff="2025-06-30", tracking=tracking, **kwargs
    )


def test_first_model_is_champion_and_lists_can_load_it(tracking) -> None:
    assert champion_uplift_location() is None
    first = _register(GOOD, tracking)
    assert first.promoted and "first model" in first.reason
    assert champion_uplift_location() == f"models:/winback-uplift/{first.version}"
    loaded = load_uplift_model(champion_uplift_location())
    np.testing.assert_allclose(loaded.predict_uplift(X), first.result.model.predict_uplift(X))
    (row,) = list_models("uplift")
    assert row.name == "winback-uplift" and row.is_champion
    assert row.metrics["qini_test"] == first.result.qini_test
    assert row.test_cutoff == "2025-06-30"
    with pytest.raises(ValueError, match="load_uplift_model"):
        load_champion("uplift")  # the classifier loader says where the uplift loader is


def test_gate_compares_with_the_champion_on_the_same_held_out_rows(tracking) -> None:
    weak = _register(GOOD, tracking, fit_on=NOISE)
    strong = _register(GOOD, tracking)
    test = strong.result.test_mask
    # the champion's Qini the gate used is the weak model's, re-scored on these rows
    expected = qini_coefficient(Y[test], T[test], weak.result.model.predict_uplift(X[test]))
    assert strong.champion_version == weak.version
    assert strong.champion_qini == expected
    assert strong.result.qini_test > expected
    assert strong.promoted and str(champion("uplift").version) == strong.version

    again = _register(GOOD, tracking, fit_on=NOISE)
    assert not again.promoted and again.reason.startswith("worse")
    assert str(champion("uplift").version) == strong.version
    roles = {r.version: r.role for r in list_models("uplift")}
    assert roles == {weak.version: "former_champion", strong.version: "champion",
                     again.version: "challenger"}  # fmt: skip
    assert [h["version"] for h in champion_history("uplift")] == [weak.version, strong.version]

    # better, but not by the required margin: stays a challenger
    demanding = _register(UpliftConfig(n_estimators=40, random_state=1), tracking,
                          min_improvement=1.0)  # fmt: skip
    assert not demanding.promoted and "champion version" in demanding.reason
    assert str(champion("uplift").version) == strong.version
