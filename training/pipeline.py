"""One training run for one target, from shop tables to a gated registered model.

``train_target`` wires the steps, each a function of its own module:

build the training table (``features.training_table``) → split by time
(``training.split``) → tune (``training.tuning``, optional) → fit LightGBM and
calibrate (``training.model``) → evaluate on the test cutoff
(``training.metrics``) → baselines on the same split (``training.baselines``) →
the simulator's oracle when the data is simulated → BG/NBD expected purchases
as an extra feature (``training.bgnbd``) → plots and the HTML report
(``training.plots``, ``training.report``) → MLflow run, model, registry and the
promotion gate (``training.tracking``, ``training.registry``).

It owns the MLflow run; nothing happens at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.redaction import redact_credentials
from features.schema import ShopTables
from training.config import TrainConfig, label_column, label_config
from training.model import WinbackClassifier, classifier_from_config, infer_feature_set
from training.split import TimeSplit, time_split

#: Name of the BG/NBD column added in the feature experiment.
BGNBD_FEATURE = "bgnbd_expected_purchases"

#: Metrics shown side by side for the model, the baselines and the oracle.
SUMMARY_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_at_10",
    "capture_at_10",
    "expected_maximum_profit",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and decided.

    ``comparison`` has one row per scorer (``model``, each baseline, ``oracle``
    when simulated) and the :data:`SUMMARY_METRICS` as columns, all on the same
    test cutoff.
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
    report_path: str | None = None


# ---------------------------------------------------------------- steps


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


def xy(
    period: pd.DataFrame, feature_set: FeatureSet, label: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and 0/1 labels of one period."""
    return period[feature_set.names], period[label].to_numpy(dtype=bool)


def scored_metrics(
    y: np.ndarray, p: np.ndarray, config: TrainConfig, *, probabilities: bool = True
) -> dict[str, float]:
    """F's metric set plus expected maximum profit at the configured cost and value."""
    from training.metrics import classification_metrics, expected_maximum_profit

    metrics = classification_metrics(y, p, probabilities=probabilities)
    metrics["expected_maximum_profit"] = expected_maximum_profit(
        y, p, contact_cost=config.contact_cost, offer_value=config.offer_value
    )
    return metrics


def oracle_metrics(
    shop: Any, split: TimeSplit, config: TrainConfig, label: str
) -> dict[str, float] | None:
    """Metrics of the simulator's true churn probability on the test cutoff (churn only)."""
    if shop is None or config.target != "churn":
        return None
    from features.simulate import oracle_churn_probability

    test_cutoff = split.test_cutoff
    rows = split.test[split.test.index.get_level_values("cutoff") == test_cutoff]
    truth = oracle_churn_probability(shop, test_cutoff.date(), config.horizon_days)
    ids = rows.index.get_level_values("customer_id")
    p = truth.reindex(ids).to_numpy(dtype="float64")
    if np.isnan(p).any():
        raise ValueError(
            f"the oracle has no probability for {int(np.isnan(p).sum())} test customers: "
            "is `truth` the shop these tables were simulated from?"
        )
    return scored_metrics(rows[label].to_numpy(dtype=bool), p, config)


