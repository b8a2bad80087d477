"""``winback lists`` reads its rules, control share and contact cost from ``[lists]``."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from serving.lists.store import read_manifest
from serving.scoring import store
from tests.serving.lists.test_lists import _large_scores
from winback.cli import app

runner = CliRunner()

CUSTOM = textwrap.dedent(
    """
    [lists]
    control_share = 0.25
    contact_cost = 2.5
    default_action = "newsletter"

    [[lists.rules]]
    name = "long_tenure"
    action = "win_back_call"
    description = "A customer of more than 300 days gets a call."
    conditions = [["tenure_days", ">=", 300]]
    """
)


def _score_table(folder, n: int = 200) -> None:
    """A stand-in score table of ``n`` lapsed customers, every other one with a long tenure."""
    scores, features = _large_scores(n, seed=7)
    scores["customer_id"] = [f"C{i:04d}" for i in range(n)]
    features.index = pd.Index(scores["customer_id"], name="customer_id")
    features["tenure_days"] = np.where(np.arange(n) % 2 == 0, 400.0, 100.0)
    as_of = pd.Timestamp("2025-06-30").date()
    scores["as_of"] = as_of
    store.write_score_table(scores, features, folder, as_of)


def _run(tmp_path, *extra: str):
    args = ["--score-dir", str(tmp_path / "scores"), "--list-dir", str(tmp_path / "lists")]
    return runner.invoke(
        app, ["lists", "winback", *args, "--format", "json", "--no-mlflow", *extra]
    )


def test_custom_rule_and_defaults_from_the_config_file(tmp_path) -> None:
    _score_table(tmp_path / "scores")
    config = tmp_path / "winback.toml"
    config.write_text(CUSTOM)

    default = _run(tmp_path)
    assert default.exit_code == 0, default.output
    rows = json.loads(default.stdout)["rows"]
    assert "win_back_call" not in {r["action"] for r in rows}
    assert sum(r["group"] == "control" for r in rows) == 20  # the default 10%

    custom = _run(tmp_path, "--config", str(config))
    assert custom.exit_code == 0, custom.output
    body = json.loads(custom.stdout)
    by_id = {r["customer_id"]: r for r in body["rows"]}
    for customer_id, row in by_id.items():
        long_tenure = int(customer_id[1:]) % 2 == 0
        assert row["action"] == ("win_back_call" if long_tenure else "newsletter")
        assert row["action_rule"] == (
            "long_tenure: tenure_days >= 300.0" if long_tenure else "default"
        )
    assert sum(r["group"] == "control" for r in body["rows"]) == 50  # control_share 0.25
    manifest = read_manifest(tmp_path / "lists", body["list_id"])
    assert manifest.parameters["list"]["actions"]["rules"][0]["name"] == "long_tenure"
    assert manifest.parameters["targeting"]["contact_cost"] == 2.5

    # the contact cost comes from the file: a budget of 100 pays for 40 contacts
    budget = _run(tmp_path, "--config", str(config), "--budget", "100")
    assert budget.exit_code == 0, budget.output
    assert len(json.loads(budget.stdout)["rows"]) == 40
    # options still win over the file
    override = _run(tmp_path, "--config", str(config), "--control-share", "0.5")
    assert sum(r["group"] == "control" for r in json.loads(override.stdout)["rows"]) == 100


def test_a_broken_rule_names_its_key(tmp_path) -> None:
    _score_table(tmp_path / "scores")
    config = tmp_path / "winback.toml"
    config.write_text(CUSTOM.replace('">="', '"at least"'))
    result = _run(tmp_path, "--config", str(config))
    assert result.exit_code == 2
    assert "lists.rules.0.conditions.0.1" in result.output
    assert "'>='" in result.output  # says what is allowed
