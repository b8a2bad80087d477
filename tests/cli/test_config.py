"""winback.toml: documented defaults, effective config, errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winback.cli import app
from winback.config import (
    ConfigError,
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
