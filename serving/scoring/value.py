"""Predicted customer value in scoring: the ``winback-value`` champion, when there is one.

The value model is optional: without a champion the score table's
``predicted_value`` is missing and ``expected_value`` and the lists keep the
trailing-margin rule (and say so). With one, ``predicted_value`` is its
prediction over its own horizon (``value_horizon_days``, usually 365 days), and
``expected_value`` is that value at the list horizon's rate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.feature_sets import MODEL_DERIVED_FEATURES, FeatureSet

logger = logging.getLogger("winback.serving.scoring")

#: The point-in-time purchase summary the value model's BTYD features need
#: (``features.value_table.SUMMARY_COLUMNS``, not imported: the service never builds it).
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")

#: The score-table columns the value model fills (missing without a value champion).
VALUE_COLUMNS = ("predicted_value", "value_horizon_days")


@dataclass(frozen=True)
class ServedValueModel:
    """The loaded value champion with where it came from."""

    model: Any
    name: str
    version: str
    run_id: str | None = None
    run_metrics: Mapping[str, float] = field(default_factory=dict)
    run_tags: Mapping[str, str] = field(default_factory=dict)
    trained_at: str | None = None

    @property
    def horizon_days(self) -> int:
        return int(self.model.horizon_days)

    def feature_set(self) -> FeatureSet:
        """The SQL features the model reads (its BTYD features come from the summary)."""
        columns = self.model.regressor.feature_set_.columns
        return FeatureSet("value", tuple(c for c in columns if c[0] not in MODEL_DERIVED_FEATURES))


def load_value_champion(client: Any) -> ServedValueModel | None:
    """The ``winback-value`` champion from the registry ``client`` reads, or None (logged)."""
    from training.tracking.value_tracking import VALUE_MODEL_NAME, load_value_model, value_champion

    version = value_champion(client)
    if version is None:
        logger.info(
            "no %s champion: expected_value uses the trailing-margin rule", VALUE_MODEL_NAME
        )
        return None
    from serving.scoring.models import run_started_at, training_run, verdict_tags

    model = load_value_model(f"models:/{VALUE_MODEL_NAME}/{version.version}")
    logger.info("loaded %s version %s", VALUE_MODEL_NAME, version.version)
    run = training_run(client, version.run_id)
    return ServedValueModel(
        model,
        VALUE_MODEL_NAME,
        str(version.version),
        run_id=version.run_id,
        run_metrics={} if run is None else {k: float(v) for k, v in run.data.metrics.items()},
        run_tags=verdict_tags(run),
        trained_at=run_started_at(run),
    )


def with_summary(
    frame: pd.DataFrame, tables: Any, as_of: Any, *, con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """The scoring frame with each customer's purchase summary at ``as_of`` added.

    One DuckDB query over the contract views on ``con`` (read in place), or over
    ``tables`` registered on a new connection; the frame's columns are not copied.
    """
    from features.engines.duckdb_engine import connect
    from features.value_table import value_summary_from

    con = connect(tables) if con is None else con
    summary = value_summary_from(con, [as_of]).droplevel("cutoff")
    out = frame.drop(columns=[c for c in SUMMARY_COLUMNS if c in frame])
    same = summary.index.equals(frame.index)
    for column in SUMMARY_COLUMNS:
        values = summary[column] if same else summary[column].reindex(frame.index)
        out[column] = values.to_numpy()
    return out


def predicted_value(
    value: ServedValueModel | None, frame: pd.DataFrame, columns: Any = None
) -> pd.Series:
    """The value champion's prediction per customer; missing without a champion or a summary.

    ``columns``: the frame's ``serving.scoring.predict.FeatureColumns`` when the
    caller has them (conversions shared with the classifiers).
    """
    out = pd.Series(np.nan, index=frame.index, dtype="float64", name="predicted_value")
    if value is None or not set(SUMMARY_COLUMNS) <= set(frame.columns):
        return out
    fast = _offset_prediction(value.model, frame, columns)
    out[:] = fast if fast is not None else value.model.predict(frame, frame[list(SUMMARY_COLUMNS)])
    return out


def _offset_prediction(model: Any, frame: pd.DataFrame, columns: Any = None) -> np.ndarray | None:
    """A Tweedie value model with an offset, predicted without copying the frame; else None.

    The same values as ``model.predict`` (``exp(raw score + log offset)``), with the
    raw score from :func:`serving.scoring.predict.raw_scores` on the model's
    columns: the frame's own arrays (``columns``, made from ``frame`` when not
    given) and the BTYD features, never gathered into a frame (a million
    customers' inputs as one frame, then one matrix, took a gigabyte).
    """
    from serving.scoring.predict import FeatureColumns, model_input, raw_scores
    from training.evaluation.value_baselines import btyd_features

    regressor = getattr(model, "regressor", None)
    if getattr(regressor, "loss", None) != "tweedie" or getattr(regressor, "offset", None) is None:
        return None
    summary = frame[list(SUMMARY_COLUMNS)]
    derived = btyd_features(model.bgnbd, model.gamma_gamma, model.horizon_days, summary)
    names = regressor.feature_set_.names
    base = FeatureColumns(frame) if columns is None else columns
    inputs = base.with_floats({n: derived[n].to_numpy() for n in names if n in derived.columns})
    booster, num_iteration = regressor.trees()
    matrix = model_input(regressor, inputs)
    raw = raw_scores(booster, matrix, num_iteration, num_threads=regressor.num_threads)
    offset = pd.DataFrame({regressor.offset: inputs.floats(regressor.offset)}, copy=False)
    return np.exp(raw + regressor.log_offset(offset))


def value_input_set(value: ServedValueModel) -> FeatureSet:
    """The columns a posted row needs for a predicted value: the model's features and summary."""
    columns = value.feature_set().columns
    have = {name for name, _ in columns}
    summary = tuple((c, "float64") for c in SUMMARY_COLUMNS if c not in have)
    return FeatureSet("value_input", columns + summary)


def posted_value(value: ServedValueModel, frame: pd.DataFrame) -> list[float | None]:
    """The value champion's prediction for posted rows (typed by :func:`value_input_set`)."""
    values = predicted_value(value, frame).to_numpy(dtype="float64")
    return [None if v != v else float(v) for v in values]
