"""Optuna tuning of the LightGBM hyper-parameters on the validation period.

* one search space, in :func:`search_space`;
* a seeded TPE sampler and a median pruner fed by LightGBM's validation AUC
  every few boosting rounds (``LightGBMPruningCallback``), so bad trials stop early;
* the objective is the mean validation ROC-AUC over the test origins (each
  origin's own training and validation periods); the pruner watches the first;
* the study is keyed by everything that changes its result (:func:`study_key`):
  data fingerprint, feature set, labels, search space, origins, fixed settings;
* the study lives in SQLite under ``mlruns/`` and is loaded if it exists, so an
  interrupted ``--tune N`` resumes and runs only the trials still missing;
* when an MLflow run is active, each trial is recorded as a nested child run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from optuna_integration.lightgbm import LightGBMPruningCallback

from features.feature_sets import FeatureSet
from training.config import TrainConfig, label_column

#: Boosting rounds between two reports to the pruner (each report is a DB write).
REPORT_INTERVAL = 10


#: The search space: parameter → (kind, low, high, log scale). Tree shape and
#: regularisation only: trials run at the fixed, larger ``tune_learning_rate``
#: (fast) and the final fits use the configured learning rate with the winner.
SPACE: dict[str, tuple[str, float, float, bool]] = {
    "num_leaves": ("int", 4, 64, True),
    "min_child_samples": ("int", 20, 800, True),
    "subsample": ("float", 0.5, 1.0, False),
    "colsample_bytree": ("float", 0.3, 1.0, False),
    "reg_lambda": ("float", 1e-3, 30.0, True),
    "reg_alpha": ("float", 1e-3, 10.0, True),
}


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """The LightGBM parameters Optuna explores, as ``WinbackClassifier`` keyword arguments."""
    out: dict[str, Any] = {}
    for name, (kind, low, high, log) in SPACE.items():
        suggest = trial.suggest_int if kind == "int" else trial.suggest_float
        out[name] = suggest(name, low, high, log=log)
    return out


def default_trial(config: TrainConfig) -> dict[str, Any]:
    """The configured defaults as a point of the search space (clipped into its bounds).

    Enqueued as a new study's first trial, so a short study can only pick
    parameters that did at least as well as the defaults on validation.
    """
    defaults = config.lightgbm.model_dump()
    return {name: min(max(defaults[name], low), high) for name, (_, low, high, _) in SPACE.items()}


def study_key(config: TrainConfig, feature_set: FeatureSet, origins: Any, fingerprint: str) -> str:
    """A hash of everything that changes a study's trials, so a change starts a new study.

    The data fingerprint, the feature set (names and kinds), the label
    definition and horizon, the search space's code, the origins' cutoffs and
    the fixed training settings (LightGBM defaults, early stopping, refit).
    """
    import hashlib
    import inspect
    import json

    describe = origins.describe() if hasattr(origins, "describe") else origins
    payload = {
        "fingerprint": fingerprint,
        "feature_set": [feature_set.name, [list(c) for c in feature_set.columns]],
        "target": config.target,
        "horizon_days": config.horizon_days,
        "label": config.label,
        "search_space": [inspect.getsource(search_space), SPACE],
        "origins": describe,
        "fixed": config.model_dump(
            include={
                "lightgbm",
                "early_stopping_rounds",
                "seed",
                "refit_on_validation",
                "tune_learning_rate",
                "tune_early_stopping_rounds",
            }
        ),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_storage(root: str | Path | None = None) -> str:
    """SQLite URL of the Optuna database, ``<root or cwd>/mlruns/optuna.db`` (folder created)."""
    folder = Path(root or Path.cwd()) / "mlruns"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


@dataclass(frozen=True)
class TuningResult:
    """Best parameters found, their validation ROC-AUC and what the study holds."""

    best_params: dict[str, Any]
    best_value: float
    study_name: str
    storage: str
    n_complete: int
    n_pruned: int
    n_run: int


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=done)


def _datasets(periods: list, feature_set: FeatureSet) -> list[tuple[lgb.Dataset, lgb.Dataset]]:
    """(train, validation) LightGBM datasets per origin, binned once and reused by every trial.

    ``feature_pre_filter`` is off so trials may change ``min_child_samples``
    on the same binned data.
    """
    from training.model import category_values, encode_features

    out = []
    params = {"feature_pre_filter": False, "verbose": -1}
    for (X_train, y_train), (X_val, y_val) in periods:
        categories = {c: category_values(X_train[c]) for c in feature_set.categorical}
        train = lgb.Dataset(
            encode_features(X_train, feature_set, categories),
            label=np.asarray(y_train, dtype="int64"),
            categorical_feature=list(feature_set.categorical) or "auto",
            params=params,
            free_raw_data=False,
        )
        valid = lgb.Dataset(
            encode_features(X_val, feature_set, categories),
            label=np.asarray(y_val, dtype="int64"),
            reference=train,
            categorical_feature=list(feature_set.categorical) or "auto",
            params=params,
            free_raw_data=False,
        )
        out.append((train.construct(), valid.construct()))
    return out


def trial_params(config: TrainConfig, params: dict[str, Any]) -> dict[str, Any]:
    """LightGBM ``train`` parameters of one trial: the defaults, the trial's, the tuning rate."""
    base = {k: v for k, v in config.lightgbm.model_dump().items() if k != "n_estimators"}
    return {
        **base,
        **params,
        "learning_rate": config.tune_learning_rate,
        "objective": "binary",
        "metric": "auc",
        "seed": config.seed,
        "num_threads": config.num_threads,
        "deterministic": True,
        "force_row_wise": True,
        "feature_pre_filter": False,
        "verbose": -1,
    }


