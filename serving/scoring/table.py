"""Batch scoring: features for every customer as of a date, scored by the champion models.

The score table has one row per customer known at ``as_of``:

``customer_id, as_of, churn_risk, vip_potential, reactivation_probability,
expected_value, predicted_value, value_horizon_days, tier, is_active, is_lapsed, is_vip, trailing_margin,
churn_reasons, vip_reasons, reactivation_reasons, churn_model_version,
vip_model_version, reactivation_model_version, churn_feature_set,
vip_feature_set, reactivation_feature_set, scored_at``

Each score is given only inside its model's population (the customers the model
was trained on): ``churn_risk`` for active customers, ``vip_potential`` for
active customers who are not VIP yet, ``reactivation_probability`` for lapsed
customers; elsewhere it is missing, never a made-up number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.scoring_frame import FrameAhead
from serving.config import SCORE_COLUMNS, TARGETS, ServingConfig
from serving.scoring import store
from serving.scoring.forest import default_threads, warm
from serving.scoring.models import ServedModels
from serving.scoring.predict import FOREST_MIN_ROWS, FeatureColumns, has_booster, predict_scores
from serving.scoring.reasons import feature_reference, reason_column, reason_texts, top_scored
from serving.scoring.value import SUMMARY_COLUMNS, predicted_value, with_summary

#: Context columns of the scoring frame that the score table carries along.
CONTEXT_COLUMNS = ("is_active", "is_lapsed", "is_vip", "tier", "trailing_margin")


def populations(context: pd.DataFrame) -> dict[str, pd.Series]:
    """Which customers each model scores: churn and VIP among active, reactivation among lapsed."""
    missing = [c for c in ("is_active", "is_lapsed", "is_vip") if c not in context.columns]
    if missing:
        raise ValueError(f"the scoring frame lacks the population columns {missing}")
    active = context["is_active"].fillna(False).astype(bool)
    lapsed = context["is_lapsed"].fillna(False).astype(bool)
    vip = context["is_vip"].fillna(False).astype(bool)
    return {"churn": active, "vip": active & ~vip, "reactivation": lapsed}


def expected_value(
    churn_risk: np.ndarray | pd.Series,
    reactivation_probability: np.ndarray | pd.Series,
    is_lapsed: np.ndarray | pd.Series,
    trailing_margin: np.ndarray | pd.Series,
    typical_margin: float,
    *,
    horizon_days: int = 90,
) -> np.ndarray:
    """Expected gross margin of each customer over the next ``horizon_days``.

    * active customers: ``(1 - churn_risk) * trailing_margin * horizon_days / 365``
      — the margin they earned in the last 12 months, at the same daily rate,
      if they stay;
    * lapsed customers: ``reactivation_probability * typical_margin * horizon_days / 365``
      — a returning customer is worth a typical active customer's 12-month margin
      (``typical_margin``, the median among active customers), at that rate.

    Missing where the score it needs is missing (a customer outside both
    populations, or a missing margin).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    share = horizon_days / 365.0
    churn = _array(churn_risk, "float64")
    react = _array(reactivation_probability, "float64")
    lapsed = _array(is_lapsed, bool)
    margin = _array(trailing_margin, "float64")
    active_value = (1.0 - churn) * margin * share
    lapsed_value = react * float(typical_margin) * share
    return np.where(lapsed, lapsed_value, active_value)


def _array(values: np.ndarray | pd.Series, dtype: object) -> np.ndarray:
    """``values`` as an array; a Series through ``to_numpy`` (``np.asarray`` probes attributes
    that make pandas hash the Series' index: 0.13 s for a million customer ids)."""
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=dtype)
    return np.asarray(values, dtype=dtype)


def score_table(
    frame: pd.DataFrame,
    models: ServedModels,
    *,
    as_of: dt.date,
    horizon_days: int = 90,
    explain_top: int = 1000,
    top_reasons: int = 3,
    scored_at: dt.datetime | None = None,
) -> pd.DataFrame:
    """The score table of one date from a scoring frame (features + context columns).

    ``frame`` is indexed by ``customer_id`` and holds each model's feature
    columns plus ``is_active, is_lapsed, is_vip, tier, trailing_margin`` (what
    ``features.training_table.build_scoring_frame`` returns).
    """
    settings = _Settings(as_of, horizon_days, explain_top, top_reasons, scored_at)
    reference = feature_reference(frame[models.feature_set().names]) if explain_top > 0 else None
    return _score_table(frame, models, settings, reference)


