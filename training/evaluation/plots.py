"""Evaluation plots: each ``plot_*`` draws on a given Axes or a new standalone Figure.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through
``pyplot``, so no global figure state is left open (safe in servers, tests and
long training runs) and no interactive backend is needed; PNG rendering uses
Agg. :func:`figure_to_png` turns a figure into bytes for MLflow and the HTML
report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm

from training.evaluation.metrics import expected_positives_in_top, reliability_table

Scores = Mapping[str, np.ndarray] | np.ndarray


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.5)) -> Axes:
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _as_mapping(scores: Scores, default: str = "model") -> dict[str, np.ndarray]:
    if isinstance(scores, Mapping):
        return {str(k): np.asarray(v, dtype=float) for k, v in scores.items()}
    return {default: np.asarray(scores, dtype=float)}


def figure_to_png(figure: Figure | Axes, *, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (or of the figure an Axes belongs to)."""
    fig = figure.figure if isinstance(figure, Axes) else figure
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_reliability(y, p, *, n_bins: int = 10, ax: Axes | None = None) -> Axes:
    """Reliability diagram: observed rate vs mean predicted probability per bin.

    Points on the diagonal are calibrated; marker areas scale with the bin's size.
    """
    ax = _new_axes(ax)
    table = reliability_table(y, p, n_bins)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    sizes = 20 + 300 * table["count"] / table["count"].max()
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    ax.scatter(table["mean_predicted"], table["observed_rate"], s=sizes, alpha=0.3)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted probability",
        ylabel="observed rate",
        title="Reliability",
    )
    ax.legend(loc="upper left")
    return ax


def plot_roc_pr(y, scores: Scores, *, fig: Figure | None = None) -> Figure:
    """ROC curve (left) and precision-recall curve (right), one line per score."""
    if fig is None:
        fig = Figure(figsize=(11.0, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
    roc_ax, pr_ax = fig.subplots(1, 2)
    y_arr = np.asarray(y, dtype=int)
    for name, score in _as_mapping(scores).items():
        fpr, tpr, _ = skm.roc_curve(y_arr, score)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {skm.auc(fpr, tpr):.3f})")
        precision, recall, _ = skm.precision_recall_curve(y_arr, score)
        ap = skm.average_precision_score(y_arr, score)
        pr_ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})", drawstyle="steps-post")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.axhline(y_arr.mean(), linestyle="--", color="grey", linewidth=1)
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    roc_ax.legend(loc="lower right", fontsize="small")
    pr_ax.legend(loc="upper right", fontsize="small")
    return fig


def gains_curve(y, score, points: int = 101) -> pd.DataFrame:
    """Cumulative capture of positives by the fraction contacted (ties shared)."""
    y_arr = np.asarray(y, dtype=float)
    n = y_arr.size
    counts = np.unique(np.round(np.linspace(0, n, points)).astype(int))
    positives = expected_positives_in_top(y_arr, score, counts)
    total = y_arr.sum()
    return pd.DataFrame(
        {
            "fraction_contacted": counts / n,
            "capture": positives / total if total else np.nan,
        }
    )