def baseline_metrics(
    target: str,
    split: TimeSplit,
    label: str,
    config: TrainConfig,
    *,
    rfm: pd.DataFrame | None,
    features: list[str],
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Baselines fitted on the training cutoffs and scored on the test period.

    Returns the metrics per baseline (index ``baseline``; the metrics of
    ``evaluate_baselines`` plus expected maximum profit) and each baseline's
    test scores (higher = more likely positive).
    """
    from training.baselines import PROBABILISTIC_BASELINES, baseline_scores, fit_baselines

    fitted = fit_baselines(
        target,
        split.train,
        label_col=label,
        rfm=rfm,
        horizon_days=config.horizon_days,
        features=features,
        random_state=config.seed,
    )
    scores = baseline_scores(fitted, split.test)
    y = split.test[label].to_numpy(dtype=bool)
    rows = {
        name: scored_metrics(y, score, config, probabilities=name in PROBABILISTIC_BASELINES)
        for name, score in scores.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "baseline"
    return frame, scores


def add_bgnbd_feature(
    rfm: pd.DataFrame, split: TimeSplit, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/validation/test periods with BG/NBD expected purchases as an extra column.

    The BG/NBD parameters are fitted on the training cutoffs' RFM summaries only
    (``rfm`` from ``training.bgnbd.rfm_summary_at_cutoffs``).
    """
    from training.bgnbd import bgnbd_expected_purchases

    expected = bgnbd_expected_purchases(
        rfm, train_cutoffs=split.train_cutoffs, horizon_days=horizon_days
    )
    lookup = pd.Series(
        expected.to_numpy(dtype="float64"), index=_day_keys(expected.index), name=BGNBD_FEATURE
    )

    def with_feature(period: pd.DataFrame) -> pd.DataFrame:
        out = period.copy()
        out[BGNBD_FEATURE] = lookup.reindex(_day_keys(period.index)).to_numpy(dtype="float64")
        return out

    return with_feature(split.train), with_feature(split.validation), with_feature(split.test)


def _day_keys(index: pd.MultiIndex) -> pd.MultiIndex:
    """(cutoff day as naive datetime64[us], customer_id as str) keys for joining."""
    days = pd.DatetimeIndex(index.get_level_values("cutoff"))
    if days.tz is not None:
        days = days.tz_convert("UTC").tz_localize(None)
    return pd.MultiIndex.from_arrays(
        [days.as_unit("us").normalize(), index.get_level_values("customer_id").astype(str)],
        names=["cutoff", "customer_id"],
    )


def bgnbd_feature_experiment(
    rfm: pd.DataFrame,
    split: TimeSplit,
    feature_set: FeatureSet,
    config: TrainConfig,
    params: dict[str, Any],
    label: str,
    test_auc_without: float,
) -> dict[str, Any]:
    """Refit the model with BG/NBD expected purchases as a feature; report test AUC both ways."""
    from training.metrics import classification_metrics

    train, validation, test = add_bgnbd_feature(rfm, split, config.horizon_days)
    extended = FeatureSet(
        f"{feature_set.name}+bgnbd", (*feature_set.columns, (BGNBD_FEATURE, "float64"))
    )
    model = classifier_from_config(config, extended, **params)
    model.fit(*xy(train, extended, label), eval_set=xy(validation, extended, label))
    X_test, y_test = xy(test, extended, label)
    with_auc = classification_metrics(y_test, model.predict_proba(X_test))["roc_auc"]
    return {
        "roc_auc_without": float(test_auc_without),
        "roc_auc_with": float(with_auc),
        "roc_auc_change": float(with_auc - test_auc_without),
        "helps": bool(with_auc > test_auc_without),
    }


def champion_metrics_on(
    target: str, test: pd.DataFrame, label: str, config: TrainConfig
) -> dict[str, float] | None:
    """The current champion's metrics on this run's test period (None without a usable champion)."""
    from features.feature_sets import FeatureSetMismatch
    from training.registry import NoChampionError, load_champion

    try:
        champion = load_champion(target)
    except NoChampionError:
        return None
    try:
        X, y = xy(test, champion.feature_set_, label)
    except KeyError:
        return None
    try:
        p = champion.predict_proba(X)
    except FeatureSetMismatch:
        return None
    return scored_metrics(y, p, config)


def comparison_table(
    metrics: dict[str, float], baselines: pd.DataFrame, oracle: dict[str, float] | None
) -> pd.DataFrame:
    """Model, baselines and oracle side by side on the test cutoff."""
    rows = {"model": metrics}
    for name, row in baselines.iterrows():
        rows[str(name)] = row.to_dict()
    if oracle is not None:
        rows["oracle"] = oracle
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.reindex(columns=[c for c in SUMMARY_METRICS if c in frame.columns])


def plots_and_report(
    *,
    model: WinbackClassifier,
    split: TimeSplit,
    feature_set: FeatureSet,
    label: str,
    config: TrainConfig,
    comparison: pd.DataFrame,
    metrics: dict[str, float],
    baseline_test_scores: dict[str, np.ndarray],
    data_summary: dict[str, Any],
    notes: list[str],
    max_explained: int = 2000,
) -> tuple[dict[str, Any], str]:
    """The run's figures (name → matplotlib figure) and its self-contained HTML report.

    SHAP contributions and reasons use at most ``max_explained`` test customers
    (a seeded sample): ``pred_contrib`` is the slow part of a report.
    """
    from training import plots
    from training.metrics import expected_calibration_error, lift_table, profit_curve
    from training.reasons import reason_codes, reason_frequencies
    from training.report import render_model_report

    X_test, y_test = xy(split.test, feature_set, label)
    p_test = model.predict_proba(X_test)
    scores = {"model": p_test, **baseline_test_scores}
    sample = X_test
    if len(X_test) > max_explained:
        sample = X_test.sample(max_explained, random_state=config.seed)
    contributions = model.contributions(sample)
    curves = {
        name: profit_curve(
            y_test, score, contact_cost=config.contact_cost, offer_value=config.offer_value
        )
        for name, score in scores.items()
    }
    figures: dict[str, Any] = {
        "reliability": plots.plot_reliability(y_test, p_test),
        "roc_pr": plots.plot_roc_pr(y_test, scores),
        "gains": plots.plot_gains(y_test, scores),
        "profit_curve": plots.plot_profit_curve(curves),
        "feature_importance": plots.plot_feature_importance(model.feature_importance()),
        "shap_summary": plots.plot_shap_summary(contributions, sample),
        "model_vs_baselines": plots.plot_model_vs_baselines(comparison, metric="roc_auc"),
    }
    uncalibrated = model.predict_uncalibrated(X_test)
    calibration = {
        "method": model.calibration_method_,
        "fitted on": "validation cutoffs "
        + ", ".join(c.date().isoformat() for c in split.validation_cutoffs),
        **{
            f"cross-fitted {method} {name}": value
            for method, scores_ in model.calibration_scores_.items()
            for name, value in scores_.items()
        },
        "test Brier before / after": f"{np.mean((uncalibrated - y_test) ** 2):.4f} / "
        f"{metrics['brier']:.4f}",
        "test ECE before / after": f"{expected_calibration_error(y_test, uncalibrated):.4f} / "
        f"{metrics['ece']:.4f}",
    }
    label_summary = {
        "label": label,
        "horizon_days": config.horizon_days,
        "base rate train": float(split.train[label].mean()),
        "base rate validation": float(split.validation[label].mean()),
        "base rate test": float(split.test[label].mean()),
    }
    segments = None
    if feature_set.categorical:
        column = feature_set.categorical[0]
        frame = pd.DataFrame(
            {column: X_test[column].astype("string").fillna("(missing)"), "y": y_test, "p": p_test}
        )
        segments = frame.groupby(column, observed=True).agg(
            customers=("y", "size"), observed_rate=("y", "mean"), mean_predicted=("p", "mean")
        )
    html = render_model_report(
        target=config.target,
        metrics=metrics,
        comparison=comparison,
        figures={name.replace("_", " "): fig for name, fig in figures.items()},
        data_summary=data_summary,
        label_summary=label_summary,
        calibration=calibration,
        lift=lift_table(y_test, p_test),
        reasons=reason_frequencies(reason_codes(contributions, sample)),
        segments=segments,
        notes=notes,
    )
    return figures, html


# ---------------------------------------------------------------- wiring


def train_target(
    tables: ShopTables,
    config: TrainConfig,
    *,
    truth: Any = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate, record and gate one model for ``config.target``.

    Parameters
    ----------
    tables
        The shop's validated tables.
    config
        The run's settings (target, horizon, cutoffs, LightGBM, tuning, gate, tracking).
    truth
        The :class:`~features.simulate.SimulatedShop` the tables came from, to
        score the oracle (true churn hazard) on the test cutoff; None for real data.
    progress
        Called with a short message before each step (e.g. to print it).

    Returns
    -------
    TrainResult
        Test metrics, baselines, oracle, BG/NBD experiment, MLflow run id,
        registered version and the gate decision.
    """
    from features.training_table import build_training_table, monthly_cutoffs
    from training import tracking
    from training.registry import promote_if_better, register

    say = progress or (lambda message: None)
    target, label = config.target, label_column(config.target)

    say("building the training table")
    cutoffs = monthly_cutoffs(
        tables, config.horizon_days, config.cutoff_every_days, count=config.cutoff_count
    )
    requested = resolve_feature_set(config)
    table = build_training_table(
        tables, target, cutoffs, feature_set=requested, label_config=label_config(config)
    )
    if table.empty:
        raise ValueError(
            f"the {target} training table is empty at cutoffs {cutoffs[0]} .. {cutoffs[-1]}: "
            "no customer is in the target's population; check the data and horizon_days"
        )
    feature_set = table_feature_set(table, requested, target)
    split = time_split(
        table,
        validation_cutoffs=config.validation_cutoffs,
        test_cutoffs=config.test_cutoffs,
        gap_days=config.horizon_days,
    )
    X_train, y_train = xy(split.train, feature_set, label)
    X_val, y_val = xy(split.validation, feature_set, label)
    X_test, y_test = xy(split.test, feature_set, label)

    settings = config.tracking
    tracking_config = tracking.TrackingConfig(
        root=settings.root,
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        artifact_root=settings.artifact_root,
    )
    run_name = f"{target}-{split.test_cutoff.date().isoformat()}"
    say(f"opening the MLflow run ({len(table)} rows, {len(feature_set.names)} features)")
    with tracking.start_training_run(target, tracking_config, run_name=run_name) as run:
        import mlflow

        # the config as run: its feature_set names the set actually used
        tracking.log_config(config.model_copy(update={"feature_set": feature_set.name}))
        tracking.log_feature_set(feature_set)
        fingerprint = tracking.log_data_fingerprint(tables, cutoffs)
        mlflow.log_dict(split.describe(), "split.json")
        mlflow.log_dict(
            {"omitted_features": list(table.attrs.get("omitted_features", []))},
            "omitted_features.json",
        )
        mlflow.set_tag("test_cutoff", split.test_cutoff.date().isoformat())

        best_params: dict[str, Any] = {}
        if config.tune_trials:
            from training.tuning import tune

            say(f"tuning: {config.tune_trials} Optuna trials")
            result = tune(
                split.train,
                split.validation,
                config,
                config.tune_trials,
                storage=tracking_config.optuna_storage(target),
                study_name=f"winback-{target}-{fingerprint[:16]}",
                feature_set=feature_set,
                label_col=label,
            )
            best_params = result.best_params
            mlflow.log_params({f"tuned.{k}": v for k, v in best_params.items()})
            mlflow.log_metrics(
                {
                    "tuning_best_validation_roc_auc": result.best_value,
                    "tuning_trials_pruned": result.n_pruned,
                }
            )

        say("fitting LightGBM and the calibrator")
        model = classifier_from_config(config, feature_set, **best_params)
        model.fit(X_train, y_train, eval_set=(X_val, y_val))
        mlflow.log_params(
            {
                "best_iteration": model.best_iteration_,
                "calibration_method": model.calibration_method_,
            }
        )

        say("evaluating on the test cutoff")
        p_test = model.predict_proba(X_test)
        metrics = scored_metrics(y_test, p_test, config)
        validation_metrics = scored_metrics(y_val, model.predict_proba(X_val), config)
        tracking.log_metrics(metrics, prefix="test_")
        tracking.log_metrics(validation_metrics, prefix="validation_")

        say("scoring the baselines on the same split")
        from training.bgnbd import rfm_summary_at_cutoffs

        rfm = rfm_summary_at_cutoffs(tables, cutoffs)
        baselines, baseline_test_scores = baseline_metrics(
            target, split, label, config, rfm=rfm, features=feature_set.names
        )
        for name, row in baselines.iterrows():
            tracking.log_metrics(row.to_dict(), prefix=f"baseline_{name}_")

        oracle = oracle_metrics(truth, split, config, label)
        if oracle is not None:
            tracking.log_metrics(oracle, prefix="oracle_")

        bgnbd = None
        if config.bgnbd_feature_experiment:
            say("trying BG/NBD expected purchases as a feature")
            bgnbd = bgnbd_feature_experiment(
                rfm, split, feature_set, config, best_params, label, metrics["roc_auc"]
            )
            tracking.log_metrics(bgnbd, prefix="bgnbd_feature_")

        comparison = comparison_table(metrics, baselines, oracle)
        mlflow.log_table(comparison.reset_index(names="scorer"), "comparison.json")

        say("logging the model and applying the promotion gate")
        champion_metrics = champion_metrics_on(target, split.test, label, config)
        model_uri = tracking.log_model(model, input_example=X_train)
        from training.reference import log_training_reference

        log_training_reference(target, X_test, feature_set, p_test)  # drift monitoring
        version = decision = None
        if settings.register_model:
            version = register(
                run.info.run_id,
                target,
                tracking.MODEL_ARTIFACT_PATH,
                test_cutoff=split.test_cutoff,
                metrics=metrics,
            )
            decision = promote_if_better(target, version, metrics, champion_metrics, config)
            mlflow.set_tags(
                {
                    "model_version": version,
                    "gate_promoted": str(decision.promote).lower(),
                    "gate_reason": decision.reason,
                }
            )
        mlflow.set_tag("model_uri", model_uri)

        report_path = None
        if config.report:
            say("plots and the model report")
            notes = [f"test cutoff {split.test_cutoff.date()}; gap {split.gap_days} days"]
            if decision is not None:
                notes.append(
                    f"gate: version {version} {'promoted' if decision.promote else 'kept as challenger'} — {decision.reason}"
                )
            if bgnbd is not None:
                notes.append(
                    "BG/NBD expected purchases as a feature "
                    + ("helps" if bgnbd["helps"] else "does not help")
                    + f": test ROC-AUC {bgnbd['roc_auc_without']:.4f} → {bgnbd['roc_auc_with']:.4f}"
                )
            figures, html = plots_and_report(
                model=model,
                split=split,
                feature_set=feature_set,
                label=label,
                config=config,
                comparison=comparison,
                metrics=metrics,
                baseline_test_scores=baseline_test_scores,
                data_summary={
                    "source": redact_credentials(tables.source) or "(in memory)",
                    "data fingerprint": fingerprint,
                    "feature set": f"{feature_set.name} ({len(feature_set.names)} features)",
                    "omitted features": ", ".join(table.attrs.get("omitted_features", []))
                    or "none",
                    **{
                        k: ", ".join(v) if isinstance(v, list) else v
                        for k, v in split.describe().items()
                    },
                },
                notes=notes,
            )
            tracking.log_figures(figures)
            mlflow.log_text(html, "report/model_report.html")
            report_path = f"{run.info.artifact_uri}/report/model_report.html"
            _close(figures)

    return TrainResult(
        target=target,
        metrics=metrics,
        validation_metrics=validation_metrics,
        baselines=baselines,
        comparison=comparison,
        oracle_metrics=oracle,
        bgnbd_feature=bgnbd,
        split=split.describe(),
        feature_set=feature_set,
        calibration_method=model.calibration_method_,
        best_params=best_params,
        fingerprint=fingerprint,
        run_id=run.info.run_id,
        model_version=version,
        gate_promoted=None if decision is None else decision.promote,
        gate_reason=None if decision is None else decision.reason,
        champion_metrics=champion_metrics,
        model=model,
        report_path=report_path,
    )


def _close(figures: dict[str, Any]) -> None:
    """Drop the figures' canvases (Agg figures hold no pyplot state; this frees memory)."""
    for figure in figures.values():
        fig = getattr(figure, "figure", figure)
        fig.clear()