@dataclass(frozen=True)
class _Settings:
    """What :func:`score_table` is asked for besides the frame and the models."""

    as_of: dt.date
    horizon_days: int = 90
    explain_top: int = 1000
    top_reasons: int = 3
    scored_at: dt.datetime | None = None


def _score_table(
    frame: pd.DataFrame,
    models: ServedModels,
    settings: _Settings,
    reference: Mapping[str, float] | None,
) -> pd.DataFrame:
    """:func:`score_table` with the feature medians the reasons compare against given."""
    missing = [c for c in CONTEXT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the scoring frame lacks the columns {missing}; build it with "
            f"features.training_table.build_scoring_frame"
        )
    scored_at = settings.scored_at or dt.datetime.now(dt.UTC)
    horizon_days, explain_top = settings.horizon_days, settings.explain_top
    masks = populations(frame)
    out = pd.DataFrame(index=frame.index)
    out["as_of"] = pd.Series([settings.as_of] * len(frame), index=frame.index, dtype="object")
    columns = FeatureColumns(frame)  # each column converted once, shared by every model
    # The value champion predicts on a thread beside the classifiers: both halves run on
    # two threads where they can, and each fills the other's single-threaded stretches.
    with ThreadPoolExecutor(1, thread_name_prefix="winback-value") as pool:
        value = pool.submit(predicted_value, models.value, frame, columns)
        for target in TARGETS:
            out[SCORE_COLUMNS[target]] = _population_scores(models, columns, target, masks[target])
        value = value.result()
    lapsed = masks["reactivation"]
    margin = frame["trailing_margin"].astype("float64")
    # by position: dropna on the id-indexed Series would hash the million ids (0.4 s)
    active_margin = pd.Series(margin.to_numpy()[masks["churn"].to_numpy()]).dropna()
    typical = float(active_margin.median()) if len(active_margin) else np.nan
    out["expected_value"] = expected_value(
        out["churn_risk"],
        out["reactivation_probability"],
        lapsed,
        margin,
        typical,
        horizon_days=horizon_days,
    )
    _add_predicted_value(out, models, value, horizon_days)
    out["tier"] = frame["tier"].astype("string")
    for col in ("is_active", "is_lapsed", "is_vip"):
        out[col] = frame[col].fillna(False).astype(bool)
    out["trailing_margin"] = margin
    for target in TARGETS:
        reasons = np.full(len(frame), None, dtype=object)
        if target in models.models and explain_top > 0:
            scores = pd.Series(out[SCORE_COLUMNS[target]].to_numpy())  # positions as the index
            chosen = top_scored(scores, explain_top).to_numpy()
            if len(chosen):
                texts = reason_texts(
                    models[target].model,
                    columns.subset(chosen),
                    top=settings.top_reasons,
                    reference=reference,
                    num_threads=default_threads(),
                )
                reasons[chosen] = pd.Series(texts, dtype="object").to_numpy()
        out[reason_column(target)] = pd.Series(reasons, index=frame.index, dtype="object")
    for target in TARGETS:
        served = models.models.get(target)
        out[f"{target}_model_version"] = served.version if served else None
        out[f"{target}_feature_set"] = served.feature_set.name if served else None
    out["scored_at"] = pd.Timestamp(scored_at).tz_convert("UTC")
    out.index.name = "customer_id"
    return out.reset_index()


def _population_scores(
    models: ServedModels, columns: FeatureColumns, target: str, population: pd.Series
) -> np.ndarray:
    """``target``'s score for the rows of its population, NaN elsewhere or without a model."""
    values = np.full(len(columns), np.nan, dtype="float64")
    rows = np.flatnonzero(population.to_numpy())
    if target in models.models and len(rows):
        scores = predict_scores(models, columns.subset(rows), [target])
        values[rows] = scores[SCORE_COLUMNS[target]].to_numpy()
    return values


