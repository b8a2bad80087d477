"""Training tables: observed cutoffs only, each target's population, one row per (cutoff, customer)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from features.build import build_feature_table
from features.feature_sets import CHURN_FEATURES_V1
from features.labels import LabelConfig, build_labels, customer_status
from features.training_table import (
    POPULATIONS,
    TARGETS,
    build_scoring_frame,
    build_training_table,
    monthly_cutoffs,
    unobserved_cutoffs,
)
from tests.features.test_labels import CONFIG, CUTOFF, HAND_ROWS, shop
from winback.commands.features import app, parse_cutoffs


def _span(first: str, last: str):
    return shop(
        [
            ("a", "1", f"{first} 08:00", 10.0, 4.0, False),
            ("b", "2", f"{last} 23:00", 10.0, 4.0, False),
        ]
    )


def test_monthly_cutoffs_end_at_the_last_observed_horizon_and_step_back():
    tables = _span("2024-01-01", "2024-06-30")
    # Last cutoff 2024-06-30 - 30 days = 05-31, then every 30 days back to 01-02.
    expected = ["2024-01-02", "2024-02-01", "2024-03-02", "2024-04-01", "2024-05-01", "2024-05-31"]
    assert [str(d) for d in monthly_cutoffs(tables, 30)] == expected
    assert [str(d) for d in monthly_cutoffs(tables, 30, count=2)] == expected[-2:]
    assert [str(d) for d in monthly_cutoffs(tables, 30, first="2024-03-02")] == expected[2:]
    assert [str(d) for d in monthly_cutoffs(tables, 30, first="2024-03-03")] == expected[3:]
    assert [str(d) for d in monthly_cutoffs(tables, 90, every_days=60)] == [
        "2024-02-01",
        "2024-04-01",
    ]
    assert unobserved_cutoffs(tables, ["2024-05-31", "2024-06-01"], 30) == [dt.date(2024, 6, 1)]


def test_monthly_cutoffs_errors():
    tables = _span("2024-01-01", "2024-01-20")
    with pytest.raises(ValueError, match="30-day horizon"):
        monthly_cutoffs(tables, 30)
    with pytest.raises(ValueError, match="count"):
        monthly_cutoffs(tables, 5, count=0)


def test_hand_table_populations_and_labels():
    tables = shop(HAND_ROWS)  # last data date 2024-05-01 >= 2024-03-31 + 30 days
    day = pd.Timestamp(CUTOFF)
    churn = build_training_table(tables, "churn", [CUTOFF], label_config=CONFIG)
    assert churn.index.get_level_values("cutoff").unique().tolist() == [day]
    assert churn.loc[day, "churned"].to_dict() == {
        "A": True, "B": False, "C": False, "D": True, "E": True, "G": False,
    }  # fmt: skip
    assert churn["churned"].dtype == bool
    assert churn.columns[-3:].tolist() == ["churned", "future_margin", "future_revenue"]
    assert churn.loc[(day, "A"), "future_revenue"] == -5.0
    reactivation = build_training_table(tables, "reactivation", [CUTOFF], label_config=CONFIG)
    assert reactivation.loc[day, "reactivated"].to_dict() == {"H": True, "I": False, "J": False}
    vip = build_training_table(tables, "vip", [CUTOFF], label_config=CONFIG)
    assert vip.loc[day, "became_vip"].to_dict() == {
        "B": True, "C": False, "D": False, "E": False, "G": False,
    }  # fmt: skip
    assert vip.attrs["target"] == "vip" and vip.attrs["horizon_days"] == 30
    assert vip.attrs["population"] == POPULATIONS["vip"]


def test_unobserved_cutoffs_and_unknown_targets_are_refused():
    tables = shop(HAND_ROWS)
    with pytest.raises(ValueError, match=r"\['2024-04-15'\].*2024-05-01"):
        build_training_table(tables, "churn", [CUTOFF, "2024-04-15"], label_config=CONFIG)
    with pytest.raises(ValueError, match="'retention'.*churn"):
        build_training_table(tables, "retention", [CUTOFF], label_config=CONFIG)


@pytest.fixture(scope="module")
def shop_cutoffs(small_shop):
    return monthly_cutoffs(small_shop.tables, 90, every_days=60, count=3)


@pytest.fixture(scope="module")
def shop_labels(small_shop, shop_cutoffs):
    return build_labels(small_shop.tables, shop_cutoffs, LabelConfig())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_simulated_shop_table_is_features_joined_with_the_population(
    small_shop, shop_cutoffs, shop_labels, target
):
    tables = small_shop.tables
    table = build_training_table(tables, target, shop_cutoffs)
    label = TARGETS[target]
    assert table.index.is_unique
    assert table.index.names == ["cutoff", "customer_id"]
    assert [d.date() for d in table.index.get_level_values("cutoff").unique()] == shop_cutoffs
    # Exactly the population of the label, with its values.
    in_population = shop_labels[label].notna()
    assert table.index.equals(shop_labels.index[in_population])
    assert table[label].tolist() == shop_labels.loc[in_population, label].astype(bool).tolist()
    if target == "churn":
        assert shop_labels.loc[table.index, "is_active"].all()
    elif target == "vip":
        chosen = shop_labels.loc[table.index]
        assert (chosen["is_active"] & ~chosen["is_vip"]).all()
    else:
        assert shop_labels.loc[table.index, "is_lapsed"].all()
    # Both classes occur, so the table can train a model.
    assert 0 < table[label].mean() < 1
    # Feature columns are exactly the feature table's rows for these customers.
    features = build_feature_table(tables, shop_cutoffs)
    pd.testing.assert_frame_equal(
        table[features.columns], features.loc[table.index], check_freq=False
    )
    assert table.columns.tolist() == [*features.columns, label, "future_margin", "future_revenue"]


def test_scoring_frame_has_everyone_known_with_their_status(small_shop, shop_cutoffs):
    tables = small_shop.tables
    as_of = shop_cutoffs[-1]
    frame = build_scoring_frame(tables, as_of)
    status = customer_status(tables, [as_of]).droplevel("cutoff")
    assert frame.index.equals(status.index)
    pd.testing.assert_frame_equal(frame[status.columns], status)
    assert (frame["is_active"] ^ frame["is_lapsed"]).all()  # default windows partition
    assert set(frame["tier"].dropna()) <= {"platinum", "gold", "silver", "bronze", "standard"}
    assert frame.loc[frame["is_vip"], "tier"].isin(["platinum", "gold"]).all()
    assert frame.attrs["as_of"] == str(as_of)


# --- the `winback features` commands -------------------------------------------------------


def test_parse_cutoffs():
    assert parse_cutoffs("every:30") == {"every_days": 30}
    assert parse_cutoffs("every:60, count:12") == {"every_days": 60, "count": 12}
    assert parse_cutoffs("2024-02-29,2024-01-31") == {
        "dates": [dt.date(2024, 1, 31), dt.date(2024, 2, 29)]
    }
    for bad in ("", "weekly:4", "count:0", "2024-13-01"):
        with pytest.raises(typer.BadParameter):
            parse_cutoffs(bad)


def test_cli_build_writes_features_as_of_the_last_data_date(small_shop, small_shop_dir, tmp_path):
    out = tmp_path / "nested" / "features.parquet"
    result = CliRunner().invoke(app, ["build", "--data", str(small_shop_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    last = small_shop.tables.transactions["ordered_at"].max().tz_convert("UTC").date()
    assert frame["cutoff"].unique().tolist() == [pd.Timestamp(last)]
    assert frame["customer_id"].is_unique
    assert {"is_active", "is_lapsed", "is_vip", "tier", "trailing_margin"} <= set(frame.columns)
    assert f"{len(frame):,}" in result.output
    assert not list(out.parent.glob(".*.tmp"))  # the temp file was renamed away


def test_cli_table_writes_one_row_per_cutoff_and_customer(small_shop, small_shop_dir, tmp_path):
    out = tmp_path / "churn.parquet"
    args = ["table", "--data", str(small_shop_dir), "--out", str(out), "--target", "churn"]
    result = CliRunner().invoke(
        app, [*args, "--cutoffs", "every:60,count:2", "--feature-set", "churn_features_v1"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    features = frame.columns[2:-3].tolist()
    assert features == CHURN_FEATURES_V1.subset(features).names
    assert set(features) <= set(CHURN_FEATURES_V1.names)
    expected = monthly_cutoffs(small_shop.tables, 90, every_days=60, count=2)
    assert frame["cutoff"].drop_duplicates().dt.date.tolist() == expected
    assert not frame.duplicated(["cutoff", "customer_id"]).any()
    assert frame.columns[-3:].tolist() == ["churned", "future_margin", "future_revenue"]
    assert "churned rate" in result.output

    too_late = str(expected[-1] + dt.timedelta(days=1))
    late = CliRunner().invoke(app, [*args, "--cutoffs", too_late])
    assert late.exit_code == 1
    assert too_late in late.output and "horizon" in late.output
    unknown = CliRunner().invoke(app, [*args, "--feature-set", "nope_v9"])
    assert unknown.exit_code != 0 and "churn_features_v1" in unknown.output


def test_scoring_frame_joins_the_status_when_the_features_list_other_customers(
    small_shop, shop_cutoffs
):
    """The status goes on by position only when both list the same customers, else by key."""
    from features.engines.duckdb_engine import connect
    from features.scoring_frame import _with_status

    tables = small_shop.tables
    as_of = shop_cutoffs[-1]
    con = connect(tables)
    features = build_feature_table(tables, [as_of], con=con).iloc[1::2]  # every other customer
    frame = _with_status(features, tables, as_of, LabelConfig(), con, None)
    status = customer_status(tables, [as_of], con=con).droplevel("cutoff")
    assert frame.index.equals(features.index.droplevel("cutoff"))
    pd.testing.assert_frame_equal(frame[status.columns], status.loc[frame.index])
    assert frame.attrs["as_of"] == str(as_of)
