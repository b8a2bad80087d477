"""`winback demo` end to end on a tiny simulated shop: every step leaves its output."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

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
    # a real process, so third-party handlers that write to the real stderr are seen too
    run = subprocess.run(
        [sys.executable, "-m", "winback.cli", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    output = run.stdout + run.stderr
    lines = output.splitlines()
    assert not [line for line in lines if "warning" in line.lower()], output
    summary = next(i for i, line in enumerate(lines) if "Models: mean over" in line)
    assert summary < 40, output
    assert (tmp_path / "winback_output" / "logs" / "demo.log").is_file()

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
        assert f"{target}" in output
    assert "champion" in output
    # the value model is trained, gated and used: the summary shows its Gini next to the baselines
    assert "value: normalized Gini" in output, output
    if "winback-value v1 champion" in output:
        assert table["predicted_value"].notna().any()
        at_risk = [json.loads(m.read_text()) for m in manifests]
        assert any(m["parameters"]["value"].startswith("predicted_value") for m in at_risk)