def _add_predicted_value(
    out: pd.DataFrame, models: ServedModels, value: pd.Series, horizon_days: int
) -> None:
    """``predicted_value`` (the value champion's, :func:`predicted_value`) and
    ``value_horizon_days``; ``expected_value`` from them where known."""
    out["predicted_value"] = value
    horizon = models.value.horizon_days if models.value is not None else None
    out["value_horizon_days"] = pd.Series(horizon, index=out.index, dtype="Int64")
    if horizon is not None:
        scaled = value * horizon_days / horizon
        out["expected_value"] = scaled.where(value.notna(), out["expected_value"])


def warm_forests(models: ServedModels, *, kernel: bool = True) -> None:
    """Each served model's forest made and (with ``kernel``) the compiled kernel loaded
    (``forest.warm``)."""
    boosters = [models[t].model.trees() for t in models.targets if has_booster(models[t].model)]
    regressor = getattr(models.value.model, "regressor", None) if models.value else None
    if has_booster(regressor):
        boosters.append(regressor.trees())
    for booster, num_iteration in boosters:
        warm(booster, num_iteration, kernel=kernel)


def scoring_feature_set(models: ServedModels) -> FeatureSet:
    """The features every served model reads, the value champion's included."""
    union = models.feature_set()
    if models.value is None:
        return union
    have = set(union.names)
    extra = tuple(c for c in models.value.feature_set().columns if c[0] not in have)
    return FeatureSet(union.name, union.columns + extra) if extra else union


def score_customers(
    tables: ShopTables,
    as_of: dt.date,
    models: ServedModels,
    config: ServingConfig | None = None,
    *,
    scored_at: dt.datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    ahead: FrameAhead | None = None,
) -> store.ScoreTableVersion:
    """Build features as of ``as_of``, score everyone and write the versioned score table.

    This is what ``winback score --as-of DATE`` runs. A rerun for the same date
    replaces that version. The shop's do-not-contact customers are stored with
    the version, so lists made from it leave them out. With ``con`` the tables
    are the contract views registered on it (``features.engines.duckdb_engine.connect_parquet``:
    read in place) and ``tables`` their outline (``features.engines.duckdb_engine.outline``:
    columns, no rows). ``ahead``: the scoring frame of every feature with the customers'
    status when the caller built it already, while the models loaded
    (``features.training_table.scoring_frame_ahead``, with the summary when there is a value
    champion).
    """
    from features.training_table import build_scoring_frame, build_scoring_frame_from

    config = config or ServingConfig()
    feature_set = scoring_feature_set(models)
    value = models.value is not None
    # The forests are made on a thread while the scoring frame is taken (DuckDB releases the
    # GIL when a model's feature is queried), the compiled kernel loaded while the medians are
    # taken: CPU that no longer waits in line. The kernel (~100 MiB) loads after the query.
    large = ahead is not None and len(ahead.frame) >= FOREST_MIN_ROWS
    warming = ThreadPoolExecutor(1, thread_name_prefix="winback-forests") if large else None
    made = warming.submit(warm_forests, models, kernel=False) if warming is not None else None
    # The status query gives the value champion's purchase summary in the same scan.
    if con is None:
        frame = build_scoring_frame(tables, as_of, feature_set, summary=value)
    else:
        frame = build_scoring_frame_from(
            con, as_of, feature_set, tables=tables, summary=value, ahead=ahead
        )
        ahead = None  # in the frame now: not held through the scoring and the write
    warmed = warming.submit(warm_forests, models) if warming is not None else None
    if value and not set(SUMMARY_COLUMNS) <= set(frame.columns):
        frame = with_summary(frame, tables, as_of, con=con)
    features = frame[feature_set.names]
    # The medians of every stored feature: the reasons' yardstick now, and the one stored
    # with the features for reasons given later (the classifiers' features are among them).
    reference = feature_reference(features)
    if warming is not None:
        made.result()
        warmed.result()
        warming.shutdown()
    settings = _Settings(
        as_of, config.horizon_days, config.explain_top, config.top_reasons, scored_at
    )
    table = _score_table(frame, models, settings, reference)
    del frame  # the context and summary columns are not written: free them first
    return store.write_score_table(
        table,
        features,
        config.score_path,
        as_of,
        suppressions=tables.suppressions,
        reference=reference,
    )
