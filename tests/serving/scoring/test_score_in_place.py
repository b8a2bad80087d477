"""Scoring a simulated shop's Parquet files read in place writes the same score table.

``winback score --data <simulated folder>`` reads the tables with DuckDB where they
lie (``features.engines.duckdb_engine.connect_parquet``) instead of loading them into pandas; the
score table and the features written must be those of the in-memory path.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from features.engines.duckdb_engine import connect_parquet, outline
from features.feature_sets import FeatureSet
from features.simulation import write_shop
from serving.config import ServingConfig
from serving.scoring import store
from serving.scoring.models import ServedModels
from serving.scoring.table import score_customers
from serving.scoring.value import ServedValueModel
from tests.serving.scoring.conftest import AS_OF, SCORED_AT
from winback.shop import is_canonical_folder


@pytest.fixture(scope="module")
def folder(shop, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("simulated")
    write_shop(shop, out)
    return out


def test_outline_has_the_columns_and_the_date_range_without_the_rows(shop, folder):
    tables = outline(connect_parquet(folder))
    assert tables.last_event_at() == shop.tables.last_event_at()
    assert len(tables.transactions) == 2
    for name, frame in shop.tables.present().items():
        assert list(getattr(tables, name).columns) == list(frame.columns), name


def test_in_place_scores_and_features_equal_the_in_memory_ones(
    models, folder, memory_score_dir, tmp_path
):
    con = connect_parquet(folder)
    config = ServingConfig(score_dir=tmp_path / "in_place")
    version = score_customers(outline(con), AS_OF, models, config, scored_at=SCORED_AT, con=con)
    assert version.rows == len(store.read_scores(memory_score_dir, AS_OF)) > 200
    scores = store.read_scores(tmp_path / "in_place", AS_OF)
    assert scores["churn_risk"].notna().sum() > 50
    pd.testing.assert_frame_equal(scores, store.read_scores(memory_score_dir, AS_OF))
    pd.testing.assert_frame_equal(
        store.read_features(tmp_path / "in_place", AS_OF),
        store.read_features(memory_score_dir, AS_OF),
        rtol=1e-12,
    )


class _SummaryValueModel:
    """A value model reading every summary column (the wiring, not the model, is tested)."""

    horizon_days = 365
    regressor = SimpleNamespace(feature_set_=FeatureSet("value", ()))

    def predict(self, features, summary):
        return (summary["frequency"] * 10 + summary["recency"] + summary["T"]).to_numpy() + (
            summary["monetary_value"].to_numpy()
        )


def test_in_place_scores_with_a_value_champion_equal_the_in_memory_ones(
    shop, models, folder, tmp_path
):
    value = ServedValueModel(_SummaryValueModel(), "winback-value", "1")
    with_value = ServedModels(dict(models.models), value=value)
    con = connect_parquet(folder)
    in_place, in_memory = tmp_path / "in_place", tmp_path / "in_memory"
    score_customers(outline(con), AS_OF, with_value, ServingConfig(score_dir=in_place),
                    scored_at=SCORED_AT, con=con)  # fmt: skip
    score_customers(shop.tables, AS_OF, with_value, ServingConfig(score_dir=in_memory),
                    scored_at=SCORED_AT)  # fmt: skip
    scores = store.read_scores(in_place, AS_OF)
    assert scores["predicted_value"].notna().sum() > 200
    pd.testing.assert_frame_equal(scores, store.read_scores(in_memory, AS_OF))


def _with_custom_churn(shop, models):
    """``models`` with a churn model trained with one user-defined feature more."""
    from features.custom.windowed import Window, windowed
    from features.training_table import build_scoring_frame
    from serving.scoring.models import ServedModel
    from training.model.classifier import WinbackClassifier

    extra = windowed("big_spend_60d", "SUM(amount) FILTER (WHERE amount > 40)",
                     "Spend on lines above 40 in the last 60 days", Window("transactions", 60, 0),
                     reads=("amount",))  # fmt: skip
    feature_set = models["churn"].feature_set.with_custom([extra])
    frame = build_scoring_frame(shop.tables, AS_OF, feature_set)
    y = (frame["big_spend_60d"] > 0).astype(int)
    model = WinbackClassifier(
        feature_set, n_estimators=5, min_child_samples=5, calibration="none", num_threads=1
    ).fit(frame[feature_set.names], y)
    churn = ServedModel("churn", model, "winback-churn", "9")
    return ServedModels({**models.models, "churn": churn})


@pytest.mark.parametrize("custom", [False, True], ids=["registered", "user-defined"])
def test_a_frame_built_beforehand_gives_the_same_score_table(
    shop, models, folder, tmp_path, custom
):
    """``winback score`` builds every feature while the models load and hands them over;
    a model's feature that is not among them is queried then."""
    from features.training_table import scoring_frame_ahead

    con = connect_parquet(folder)
    tables = outline(con)
    ahead = scoring_frame_ahead(con, AS_OF, tables=tables, summary=True)
    assert ahead is not None and len(ahead.frame) > 200
    assert {"frequency", "monetary_value", "is_active"} <= set(ahead.frame.columns)
    if custom:
        models = _with_custom_churn(shop, models)
        assert "big_spend_60d" not in ahead.frame.columns
    given, queried = tmp_path / "given", tmp_path / "queried"
    score_customers(tables, AS_OF, models, ServingConfig(score_dir=given),
                    scored_at=SCORED_AT, con=con, ahead=ahead)  # fmt: skip
    score_customers(tables, AS_OF, models, ServingConfig(score_dir=queried),
                    scored_at=SCORED_AT, con=con)  # fmt: skip
    pd.testing.assert_frame_equal(
        store.read_scores(given, AS_OF), store.read_scores(queried, AS_OF)
    )
    features = store.read_features(given, AS_OF)
    pd.testing.assert_frame_equal(features, store.read_features(queried, AS_OF))
    assert ("big_spend_60d" in features.columns) == custom


def test_only_a_simulated_or_validated_folder_without_a_mapping_is_read_in_place(folder, tmp_path):
    assert is_canonical_folder(folder, None)
    assert not is_canonical_folder(folder, "online-retail")
    assert not is_canonical_folder(None, None)
    (tmp_path / "transactions.parquet").write_bytes((folder / "transactions.parquet").read_bytes())
    assert not is_canonical_folder(tmp_path, None)  # a user's folder is validated first


def test_the_forests_warmed_during_the_feature_query_score_the_same(
    models, folder, memory_score_dir, tmp_path, monkeypatch
):
    from features.training_table import scoring_frame_ahead
    from serving.scoring import table

    warmed = []
    monkeypatch.setattr(table, "FOREST_MIN_ROWS", 1)  # a batch this small counts as large
    real = table.warm_forests
    monkeypatch.setattr(
        table, "warm_forests", lambda m, **kw: (warmed.append((m, kw)), real(m, **kw))
    )
    con = connect_parquet(folder)
    tables = outline(con)
    ahead = scoring_frame_ahead(con, AS_OF, tables=tables, summary=models.value is not None)
    config = ServingConfig(score_dir=tmp_path / "warmed")
    score_customers(tables, AS_OF, models, config, scored_at=SCORED_AT, con=con, ahead=ahead)
    assert warmed == [(models, {"kernel": False}), (models, {})]  # forests, then the kernel
    pd.testing.assert_frame_equal(
        store.read_scores(tmp_path / "warmed", AS_OF), store.read_scores(memory_score_dir, AS_OF)
    )
