"""One training run for one target, from shop tables to a gated registered model.

``train_target`` wires five steps:

* **prepare** — the training table, the feature set and the rolling test
  origins (``training.origins``);
* **fit** — per origin, LightGBM early-stopped on the origin's validation
  period, calibrated on it and refitted on train + validation
  (``training.model.classifier``; Optuna first when asked, ``training.model.tuning``);
* **evaluate** — per origin the model, the baselines (``training.evaluation.baselines``)
  and on simulated data the oracle are scored on the same rows; the pure
  ``training.evaluation.compare`` turns them into means, paired bootstrap intervals
  and a verdict;
* **record** — the MLflow run: config, data fingerprint, every metric, the
  model, plots and the HTML report (``training.tracking.runs``, ``training.evaluation.run_report``);
* **gate** — the registry (``training.tracking.model_registry``): the newest origin's model is
  registered; it becomes champion only if it beats the champion on the same
  origins and loses to no baseline.

It owns the MLflow run; nothing happens at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from training.config import TrainConfig, label_column, label_config
from training.evaluation.compare import SUMMARY_METRICS, Evaluation, OriginScores
from training.evaluation.run_report import xy
from training.model.classifier import WinbackClassifier, classifier_from_config, infer_feature_set
from training.origins import Origins, UnsupportedTargetError, origin_splits
from training.split import TimeSplit

__all__ = ["SUMMARY_METRICS", "TrainResult", "UnsupportedTargetError", "train_target"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and decided.

    ``metrics`` and ``comparison`` are means over the test origins
    (``comparison``: one row per scorer — ``model``, each baseline, ``oracle``
    when simulated — and the summary metrics as columns); ``evaluation`` holds
    the per-origin figures, the intervals and the verdict.
    """

    target: str
    metrics: dict[str, float]
    validation_metrics: dict[str, float]
    baselines: pd.DataFrame
    comparison: pd.DataFrame
    oracle_metrics: dict[str, float] | None
    bgnbd_feature: dict[str, Any] | None
    split: dict[str, Any]
    feature_set: FeatureSet
    calibration_method: str
    best_params: dict[str, Any]
    fingerprint: str
    run_id: str | None
    model_version: str | None
    gate_promoted: bool | None
    gate_reason: str | None
    champion_metrics: dict[str, float] | None
    model: WinbackClassifier = field(repr=False)
    evaluation: Evaluation | None = field(default=None, repr=False)
    origins: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    report_path: str | None = None

    @property
    def verdict(self) -> str:
        """ "beats every baseline" or which baselines it does not beat, with intervals."""
        return "" if self.evaluation is None else self.evaluation.verdict

    @property
    def loses_to(self) -> list[str]:
        """Baselines the model is significantly worse than."""
        return [] if self.evaluation is None else self.evaluation.loses_to


@dataclass(frozen=True)
class Prepared:
    """The training table, its feature set, the test origins and the RFM summaries."""

    table: pd.DataFrame
    feature_set: FeatureSet
    cutoffs: list[Any]
    origins: Origins
    label: str
    rfm: pd.DataFrame


# ---------------------------------------------------------------- prepare


def resolve_feature_set(config: TrainConfig) -> FeatureSet | None:
    """The configured feature set, else the target's newest released set.

    ``None`` means every registered feature (the training table decides).
    """
    from features import feature_sets

    if config.feature_set is not None:
        get = getattr(feature_sets, "get_feature_set", None)
        if get is None:
            raise ValueError(
                f"feature_set = {config.feature_set!r} is configured but no named feature sets "
                "are available; remove the key to use every registered feature"
            )
        return get(config.feature_set)
    return feature_sets.latest_feature_set(config.target)


def table_feature_set(table: pd.DataFrame, requested: FeatureSet | None, target: str) -> FeatureSet:
    """The feature columns the training table actually has, in the requested order.

    Features whose source table is absent are omitted by the table builder; the
    model is fitted on what is there (recorded with the run).
    """
    label = label_column(target)
    if requested is not None:
        return requested.subset(table.columns)
    outcome = [c for c in table.columns if c == label or str(c).startswith("future_")]
    return infer_feature_set(table.drop(columns=outcome), name=f"{target}_all_features")


