"""Scoring inside Spark writes the same score table as scoring in process.

The Spark tests share one local session; they are skipped, with the reason,
when PySpark or a Java runtime is missing. The partition scorer is also tested
on plain pandas batches, without Spark.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import (
    CHURN_FEATURES_V1,
    REACTIVATION_FEATURES_V1,
    VIP_FEATURES_V1,
    FeatureSet,
)
from features.simulate import SimulationConfig, simulate_shop
from features.training_table import build_scoring_frame
from serving.config import ServingConfig
from serving.scoring import store
from serving.scoring.models import ServedModel, ServedModels
from serving.scoring.spark import predict_partition, typed_features
from serving.scoring.table import score_customers
from training.model import WinbackClassifier

AS_OF = dt.date(2025, 6, 30)
SCORED_AT = dt.datetime(2025, 7, 1, 6, 0, tzinfo=dt.UTC)
SETS = {
    "churn": CHURN_FEATURES_V1,
    "vip": VIP_FEATURES_V1,
    "reactivation": REACTIVATION_FEATURES_V1,
}


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(SimulationConfig(customers=400, seed=11))


@pytest.fixture(scope="module")
def frame(shop) -> pd.DataFrame:
    return build_scoring_frame(shop.tables, AS_OF)


@pytest.fixture(scope="module")
def models(frame) -> ServedModels:
    """Small real LightGBM models (labels from recency plus noise: behaviour is not the point)."""
    rng = np.random.default_rng(0)
    recency = frame["days_since_last_order"].fillna(999).to_numpy()
    loaded = {}
    for i, (target, feature_set) in enumerate(SETS.items()):
        y = (recency + rng.normal(0, 80, len(frame)) > 100 + 40 * i).astype(int)
        model = WinbackClassifier(
            feature_set, n_estimators=10, min_child_samples=5, calibration="none", num_threads=1
        ).fit(frame[feature_set.names], y)
        loaded[target] = ServedModel(target, model, f"winback-{target}", str(i + 1))
    return ServedModels(loaded)


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="PySpark is not installed (uv sync --extra dev)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH: apt-get install -y openjdk-17-jre-headless")
    from features.spark_engine import SparkConfig, spark_session

    return spark_session(SparkConfig(shuffle_partitions=1))


def test_score_customers_spark_writes_the_same_versions(spark, shop, models, tmp_path):
    from features.spark_engine import SparkConnection
    from serving.scoring.spark import score_customers_spark

    connection = SparkConnection(spark)
    connection.register_shop(shop.tables)
    duck = score_customers(
        shop.tables,
        AS_OF,
        models,
        ServingConfig(score_dir=tmp_path / "duckdb"),
        scored_at=SCORED_AT,
    )
    spark_version = score_customers_spark(
        connection,
        AS_OF,
        models,
        ServingConfig(score_dir=tmp_path / "spark"),
        scored_at=SCORED_AT,
    )
    assert spark_version.rows == duck.rows > 200
    scores = store.read_scores(tmp_path / "spark", AS_OF)
    assert scores["churn_risk"].notna().sum() > 50
    assert scores["reactivation_probability"].notna().sum() > 50
    assert scores["churn_reasons"].notna().sum() > 0
    pd.testing.assert_frame_equal(
        store.read_scores(tmp_path / "spark", AS_OF),
        store.read_scores(tmp_path / "duckdb", AS_OF),
        check_exact=False,
        rtol=1e-9,
    )
    pd.testing.assert_frame_equal(
        store.read_features(tmp_path / "spark", AS_OF),
        store.read_features(tmp_path / "duckdb", AS_OF),
        check_exact=False,
        rtol=1e-9,
    )


def test_predict_partition_scores_only_each_population(frame, models):
    head = frame.iloc[:120]
    # Spark hands categoricals over as plain strings.
    batch = head.reset_index()
    for name in batch.columns:
        if isinstance(batch[name].dtype, pd.CategoricalDtype):
            batch[name] = batch[name].astype(object)
    out = predict_partition(batch, {t: models[t].model for t in models.targets})
    assert out["customer_id"].tolist() == batch["customer_id"].tolist()
    active, lapsed, vip = (head[c].to_numpy() for c in ("is_active", "is_lapsed", "is_vip"))
    assert active.any() and lapsed.any()
    assert out["churn_risk"].notna().tolist() == active.tolist()
    assert out["vip_potential"].notna().tolist() == (active & ~vip).tolist()
    assert out["reactivation_probability"].notna().tolist() == lapsed.tolist()
    for target, column in (("churn", "churn_risk"), ("reactivation", "reactivation_probability")):
        model = models[target].model
        mask = active if target == "churn" else lapsed
        expected = model.predict_proba(head.loc[mask, model.feature_set_.names])
        np.testing.assert_allclose(out.loc[mask, column].to_numpy(), expected)


def test_typed_features_names_a_missing_column():
    fs = FeatureSet("tiny_v1", (("orders", "float64"), ("channel", "category")))
    typed = typed_features(pd.DataFrame({"orders": [1, None], "channel": ["web", None]}), fs)
    assert typed["orders"].dtype == "float64"
    assert isinstance(typed["channel"].dtype, pd.CategoricalDtype)
    with pytest.raises(ValueError, match="'channel'"):
        typed_features(pd.DataFrame({"orders": [1.0]}), fs)
