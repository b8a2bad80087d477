"""Scoring inside Spark writes the same score table as scoring in process.

The Spark tests share one local session; they are skipped, with the reason,
when PySpark or a Java runtime is missing. The partition scorer is also tested
on plain pandas batches, without Spark.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import FeatureSet
from serving.config import ServingConfig
from serving.scoring import store
from serving.scoring.spark import predict_partition, typed_features
from tests.serving.scoring.conftest import AS_OF, SCORED_AT


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="PySpark is not installed (uv sync --extra dev)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH: apt-get install -y openjdk-17-jre-headless")
    from features.engines.spark_engine import SparkConfig, spark_session

    return spark_session(SparkConfig(shuffle_partitions=1))


def test_score_customers_spark_writes_the_same_versions(
    spark, shop, models, memory_score_dir, tmp_path
):
    from features.engines.spark_engine import SparkConnection
    from serving.scoring.spark import score_customers_spark

    connection = SparkConnection(spark)
    connection.register_shop(shop.tables)
    spark_version = score_customers_spark(
        connection,
        AS_OF,
        models,
        ServingConfig(score_dir=tmp_path / "spark"),
        scored_at=SCORED_AT,
    )
    assert spark_version.rows == len(store.read_scores(memory_score_dir, AS_OF)) > 200
    scores = store.read_scores(tmp_path / "spark", AS_OF)
    assert scores["churn_risk"].notna().sum() > 50
    assert scores["reactivation_probability"].notna().sum() > 50
    assert scores["churn_reasons"].notna().sum() > 0
    pd.testing.assert_frame_equal(
        store.read_scores(tmp_path / "spark", AS_OF),
        store.read_scores(memory_score_dir, AS_OF),
        check_exact=False,
        rtol=1e-9,
    )
    pd.testing.assert_frame_equal(
        store.read_features(tmp_path / "spark", AS_OF),
        store.read_features(memory_score_dir, AS_OF),
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
