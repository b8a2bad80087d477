"""The model report: one self-contained HTML page per training run.

Data and labels, the model against its baselines (and the oracle when the data
is simulated), calibration, lift, the plots (embedded as base64 PNG, so the
file can be mailed or opened from the MLflow UI without anything else), the
most common reasons and a segment table. Rendering is a pure function of its
inputs; :func:`write_model_report` writes the page atomically.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from features.publish import publish_text
from training.evaluation.plots import figure_to_png

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f5f5f5; }
.subtitle { color: #666; margin-top: 0; } .note { color: #555; font-size: 0.9rem; }
figure { display: inline-block; margin: 0.5rem 1rem 0.5rem 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _format_value(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return html.escape(str(value))


def _mapping_table(data: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_format_value(v)}</td></tr>"
        for k, v in data.items()
    )
    return f"<table>{rows}</table>"


def _frame_table(frame: pd.DataFrame, *, index: bool = True) -> str:
    return frame.to_html(
        index=index,
        escape=True,
        border=0,
        na_rep="—",
        float_format=lambda v: f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}",
    )


def _png(figure: Figure | Axes | bytes) -> bytes:
    return figure if isinstance(figure, bytes) else figure_to_png(figure)


def _figure(caption: str, figure: Figure | Axes | bytes) -> str:
    data = base64.b64encode(_png(figure)).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def render_model_report(
    *,
    target: str,
    metrics: Mapping[str, float],
    comparison: pd.DataFrame | None = None,
    figures: Mapping[str, Figure | Axes | bytes] | None = None,
    data_summary: Mapping[str, object] | None = None,
    label_summary: Mapping[str, object] | None = None,
    calibration: Mapping[str, object] | None = None,
    lift: pd.DataFrame | None = None,
    reasons: pd.DataFrame | None = None,
    segments: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    deltas: pd.DataFrame | None = None,
    title: str | None = None,
    generated_at: dt.datetime | None = None,
) -> str:
    """The model report as one self-contained HTML string.

    Parameters
    ----------
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"``.
    metrics
        The model's test metrics (``training.evaluation.metrics.classification_metrics`` and extras).
    comparison
        Model, baselines and oracle as rows, metrics as columns.
    figures
        Caption -> figure (matplotlib Figure/Axes or PNG bytes), embedded as base64.
    data_summary, label_summary, calibration
        Small key -> value tables: source, fingerprint, cutoffs, rows; label
        definition and base rates; calibration method with Brier / log loss / ECE
        before and after.
    lift, reasons, segments
        ``training.evaluation.metrics.lift_table``, ``training.model.reasons.reason_frequencies``
        and a per-segment metrics table (e.g. by tier).
    notes
        Free sentences shown at the top (e.g. the gate decision, the BG/NBD-feature result).
    deltas
        ROC-AUC model − baseline per baseline with its paired bootstrap
        interval (``delta``, ``ci_low``, ``ci_high``); ends the comparison with
        the verdict.
    generated_at
        Timestamp shown in the header; now (UTC) by default.
    """
    when = generated_at or dt.datetime.now(dt.UTC)
    title = title or f"winback {target} model report"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="subtitle">target <b>{html.escape(target)}</b> · generated '
        f"{html.escape(when.strftime('%Y-%m-%d %H:%M UTC'))}</p>",
    ]
    if notes:
        items = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
        parts.append(f'<ul class="note">{items}</ul>')
    if data_summary:
        parts.append(_section("Data", _mapping_table(data_summary)))
    if label_summary:
        parts.append(_section("Labels", _mapping_table(label_summary)))
    parts.append(_section("Test metrics", _mapping_table(metrics)))
    if comparison is not None and not comparison.empty:
        parts.append(
            _section(
                "Model vs baselines (mean over the same test origins)",
                _frame_table(comparison)
                + '<p class="note">Rule baselines rank customers but do not give probabilities: '
                "their log loss, Brier score and ECE are not defined (—).</p>",
            )
        )
    if deltas is not None and not deltas.empty:
        from training.evaluation.compare import verdict_line

        parts.append(
            _section(
                "ROC-AUC model − baseline (paired bootstrap 95% interval)",
                _frame_table(deltas)
                + f'<p class="verdict"><b>Verdict:</b> {html.escape(verdict_line(deltas))}</p>',
            )
        )
    if calibration:
        parts.append(_section("Calibration", _mapping_table(calibration)))
    if lift is not None and not lift.empty:
        parts.append(_section("Lift by decile", _frame_table(lift, index=False)))
    if figures:
        parts.append(_section("Plots", "".join(_figure(c, f) for c, f in figures.items())))
    if reasons is not None and not reasons.empty:
        parts.append(_section("Most common first reasons", _frame_table(reasons)))
    if segments is not None and not segments.empty:
        parts.append(_section("Segments", _frame_table(segments)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_model_report(path: str | os.PathLike, **kwargs) -> Path:
    """Render :func:`render_model_report` (same keyword arguments) and write it to ``path``.

    The file is written to a temporary sibling and renamed, so a reader never
    sees half a report. Returns the path.
    """
    target = Path(path)
    text = render_model_report(**kwargs)
    publish_text(target, text)
    return target
