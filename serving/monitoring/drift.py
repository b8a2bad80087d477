"""Drift of a scoring run against the champion's training data (population stability index).

For each target, the customers a score table scored (the model's population)
are binned with the reference bins the model's training run recorded
(``training.tracking.reference``): quantile bins of the training rows for numeric
features, one bin per level for categoricals, a bin for missing values. The
population stability index compares the shares::

    PSI = sum_i (current_i - reference_i) * ln(current_i / reference_i)

with shares clipped to ``epsilon`` so an empty bin gives a large but finite
term. Rules of thumb (the defaults of :class:`DriftConfig`): below 0.1 the
population is stable, 0.1–0.25 worth a look (``warn``), above 0.25 it has
shifted (``alert``).

Results come as a tidy frame (:func:`drift_table`), as Markdown or HTML, as
MLflow metrics in the ``winback-monitoring`` experiment and from the service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.config import SCORE_COLUMNS, TARGETS
from serving.scoring import store
from training.tracking.reference import ColumnBins, ReferenceBins, bin_counts

#: MLflow experiment of monitoring runs (drift and backtests).
MONITORING_EXPERIMENT = "winback-monitoring"

#: Columns of a drift table, in order.
DRIFT_COLUMNS = (
    "target",
    "column",
    "kind",
    "psi",
    "status",
    "reference_rows",
    "current_rows",
    "top_bin",
    "top_bin_reference_share",
    "top_bin_current_share",
)


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and binning of drift checks.

    Attributes
    ----------
    warn_psi
        PSI at or above which a column is flagged ``warn``.
    alert_psi
        PSI at or above which a column is flagged ``alert``.
    epsilon
        Floor of a bin's share, so empty bins give a finite PSI.
    experiment
        MLflow experiment the drift metrics are logged to.
    """

    warn_psi: float = 0.1
    alert_psi: float = 0.25
    epsilon: float = 1e-4
    experiment: str = MONITORING_EXPERIMENT

    def __post_init__(self) -> None:
        if not 0 < self.warn_psi <= self.alert_psi:
            raise ValueError(
                f"DriftConfig needs 0 < warn_psi <= alert_psi, got warn_psi={self.warn_psi} "
                f"and alert_psi={self.alert_psi}"
            )
        if not 0 < self.epsilon < 1:
            raise ValueError(f"DriftConfig.epsilon must be in (0, 1), got {self.epsilon}")

    def status(self, psi: float) -> str:
        """``ok``, ``warn`` or ``alert`` for a PSI value (``no data`` when NaN)."""
        if np.isnan(psi):
            return "no data"
        if psi >= self.alert_psi:
            return "alert"
        if psi >= self.warn_psi:
            return "warn"
        return "ok"


# ---------------------------------------------------------------- PSI


