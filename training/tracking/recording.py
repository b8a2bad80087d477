"""The MLflow side of a training run: fit and evaluate inside the run, record, gate.

``run_and_record`` opens the run, calls the pipeline's steps (tune, fit per
origin, score, evaluate), logs every figure under the names serving and the
notebooks read (``test_<metric>`` = model mean over origins,
``baseline_<name>_<metric>``, ``oracle_<metric>`` on a BG/NBD world or
``ceiling_<metric>`` on the rich simulated shop, ``origin<k>_…`` per origin,
``delta_roc_auc_<baseline>[_ci_low|_ci_high]``), logs the model, registers it
and applies the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.inputs.schema import ShopTables
from features.redaction import redact_credentials
from training.config import TrainConfig
from training.evaluation.compare import Evaluation, OriginScores, origin_metric_names
from training.evaluation.run_report import xy
from training.pipeline import (
    Prepared,
    Progress,
    TrainResult,
    champion_on_same_origins,
    evaluate,
    fit_origin,
    score_origin,
    tune_params,
)


@dataclass(frozen=True)
class FittedRun:
    """Everything a run has fitted and evaluated, handed to the logging and gating steps."""

    tables: ShopTables
    config: TrainConfig
    prepared: Prepared
    run: Any
    model: Any
    scores: list
    evaluation: Evaluation


def record_evaluation(evaluation: Evaluation, validation: dict[str, float]) -> None:
    """Log the means, per-origin figures, intervals and the verdict to the active run."""
    import mlflow

    from training.tracking import runs

    runs.log_metrics(evaluation.metrics, prefix="test_")
    runs.log_metrics(validation, prefix="validation_")
    for name, row in evaluation.baselines.iterrows():
        runs.log_metrics(row.dropna().to_dict(), prefix=f"baseline_{name}_")
    if evaluation.oracle_metrics is not None:
        runs.log_metrics(evaluation.oracle_metrics, prefix=f"{evaluation.reference}_")
    runs.log_metrics(origin_metric_names(evaluation))
    runs.log_metrics(evaluation.delta_metrics())
    mlflow.log_table(evaluation.comparison.reset_index(names="scorer"), "comparison.json")
    per_origin = evaluation.per_origin.reset_index()
    per_origin["test_cutoff"] = per_origin["test_cutoff"].astype(str)
    mlflow.log_table(per_origin, "comparison_per_origin.json")
    mlflow.log_table(evaluation.deltas.reset_index(), "roc_auc_deltas.json")
    mlflow.set_tags(
        {"verdict": evaluation.verdict[:5000], "loses_to": ",".join(evaluation.loses_to)}
    )


def run_and_record(
    tables: ShopTables,
    config: TrainConfig,
    prepared: Prepared,
    *,
    truth: Any,
    say: Progress,
    fingerprinted: Any = None,
) -> TrainResult:
    """Fit, evaluate, record and gate inside one MLflow run (see the module docstring).

    ``fingerprinted``: what the data fingerprint hashes, ``tables`` by default.
    """
    import mlflow

    from training.tracking import runs

    target, origins = config.target, prepared.origins
    tracking_settings = config.tracking
    newest = origins.newest
    say(
        f"opening the MLflow run ({len(prepared.table)} rows, "
        f"{len(prepared.feature_set.names)} features, {len(origins.splits)} test origins)"
    )
    run_name = f"{target}-{newest.test_cutoff.date().isoformat()}"
    with runs.start_training_run(target, tracking_settings, run_name=run_name) as run:
        data = tables if fingerprinted is None else fingerprinted
        fingerprint = _log_inputs(data, config, prepared)
        best_params: dict[str, Any] = {}
        tuned = tune_params(prepared, config, tracking_settings.optuna_storage(target), fingerprint)
        if tuned is not None:
            say(f"tuned: {tuned.n_run} new Optuna trials of {tuned.n_complete + tuned.n_pruned}")
            best_params = tuned.best_params
            mlflow.log_params({f"tuned.{k}": v for k, v in best_params.items()})
            mlflow.log_metrics(
                {
                    "tuning_best_validation_roc_auc": tuned.best_value,
                    "tuning_trials_pruned": tuned.n_pruned,
                    "tuning_trials_run": tuned.n_run,
                }
            )
            mlflow.set_tag("optuna_study", tuned.study_name)
        say(f"fitting LightGBM on {len(origins.splits)} test origins")
        models = [
            fit_origin(s, prepared.feature_set, prepared.label, config, best_params)
            for s in origins.splits
        ]
        model = models[0]
        mlflow.log_params(
            {
                "best_iteration": model.best_iteration_,
                "calibration_method": model.calibration_method_,
            }
        )
        say("scoring the model and the baselines on every origin")
        scores = [
            score_origin(s, m, prepared, config, truth)
            for s, m in zip(origins.splits, models, strict=True)
        ]
        evaluation = evaluate(scores, config)
        X_val, y_val = xy(newest.validation, prepared.feature_set, prepared.label)
        validation = _validation_metrics(y_val, model.predict_proba(X_val), config)
        record_evaluation(evaluation, validation)
        say(f"verdict: {evaluation.verdict}")
        bgnbd = _bgnbd_experiment(prepared, config, best_params, scores[0], say)
        fitted = FittedRun(tables, config, prepared, run, model, scores, evaluation)
        extras = {
            "fingerprint": fingerprint,
            "best_params": best_params,
            "validation": validation,
            "bgnbd": bgnbd,
        }
        return _log_model_and_gate(fitted, extras, say)


def _validation_metrics(y, p, config: TrainConfig) -> dict[str, float]:
    from training.evaluation.compare import scorer_metrics

    return scorer_metrics(
        y, p, probabilities=True, contact_cost=config.contact_cost, offer_value=config.offer_value
    )


def _log_inputs(tables: Any, config: TrainConfig, prepared: Prepared) -> str:
    """Config, feature set, data fingerprint and the origins' splits; returns the fingerprint."""
    import mlflow

    from training.tracking import runs

    origins = prepared.origins
    runs.log_config(config.model_copy(update={"feature_set": prepared.feature_set.name}))
    runs.log_feature_set(prepared.feature_set)
    fingerprint = runs.log_data_fingerprint(tables, prepared.cutoffs)
    mlflow.log_dict(origins.newest.describe(), "split.json")
    mlflow.log_dict(origins.describe(), "origins.json")
    mlflow.log_dict(
        {"omitted_features": list(prepared.table.attrs.get("omitted_features", []))},
        "omitted_features.json",
    )
    mlflow.set_tags(
        {
            "test_cutoff": origins.newest.test_cutoff.date().isoformat(),
            "test_origins": ",".join(c.date().isoformat() for c in origins.test_cutoffs),
        }
    )
    if origins.note:
        mlflow.set_tag("test_origins_note", origins.note)
    return fingerprint


