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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ModelReport:
    """What one model report shows; every part but the target and metrics is optional.

    ``comparison`` has the model, baselines and oracle as rows and metrics as
    columns; ``figures`` maps a caption to a matplotlib Figure/Axes or PNG
    bytes (embedded as base64); ``data_summary``, ``label_summary`` and
    ``calibration`` are small key -> value tables (source, fingerprint,
    cutoffs; label definition and base rates; calibration method with Brier /
    log loss / ECE before and after); ``lift``, ``reasons`` and ``segments``
    are ``training.evaluation.metrics.lift_table``,
    ``training.model.reasons.reason_frequencies`` and a per-segment metrics
    table; ``notes`` are sentences shown at the top (e.g. the gate decision);
    ``deltas`` is ROC-AUC model − baseline per baseline with its paired
    bootstrap interval (``delta``, ``ci_low``, ``ci_high``), which ends the
    comparison with the verdict; ``generated_at`` is now (UTC) by default.
    """

    target: str
    metrics: Mapping[str, float]
    comparison: pd.DataFrame | None = None
    figures: Mapping[str, Figure | Axes | bytes] | None = None
    data_summary: Mapping[str, object] | None = None
    label_summary: Mapping[str, object] | None = None
    calibration: Mapping[str, object] | None = None
    lift: pd.DataFrame | None = None
    reasons: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None
    notes: Sequence[str] = ()
    deltas: pd.DataFrame | None = None
    title: str | None = None
    generated_at: dt.datetime | None = None


def _has_rows(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty


def _header(report: ModelReport) -> list[str]:
    when = report.generated_at or dt.datetime.now(dt.UTC)
    title = report.title or f"winback {report.target} model report"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="subtitle">target <b>{html.escape(report.target)}</b> · generated '
        f"{html.escape(when.strftime('%Y-%m-%d %H:%M UTC'))}</p>",
    ]
    if report.notes:
        items = "".join(f"<li>{html.escape(str(n))}</li>" for n in report.notes)
        parts.append(f'<ul class="note">{items}</ul>')
    return parts


def _comparison_sections(report: ModelReport) -> list[str]:
    parts = []
    if _has_rows(report.comparison):
        parts.append(
            _section(
                "Model vs baselines (mean over the same test origins)",
                _frame_table(report.comparison)
                + '<p class="note">Rule baselines rank customers but do not give probabilities: '
                "their log loss, Brier score and ECE are not defined (—).</p>",
            )
        )
    if _has_rows(report.deltas):
        from training.evaluation.compare import verdict_line

        verdict = html.escape(verdict_line(report.deltas))
        parts.append(
            _section(
                "ROC-AUC model − baseline (paired bootstrap 95% interval)",
                _frame_table(report.deltas) + f'<p class="verdict"><b>Verdict:</b> {verdict}</p>',
            )
        )
    return parts


def render_model_report(report: ModelReport) -> str:
    """The model report as one self-contained HTML string."""
    parts = _header(report)
    if report.data_summary:
        parts.append(_section("Data", _mapping_table(report.data_summary)))
    if report.label_summary:
        parts.append(_section("Labels", _mapping_table(report.label_summary)))
    parts.append(_section("Test metrics", _mapping_table(report.metrics)))
    parts.extend(_comparison_sections(report))
    if report.calibration:
        parts.append(_section("Calibration", _mapping_table(report.calibration)))
    if _has_rows(report.lift):
        parts.append(_section("Lift by decile", _frame_table(report.lift, index=False)))
    if report.figures:
        figures = "".join(_figure(c, f) for c, f in report.figures.items())
        parts.append(_section("Plots", figures))
    if _has_rows(report.reasons):
        parts.append(_section("Most common first reasons", _frame_table(report.reasons)))
    if _has_rows(report.segments):
        parts.append(_section("Segments", _frame_table(report.segments)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_model_report(path: str | os.PathLike, report: ModelReport) -> Path:
    """Render :func:`render_model_report` and write it to ``path``.

    The file is written to a temporary sibling and renamed, so a reader never
    sees half a report. Returns the path.
    """
    target = Path(path)
    publish_text(target, render_model_report(report))
    return target