def population_stability_index(
    reference_shares: Sequence[float] | np.ndarray,
    current_shares: Sequence[float] | np.ndarray,
    *,
    epsilon: float = 1e-4,
) -> float:
    """PSI of two distributions over the same bins (shares, or counts: both are normalised).

    Shares are clipped to ``epsilon`` (and renormalised) before the sum, so a
    bin empty on one side contributes a large finite term, not infinity.
    """
    ref = np.asarray(reference_shares, dtype="float64")
    cur = np.asarray(current_shares, dtype="float64")
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(
            f"PSI needs two share vectors over the same bins, got shapes {ref.shape} and {cur.shape}"
        )
    if ref.sum() <= 0 or cur.sum() <= 0:
        return float("nan")
    ref = np.clip(ref / ref.sum(), epsilon, None)
    cur = np.clip(cur / cur.sum(), epsilon, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def column_psi(
    bins: ColumnBins, values: pd.Series | np.ndarray, *, epsilon: float = 1e-4
) -> tuple[float, np.ndarray]:
    """PSI of ``values`` against one column's reference bins, and the current shares per bin."""
    counts = bin_counts(values, bins)
    total = counts.sum()
    shares = counts / total if total else np.zeros(len(counts))
    psi = population_stability_index(bins.proportions, counts, epsilon=epsilon)
    return psi, shares


def _row(
    target: str,
    bins: ColumnBins,
    kind: str,
    values: pd.Series,
    config: DriftConfig,
) -> dict[str, Any]:
    psi, shares = column_psi(bins, values, epsilon=config.epsilon)
    ref = np.asarray(bins.proportions)
    top = int(np.argmax(np.abs(shares - ref))) if len(values) else 0
    return {
        "target": target,
        "column": bins.name,
        "kind": kind,
        "psi": psi,
        "status": config.status(psi),
        "reference_rows": bins.rows,
        "current_rows": len(values),
        "top_bin": bins.labels[top],
        "top_bin_reference_share": float(ref[top]),
        "top_bin_current_share": float(shares[top]) if len(values) else float("nan"),
    }


def drift_table(
    reference: ReferenceBins,
    features: pd.DataFrame,
    scores: pd.Series | np.ndarray | None = None,
    config: DriftConfig = DriftConfig(),
) -> pd.DataFrame:
    """PSI of each feature (and the score) of one target against its reference.

    Parameters
    ----------
    reference
        The champion's reference bins (``training.tracking.reference.load_reference_bins``).
    features
        Current feature values of the target's population (one row per customer).
    scores
        The current scores of the same customers (optional).

    Returns
    -------
    pandas.DataFrame
        One row per column with :data:`DRIFT_COLUMNS`: the score first, then
        features by decreasing PSI. ``top_bin`` is the bin whose share moved most.
    """
    missing = [c for c in reference.features if c not in features.columns]
    if missing:
        raise ValueError(
            f"the current features lack columns {missing} of the {reference.target} model's "
            f"reference ({reference.feature_set}); score with the same feature set"
        )
    rows = [
        _row(reference.target, bins, "feature", features[name], config)
        for name, bins in reference.features.items()
    ]
    rows.sort(key=lambda r: -np.nan_to_num(r["psi"], nan=-1.0))
    if scores is not None and reference.score is not None:
        rows.insert(0, _row(reference.target, reference.score, "score", pd.Series(scores), config))
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))


def drift_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per target: score PSI, largest feature PSI and how many features warn or alert."""
    out = []
    for target, rows in table.groupby("target", sort=False):
        feats = rows[rows["kind"] == "feature"]
        score = rows.loc[rows["kind"] == "score", "psi"]
        worst = feats.loc[feats["psi"].idxmax()] if feats["psi"].notna().any() else None
        statuses = rows["status"]
        out.append(
            {
                "target": target,
                "score_psi": float(score.iloc[0]) if len(score) else float("nan"),
                "max_feature_psi": float(worst["psi"]) if worst is not None else float("nan"),
                "max_feature": None if worst is None else worst["column"],
                "features_warn": int((feats["status"] == "warn").sum()),
                "features_alert": int((feats["status"] == "alert").sum()),
                "status": "alert"
                if (statuses == "alert").any()
                else ("warn" if (statuses == "warn").any() else "ok"),
            }
        )
    return pd.DataFrame(out)


# ---------------------------------------------------------------- a scoring run


@dataclass(frozen=True)
class DriftReport:
    """Drift of one score table (``as_of``) against each served model's reference."""

    as_of: dt.date
    table: pd.DataFrame
    model_versions: dict[str, str]
    config: DriftConfig

    @property
    def summary(self) -> pd.DataFrame:
        return drift_summary(self.table)

    @property
    def flagged(self) -> bool:
        """Whether any score or feature is at or above the alert threshold."""
        return bool((self.table["status"] == "alert").any())

    def to_markdown(self, top: int = 10) -> str:
        return drift_markdown(self, top=top)

    def to_html(self, top: int = 10) -> str:
        return drift_html(self, top=top)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the service returns)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            clean = frame.astype(object).where(frame.notna(), None)
            return clean.to_dict(orient="records")

        return {
            "as_of": self.as_of.isoformat(),
            "model_versions": dict(self.model_versions),
            "warn_psi": self.config.warn_psi,
            "alert_psi": self.config.alert_psi,
            "flagged": self.flagged,
            "summary": records(self.summary),
            "columns": records(self.table),
        }


