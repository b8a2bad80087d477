"""winback.toml: documented defaults, effective config, errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.config_file import ConfigError
from winback.cli import app
from winback.config import (
    WinbackConfig,
    config_as_toml,
    config_from_dict,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_shipped_file_documents_the_defaults():
    """The documented winback.toml holds exactly the defaults, so it cannot drift."""
    assert load_config(ROOT / "winback.toml") == WinbackConfig()


def test_show_round_trips():
    config = config_from_dict({"train": {"horizon_days": 60}, "simulation": {"customers": 500}})
    again = config_from_dict(tomllib.loads(config_as_toml(config)))
    assert again == config
    assert again.train.horizon_days == 60
    assert again.simulation.customers == 500


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"train": {"horizon_days": -5}}, "train.horizon_days"),
        ({"train": {"horizn_days": 5}}, "train.horizn_days: unknown key"),
        ({"train": {"calibration": "magic"}}, "train.calibration"),
        ({"serving": {"port": 70000}}, "serving.port"),
        ({"simulation": {"customers": "many"}}, "simulation.customers"),
        ({"demo": {"targets": ["churn", "loyalty"]}}, "demo.targets"),
        ({"trian": {}}, "trian: unknown key"),
    ],
)
def test_invalid_values_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, source="x.toml")
    assert key in str(err.value)
    assert "x.toml" in str(err.value)


def test_config_show_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "winback.toml").write_text("[train]\nhorizon_days = 45\n")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)
    assert shown["train"]["horizon_days"] == 45
    assert shown["simulation"]["customers"] == WinbackConfig().simulation.customers


def test_config_show_rejects_bad_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "winback.toml").write_text("[train]\nhorizon_days = 'soon'\n")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "train.horizon_days" in result.output


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_lists_section_defaults_are_the_action_defaults():
    from serving.lists.actions import DEFAULT_RULES, ActionConfig
    from serving.lists.settings import ListConfig
    from winback.config import list_config

    assert WinbackConfig().lists.actions() == ActionConfig(DEFAULT_RULES)
    assert list_config(WinbackConfig()) == ListConfig()


def test_lists_tiers_and_horizon_come_from_train():
    config = config_from_dict(
        {
            "train": {
                "horizon_days": 60,
                "label": {"tiers": {"bands": [["A", 0.1], ["B", 0.4]], "rest": "C",
                                    "vip_tiers": ["A"]}},
            },
            "lists": {"control_share": 0.3},
        }
    )  # fmt: skip
    from winback.config import list_config

    lists = list_config(config)
    assert lists.horizon_days == 60
    assert [name for name, _ in lists.tiers.bands] == ["A", "B"]
    assert lists.control_share == 0.3


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"name": "x", "action": "y", "conditions": [["tier", "~", 1]]}, "lists.rules.0.conditions.0.1"),
        ({"name": "x", "acton": "y", "conditions": [["tier", ">", 1]]}, "lists.rules.0.acton: unknown key"),
        ({"name": "x", "action": "y", "conditions": [["tier", "in", "gold"]]}, "needs a list"),
        ({"name": "default", "action": "y", "conditions": [["tier", ">", 1]]}, "reserved"),
    ],
)  # fmt: skip
def test_broken_list_rules_name_the_key(rule, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"lists": {"rules": [rule]}}, source="x.toml")
    assert key in str(err.value)


def test_config_show_prints_the_lists_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "winback.toml").write_text(
        '[lists]\ncontact_cost = 1.5\n[[lists.rules]]\nname = "vip"\naction = "call"\n'
        'conditions = [["tier", "in", ["gold"]]]\n'
    )
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)["lists"]
    assert shown["contact_cost"] == 1.5
    assert shown["rules"] == [
        {"name": "vip", "action": "call", "conditions": [["tier", "in", ["gold"]]],
         "description": ""}
    ]  # fmt: skip
    assert shown["control_share"] == 0.1