def _bgnbd_experiment(prepared: Prepared, config: TrainConfig, params: dict, newest, say):
    """BG/NBD expected purchases as a feature, tried on the newest origin (None when off)."""
    if not config.bgnbd_feature_experiment:
        return None
    from training.evaluation.btyd_features import bgnbd_feature_experiment
    from training.evaluation.metrics import classification_metrics
    from training.tracking import runs

    say("trying BG/NBD expected purchases as a feature")
    auc = classification_metrics(newest.y, newest.model)["roc_auc"]
    result = bgnbd_feature_experiment(
        prepared.rfm, prepared.origins.newest, prepared.feature_set, config, params,
        prepared.label, auc,
    )  # fmt: skip
    runs.log_metrics(result, prefix="bgnbd_feature_")
    return result


def _log_model_and_gate(fitted: FittedRun, extras: dict, say: Progress) -> TrainResult:
    """Log the model and drift reference, register and gate it, write the report; the result."""
    import mlflow

    from training.tracking import model_io
    from training.tracking.model_registry import promote_if_better, register
    from training.tracking.reference import log_training_reference

    config, prepared, run, model = fitted.config, fitted.prepared, fitted.run, fitted.model
    scores, evaluation = fitted.scores, fitted.evaluation
    target, newest = config.target, prepared.origins.newest
    say("logging the model and applying the promotion gate")
    champion_metrics, new_on_same = champion_on_same_origins(target, prepared, scores, config)
    X_train, _ = xy(newest.train, prepared.feature_set, prepared.label)
    model_uri = model_io.log_model(model, input_example=X_train)
    X_test, _ = xy(newest.test, prepared.feature_set, prepared.label)
    log_training_reference(target, X_test, prepared.feature_set, scores[0].model)
    version = decision = None
    if config.tracking.register_model:
        version = register(
            run.info.run_id,
            target,
            model_io.MODEL_ARTIFACT_PATH,
            test_cutoff=newest.test_cutoff,
            metrics=evaluation.metrics,
            tags={"verdict": evaluation.verdict[:5000], "loses_to": ",".join(evaluation.loses_to)},
        )
        decision = promote_if_better(
            target, version, new_on_same or evaluation.metrics, champion_metrics, config,
            loses_to=evaluation.deltas.loc[evaluation.loses_to],
        )  # fmt: skip
        mlflow.set_tags(
            {
                "model_version": version,
                "gate_promoted": str(decision.promote).lower(),
                "gate_reason": decision.reason,
            }
        )
    mlflow.set_tag("model_uri", model_uri)
    notes = _notes(fitted, version, decision, extras["bgnbd"])
    report_path = None
    if config.report:
        say("plots and the model report")
        report_path = _report(fitted, notes, extras["fingerprint"])
    return TrainResult(
        target=target,
        metrics=evaluation.metrics,
        validation_metrics=extras["validation"],
        baselines=evaluation.baselines,
        comparison=evaluation.comparison,
        oracle_metrics=evaluation.oracle_metrics,
        bgnbd_feature=extras["bgnbd"],
        split=newest.describe(),
        feature_set=prepared.feature_set,
        calibration_method=model.calibration_method_,
        best_params=extras["best_params"],
        fingerprint=extras["fingerprint"],
        run_id=run.info.run_id,
        model_version=version,
        gate_promoted=None if decision is None else decision.promote,
        gate_reason=None if decision is None else decision.reason,
        champion_metrics=champion_metrics,
        model=model,
        evaluation=evaluation,
        origins=tuple(c.date().isoformat() for c in prepared.origins.test_cutoffs),
        notes=tuple(notes),
        report_path=report_path,
    )


