"""Lists and score tables with a value champion: predicted value replaces the trailing rule."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from serving.lists.build import build_list
from serving.lists.store import ListSource, create_list
from serving.scoring.models import ServedModels
from serving.scoring.table import score_table
from serving.scoring.value import SUMMARY_COLUMNS, ServedValueModel
from tests.serving.lists.test_lists import CONFIG, _features, _scores


def _with_predicted_value() -> pd.DataFrame:
    scores = _scores()
    # A's trailing margin is the highest but the model expects little; F the opposite
    scores["predicted_value"] = [50.0, 400.0, 200.0, 300.0, 100.0, 2000.0, 10.0, 10.0, 10.0, 10.0]
    scores["value_horizon_days"] = pd.array([365] * 10, dtype="Int64")
    return scores


def test_at_risk_ranks_by_predicted_value_when_the_champion_scored():
    out = build_list("at-risk", _with_predicted_value(), list_id="t", config=CONFIG)
    # churn x predicted value: A 5, B 200, C 180, D 60, E 80, F 1000 (the old rule: C B A E D F)
    assert out["customer_id"].tolist() == ["F", "B", "C", "E", "D", "A"]
    assert out["value_at_risk"].tolist() == pytest.approx([1000, 200, 180, 80, 60, 5])
    # a customer the champion did not score keeps the trailing rule
    partial = _with_predicted_value()
    partial.loc[0, "predicted_value"] = np.nan
    row = build_list("at-risk", partial, list_id="t", config=CONFIG).set_index("customer_id")
    assert row.loc["A", "value_at_risk"] == pytest.approx(0.1 * 1000)


def test_manifest_says_what_the_values_rest_on(tmp_path):
    source = ListSource(_with_predicted_value(), "2025-06-30", features=_features())
    _, manifest = create_list("at-risk", source, tmp_path)
    written = json.loads((tmp_path / manifest.list_id / "manifest.json").read_text())
    assert (
        written["parameters"]["value"] == "predicted_value of the value champion (365-day horizon)"
    )
    _, manifest = create_list("at-risk", ListSource(_scores(), "2025-06-30"), tmp_path)
    assert manifest.parameters["value"].startswith(
        "trailing 12-month margin rule: no value champion"
    )


class _StubValueModel:
    """Value = 10 x purchase days, over a 365-day horizon (enough to check the wiring)."""

    horizon_days = 365

    def predict(self, features, summary):
        return 10.0 * (summary["frequency"].to_numpy() + 1)


def test_score_table_carries_predicted_value_and_scales_expected_value():
    index = pd.Index(["a", "b", "c"], name="customer_id")
    frame = pd.DataFrame(
        {"is_active": [True, True, False], "is_lapsed": [False, False, True],
         "is_vip": [False] * 3, "tier": ["gold", None, None], "trailing_margin": [100.0, 0.0, 0.0],
         "frequency": [3.0, 0.0, 1.0], "recency": [30.0, 0.0, 5.0], "T": [60.0, 9.0, 400.0],
         "monetary_value": [20.0, 5.0, 8.0]},
        index=index,
    )  # fmt: skip
    assert set(SUMMARY_COLUMNS) <= set(frame.columns)
    value = ServedValueModel(_StubValueModel(), "winback-value", "1")
    table = score_table(frame, ServedModels({}, value=value), as_of=dt.date(2025, 6, 30),
                        horizon_days=73, explain_top=0).set_index("customer_id")  # fmt: skip
    assert table["predicted_value"].tolist() == [40.0, 10.0, 20.0]
    assert table["value_horizon_days"].tolist() == [365] * 3
    assert table["expected_value"].tolist() == pytest.approx([8.0, 2.0, 4.0])  # 73 / 365
    without = score_table(frame, ServedModels({}), as_of=dt.date(2025, 6, 30), explain_top=0)
    assert without["predicted_value"].isna().all() and without["value_horizon_days"].isna().all()


def test_tiers_on_predicted_value_name_tomorrows_vips():
    from dataclasses import replace

    from features.tiers import TierConfig

    predicted = replace(CONFIG, tiers=replace(CONFIG.tiers, basis="predicted"))
    out = build_list("at-risk", _with_predicted_value(), list_id="t", config=predicted)
    tiers = out.set_index("customer_id")["tier"]
    assert tiers["F"] == "gold" and tiers["A"] != "gold"  # by trailing margin A is gold
    trailing = build_list("at-risk", _with_predicted_value(), list_id="t", config=CONFIG)
    assert trailing.set_index("customer_id")["tier"]["A"] == "gold"
    with pytest.raises(ValueError, match="basis must be one of"):
        TierConfig(basis="future")


def test_winback_values_a_returning_customer_by_the_champion():
    scores = _with_predicted_value()
    # lapsed G..J: predicted 10 each over 365 days; reactivation 0.5, 0.2, 0.4, 0.1
    out = build_list("winback", scores, list_id="t", features=_features(), config=CONFIG)
    values = out.set_index("customer_id")["value_if_reactivated"]
    assert values.to_dict() == pytest.approx({"G": 20.0, "H": 50.0, "I": 25.0, "J": 100.0})
    # without uplift the list ranks by reactivation x value if returning = predicted value: a tie,
    # broken by id; with uplift the customers who come back because of the contact lead
    uplift = pd.Series({"G": 0.3, "H": 0.01, "I": 0.1, "J": 0.5})
    ranked = build_list("winback", scores, list_id="t", features=_features(), uplift=uplift,
                        config=CONFIG)  # fmt: skip
    assert ranked["customer_id"].tolist() == ["J", "G", "I", "H"]  # 50, 6, 2.5, 0.5


def test_scores_endpoint_body_carries_predicted_value():
    from serving.api.schemas import ScoresResponse, scores_response_json
    from serving.scoring.lookup import ScoreLookup

    frame = _with_predicted_value()
    for target in ("churn", "vip", "reactivation"):
        frame[f"{target}_model_version"] = "1"
        frame[f"{target}_feature_set"] = "fs"
    frame["scored_at"] = pd.Timestamp("2025-06-30 02:00", tz="UTC")
    lookup = ScoreLookup.from_frames(dt.date(2025, 6, 30), frame.set_index("customer_id"))
    records = lookup.records(["F", "A"], explain=False)
    assert [(r["predicted_value"], r["value_horizon_days"]) for r in records] == [
        (2000.0, 365), (50.0, 365)
    ]  # fmt: skip
    body = json.loads(scores_response_json(records, []))
    assert body == json.loads(ScoresResponse(scores=records, not_found=[]).model_dump_json())
    assert body["scores"][0]["predicted_value"] == 2000.0
    old = ScoreLookup.from_frames(
        dt.date(2025, 6, 30),
        frame.drop(columns=["predicted_value", "value_horizon_days"]).set_index("customer_id"),
    )
    assert old.records(["F"], explain=False)[0]["predicted_value"] is None  # older score tables
