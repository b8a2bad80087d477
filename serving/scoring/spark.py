"""Batch scoring inside Spark: the champion models broadcast, one ``mapInPandas`` pass.

The expensive part of a batch score, the three models' predictions for every
customer, runs on the Spark executors: the scoring frame becomes a Spark
DataFrame, the models are broadcast once, and each partition is scored with
the same ``serving.scoring.table.populations`` and ``predict_proba`` the in-process
path uses. The cheap, global rest (the median margin behind expected value,
reasons for the top customers, provenance columns) is then exactly
``serving.scoring.table.score_table``, fed with the executors' probabilities, so the
score table has the same columns, types and values as ``winback score`` with
DuckDB and is written by the same store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.feature_sets import FeatureSet
from serving.config import SCORE_COLUMNS, TARGETS, ServingConfig
from serving.scoring import store
from serving.scoring.models import ServedModel, ServedModels
from serving.scoring.table import populations, score_table

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

    from features.engines.spark_engine import SparkConnection

#: Columns of the scoring frame the executors need besides the features.
POPULATION_COLUMNS = ("is_active", "is_lapsed", "is_vip")


def typed_features(batch: pd.DataFrame, feature_set: FeatureSet) -> pd.DataFrame:
    """A batch's feature columns with the dtypes models expect (categoricals, float64).

    Spark hands categoricals to Python as plain strings and numbers as
    whatever Arrow chose; a model's ``FeatureSet.check`` wants ``category`` or
    string and numeric columns.
    """
    out = {}
    for name, dtype in feature_set.columns:
        if name not in batch.columns:
            raise ValueError(
                f"the Spark scoring frame lacks the feature column {name!r} of feature set "
                f"{feature_set.name!r}: build it with build_scoring_frame_from for these models"
            )
        values = batch[name]
        if dtype == "category":
            out[name] = pd.Categorical(values.astype("string"))
        else:
            out[name] = pd.to_numeric(values).astype("float64")
    return pd.DataFrame(out, index=batch.index)


def predict_partition(batch: pd.DataFrame, models: Mapping[str, Any]) -> pd.DataFrame:
    """Each target's probability for the rows of ``batch`` in its population (else NaN).

    ``models`` maps a target to a fitted model with ``feature_set_`` and
    ``predict_proba`` (``training.model.classifier.WinbackClassifier``).
    """
    masks = populations(batch)
    out = pd.DataFrame({"customer_id": batch["customer_id"].astype("string").to_numpy()})
    for target in TARGETS:
        values = np.full(len(batch), np.nan)
        model = models.get(target)
        mask = masks[target].to_numpy()
        if model is not None and mask.any():
            X = typed_features(batch.loc[mask], model.feature_set_)
            values[mask] = np.asarray(model.predict_proba(X), dtype="float64")
        out[SCORE_COLUMNS[target]] = values
    return out


def _output_schema() -> str:
    return "customer_id string, " + ", ".join(f"{SCORE_COLUMNS[t]} double" for t in TARGETS)


def predict_scores_spark(
    spark: SparkSession, frame: SparkDataFrame, models: ServedModels
) -> SparkDataFrame:
    """Probabilities of every customer in a Spark scoring frame, computed on the executors.

    Parameters
    ----------
    spark
        The session (its SparkContext broadcasts the models).
    frame
        A Spark DataFrame with ``customer_id``, ``is_active``, ``is_lapsed``,
        ``is_vip`` and every feature column of the models.
    models
        The served models; broadcast once, not shipped with every task.

    Returns
    -------
    pyspark.sql.DataFrame
        ``customer_id`` and one probability column per target (NULL outside its population).
    """
    missing = [c for c in ("customer_id", *POPULATION_COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the Spark scoring frame lacks {missing}; it needs customer_id, the status "
            "columns and the features (see features.training_table.build_scoring_frame_from)"
        )
    broadcast = spark.sparkContext.broadcast({t: models[t].model for t in models.targets})
    needed = ["customer_id", *POPULATION_COLUMNS, *models.feature_set().names]

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        loaded = broadcast.value
        for batch in batches:
            yield predict_partition(batch, loaded)

    return frame.select(*needed).mapInPandas(score, schema=_output_schema())


@dataclass(frozen=True)
class _Precomputed:
    """A served model whose probabilities were computed by Spark; SHAP still comes from the model."""

    model: Any
    probabilities: pd.Series

    @property
    def feature_set_(self) -> FeatureSet:
        return self.model.feature_set_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        values = self.probabilities.reindex(X.index)
        if values.isna().any():
            raise ValueError(
                f"Spark returned no probability for {int(values.isna().sum())} customer(s) "
                f"in the population, e.g. {values.index[values.isna()][0]!r}"
            )
        return values.to_numpy(dtype="float64")

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.model.contributions(X)


def spark_frame(spark: SparkSession, frame: pd.DataFrame, partitions: int | None = None):
    """A pandas scoring frame (indexed by ``customer_id``) as a Spark DataFrame, via Arrow."""
    flat = frame.reset_index()
    for name in flat.columns:
        if isinstance(flat[name].dtype, pd.CategoricalDtype):
            flat[name] = flat[name].astype("string")
    out = spark.createDataFrame(pa.Table.from_pandas(flat, preserve_index=False))
    return out.repartition(partitions) if partitions else out


def spark_probabilities(
    spark: SparkSession, frame: pd.DataFrame, models: ServedModels, partitions: int | None = None
) -> pd.DataFrame:
    """Every model's probability for every customer of the scoring frame, computed in Spark.

    ``frame`` is the scoring frame (features + status, indexed by
    ``customer_id``), e.g. from ``features.training_table.build_scoring_frame_from``;
    ``partitions`` spreads it over that many Spark tasks (Spark's default when
    ``None``). Returns one score column per target, indexed by ``customer_id``.
    """
    if frame.index.name != "customer_id":
        raise ValueError(
            f"the scoring frame must be indexed by customer_id, got index {frame.index.name!r}"
        )
    sdf = spark_frame(spark, frame, partitions)
    probabilities = predict_scores_spark(spark, sdf, models).toArrow().to_pandas()
    probabilities["customer_id"] = probabilities["customer_id"].astype("string")
    probabilities = probabilities.set_index("customer_id")
    if probabilities.index.has_duplicates:
        raise ValueError("Spark returned duplicate customer_id rows: is the frame's index unique?")
    return probabilities


def precomputed_models(models: ServedModels, probabilities: pd.DataFrame) -> ServedModels:
    """``models`` answering with the ``probabilities`` Spark computed (reasons still from the model).

    Handed to ``serving.scoring.table.score_table``, which then builds the same
    table as from the models themselves.
    """
    return ServedModels(
        {
            target: ServedModel(
                target=target,
                model=_Precomputed(served.model, probabilities[SCORE_COLUMNS[target]]),
                name=served.name,
                version=served.version,
                trained_at=served.trained_at,
                metrics=served.metrics,
            )
            for target, served in models.models.items()
        }
    )


def score_customers_spark(
    connection: SparkConnection,
    as_of: dt.date,
    models: ServedModels,
    config: ServingConfig | None = None,
    *,
    scored_at: dt.datetime | None = None,
    suppressions: pd.DataFrame | None = None,
) -> store.ScoreTableVersion:
    """``serving.scoring.table.score_customers`` on Spark: features, statuses and scores, then the store.

    The contract tables must be registered on ``connection``
    (``register_parquet``/``register_tables``/``register_shop``); the shop's
    do-not-contact table (small) comes as ``suppressions`` and is stored with the version.
    """
    from features.training_table import build_scoring_frame_from

    config = config or ServingConfig()
    feature_set = models.feature_set()
    frame = build_scoring_frame_from(connection, as_of, feature_set)
    probabilities = spark_probabilities(connection.spark, frame, models)
    table = score_table(
        frame,
        precomputed_models(models, probabilities),
        as_of=as_of,
        horizon_days=config.horizon_days,
        explain_top=config.explain_top,
        top_reasons=config.top_reasons,
        scored_at=scored_at,
    )
    return store.write_score_table(
        table, frame[feature_set.names], config.score_path, as_of, suppressions=suppressions
    )