def plot_gains(y, scores: Scores, *, ax: Axes | None = None) -> Axes:
    """Cumulative gains: share of all positives reached by contacting the top x %."""
    ax = _new_axes(ax)
    for name, score in _as_mapping(scores).items():
        curve = gains_curve(y, score)
        ax.plot(curve["fraction_contacted"], curve["capture"], label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="random")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="share of customers contacted (highest scores first)",
        ylabel="share of positives reached",
        title="Cumulative gains",
    )
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_profit_curve(
    curves: pd.DataFrame | Mapping[str, pd.DataFrame], *, ax: Axes | None = None
) -> Axes:
    """Profit per customer by the share contacted (``training.evaluation.metrics.profit_curve``),
    with each curve's maximum (the EMP) marked."""
    ax = _new_axes(ax)
    if isinstance(curves, pd.DataFrame):
        curves = {"model": curves}
    for name, curve in curves.items():
        (line,) = ax.plot(curve["fraction_contacted"], curve["profit_per_customer"], label=name)
        best = curve["profit_per_customer"].idxmax()
        ax.scatter(
            [curve.loc[best, "fraction_contacted"]],
            [curve.loc[best, "profit_per_customer"]],
            color=line.get_color(),
            zorder=3,
        )
    ax.axhline(0, color="grey", linewidth=1)
    ax.set(
        xlim=(0, 1),
        xlabel="share of customers contacted",
        ylabel="profit per customer",
        title="Profit curve",
    )
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_feature_importance(
    importance: pd.Series, *, top: int = 20, ax: Axes | None = None, xlabel: str = "gain"
) -> Axes:
    """Horizontal bars of the ``top`` most important features (largest at the top)."""
    ax = _new_axes(ax, (6.0, max(3.0, 0.3 * min(top, len(importance)) + 1)))
    values = importance.sort_values(ascending=False).head(top)[::-1]
    ax.barh([str(i) for i in values.index], values.to_numpy(dtype=float))
    ax.set(xlabel=xlabel, title="Feature importance")
    return ax


def plot_shap_summary(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    top: int = 15,
    max_points: int = 2000,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Beeswarm-like SHAP summary from LightGBM ``pred_contrib`` contributions.

    One row per feature (largest mean |contribution| at the top); each dot is a
    customer, placed at its contribution and coloured by the feature's value
    (its percentile among the plotted customers; grey when missing or categorical).
    At most ``max_points`` customers, sampled with ``seed``.
    """
    names = [c for c in contributions.columns if c != "bias"]
    order = contributions[names].abs().mean().sort_values(ascending=False).index[:top]
    ax = _new_axes(ax, (7.0, max(3.0, 0.35 * len(order) + 1)))
    rng = np.random.default_rng(seed)
    rows = np.arange(len(contributions))
    if rows.size > max_points:
        rows = np.sort(rng.choice(rows, max_points, replace=False))
    scatter = None
    for position, name in enumerate(reversed(list(order))):
        x = contributions[name].to_numpy(dtype=float)[rows]
        column = features[name].iloc[rows] if name in features.columns else None
        if column is not None and pd.api.types.is_numeric_dtype(column.dtype):
            colour = column.rank(pct=True).to_numpy(dtype=float)
        else:
            colour = np.full(rows.size, np.nan)
        jitter = rng.uniform(-0.3, 0.3, rows.size)
        missing = np.isnan(colour)
        ax.scatter(x[missing], position + jitter[missing], s=6, color="lightgrey")
        scatter = ax.scatter(
            x[~missing],
            position + jitter[~missing],
            s=6,
            c=colour[~missing],
            cmap="coolwarm",
            vmin=0,
            vmax=1,
        )
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(order)), list(reversed([str(n) for n in order])))
    ax.set(xlabel="contribution to the raw score (log-odds)", title="SHAP summary")
    if scatter is not None:
        bar = ax.figure.colorbar(scatter, ax=ax)
        bar.set_label("feature value (percentile)")
    return ax


def plot_model_vs_baselines(
    table: pd.DataFrame, *, metric: str = "roc_auc", ax: Axes | None = None
) -> Axes:
    """Bar chart of one metric for the model, the baselines and the oracle (rows of ``table``)."""
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the table: {list(table.columns)}")
    ax = _new_axes(ax)
    values = table[metric].astype(float)
    bars = ax.bar([str(i) for i in values.index], values.to_numpy())
    ax.bar_label(bars, fmt="%.3f")
    finite = values[np.isfinite(values)]
    if metric in ("roc_auc",) and len(finite):
        ax.set_ylim(max(0.0, float(finite.min()) - 0.1), min(1.0, float(finite.max()) + 0.05))
    ax.set(ylabel=metric, title=f"Model vs baselines: {metric}")
    ax.tick_params(axis="x", labelrotation=20)
    return ax
