"""Retention lists: hand-computed rankings, tiers, actions, targeting, control groups, storage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.tiers import TierConfig
from serving.lists.build import build_list, candidates, explain_list, list_columns_needed
from serving.lists.settings import ListConfig
from serving.lists.store import (
    ListOptions,
    ListSource,
    check_list_id,
    create_list,
    list_ids,
    new_list_id,
    read_list,
    rebuild_list,
)
from serving.lists.targeting import TargetingConfig

TIERS = TierConfig(bands=(("gold", 0.2), ("silver", 0.5)), rest="bronze", vip_tiers=("gold",))
CONFIG = ListConfig(horizon_days=365, tiers=TIERS, near_vip_max_gap_share=0.5, control_share=0.0)
NAN = np.nan


def _scores() -> pd.DataFrame:
    ids = list("ABCDEFGHIJ")
    active = [True] * 6 + [False] * 4
    return pd.DataFrame(
        {
            "customer_id": ids,
            "churn_risk": [0.1, 0.5, 0.9, 0.2, 0.8, 0.5, NAN, NAN, NAN, NAN],
            "vip_potential": [NAN, NAN, 0.3, 0.6, 0.1, 0.2, NAN, NAN, NAN, NAN],
            "reactivation_probability": [NAN] * 6 + [0.5, 0.2, 0.4, 0.1],
            "expected_value": [1.0] * 10,
            "tier": ["x"] * 6 + [None] * 4,  # re-ranked by the list's TierConfig
            "is_active": active,
            "is_lapsed": [not a for a in active],
            "is_vip": [False] * 10,
            "trailing_margin": [1000.0, 500.0, 300.0, 200.0, 100.0, 50.0, 0, 0, 0, 0],
            "churn_reasons": [["no order for 90 days", "spend falling"]] + [None] * 9,
            "vip_reasons": [None] * 10,
            "reactivation_reasons": [None] * 10,
        }
    )


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "total_margin_amount": [NAN] * 6 + [100.0, 1000.0, 200.0, 50.0],
            "tenure_days": [NAN] * 6 + [365.0, 730.0, 100.0, 365.0],
            "discounted_order_share": [0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.9, 0.0, 0.0, 0.0],
            "full_price_spend_share": [1.0, 1.0, 0.5, 0.5, 0.2, 0.5, 0.1, 0.5, 0.5, 1.0],
            "margin_rate": [0.3, 0.3, 0.25, 0.5, 0.3, 0.3, NAN, NAN, NAN, NAN],
        },
        index=pd.Index(list("ABCDEFGHIJ"), name="customer_id"),
    )


UPLIFT = pd.Series({"G": 0.3, "H": 0.01, "I": 0.1, "J": 0.5})


def test_at_risk_is_ranked_by_value_at_risk() -> None:
    out = build_list("at-risk", _scores(), list_id="t", features=_features(), config=CONFIG)
    # churn x margin: A 100, B 250, C 270, D 40, E 80, F 25
    assert out["customer_id"].tolist() == ["C", "B", "A", "E", "D", "F"]
    assert out["value_at_risk"].tolist() == pytest.approx([270, 250, 100, 80, 40, 25])
    assert out["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert out.set_index("customer_id")["tier"].to_dict() == {
        "A": "gold", "B": "gold", "C": "silver", "D": "bronze", "E": "bronze", "F": "bronze"
    }  # fmt: skip
    row_a = out.set_index("customer_id").loc["A"]
    assert row_a["reasons"] == "no order for 90 days; spend falling"
    assert row_a["action"] == "personal_outreach"  # gold is a top tier of the default rules
    assert out.set_index("customer_id").loc["E", "action"] == "offer"


def test_winback_ranks_by_expected_value_or_by_uplift() -> None:
    plain = build_list("winback", _scores(), list_id="t", features=_features(), config=CONFIG)
    # value = own yearly margin (tenure >= 1 year): G 100, H 500, I 200, J 50
    # x reactivation probability: G 50, H 100, I 80, J 5
    assert plain["customer_id"].tolist() == ["H", "I", "G", "J"]
    assert plain["value_if_reactivated"].tolist() == pytest.approx([500, 200, 100, 50])
    lifted = build_list(
        "winback", _scores(), list_id="t", features=_features(), uplift=UPLIFT, config=CONFIG
    )
    # uplift x value: G 30, H 5, I 20, J 25 -> the contact matters most for G and J
    assert lifted["customer_id"].tolist() == ["G", "J", "I", "H"]
    assert lifted["expected_incremental_margin"].tolist() == pytest.approx([30, 25, 20, 5])
    actions = lifted.set_index("customer_id")["action"].to_dict()
    assert actions["G"] == "offer" and actions["J"] == "early_access"


def test_vip_potential_and_near_vip() -> None:
    vip = build_list("vip-potential", _scores(), list_id="t", features=_features(), config=CONFIG)
    assert vip["customer_id"].tolist() == ["D", "C", "F", "E"]  # A and B are VIP already
    near = build_list("near-vip", _scores(), list_id="t", features=_features(), config=CONFIG)
    # thresholds: gold 500, silver 300. C needs 200 of 500 (40%), D 100 of 300 (33%),
    # E 200 of 300 and F 250 of 300 are too far; closest first
    assert near["customer_id"].tolist() == ["D", "C"]
    assert near["next_tier"].tolist() == ["silver", "gold"]
    assert near["margin_to_next_tier"].tolist() == pytest.approx([100, 200])
    assert near["next_tier_threshold_margin"].tolist() == pytest.approx([300, 500])
    # spend at the customer's margin rate: D 100 / 0.5, C 200 / 0.25
    assert near["spend_to_next_tier"].tolist() == pytest.approx([200, 800])


def test_targeting_top_budget_and_profit_cut() -> None:
    def ids(targeting: TargetingConfig) -> list[str]:
        frame = build_list(
            "winback",
            _scores(),
            list_id="t",
            features=_features(),
            uplift=UPLIFT,
            config=CONFIG,
            targeting=targeting,
        )
        return frame["customer_id"].tolist()

    assert ids(TargetingConfig(top=2)) == ["G", "J"]
    assert ids(TargetingConfig(budget=30.0, contact_cost=10.0)) == ["G", "J", "I"]
    assert ids(TargetingConfig(contact_cost=22.0, profit_optimal=True)) == ["G", "J"]


def _large_scores(n: int = 2_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n)]
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "churn_risk": NAN,
            "vip_potential": NAN,
            "reactivation_probability": rng.random(n),
            "expected_value": 1.0,
            "tier": None,
            "is_active": False,
            "is_lapsed": True,
            "is_vip": False,
            "trailing_margin": 0.0,
        }
    )
    features = pd.DataFrame(
        {"total_margin_amount": rng.gamma(2.0, 100.0, n), "tenure_days": 400.0},
        index=pd.Index(ids, name="customer_id"),
    )
    return scores, features


def test_control_group_share_and_strata_in_a_list() -> None:
    scores, features = _large_scores()
    out = build_list("winback", scores, list_id="winback-x", features=features)
    assert len(out) == 2_000
    assert int((out["group"] == "control").sum()) == 200
    decile = (out["rank"].to_numpy() - 1) * 10 // len(out)  # the list is ranked by its value
    per_decile = (out["group"] == "control").groupby(decile).sum()
    assert per_decile.tolist() == [20] * 10


def test_saved_list_is_reproducible_from_its_id(tmp_path) -> None:
    scores, features = _large_scores(500, seed=3)
    source = ListSource(scores, "2025-06-30", features=features, model_versions={"reactivation": 4})
    frame, manifest = create_list(
        "winback", source, tmp_path, ListOptions(targeting=TargetingConfig(top=300))
    )
    check_list_id(manifest.list_id)
    assert list_ids(tmp_path) == [manifest.list_id]
    saved, again = read_list(tmp_path, manifest.list_id)
    assert again == manifest
    pd.testing.assert_frame_equal(saved, frame)
    csv = pd.read_csv(tmp_path / manifest.list_id / "list.csv")
    assert csv["customer_id"].tolist() == frame["customer_id"].tolist()
    written = json.loads((tmp_path / manifest.list_id / "manifest.json").read_text())
    assert written["model_versions"] == {"reactivation": "4"}
    assert written["parameters"]["targeting"]["top"] == 300
    assert (written["rows"], written["control_rows"]) == (300, 30)
    assert not [p for p in (tmp_path / manifest.list_id).iterdir() if p.name.startswith(".")]
    rebuilt = rebuild_list(manifest, scores, features=features)
    pd.testing.assert_frame_equal(rebuilt, frame)
    other = build_list(
        "winback",
        scores,
        list_id=new_list_id("winback"),
        features=features,
        targeting=TargetingConfig(top=300),
    )
    assert other["customer_id"].tolist() == frame["customer_id"].tolist()
    assert (other["group"] != frame["group"]).any()  # another id draws another control group


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown list kind"):
        candidates("everyone", _scores())
    with pytest.raises(ValueError, match="lacks the columns"):
        build_list("at-risk", _scores().drop(columns=["churn_risk"]), list_id="t")
    with pytest.raises(ValueError, match="not a list id"):
        check_list_id("../../etc")
    with pytest.raises(ValueError, match="control_share"):
        ListConfig(control_share=1.0)


def test_list_config_round_trip() -> None:
    config = ListConfig(tiers=TIERS, control_share=0.2)
    assert ListConfig.from_dict(config.to_dict()) == config


def test_cli_builds_saves_and_measures_a_list(small_shop, small_shop_dir, tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from serving.scoring import store
    from winback.commands.lists import app, measure

    # a stand-in score table over the simulated shop's customers (no trained models needed)
    ids = small_shop.tables.transactions["customer_id"].drop_duplicates().astype(str).tolist()
    scores, features = _large_scores(len(ids), seed=5)
    scores["customer_id"] = ids
    features.index = pd.Index(ids, name="customer_id")
    as_of = pd.Timestamp("2025-06-30").date()
    scores["as_of"] = as_of
    store.write_score_table(scores, features, tmp_path / "scores", as_of)

    runner = CliRunner()
    args = ["--score-dir", str(tmp_path / "scores"), "--list-dir", str(tmp_path / "lists")]
    result = runner.invoke(
        app, ["winback", *args, "--top", "400", "--format", "json", "--no-mlflow"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert len(body["rows"]) == 400
    assert sum(r["group"] == "control" for r in body["rows"]) == 40
    assert list_ids(tmp_path / "lists") == [body["list_id"]]

    bad = runner.invoke(app, ["at-risk", *args, "--budget", "100", "--no-mlflow"])
    assert bad.exit_code != 0 and "contact-cost" in bad.output

    cli = typer.Typer()
    cli.command()(measure)
    measured = runner.invoke(
        cli,
        [body["list_id"], "--as-of", "2025-08-31", "--data", str(small_shop_dir),
         "--list-dir", str(tmp_path / "lists"), "--format", "json"],
    )  # fmt: skip
    assert measured.exit_code == 0, measured.output
    report = json.loads(measured.stdout)
    metrics = {m["metric"]: m for m in report["metrics"]}
    assert set(metrics) == {"reactivation_rate", "revenue_per_customer", "margin_per_customer"}
    assert metrics["reactivation_rate"]["n_control"] == 40
    folder = tmp_path / "lists" / body["list_id"]
    assert (folder / "measurement_2025-08-31.png").is_file()


def test_explain_list_explains_only_the_best_ranked_rows_without_reasons() -> None:
    frame = build_list("at-risk", _scores(), list_id="t", features=_features(), config=CONFIG)
    asked: list[list[str]] = []

    def explain(ids: pd.Index) -> list[list[str]]:
        asked.append([str(c) for c in ids])
        return [[f"why {c}", "and more"] for c in ids]

    out = explain_list(frame, explain, limit=4).set_index("customer_id")
    assert asked == [["C", "B", "E"]]  # ranks 1-4 (C, B, A, E) less A, whose reasons are stored
    assert out.loc["C", "reasons"] == "why C; and more"
    assert out.loc["A", "reasons"] == "no order for 90 days; spend falling"
    assert out.loc[["D", "F"], "reasons"].tolist() == ["", ""]  # beyond the limit
    assert frame.set_index("customer_id").loc["C", "reasons"] == ""  # the input is not changed


@pytest.mark.parametrize("kind", ["at-risk", "vip-potential", "near-vip", "winback"])
def test_a_list_reads_only_the_columns_it_needs(kind) -> None:
    scores, features = _scores(), _features()
    features["unused_feature"] = 1.0
    score_columns, feature_columns = list_columns_needed(kind, CONFIG)
    kept = (
        features
        if feature_columns is None
        else features[[c for c in feature_columns if c in features.columns]]
    )
    assert feature_columns is None or "unused_feature" not in kept.columns
    full = build_list(kind, scores, list_id="t", features=features, config=CONFIG, uplift=UPLIFT)
    narrow = build_list(kind, scores[[c for c in score_columns if c in scores]], list_id="t",
                        features=kept, config=CONFIG, uplift=UPLIFT)  # fmt: skip
    pd.testing.assert_frame_equal(narrow, full)
