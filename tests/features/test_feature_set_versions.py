"""The newest released feature set per target, the training default."""

from __future__ import annotations

import re

import pytest

from features.feature_sets import FEATURE_SETS, TARGETS, latest_feature_set


def _brute_force_latest(target: str) -> str:
    """The released set name with the highest ``_vN`` for ``target``, by a plain scan."""
    best, best_version = "", -1
    for name in FEATURE_SETS:
        match = re.fullmatch(rf"{target}_features_v(\d+)", name)
        if match and int(match.group(1)) > best_version:
            best, best_version = name, int(match.group(1))
    return best


@pytest.mark.parametrize("target", TARGETS)
def test_latest_feature_set_is_the_highest_version(target):
    fs = latest_feature_set(target)
    assert fs.name == _brute_force_latest(target)
    assert FEATURE_SETS[fs.name] is fs


def test_latest_feature_set_refuses_an_unknown_target():
    with pytest.raises(ValueError, match="unknown target 'churns'"):
        latest_feature_set("churns")


def test_training_default_is_the_latest_set():
    from training.config import TrainConfig
    from training.pipeline import resolve_feature_set

    for target in TARGETS:
        assert resolve_feature_set(TrainConfig(target=target)) is latest_feature_set(target)
