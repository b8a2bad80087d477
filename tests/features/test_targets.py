"""The target table: every package's copy of a target's names agrees with it."""

from __future__ import annotations

import pytest

from features.targets import TARGET_NAMES, TARGETS, score_columns, target
from features.training_table import POPULATIONS
from features.training_table import TARGETS as LABELS


def test_each_target_names_its_label_population_score_and_model():
    assert TARGET_NAMES == ("churn", "vip", "reactivation")
    assert {name: t.label for name, t in TARGETS.items()} == LABELS
    assert {name: t.population for name, t in TARGETS.items()} == POPULATIONS
    assert score_columns() == {
        "churn": "churn_risk",
        "vip": "vip_potential",
        "reactivation": "reactivation_probability",
    }
    assert target("vip").model_name == "winback-vip"


def test_an_unknown_target_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown target 'upsell'.*churn, vip, reactivation"):
        target("upsell")