def prepare(tables: ShopTables, config: TrainConfig, *, con: Any = None) -> Prepared:
    """Training table, feature set and test origins of one target.

    ``con``: a DuckDB connection where ``tables`` are registered (e.g.
    ``winback.shop.connect_folder``, which reads a folder's keyed files in place);
    the training table and the RFM summaries are built on it. A new connection
    on ``tables`` by default.

    Raises :class:`UnsupportedTargetError` (one line, saying why) when the
    data cannot support the target: no population, one class only, or too few
    cutoffs for even one origin.
    """
    from features.training_table import build_training_table, monthly_cutoffs
    from training.evaluation.bgnbd import rfm_summary_at_cutoffs

    target, label = config.target, label_column(config.target)
    try:
        cutoffs = monthly_cutoffs(
            tables, config.horizon_days, config.cutoff_every_days, count=config.target_cutoff_count
        )
    except ValueError as exc:
        raise UnsupportedTargetError(str(exc)) from None
    requested = resolve_feature_set(config)
    table = build_training_table(
        tables, target, cutoffs, feature_set=requested, label_config=label_config(config), con=con
    )
    if table.empty:
        raise UnsupportedTargetError(
            f"the {target} training table is empty at cutoffs {cutoffs[0]} .. {cutoffs[-1]}: "
            "no customer is in the target's population; check the data and horizon_days"
        )
    table = table[_populated_cutoffs(table, label)]
    origins = origin_splits(
        table,
        origins=config.test_origins,
        validation_cutoffs=config.validation_cutoffs,
        test_cutoffs=config.test_cutoffs,
        gap_days=config.horizon_days,
    )
    for split in origins.splits:
        for name, period in (("train", split.train), ("validation", split.validation)):
            if period[label].nunique() < 2:
                raise UnsupportedTargetError(
                    f"the {target} {name} period has one class only "
                    f"({int(period[label].sum())} positives in {len(period)} rows)"
                )
    return Prepared(
        table=table,
        feature_set=table_feature_set(table, requested, target),
        cutoffs=cutoffs,
        origins=origins,
        label=label,
        rfm=rfm_summary_at_cutoffs(tables, cutoffs, con=con),
    )


def _populated_cutoffs(table: pd.DataFrame, label: str) -> np.ndarray:
    """Rows of cutoffs holding both classes (a cutoff of one class cannot test or validate)."""
    per_cutoff = table.groupby(level="cutoff")[label].agg(["min", "max"])
    usable = per_cutoff.index[per_cutoff["min"] != per_cutoff["max"]]
    return table.index.get_level_values("cutoff").isin(usable)


# ---------------------------------------------------------------- fit


def fit_origin(
    split: TimeSplit, feature_set: FeatureSet, label: str, config: TrainConfig, params: dict
) -> WinbackClassifier:
    """LightGBM early-stopped and calibrated on the validation period, refitted on train + it."""
    model = classifier_from_config(config, feature_set, **params)
    X_val, y_val = xy(split.validation, feature_set, label)
    model.fit(*xy(split.train, feature_set, label), eval_set=(X_val, y_val))
    if config.refit_on_validation:
        both = pd.concat([split.train, split.validation])
        model.refit(*xy(both, feature_set, label))
    return model


def tune_params(prepared: Prepared, config: TrainConfig, storage: str, fingerprint: str):
    """Optuna over every origin (objective: mean validation ROC-AUC); None without trials."""
    if not config.tune_trials:
        return None
    from training.model.tuning import study_key, tune

    periods = [(s.train, s.validation) for s in prepared.origins.splits]
    key = study_key(config, prepared.feature_set, prepared.origins, fingerprint)
    return tune(
        [p[0] for p in periods],
        [p[1] for p in periods],
        config,
        config.tune_trials,
        storage=storage,
        study_name=f"winback-{config.target}-{key[:16]}",
        feature_set=prepared.feature_set,
    )


# ---------------------------------------------------------------- evaluate


def oracle_scores(
    shop: Any, split: TimeSplit, config: TrainConfig
) -> tuple[np.ndarray | None, str]:
    """The simulator's churn probability for each test row, and its name (churn only).

    On a pure BG/NBD world (``features.simulation``) it is the closed-form
    Bayes-optimal posterior, the ``oracle``; on the rich simulated shop it uses
    hidden state no model can see, so it is called the ``ceiling``.
    """
    if shop is None or config.target != "churn":
        return None, "oracle"
    from features.simulation import oracle_churn_probability

    own = getattr(shop, "oracle_churn_probability", None)
    name = "oracle" if own is not None else "ceiling"
    cutoffs = pd.DatetimeIndex(split.test.index.get_level_values("cutoff"))
    ids = split.test.index.get_level_values("customer_id")
    out = np.full(len(split.test), np.nan)
    for cutoff in split.test_cutoffs:
        rows = cutoffs == cutoff
        if own is not None:
            truth = own(cutoff.date(), config.horizon_days)
        else:
            truth = oracle_churn_probability(shop, cutoff.date(), config.horizon_days)
        out[rows] = truth.reindex(ids[rows]).to_numpy(dtype="float64")
    if np.isnan(out).any():
        raise ValueError(
            f"the {name} has no probability for {int(np.isnan(out).sum())} test customers: "
            "is `truth` the shop these tables were simulated from?"
        )
    return out, name


