"""The run's figures and its self-contained HTML model report.

Figures and the report read the newest test origin's rows (the registered
model's test period); the comparison table they show is the mean over origins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from training.config import TrainConfig
from training.model.classifier import WinbackClassifier
from training.split import TimeSplit


def xy(
    period: pd.DataFrame, feature_set: FeatureSet, label: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and 0/1 labels of one period."""
    return period[feature_set.names], period[label].to_numpy(dtype=bool)


@dataclass(frozen=True)
class ReportInputs:
    """What the report shows beyond the model and its newest test period.

    ``comparison`` and ``metrics`` are means over the test origins; ``deltas``
    the ROC-AUC differences with their intervals; ``baseline_test_scores`` the
    baselines' scores on the newest origin's test rows.
    """

    comparison: pd.DataFrame
    metrics: dict[str, float]
    baseline_test_scores: dict[str, np.ndarray]
    data_summary: dict[str, Any]
    notes: list[str]
    deltas: pd.DataFrame | None = None


def plots_and_report(
    model: WinbackClassifier,
    split: TimeSplit,
    feature_set: FeatureSet,
    label: str,
    config: TrainConfig,
    inputs: ReportInputs,
    max_explained: int = 2000,
) -> tuple[dict[str, Any], str]:
    """The run's figures (name → matplotlib figure) and its self-contained HTML report.

    SHAP contributions and reasons use at most ``max_explained`` test customers
    (a seeded sample): ``pred_contrib`` is the slow part of a report.
    """
    comparison, metrics = inputs.comparison, inputs.metrics
    from training.evaluation import plots
    from training.evaluation.metrics import ProfitModel, lift_table, profit_curve
    from training.evaluation.report import ModelReport, render_model_report
    from training.model.reasons import reason_codes, reason_frequencies

    X_test, y_test = xy(split.test, feature_set, label)
    p_test = model.predict_proba(X_test)
    scores = {"model": p_test, **inputs.baseline_test_scores}
    sample = X_test
    if len(X_test) > max_explained:
        sample = X_test.sample(max_explained, random_state=config.seed)
    contributions = model.contributions(sample)
    curves = {
        name: profit_curve(
            y_test,
            score,
            ProfitModel(contact_cost=config.contact_cost, offer_value=config.offer_value),
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
    calibration = calibration_summary(model, split, X_test, y_test)
    label_summary = {
        "label": label,
        "horizon_days": config.horizon_days,
        "base rate train": float(split.train[label].mean()),
        "base rate validation": float(split.validation[label].mean()),
        "base rate test": float(split.test[label].mean()),
    }
    segments = segment_table(feature_set, X_test, y_test, p_test)
    html = render_model_report(
        ModelReport(
            target=config.target,
            metrics=metrics,
            comparison=comparison,
            figures={name.replace("_", " "): fig for name, fig in figures.items()},
            data_summary=inputs.data_summary,
            label_summary=label_summary,
            calibration=calibration,
            lift=lift_table(y_test, p_test),
            reasons=reason_frequencies(reason_codes(contributions, sample)),
            segments=segments,
            notes=inputs.notes,
            deltas=inputs.deltas,
        )
    )
    return figures, html


def calibration_summary(
    model: WinbackClassifier, split: TimeSplit, X_test: pd.DataFrame, y_test: np.ndarray
) -> dict[str, Any]:
    """How the calibrator was chosen and what it did to Brier and ECE on the newest test origin."""
    from training.evaluation.metrics import expected_calibration_error

    uncalibrated = model.predict_uncalibrated(X_test)
    calibrated = model.predict_proba(X_test)
    return {
        "method": model.calibration_method_,
        "fitted on": "validation cutoffs "
        + ", ".join(c.date().isoformat() for c in split.validation_cutoffs),
        **{
            f"cross-fitted {method} {name}": value
            for method, scores_ in model.calibration_scores_.items()
            for name, value in scores_.items()
        },
        "newest test origin Brier before / after": f"{np.mean((uncalibrated - y_test) ** 2):.4f}"
        f" / {np.mean((calibrated - y_test) ** 2):.4f}",
        "newest test origin ECE before / after": f"{expected_calibration_error(y_test, uncalibrated):.4f}"
        f" / {expected_calibration_error(y_test, calibrated):.4f}",
    }


def segment_table(
    feature_set: FeatureSet, X_test: pd.DataFrame, y_test: np.ndarray, p_test: np.ndarray
) -> pd.DataFrame | None:
    """Observed and predicted rates per value of the first categorical feature (None without one)."""
    if not feature_set.categorical:
        return None
    column = feature_set.categorical[0]
    frame = pd.DataFrame(
        {column: X_test[column].astype("string").fillna("(missing)"), "y": y_test, "p": p_test}
    )
    return frame.groupby(column, observed=True).agg(
        customers=("y", "size"), observed_rate=("y", "mean"), mean_predicted=("p", "mean")
    )


def close_figures(figures: dict[str, Any]) -> None:
    """Drop the figures' canvases (Agg figures hold no pyplot state; this frees memory)."""
    for figure in figures.values():
        fig = getattr(figure, "figure", figure)
        fig.clear()
