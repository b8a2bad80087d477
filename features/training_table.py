"""Training tables: features at each cutoff joined with labels from the horizon after it.

A model for one target learns from many cutoffs at once (e.g. every 30 days),
each row being one customer at one cutoff, with features from on or before the
cutoff and the label from ``(cutoff, cutoff + horizon_days]``. Only cutoffs
whose whole horizon is inside the data are usable: a horizon that runs past the
last event would count customers as churned who simply have not been observed
yet. Each target has its own population: ``churn`` and ``vip`` the customers
active at the cutoff (``vip``: those not VIP yet), ``reactivation`` the lapsed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

from features.build import build_feature_table_from
from features.engines.base import Engine
from features.engines.duckdb_engine import connect
from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.labels import LabelConfig, build_labels

# Scoring frames live in features.scoring_frame; these names have long been imported from here.
from features.scoring_frame import (  # noqa: F401
    FrameAhead,
    build_scoring_frame,
    build_scoring_frame_from,
    join_scoring_frame,
    one_date,
    scoring_frame_ahead,
)
from features.targets import TARGETS as TARGET_TABLE
from features.tiers import as_dates

#: Target name -> label column of ``features.labels.build_labels``.
TARGETS: dict[str, str] = {name: t.label for name, t in TARGET_TABLE.items()}

#: Who each target's rows are (the label is ``<NA>`` for everyone else).
POPULATIONS: dict[str, str] = {name: t.population for name, t in TARGET_TABLE.items()}

#: Outcome columns carried into every training table (for value weighting).
VALUE_COLUMNS = ("future_margin", "future_revenue")


def data_dates(tables: ShopTables) -> tuple[dt.date, dt.date]:
    """The first and last calendar dates (UTC) with a transaction."""
    ordered_at = tables.transactions["ordered_at"]
    if ordered_at.empty or ordered_at.isna().all():
        raise ValueError("transactions is empty: no dates to place cutoffs in")
    first, last = pd.Timestamp(ordered_at.min()), pd.Timestamp(ordered_at.max())
    if first.tzinfo is not None:
        first, last = first.tz_convert("UTC"), last.tz_convert("UTC")
    return first.date(), last.date()


def monthly_cutoffs(
    tables: ShopTables,
    horizon_days: int,
    every_days: int = 30,
    *,
    count: int | None = None,
    first: dt.date | str | None = None,
) -> list[dt.date]:
    """Cutoffs every ``every_days`` days whose whole horizon is in the data, oldest first.

    The latest is ``last data date - horizon_days`` (so ``cutoff + horizon_days <=
    last data date``); the others step back from it, stopping after ``count``
    cutoffs, before ``first``, or before the first data date, whichever comes first.

    Raises
    ------
    ValueError
        When the data is shorter than the horizon, or the limits leave no cutoff.
    """
    if horizon_days < 1 or every_days < 1:
        raise ValueError(
            f"horizon_days and every_days must be >= 1, got {horizon_days} and {every_days}"
        )
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1 (or None for all), got {count}")
    data_first, data_last = data_dates(tables)
    earliest = data_first if first is None else max(data_first, as_dates(first)[0])
    cutoff = data_last - dt.timedelta(days=horizon_days)
    out: list[dt.date] = []
    while cutoff >= earliest and (count is None or len(out) < count):
        out.append(cutoff)
        cutoff -= dt.timedelta(days=every_days)
    if not out:
        raise ValueError(
            f"no cutoff with a full {horizon_days}-day horizon between {earliest} and the last "
            f"data date {data_last}: use a shorter horizon or more data"
        )
    return sorted(out)


def unobserved_cutoffs(
    tables: ShopTables, cutoffs: Iterable[object], horizon_days: int
) -> list[dt.date]:
    """The cutoffs whose horizon runs past the last data date."""
    _, data_last = data_dates(tables)
    return [c for c in as_dates(cutoffs) if c + dt.timedelta(days=horizon_days) > data_last]


def check_observed(tables: ShopTables, dates: list[dt.date], horizon_days: int) -> None:
    """Raise a ``ValueError`` naming the cutoffs whose horizon runs past the last data date."""
    unobserved = unobserved_cutoffs(tables, dates, horizon_days)
    if unobserved:
        raise ValueError(
            f"{len(unobserved)} cutoff(s) {[str(d) for d in unobserved]} have a "
            f"{horizon_days}-day horizon that runs past the last data date "
            f"{data_dates(tables)[1]}: drop them or use monthly_cutoffs()"
        )


def check_features_cover(labelled: pd.Index, features: pd.DataFrame) -> None:
    """Raise a ``ValueError`` when labelled (cutoff, customer_id) rows have no features."""
    missing = labelled.difference(features.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} labelled (cutoff, customer_id) rows have no features, e.g. "
            f"{missing[0]}: features and labels disagree on who is known at a cutoff"
        )


def build_training_table(
    tables: ShopTables,
    target: str,
    cutoffs: Iterable[object],
    *,
    feature_set: FeatureSet | None = None,
    label_config: LabelConfig = LabelConfig(),
    con: Engine | None = None,
) -> pd.DataFrame:
    """Features and the target's label for its population at every cutoff.

    Parameters
    ----------
    tables
        The shop's validated tables (with ``con``: their outline,
        ``features.engines.duckdb_engine.outline``, is enough).
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"`` (see :data:`TARGETS`).
    cutoffs
        Calendar dates; each one's horizon must be inside the data
        (:func:`monthly_cutoffs` makes such a series).
    feature_set
        Features to compute (in its order); every registered feature when ``None``.
    label_config
        Windows and tiers defining the labels and populations.
    con
        The engine where ``tables`` are registered (``features.engines.base``): a
        DuckDB connection or a ``SparkConnection``; a new DuckDB connection by default.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(cutoff, customer_id)``, one row per customer in the target's
        population at each cutoff; the feature columns, then the label column
        (``churned``, ``became_vip`` or ``reactivated``, bool), ``future_margin`` and
        ``future_revenue``. ``attrs`` holds ``target``, ``label``, ``population``, ``horizon_days``,
        ``feature_set`` and ``omitted_features``.

    Raises
    ------
    ValueError
        For an unknown target, or cutoffs whose horizon is not fully observed
        (named, with the last data date).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: choose one of {sorted(TARGETS)}")
    dates = as_dates(cutoffs)
    if not dates:
        raise ValueError("no cutoffs given: pass at least one date (see monthly_cutoffs)")
    check_observed(tables, dates, label_config.horizon_days)
    con = connect(tables) if con is None else con
    labels = build_labels(tables, dates, label_config, con=con)
    features = build_feature_table_from(con, dates, feature_set=feature_set)
    return join_training_table(features, labels, target, label_config, feature_set)


def join_training_table(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    target: str,
    label_config: LabelConfig,
    feature_set: FeatureSet | None = None,
) -> pd.DataFrame:
    """Features of the target's labelled population joined with its label and future value.

    The last step of :func:`build_training_table`.
    """
    label = TARGETS[target]
    population = labels.loc[labels[label].notna(), [label, *VALUE_COLUMNS]]
    check_features_cover(population.index, features)
    table = features.loc[population.index].copy()
    table[label] = population[label].astype("bool")
    for name in VALUE_COLUMNS:
        table[name] = population[name]
    table.attrs = {
        "target": target,
        "label": label,
        "population": POPULATIONS[target],
        "horizon_days": label_config.horizon_days,
        "feature_set": None if feature_set is None else feature_set.name,
        "omitted_features": list(features.attrs.get("omitted_features", [])),
    }
    return table