def score_origin(
    split: TimeSplit, model: WinbackClassifier, prepared: Prepared, config: TrainConfig, truth: Any
) -> OriginScores:
    """The model's, each baseline's (fitted on the origin's training cutoffs) and the oracle's test scores."""
    from training.evaluation.baselines import baseline_scores, fit_baselines

    fitted = fit_baselines(
        config.target,
        split.train,
        label_col=prepared.label,
        rfm=prepared.rfm,
        horizon_days=config.horizon_days,
        features=prepared.feature_set.names,
        random_state=config.seed,
    )
    X_test, y_test = xy(split.test, prepared.feature_set, prepared.label)
    oracle, oracle_name = oracle_scores(truth, split, config)
    return OriginScores(
        test_cutoff=split.test_cutoff,
        y=y_test,
        model=model.predict_proba(X_test),
        baselines=baseline_scores(fitted, split.test),
        oracle=oracle,
        oracle_name=oracle_name,
    )


def evaluate(scores: list[OriginScores], config: TrainConfig) -> Evaluation:
    """Means, intervals and verdict of the scored origins (pure)."""
    from training.evaluation.baselines import probabilistic_baselines
    from training.evaluation.compare import evaluate_origins

    return evaluate_origins(
        scores,
        probabilistic=probabilistic_baselines(config.target),
        contact_cost=config.contact_cost,
        offer_value=config.offer_value,
        resamples=config.bootstrap_resamples,
        seed=config.seed,
    )


def champion_on_same_origins(
    target: str, prepared: Prepared, scores: list[OriginScores], config: TrainConfig
) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(champion, new model) mean metrics over the origins the champion can fairly be judged on.

    Those are the origins whose test cutoff is not before the champion's own
    test cutoff: an older origin's test window overlaps the labels the
    champion was trained on. ``(None, None)`` without a usable champion.
    """
    from features.feature_sets import FeatureSetMismatch
    from training.evaluation.compare import scorer_metrics
    from training.tracking.model_registry import NoChampionError, champion, load_champion

    current = champion(target)
    if current is None:
        return None, None
    try:
        model = load_champion(target)
    except NoChampionError:
        return None, None
    since = pd.Timestamp((current.tags or {}).get("test_cutoff") or "1900-01-01")
    pairs = []
    for split, origin in zip(prepared.origins.splits, scores, strict=True):
        if split.test_cutoff.tz_localize(None) < since.tz_localize(None):
            continue
        try:
            p = model.predict_proba(split.test[model.feature_set_.names])
        except (KeyError, FeatureSetMismatch):
            return None, None
        pairs.append((origin, p))
    if not pairs:
        return None, None
    costs = {"contact_cost": config.contact_cost, "offer_value": config.offer_value}
    old = [scorer_metrics(o.y, p, probabilities=True, **costs) for o, p in pairs]
    new = [scorer_metrics(o.y, o.model, probabilities=True, **costs) for o, _ in pairs]
    return pd.DataFrame(old).mean().to_dict(), pd.DataFrame(new).mean().to_dict()


# ---------------------------------------------------------------- wiring


def train_target(
    tables: ShopTables,
    config: TrainConfig,
    *,
    truth: Any = None,
    progress: Progress | None = None,
    con: Any = None,
    fingerprinted: Any = None,
) -> TrainResult:
    """Train, evaluate over the test origins, record and gate one model for ``config.target``.

    Parameters
    ----------
    tables
        The shop's validated tables.
    config
        The run's settings (target, horizon, cutoffs, origins, LightGBM, tuning, gate, tracking).
    truth
        The :class:`~features.simulation.SimulatedShop` the tables came from, to
        score the oracle (true churn hazard); None for real data.
    progress
        Called with a short message before each step (e.g. to print it).
    con
        A DuckDB connection where ``tables`` are registered, to build the training
        table on (see :func:`prepare`); ``tables`` may then be their outline
        (``features.engines.duckdb_engine.outline``) when ``fingerprinted`` is given.
    fingerprinted
        What the data fingerprint hashes instead of ``tables``: the
        ``training.tracking.fingerprint.ParquetFolder`` they were read from.

    Raises
    ------
    UnsupportedTargetError
        When the data cannot support the target (the message says why).
    """
    from training.tracking.recording import run_and_record

    say = progress or (lambda message: None)
    say("building the training table")
    prepared = prepare(tables, config, con=con)
    return run_and_record(
        tables, config, prepared, truth=truth, say=say, fingerprinted=fingerprinted
    )