def _populations(scores: pd.DataFrame) -> dict[str, pd.Series]:
    """Which rows each target scored: where its score is present."""
    return {t: scores[SCORE_COLUMNS[t]].notna() for t in TARGETS if SCORE_COLUMNS[t] in scores}


def score_table_drift(
    scores: pd.DataFrame,
    features: pd.DataFrame,
    references: Mapping[str, ReferenceBins],
    *,
    as_of: dt.date,
    model_versions: Mapping[str, str] | None = None,
    config: DriftConfig = DriftConfig(),
) -> DriftReport:
    """Drift of one stored score table (scores + the features behind them) per target.

    Each target is compared on the customers it scored (its population), so a
    churn model is checked on active customers just like it was trained.
    """
    if "customer_id" in scores.columns:
        scores = scores.set_index(scores["customer_id"].astype("string"))
    features = features.copy()
    features.index = features.index.astype("string")
    masks = _populations(scores)
    parts = []
    for target, reference in references.items():
        if target not in masks:
            continue
        ids = scores.index[masks[target].to_numpy()]
        part = drift_table(
            reference,
            features.reindex(ids),
            scores.loc[ids, SCORE_COLUMNS[target]],
            config,
        )
        parts.append(part)
    if not parts:
        raise ValueError(
            f"the score table of {as_of} has no scores for the targets {sorted(references)}: "
            "score with the models whose drift you want to check"
        )
    table = pd.concat(parts, ignore_index=True)
    return DriftReport(as_of, table, dict(model_versions or {}), config)


def stored_model_versions(scores: pd.DataFrame) -> dict[str, str]:
    """The model version each target's stored scores came from (``<target>_model_version``)."""
    out = {}
    for target in TARGETS:
        column = f"{target}_model_version"
        if column in scores.columns and scores[column].notna().any():
            out[target] = str(scores[column].dropna().iloc[0])
    return out


def champion_references(
    versions: Mapping[str, str], *, client: Any = None
) -> dict[str, ReferenceBins]:
    """The reference bins of the given registry versions (target → version)."""
    from mlflow import MlflowClient

    from training.tracking.model_registry import registered_model_name
    from training.tracking.reference import load_reference_bins

    client = client or MlflowClient()
    out = {}
    for target, version in versions.items():
        mv = client.get_model_version(registered_model_name(target), str(version))
        out[target] = load_reference_bins(mv.run_id, client=client)
    return out


def drift_report(
    score_dir: Path,
    as_of: dt.date | None = None,
    *,
    targets: Sequence[str] | None = None,
    config: DriftConfig = DriftConfig(),
    references: Mapping[str, ReferenceBins] | None = None,
    client: Any = None,
) -> DriftReport:
    """Drift of the stored score table of ``as_of`` (the newest when None).

    Each target is compared with the reference of the model version that
    produced its stored scores (read from the registry and that version's
    training run unless ``references`` are given). MLflow tracking must be
    configured (``training.tracking.runs.configure_tracking``) when references are
    loaded.
    """
    as_of = as_of or store.latest_version(score_dir)
    if as_of is None or as_of not in store.score_versions(score_dir):
        known = ", ".join(str(d) for d in store.score_versions(score_dir)) or "none"
        raise FileNotFoundError(
            f"no score table for {as_of or 'any date'} in {str(score_dir)!r} (versions: {known}): "
            "write one with `winback score --as-of YYYY-MM-DD`"
        )
    scores = store.read_scores(score_dir, as_of)
    features = store.read_features(score_dir, as_of)
    versions = stored_model_versions(scores)
    if targets is not None:
        versions = {t: v for t, v in versions.items() if t in targets}
    if references is None:
        references = champion_references(versions, client=client)
    return score_table_drift(
        scores, features, references, as_of=as_of, model_versions=versions, config=config
    )