def _fit_trial(
    datasets: list, config: TrainConfig, params: dict, pruning
) -> list[tuple[float, int]]:
    """(best validation ROC-AUC, best iteration) per origin; the pruner watches the first."""
    out = []
    for i, (train, valid) in enumerate(datasets):
        callbacks = [
            lgb.early_stopping(
                config.tune_early_stopping_rounds, first_metric_only=True, verbose=False
            )
        ]
        if i == 0:
            callbacks.append(pruning)
        booster = lgb.train(
            trial_params(config, params),
            train,
            num_boost_round=config.lightgbm.n_estimators,
            valid_sets=[valid],
            valid_names=["valid_0"],
            callbacks=callbacks,
        )
        out.append((float(booster.best_score["valid_0"]["auc"]), int(booster.best_iteration)))
    return out


def _objective(datasets: list, config: TrainConfig, study_name: str):
    """The Optuna objective: mean validation ROC-AUC over the origins' ``datasets``.

    The pruner watches the first origin; each trial is a nested MLflow run
    when a run is active.
    """
    mlflow = sys.modules.get("mlflow")
    parent = mlflow.active_run() if mlflow is not None else None

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial)
        pruning = LightGBMPruningCallback(trial, "auc", report_interval=REPORT_INTERVAL)
        state, value, iterations = "COMPLETE", float("nan"), 0
        try:
            fitted = _fit_trial(datasets, config, params, pruning)
            aucs = [auc for auc, _ in fitted]
            value, iterations = float(np.mean(aucs)), fitted[0][1]
            trial.set_user_attr("best_iteration", iterations)
            trial.set_user_attr("validation_roc_auc_per_origin", aucs)
            return value
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        finally:
            if parent is not None:
                with mlflow.start_run(
                    nested=True,
                    run_name=f"trial-{trial.number:03d}",
                    experiment_id=parent.info.experiment_id,
                ):
                    mlflow.log_params(params)
                    mlflow.set_tags(
                        {"optuna.study": study_name, "optuna.trial": trial.number, "state": state}
                    )
                    if np.isfinite(value):
                        mlflow.log_metrics(
                            {"validation_roc_auc": value, "best_iteration": float(iterations)}
                        )

    return objective


def _periods(train, validation, label_col: str, feature_set: FeatureSet | None):
    """((X, y) train, (X, y) validation) per origin, and the feature set used."""
    trains = train if isinstance(train, list) else [train]
    validations = validation if isinstance(validation, list) else [validation]
    if len(trains) != len(validations) or not trains:
        raise ValueError(
            f"tune needs one validation period per training period, got {len(trains)} "
            f"and {len(validations)}"
        )
    for name, frame in (("train", trains[0]), ("validation", validations[0])):
        if label_col not in frame.columns:
            raise ValueError(f"{name} period has no label column {label_col!r}")
    if feature_set is None:
        from training.model import infer_feature_set

        first = trains[0]
        outcome = [c for c in first.columns if c == label_col or str(c).startswith("future_")]
        feature_set = infer_feature_set(first.drop(columns=outcome), name="tuning")
    periods = [
        (
            (t[feature_set.names], t[label_col].to_numpy(dtype=bool)),
            (v[feature_set.names], v[label_col].to_numpy(dtype=bool)),
        )
        for t, v in zip(trains, validations, strict=True)
    ]
    return periods, feature_set


def _result(study: optuna.Study, study_name: str, storage: str, remaining: int) -> TuningResult:
    """The study's best trial and counts (an error when no trial completed)."""
    finished = _finished(study)
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(
            f"Optuna study {study_name!r} has no completed trial ({len(finished)} pruned); "
            "run more trials (--tune N)"
        )
    best = study.best_trial
    return TuningResult(
        best_params=dict(best.params),
        best_value=float(best.value),
        study_name=study_name,
        storage=storage,
        n_complete=len(complete),
        n_pruned=len(finished) - len(complete),
        n_run=remaining,
    )


def tune(
    train: pd.DataFrame | list[pd.DataFrame],
    validation: pd.DataFrame | list[pd.DataFrame],
    config: TrainConfig,
    n_trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    *,
    feature_set: FeatureSet | None = None,
    label_col: str | None = None,
) -> TuningResult:
    """Search LightGBM parameters that maximise validation ROC-AUC (mean over origins).

    Parameters
    ----------
    train, validation
        Training-table periods (features + label column), e.g. from ``time_split``;
        or one list of each, an entry per test origin (the first is pruned on).
    config
        Gives the seed, threads, early stopping and the untuned defaults.
    n_trials
        Total number of finished trials the study should hold; a resumed study
        only runs the ones still missing.
    storage, study_name
        Optuna storage URL (default: SQLite under ``./mlruns``) and study name
        (default ``winback-<target>``; include a data fingerprint to keep studies
        on different data apart).
    feature_set, label_col
        Columns to train on (default: the frame's columns other than labels and
        ``future_*`` outcomes) and the label column (default: the target's).

    Returns
    -------
    TuningResult
        ``best_params`` are keyword arguments for ``WinbackClassifier``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    label_col = label_col or label_column(config.target)
    periods, feature_set = _periods(train, validation, label_col, feature_set)

    storage = storage or default_storage()
    study_name = study_name or f"winback-{config.target}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=5 * REPORT_INTERVAL, interval_steps=1
        ),
        load_if_exists=True,
    )
    already = len(_finished(study))
    if not study.trials:
        study.enqueue_trial(default_trial(config))
    remaining = max(0, n_trials - already)
    if remaining:
        study.optimize(
            _objective(_datasets(periods, feature_set), config, study_name),
            n_trials=remaining,
            timeout=config.tune_timeout_seconds,
            gc_after_trial=False,
            show_progress_bar=False,
        )
    return _result(study, study_name, storage, remaining)
