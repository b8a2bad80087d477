"""`winback demo` end to end on a tiny simulated shop: every step leaves its output."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from winback.cli import app

pytestmark = pytest.mark.slow

TINY = """
[simulation]
customers = 700
seed = 3

[train]
cutoff_count = 9

[train.lightgbm]
n_estimators = 60

[demo]
tune_trials = 0
"""


def test_demo_runs_the_whole_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "winback.toml").write_text(TINY)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output

    out = tmp_path / "winback_output"
    report = json.loads((out / "validation" / "validation_report.json").read_text())
    assert report  # every table accounted for
    scores = list((out / "scores").glob("v-*/scores.parquet"))
    assert len(scores) == 1
    table = pd.read_parquet(scores[0])
    assert table["customer_id"].is_unique
    assert {"churn_risk", "vip_potential", "reactivation_probability", "tier"} <= set(table.columns)

    manifests = sorted((out / "lists").glob("*/manifest.json"))
    kinds = {json.loads(m.read_text())["kind"] for m in manifests}
    assert kinds == {"at-risk", "winback", "vip-potential"}
    for manifest in manifests:
        saved = json.loads(manifest.read_text())
        if saved["rows"] >= 10:
            assert saved["control_rows"] > 0, saved["kind"]

    assert (tmp_path / "mlruns" / "mlflow.db").exists()
    for target in ("churn", "vip", "reactivation"):
        assert f"{target}" in result.output
    assert "champion" in result.output
