"""The target table: each target's label and population are what the labels module builds."""

from __future__ import annotations

import datetime as dt

import pytest

from features.labels import build_labels
from features.targets import TARGET_NAMES, TARGETS, score_columns, target

#: Each target's population as the status columns of ``build_labels`` say it.
POPULATION_MASKS = {
    "churn": lambda f: f["is_active"],
    "vip": lambda f: f["is_active"] & ~f["is_vip"],
    "reactivation": lambda f: f["is_lapsed"],
}


def test_each_label_is_built_and_defined_exactly_on_its_population(small_shop):
    labels = build_labels(small_shop.tables, [dt.date(2025, 3, 31)])
    assert TARGET_NAMES == ("churn", "vip", "reactivation")
    for name, t in TARGETS.items():
        population = POPULATION_MASKS[name](labels).astype(bool)
        assert labels[t.label].notna().astype(bool).equals(population), name
    assert score_columns() == {
        "churn": "churn_risk",
        "vip": "vip_potential",
        "reactivation": "reactivation_probability",
    }
    assert target("vip").model_name == "winback-vip"


def test_an_unknown_target_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown target 'upsell'.*churn, vip, reactivation"):
        target("upsell")
