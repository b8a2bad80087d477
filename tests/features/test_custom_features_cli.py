"""``winback features check``: validation and the leakage check on a shop's own data."""

from __future__ import annotations

from typer.testing import CliRunner

from winback.cli import app

GOOD = """
[[features.custom]]
name = "big_spend_90d"
expression = "sum(amount) filter (where amount > 40)"
window_days = 90
description = "Spend on lines above 40 in the last 90 days"
fill = 0
"""


def test_check_builds_the_features_and_finds_no_leak(small_shop_dir, tmp_path):
    config = tmp_path / "winback.toml"
    config.write_text(GOOD)
    result = CliRunner().invoke(
        app,
        ["features", "check", "--data", str(small_shop_dir), "--config", str(config)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "1 user-defined feature(s) valid" in out
    assert out.count("big_spend_90d") == 3  # one row per cutoff
    assert "LEAKS" not in out and "no feature moved" in out


def test_check_refuses_a_bad_entry_naming_its_key(small_shop_dir, tmp_path):
    config = tmp_path / "winback.toml"
    config.write_text(GOOD.replace("sum(amount) filter (where amount > 40)", "sum(amount) over ()"))
    result = CliRunner().invoke(
        app, ["features", "check", "--data", str(small_shop_dir), "--config", str(config)]
    )
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "features.custom.0: expression" in out and "window function (OVER)" in out


def test_features_build_adds_the_configured_features(small_shop_dir, tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    (tmp_path / "winback.toml").write_text(GOOD)
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(
        app, ["features", "build", "--data", str(small_shop_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert {"big_spend_90d", "distinct_product_count_90d", "order_count"} <= set(frame.columns)
    assert frame["big_spend_90d"].notna().all() and frame["big_spend_90d"].gt(0).any()