def _notes(fitted: FittedRun, version, decision, bgnbd) -> list[str]:
    """The report's and console's notes: origins, verdict, gate, calibration, BG/NBD experiment."""
    prepared, evaluation = fitted.prepared, fitted.evaluation
    origins = prepared.origins
    notes = [
        "test origins "
        + ", ".join(c.date().isoformat() for c in origins.test_cutoffs)
        + f" (newest first); gap {origins.newest.gap_days} days; figures are means over origins",
        f"verdict: {evaluation.verdict}",
    ]
    if origins.note:
        notes.append(origins.note)
    notes.extend(_calibration_notes(prepared, evaluation, fitted.scores))
    if decision is not None:
        word = "promoted" if decision.promote else "kept as challenger"
        notes.append(f"gate: version {version} {word} — {decision.reason}")
    if bgnbd is not None:
        notes.append(
            "BG/NBD expected purchases as a feature "
            + ("helps" if bgnbd["helps"] else "does not help")
            + f": newest-origin ROC-AUC {bgnbd['roc_auc_without']:.4f} → {bgnbd['roc_auc_with']:.4f}"
        )
    return notes


#: ECE above which the report explains where the calibration error comes from.
ECE_TARGET = 0.03


def _calibration_notes(
    prepared: Prepared, evaluation: Evaluation, scores: list[OriginScores]
) -> list[str]:
    """When ECE misses its target: how the base rate moved and the floor that puts under ECE.

    Binned ECE is a count-weighted mean of |observed − predicted| over bins, so
    it is never below |mean predicted − observed rate| of the whole test period:
    a gap between the rate the model predicts for the test period and the rate
    observed there, which no calibrator fitted before that period can see, is a
    floor no recalibration removes.
    """
    ece = evaluation.metrics.get("ece", float("nan"))
    if not ece > ECE_TARGET:
        return []
    label = prepared.label
    floors, parts = [], []
    for split, origin in zip(prepared.origins.splits, scores, strict=True):
        validation, test = split.validation[label].mean(), origin.y.mean()
        predicted = origin.model.mean()
        floors.append(abs(predicted - test))
        parts.append(
            f"{split.test_cutoff.date().isoformat()}: rate {validation:.3f} at validation,"
            f" {test:.3f} at test, {predicted:.3f} predicted (ECE ≥ {floors[-1]:.3f})"
        )
    floor = float(np.mean(floors))
    if floor > ECE_TARGET:
        why = (
            "out of reach on these origins: ECE can be no lower than the gap between the"
            f" mean predicted and the observed rate of the test period (mean {floor:.3f}),"
            " which a calibrator fitted on the latest fully labelled period cannot see (the"
            " rate and its relation to the features move with the season)"
        )
    else:
        why = f"the base-rate gap explains at most {floor:.3f} of it"
    return [f"calibration: mean ECE {ece:.3f} is above {ECE_TARGET}; {why}: " + "; ".join(parts)]


def _report(fitted: FittedRun, notes: list[str], fingerprint: str) -> str:
    """Figures and the HTML report logged to the run; returns the report's artifact URI."""
    import mlflow

    from training.evaluation.run_report import ReportInputs, close_figures, plots_and_report
    from training.tracking import runs

    tables, config, prepared = fitted.tables, fitted.config, fitted.prepared
    run, model, scores, evaluation = fitted.run, fitted.model, fitted.scores, fitted.evaluation
    newest = prepared.origins.newest
    table = prepared.table
    summary = {
        "source": redact_credentials(tables.source) or "(in memory)",
        "data fingerprint": fingerprint,
        "feature set": f"{prepared.feature_set.name} ({len(prepared.feature_set.names)} features)",
        "omitted features": ", ".join(table.attrs.get("omitted_features", [])) or "none",
        "test origins": ", ".join(c.date().isoformat() for c in prepared.origins.test_cutoffs),
        **{k: ", ".join(v) if isinstance(v, list) else v for k, v in newest.describe().items()},
    }
    inputs = ReportInputs(
        comparison=evaluation.comparison,
        metrics=evaluation.metrics,
        baseline_test_scores=dict(scores[0].baselines),
        data_summary=summary,
        notes=notes,
        deltas=evaluation.deltas,
    )
    figures, html = plots_and_report(
        model, newest, prepared.feature_set, prepared.label, config, inputs
    )
    runs.log_figures(figures)
    mlflow.log_text(html, "report/model_report.html")
    close_figures(figures)
    return f"{run.info.artifact_uri}/report/model_report.html"
