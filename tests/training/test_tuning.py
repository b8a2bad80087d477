"""Optuna tuning: seeded and resumable from SQLite (child runs: see test_pipeline)."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from features.feature_sets import FeatureSet
from training.config import LightGBMParams, TrainConfig
from training.model.tuning import search_space, tune

FEATURES = FeatureSet("tune_v1", (("days_since_last_order", "float64"), ("orders_90d", "float64")))


def period(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "days_since_last_order": rng.exponential(60, n),
            "orders_90d": rng.poisson(2, n).astype("float64"),
        }
    )
    logit = 0.03 * frame["days_since_last_order"] - 0.6 * frame["orders_90d"] - 0.5
    frame["churned"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame["future_margin"] = rng.random(n)
    return frame


@pytest.fixture(scope="module")
def periods():
    return period(1500, 0), period(600, 1)


@pytest.fixture
def config():
    return TrainConfig(
        lightgbm=LightGBMParams(n_estimators=40), early_stopping_rounds=10, num_threads=1, seed=3
    )


def run(periods, config, n_trials, storage, name="study"):
    train, validation = periods
    return tune(
        train,
        validation,
        config,
        n_trials,
        storage,
        name,
        feature_set=FEATURES,
    )


def test_tuning_returns_parameters_of_the_search_space(periods, config, tmp_path):
    result = run(periods, config, 3, f"sqlite:///{tmp_path / 'optuna.db'}")
    trial = optuna.trial.FixedTrial(result.best_params)
    assert search_space(trial) == result.best_params
    assert 0.6 < result.best_value <= 1.0
    assert result.n_complete + result.n_pruned == 3 and result.n_run == 3


def test_study_resumes_from_sqlite_and_runs_only_missing_trials(periods, config, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = run(periods, config, 2, storage)
    resumed = run(periods, config, 4, storage)
    assert resumed.n_run == 2
    assert resumed.n_complete + resumed.n_pruned == 4
    assert resumed.best_value >= first.best_value
    again = run(periods, config, 4, storage)
    assert again.n_run == 0 and again.best_params == resumed.best_params
    study = optuna.load_study(study_name="study", storage=storage)
    assert len(study.trials) == 4


def test_same_seed_suggests_the_same_trials(periods, config, tmp_path):
    a = run(periods, config, 3, f"sqlite:///{tmp_path / 'a.db'}")
    b = run(periods, config, 3, f"sqlite:///{tmp_path / 'b.db'}")
    params = [
        [t.params for t in optuna.load_study(study_name="study", storage=r.storage).trials]
        for r in (a, b)
    ]
    assert params[0] == params[1]
    assert a.best_value == b.best_value


def test_missing_label_column_is_named(periods, config, tmp_path):
    train, validation = periods
    with pytest.raises(ValueError, match="'became_vip'"):
        tune(
            train,
            validation,
            config.model_copy(update={"target": "vip"}),
            1,
            f"sqlite:///{tmp_path / 'x.db'}",
            feature_set=FEATURES,
        )


def test_objective_is_the_mean_over_origins(config, tmp_path):
    origins = ([period(1500, 0), period(1500, 2)], [period(600, 1), period(600, 3)])
    result = tune(
        *origins,
        config,
        1,
        f"sqlite:///{tmp_path / 'o.db'}",
        feature_set=FEATURES,
    )
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    per_origin = study.trials[0].user_attrs["validation_roc_auc_per_origin"]
    assert len(per_origin) == 2 and result.best_value == pytest.approx(np.mean(per_origin))


def test_a_change_of_feature_set_labels_or_origins_starts_a_new_study(periods, config, tmp_path):
    from training.model.tuning import study_key

    origins = {"origins": [{"test_cutoffs": ["2024-06-01"]}]}
    key = study_key(config, FEATURES, origins, "fp")
    assert key == study_key(config, FEATURES, origins, "fp")
    smaller = FeatureSet("tune_v2", FEATURES.columns[:1])
    changed = [
        study_key(config, smaller, origins, "fp"),
        study_key(
            config.model_copy(update={"label": {"active_window_days": 90}}), FEATURES, origins, "fp"
        ),
        study_key(config, FEATURES, {"origins": [{"test_cutoffs": ["2024-07-01"]}]}, "fp"),
        study_key(config, FEATURES, origins, "other data"),
        study_key(config.model_copy(update={"horizon_days": 60}), FEATURES, origins, "fp"),
    ]
    assert len({key, *changed}) == 6

    # the rerun after a feature-set change runs its trials instead of reusing stale ones
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = run(periods, config, 2, storage, name=f"winback-churn-{key[:16]}")
    again = run(periods, config, 2, storage, name=f"winback-churn-{key[:16]}")
    assert first.n_run == 2 and again.n_run == 0
    new_key = study_key(config, smaller, origins, "fp")
    train, validation = periods
    rerun = tune(
        train, validation, config, 2, storage, f"winback-churn-{new_key[:16]}",
        feature_set=smaller,
    )  # fmt: skip
    assert rerun.n_run == 2


def test_a_new_study_tries_the_configured_defaults_first(periods, config, tmp_path):
    from training.model.tuning import default_trial

    defaults = config.model_copy(
        update={"lightgbm": LightGBMParams(n_estimators=40, num_leaves=5, reg_alpha=0.0)}
    )
    result = run(periods, defaults, 3, f"sqlite:///{tmp_path / 'd.db'}")
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    first = study.trials[0].params
    # the defaults as they are, reg_alpha = 0 clipped to the log scale's lower bound
    assert first == default_trial(defaults)
    assert first["num_leaves"] == 5 and first["min_child_samples"] == 200
    assert first["reg_alpha"] == pytest.approx(1e-3)
    # so the study's best is never worse on validation than the defaults
    assert result.best_value >= study.trials[0].value