# ---------------------------------------------------------------- outputs


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def _markdown_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def drift_markdown(report: DriftReport, top: int = 10) -> str:
    """The drift report as Markdown: a summary per target, then its most shifted columns."""
    lines = [
        f"# Drift of the score table {report.as_of}",
        "",
        f"PSI thresholds: warn ≥ {report.config.warn_psi}, alert ≥ {report.config.alert_psi}. "
        f"Model versions: {', '.join(f'{t} v{v}' for t, v in report.model_versions.items())}.",
        "",
        _markdown_table(report.summary),
    ]
    columns = ["column", "kind", "psi", "status", "top_bin"]
    columns += ["top_bin_reference_share", "top_bin_current_share"]
    for target, rows in report.table.groupby("target", sort=False):
        lines += ["", f"## {target}", "", _markdown_table(rows[columns].head(top))]
    return "\n".join(lines) + "\n"


def drift_html(report: DriftReport, top: int = 10) -> str:
    """The drift report as a self-contained HTML page."""
    import html

    def table(frame: pd.DataFrame) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
            for row in frame.itertuples(index=False)
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    columns = ["column", "kind", "psi", "status", "top_bin"]
    columns += ["top_bin_reference_share", "top_bin_current_share"]
    sections = "".join(
        f"<h2>{html.escape(str(target))}</h2>{table(rows[columns].head(top))}"
        for target, rows in report.table.groupby("target", sort=False)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>winback drift {report.as_of}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>"
        f"</head><body><h1>Drift of the score table {report.as_of}</h1>"
        f"<p>PSI thresholds: warn &ge; {report.config.warn_psi}, "
        f"alert &ge; {report.config.alert_psi}.</p>"
        f"{table(report.summary)}{sections}</body></html>"
    )


def drift_metrics(report: DriftReport) -> dict[str, float]:
    """MLflow metric names → values: ``<target>.psi.<column>`` plus per-target summaries."""
    metrics: dict[str, float] = {}
    for row in report.table.itertuples(index=False):
        if not np.isnan(row.psi):
            metrics[f"{row.target}.psi.{row.column}"] = float(row.psi)
    for row in report.summary.itertuples(index=False):
        metrics[f"{row.target}.score_psi"] = row.score_psi
        metrics[f"{row.target}.max_feature_psi"] = row.max_feature_psi
        metrics[f"{row.target}.features_warn"] = float(row.features_warn)
        metrics[f"{row.target}.features_alert"] = float(row.features_alert)
    return {k: v for k, v in metrics.items() if not np.isnan(v)}


def log_drift_report(report: DriftReport) -> str:
    """Log a drift report as an MLflow run of ``winback-monitoring``; return the run id.

    Metrics as in :func:`drift_metrics` (step = days since 1970 of ``as_of``, so
    runs line up over time), tags ``as_of``/``kind=drift``/model versions, and
    the table as JSON, Markdown and HTML artifacts. Tracking must be configured.
    """
    import mlflow

    experiment = mlflow.set_experiment(report.config.experiment)
    step = (report.as_of - dt.date(1970, 1, 1)).days
    tags = {"kind": "drift", "as_of": report.as_of.isoformat(), "flagged": str(report.flagged)}
    tags.update({f"{t}_model_version": v for t, v in report.model_versions.items()})
    with mlflow.start_run(
        experiment_id=experiment.experiment_id, run_name=f"drift-{report.as_of}", tags=tags
    ) as run:
        mlflow.log_metrics(drift_metrics(report), step=step)
        mlflow.log_table(report.table, "drift/drift_table.json")
        mlflow.log_text(report.to_markdown(), "drift/drift_report.md")
        mlflow.log_text(report.to_html(), "drift/drift_report.html")
    return run.info.run_id
