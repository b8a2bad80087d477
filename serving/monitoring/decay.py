"""Decay: whether served scores rank as well as their model did when it was trained.

Feature drift (``serving.monitoring.drift``) sees a shift in who the customers
are; it cannot see a shift in how they behave given what they look like (a
competitor's discount war changes who leaves, not the features the model reads).
Once a score table's horizon has passed, the backtest knows the outcomes: this
module compares each table's realised ROC-AUC with the test ROC-AUC recorded
for the model version that made it (``test_roc_auc`` of its MLflow run, the mean
over its test origins) and flags the tables whose AUC fell.

A drop is flagged only when it is both large (``warn_auc_drop``,
``alert_auc_drop``) and outside the realised AUC's sampling noise: larger than
``z`` standard errors of Hanley & McNeil (1982), so a small target population
is not flagged for noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Columns :func:`decay_table` adds to a backtest frame.
DECAY_COLUMNS = ("trained_roc_auc", "auc_drop", "auc_se", "status")
#: The status of a row without a trained AUC or without both outcomes.
NO_REFERENCE = "no reference"


@dataclass(frozen=True)
class DecayConfig:
    """When a fall of the realised ROC-AUC below the trained one is flagged.

    Attributes
    ----------
    warn_auc_drop
        Drop (trained − realised) at or above which a table is flagged ``warn``.
    alert_auc_drop
        Drop at or above which it is flagged ``alert``.
    z
        The drop must also exceed ``z`` standard errors of the realised AUC.
    """

    warn_auc_drop: float = 0.02
    alert_auc_drop: float = 0.05
    z: float = 1.96

    def __post_init__(self) -> None:
        if not 0 < self.warn_auc_drop <= self.alert_auc_drop < 1:
            raise ValueError(
                "DecayConfig needs 0 < warn_auc_drop <= alert_auc_drop < 1, got "
                f"warn_auc_drop={self.warn_auc_drop} and alert_auc_drop={self.alert_auc_drop}"
            )
        if not self.z >= 0:
            raise ValueError(f"DecayConfig.z must be >= 0, got {self.z}")

    def status(self, drop: float, se: float) -> str:
        """``ok``, ``warn`` or ``alert`` for a drop and its standard error."""
        if math.isnan(drop) or math.isnan(se):
            return NO_REFERENCE
        if drop <= self.z * se:
            return "ok"
        if drop >= self.alert_auc_drop:
            return "alert"
        return "warn" if drop >= self.warn_auc_drop else "ok"


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an ROC-AUC from ``positives`` and ``negatives`` (Hanley & McNeil).

    NaN without both classes or without an AUC.
    """
    if positives < 1 or negatives < 1 or math.isnan(auc):
        return float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def decay_table(
    frame: pd.DataFrame,
    trained: Mapping[tuple[str, str], float],
    config: DecayConfig = DecayConfig(),
) -> pd.DataFrame:
    """``frame`` (a backtest, ``serving.monitoring.backtest``) with :data:`DECAY_COLUMNS`.

    ``trained`` maps ``(target, model_version)`` to the version's test ROC-AUC;
    rows of a version it lacks get :data:`NO_REFERENCE`.
    """
    out = frame.copy()
    keys = zip(out["target"].astype(str), out["model_version"].astype(str), strict=True)
    out["trained_roc_auc"] = [float(trained.get(key, np.nan)) for key in keys]
    out["auc_drop"] = out["trained_roc_auc"] - out["roc_auc"].astype("float64")
    n = out["n"].astype("float64").to_numpy()
    positives = np.rint(n * out["base_rate"].astype("float64").to_numpy())
    out["auc_se"] = [
        auc_standard_error(float(a), int(p), int(m - p)) if not math.isnan(p) else float("nan")
        for a, p, m in zip(out["roc_auc"].astype("float64"), positives, n, strict=True)
    ]
    out["status"] = [
        config.status(float(d), float(s))
        for d, s in zip(out["auc_drop"], out["auc_se"], strict=True)
    ]
    return out


def trained_roc_auc(
    pairs: Iterable[tuple[str, str]], *, client: object | None = None
) -> dict[tuple[str, str], float]:
    """The recorded test ROC-AUC of each registered ``(target, model_version)`` pair.

    Read from the MLflow run that registered the version (metric ``test_roc_auc``,
    the mean over its test origins), else from the version's ``metric.roc_auc`` tag;
    pairs whose version or figure is not found are left out. Tracking must be
    configured (``training.tracking.runs.configure_tracking``).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from training.tracking.model_registry import registered_model_name

    client = client or MlflowClient()
    found: dict[tuple[str, str], float] = {}
    for target, version in set(pairs):
        try:
            model_version = client.get_model_version(registered_model_name(target), version)
            metrics = client.get_run(model_version.run_id).data.metrics
        except MlflowException:
            continue
        recorded = metrics.get("test_roc_auc", model_version.tags.get("metric.roc_auc"))
        if recorded is not None:
            found[(target, version)] = float(recorded)
    return found
