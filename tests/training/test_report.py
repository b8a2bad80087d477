"""The HTML model report: self-contained, escaped, complete."""

from __future__ import annotations

import base64
import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from training.evaluation.metrics import classification_metrics, lift_table
from training.evaluation.plots import plot_reliability
from training.evaluation.report import ModelReport, render_model_report, write_model_report

RNG = np.random.default_rng(3)
P = RNG.uniform(0.05, 0.95, 200)
Y = (RNG.uniform(size=200) < P).astype(int)
WHEN = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC)


def _kwargs():
    metrics = classification_metrics(Y, P)
    comparison = pd.DataFrame(
        {"roc_auc": [metrics["roc_auc"], 0.61], "log_loss": [metrics["log_loss"], np.nan]},
        index=pd.Index(["model", "recency"], name="model"),
    )
    return dict(
        target="churn",
        metrics=metrics,
        comparison=comparison,
        figures={"Reliability": plot_reliability(Y, P), "Raw bytes": b"\x89PNG\r\n\x1a\nxyz"},
        data_summary={"source": "simulated", "test cutoff": "2025-06-30", "rows": 200},
        label_summary={"label": "churned", "horizon_days": 90},
        calibration={"method": "isotonic", "ece before": 0.08, "ece after": 0.01},
        lift=lift_table(Y, P),
        reasons=pd.DataFrame({"customers": [12]}, index=["<script>alert(1)</script>"]),
        segments=pd.DataFrame({"roc_auc": [0.7]}, index=["gold"]),
        notes=["champion moved: roc_auc 0.80 > 0.78"],
        generated_at=WHEN,
    )


def test_report_has_every_section_and_values():
    page = render_model_report(ModelReport(**_kwargs()))
    for heading in (
        "Data",
        "Labels",
        "Test metrics",
        "Model vs baselines (mean over the same test origins)",
        "Calibration",
        "Lift by decile",
        "Plots",
        "Most common first reasons",
        "Segments",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert "2025-01-02 03:04 UTC" in page
    assert "champion moved: roc_auc 0.80 &gt; 0.78" in page
    assert f"{classification_metrics(Y, P)['roc_auc']:,.4g}" in page
    assert page.count("<figure>") == 2


def test_report_is_self_contained_and_images_decode():
    page = render_model_report(ModelReport(**_kwargs()))
    assert not re.search(r'(src|href)="(https?:)?//', page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)


def test_report_escapes_user_text():
    page = render_model_report(ModelReport(**_kwargs()))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_minimal_report_and_missing_values():
    page = render_model_report(ModelReport(target="vip", metrics={"roc_auc": float("nan"), "n": 3}))
    assert "<h2>Test metrics</h2>" in page and "<h2>Plots</h2>" not in page
    assert "—" in page


def test_write_model_report(tmp_path):
    path = write_model_report(tmp_path / "reports" / "churn.html", ModelReport(**_kwargs()))
    assert path.read_text(encoding="utf-8") == render_model_report(ModelReport(**_kwargs()))
    assert [p.name for p in path.parent.iterdir()] == ["churn.html"]  # no temp file left


def test_write_fails_cleanly_on_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        write_model_report(tmp_path / "r.html", ModelReport(target="churn"))  # metrics is required
    assert list(tmp_path.iterdir()) == []


def test_report_ends_the_comparison_with_the_intervals_and_the_verdict():
    deltas = pd.DataFrame(
        {"delta": [0.02, -0.009], "ci_low": [0.01, -0.02], "ci_high": [0.03, 0.003]},
        index=pd.Index(["rfm", "logistic"], name="baseline"),
    )
    page = render_model_report(ModelReport(**_kwargs(), deltas=deltas))
    assert "<h2>ROC-AUC model − baseline (paired bootstrap 95% interval)</h2>" in page
    assert "does not beat logistic (Δ -0.009 [-0.020, +0.003])" in page
    assert "rfm (Δ" not in page  # a baseline beaten with its interval above zero is not listed
