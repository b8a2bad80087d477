"""Live performance: how the scores we served turned out once their horizon has passed.

For every stored score table whose horizon is over (``as_of + horizon_days`` on
or before the last data day), the realised labels are computed with
``features.labels.build_labels`` at ``as_of`` — the same definitions training
used — and joined to the served scores on ``customer_id``. The realised AUC,
calibration (mean predicted vs observed, Brier, ECE) and lift of each target's
scores show whether the models still rank and calibrate as they did at
training time; tracked over time (:func:`plot_backtest`) they show decay.
Saved lists whose horizon has passed are measured too (treated vs control,
``serving.measurement.campaign.measure_list``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.inputs.schema import ShopTables
from features.labels import LabelConfig, build_labels
from features.training_table import TARGETS as LABELS
from features.training_table import data_dates
from serving.config import SCORE_COLUMNS, TARGETS
from serving.scoring import store

#: Metrics of each (score table, target) row of a backtest, after the keys.
BACKTEST_METRICS = (
    "n",
    "base_rate",
    "mean_predicted",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "lift_at_10",
    "capture_at_10",
)
#: Columns of :func:`backtest` frames.
BACKTEST_COLUMNS = ("as_of", "target", "model_version", *BACKTEST_METRICS)


@dataclass(frozen=True)
class BacktestConfig:
    """Which score tables and how their outcomes are defined.

    Attributes
    ----------
    horizon_days
        Horizon the scores predict (must match the models' training horizon).
    label
        Windows and tiers of the labels (``horizon_days`` here wins).
    targets
        Targets to evaluate.
    """

    horizon_days: int = 90
    label: LabelConfig = LabelConfig()
    targets: tuple[str, ...] = TARGETS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.targets) - set(TARGETS))
        if unknown:
            raise ValueError(f"BacktestConfig.targets has unknown targets {unknown}; use {TARGETS}")
        if self.horizon_days < 1:
            raise ValueError(f"BacktestConfig.horizon_days must be >= 1, got {self.horizon_days}")

    @property
    def label_config(self) -> LabelConfig:
        """The label windows with this config's horizon."""
        label = self.label
        return LabelConfig(
            horizon_days=self.horizon_days,
            active_window_days=label.active_window_days,
            lapsed_after_days=label.lapsed_after_days,
            tiers=label.tiers,
        )


def matured_versions(
    versions: Sequence[dt.date], last_data_day: dt.date, horizon_days: int
) -> list[dt.date]:
    """The score dates whose whole horizon ``(as_of, as_of + horizon_days]`` is in the data."""
    return [d for d in versions if d + dt.timedelta(days=horizon_days) <= last_data_day]


def realised_labels(
    tables: ShopTables, as_of: dt.date, config: BacktestConfig = BacktestConfig()
) -> pd.DataFrame:
    """Status at ``as_of`` and outcomes over the horizon after it, indexed by ``customer_id``."""
    labels = build_labels(tables, [as_of], config.label_config).droplevel("cutoff")
    labels.index = labels.index.astype("string")
    return labels


def joined_outcomes(scores: pd.DataFrame, labels: pd.DataFrame, target: str) -> pd.DataFrame:
    """Served score and realised 0/1 label of each customer in the target's population.

    Customers count when the score table gave them the target's score and the
    label is defined for them (same population definitions as training);
    rows are ordered by ``customer_id`` so results do not depend on file order.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``: ``score`` (float) and ``label`` (bool).
    """
    score_column, label_column = SCORE_COLUMNS[target], LABELS[target]
    for frame, column, what in (
        (scores, score_column, "score table"),
        (labels, label_column, "labels"),
    ):
        if column not in frame.columns:
            raise ValueError(f"the {what} lacks the column {column!r}")
    served = scores.set_index(scores["customer_id"].astype("string"))[score_column].dropna()
    realised = labels[label_column].dropna()
    ids = served.index.intersection(realised.index).sort_values()
    return pd.DataFrame(
        {
            "score": served.reindex(ids).to_numpy(dtype="float64"),
            "label": realised.reindex(ids).to_numpy(dtype=bool),
        },
        index=pd.Index(ids, name="customer_id"),
    )


def outcome_metrics(joined: pd.DataFrame) -> dict[str, float]:
    """Realised metrics of served scores: ranking, calibration and lift (``training.evaluation.metrics``)."""
    from training.evaluation.metrics import classification_metrics

    if joined.empty:
        return {name: float("nan") for name in BACKTEST_METRICS} | {"n": 0.0}
    metrics = classification_metrics(joined["label"].to_numpy(), joined["score"].to_numpy())
    metrics["mean_predicted"] = float(joined["score"].mean())
    return {name: float(metrics[name]) for name in BACKTEST_METRICS}


def backtest_score_table(
    scores: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    as_of: dt.date,
    targets: Sequence[str] = TARGETS,
) -> pd.DataFrame:
    """One row per target: realised metrics of one score table (see :data:`BACKTEST_COLUMNS`)."""
    rows = []
    for target in targets:
        if SCORE_COLUMNS[target] not in scores.columns:
            continue
        joined = joined_outcomes(scores, labels, target)
        version_column = f"{target}_model_version"
        version = None
        if version_column in scores.columns and scores[version_column].notna().any():
            version = str(scores[version_column].dropna().iloc[0])
        rows.append(
            {"as_of": as_of, "target": target, "model_version": version} | outcome_metrics(joined)
        )
    return pd.DataFrame(rows, columns=list(BACKTEST_COLUMNS))


def backtest(
    tables: ShopTables,
    score_dir: Path,
    config: BacktestConfig = BacktestConfig(),
) -> pd.DataFrame:
    """Realised performance of every stored score table whose horizon has passed.

    Returns
    -------
    pandas.DataFrame
        :data:`BACKTEST_COLUMNS`, one row per (score date, target), oldest first;
        empty when no score table has matured yet.
    """
    _, last_day = data_dates(tables)
    dates = matured_versions(store.score_versions(score_dir), last_day, config.horizon_days)
    parts = []
    for as_of in dates:
        scores = store.read_scores(score_dir, as_of)
        labels = realised_labels(tables, as_of, config)
        parts.append(backtest_score_table(scores, labels, as_of=as_of, targets=config.targets))
    if not parts:
        return pd.DataFrame(columns=list(BACKTEST_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def list_backtest(tables: ShopTables, list_dir: Path, horizon_days: int = 90) -> pd.DataFrame:
    """Treated vs control of every saved list whose horizon has passed.

    Returns
    -------
    pandas.DataFrame
        One row per (list, metric): ``list_id``, ``kind``, ``list_date``, ``as_of``
        (``list_date + horizon_days``) and the columns of
        ``serving.measurement.campaign.compare_groups`` (treatment, control, difference,
        interval, p-value). Empty when there is no matured list.
    """
    from serving.lists.store import list_ids, read_list
    from serving.measurement.campaign import measure_list

    _, last_day = data_dates(tables)
    parts = []
    for list_id in list_ids(list_dir):
        frame, manifest = read_list(list_dir, list_id)
        end = manifest.list_date + dt.timedelta(days=horizon_days)
        if end > last_day or frame.empty:
            continue
        groups = frame["group"].astype("string")
        if not ((groups == "treatment").any() and (groups == "control").any()):
            continue
        report = measure_list(
            tables,
            frame,
            list_id=list_id,
            kind=manifest.kind,
            list_date=manifest.list_date,
            as_of=end,
        )
        part = report.comparison.copy()
        part.insert(0, "as_of", end)
        part.insert(0, "list_date", manifest.list_date)
        part.insert(0, "kind", manifest.kind)
        part.insert(0, "list_id", list_id)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["list_id", "kind", "list_date", "as_of"])
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- over time


def plot_backtest(
    frame: pd.DataFrame,
    metrics: Sequence[str] = ("roc_auc", "ece"),
    *,
    reference: dict[str, float] | None = None,
    ax: Any = None,
) -> Any:
    """Realised metrics per target over score dates, one line per (target, metric).

    ``reference`` (metric → value, e.g. the champion's test metrics) draws a
    dashed line to compare live performance with what training promised.
    Returns the Axes (a new Agg figure when ``ax`` is None).
    """
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(8, 4.5)).subplots()
    for (target, _), rows in frame.groupby(["target", "model_version"], dropna=False, sort=False):
        rows = rows.sort_values("as_of")
        for metric in metrics:
            ax.plot(
                pd.to_datetime(rows["as_of"]),
                rows[metric].astype("float64"),
                marker="o",
                label=f"{target} {metric} (v{rows['model_version'].iloc[0]})",
            )
    for metric, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", color="grey", linewidth=1)
        ax.annotate(f"training {metric}", (0, value), xycoords=("axes fraction", "data"))
    ax.set_xlabel("score date (as of)")
    ax.set_ylabel("realised metric")
    ax.set_title("Live performance of served scores")
    ax.legend(fontsize="small")
    ax.figure.autofmt_xdate()
    return ax


def log_backtest(frame: pd.DataFrame, *, experiment: str = "winback-monitoring") -> str:
    """Log a backtest frame as an MLflow run (metrics per score date as steps, plot, table).

    With the columns of ``serving.monitoring.decay.decay_table`` the trained AUC and
    the drop are logged too.
    """
    import mlflow

    exp = mlflow.set_experiment(experiment)
    with mlflow.start_run(
        experiment_id=exp.experiment_id, run_name="backtest", tags={"kind": "backtest"}
    ) as run:
        for row in frame.itertuples(index=False):
            step = (pd.Timestamp(row.as_of).date() - dt.date(1970, 1, 1)).days
            values = {
                f"{row.target}.{m}": float(getattr(row, m))
                for m in (*BACKTEST_METRICS, "trained_roc_auc", "auc_drop")
                if hasattr(row, m) and not np.isnan(float(getattr(row, m)))
            }
            mlflow.log_metrics(values, step=step)
        if len(frame):
            mlflow.log_table(frame.astype({"as_of": "string"}), "backtest/backtest.json")
            ax = plot_backtest(frame)
            mlflow.log_figure(ax.figure, "backtest/live_performance.png")
    return run.info.run_id
