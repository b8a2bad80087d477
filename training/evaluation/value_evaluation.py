"""Rolling-origin evaluation of value models and their baselines.

Each test origin is one cutoff of the value table; its training cutoffs are the
latest ones at least ``horizon_days`` before it (so no training label reads the
test period), and early stopping watches a hold-out of customers drawn from
those training cutoffs (a later validation period would need a third horizon of
history, which a year-long horizon rarely has). Every scorer -- each model variant
and each baseline -- is fitted and scored on the same rows; the metrics are
reported per origin and as the mean over origins, with paired-bootstrap
intervals of the model's Gini gain over each baseline.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from features.training_table import monthly_cutoffs
from features.value_table import VALUE_LABEL, value_targets
from training.evaluation.value_baselines import value_baselines
from training.evaluation.value_metrics import paired_bootstrap_delta, value_metrics
from training.model.value_model import VALUE_MODEL_VARIANTS, WinbackValueRegressor
from training.split import _rows_at, table_cutoffs

#: Builds an unfitted model for a variant and the feature set the table provides.
ModelFactory = Callable[[str, FeatureSet], WinbackValueRegressor]


@dataclass(frozen=True)
class ValueOrigin:
    """One test origin: its cutoff and the training cutoffs at least a horizon before it."""

    test_cutoff: pd.Timestamp
    train_cutoffs: tuple[pd.Timestamp, ...]


def value_origins(
    table: pd.DataFrame, *, horizon_days: int, test_origins: int = 3, train_cutoffs: int = 12
) -> list[ValueOrigin]:
    """The latest ``test_origins`` cutoffs that have training cutoffs a horizon before them.

    Fewer origins come back when the history has fewer; the caller reports it.

    Raises
    ------
    ValueError
        When no cutoff has a training cutoff ``horizon_days`` or more before it.
    """
    cutoffs = table_cutoffs(table)
    gap = pd.Timedelta(days=horizon_days)
    out: list[ValueOrigin] = []
    for test in reversed(cutoffs):
        train = [c for c in cutoffs if c + gap <= test][-train_cutoffs:]
        if train and len(out) < test_origins:
            out.append(ValueOrigin(test, tuple(train)))
    if not out:
        raise ValueError(
            f"no cutoff of {[str(c.date()) for c in cutoffs]} has a training cutoff at least "
            f"{horizon_days} days before it: use more history or a shorter value horizon"
        )
    return sorted(out, key=lambda o: o.test_cutoff)


def value_cutoffs(
    tables: ShopTables,
    horizon_days: int,
    *,
    test_origins: int = 3,
    train_cutoffs: int = 12,
    every_days: int = 30,
) -> list[dt.date]:
    """Cutoffs every ``every_days`` days covering the test origins and their training cutoffs.

    The latest is the last cutoff whose horizon is observed; going back, the
    ``test_origins`` origins, then the gap of a horizon, then ``train_cutoffs``
    training cutoffs for the earliest origin (fewer when the history is shorter).
    """
    gap = -(-horizon_days // every_days)  # cutoffs inside one horizon, rounded up
    count = test_origins - 1 + gap + train_cutoffs
    return monthly_cutoffs(tables, horizon_days, every_days, count=count)


def customer_holdout(table: pd.DataFrame, share: float = 0.2) -> np.ndarray:
    """A stable boolean mask of about ``share`` of the customers (all their rows), by id hash."""
    ids = table.index.get_level_values("customer_id").astype(str)
    buckets = np.array([zlib.crc32(i.encode()) % 1000 for i in ids])
    return buckets < int(round(share * 1000))


@dataclass
class ValueEvaluation:
    """What a rolling-origin value evaluation measured.

    ``predictions`` holds one row per (origin, customer): ``origin``, ``y`` and one
    column per scorer; ``per_origin`` one row per (origin, scorer) of
    :func:`training.evaluation.value_metrics.value_metrics`; ``mean`` the mean over origins
    per scorer; ``deltas`` the Gini gain of each model over each baseline.
    """

    predictions: pd.DataFrame
    per_origin: pd.DataFrame
    mean: pd.DataFrame
    deltas: pd.DataFrame
    models: dict[str, WinbackValueRegressor] = field(default_factory=dict)


def fit_with_holdout(model: WinbackValueRegressor, train: pd.DataFrame) -> WinbackValueRegressor:
    """Fit on the training rows, stopping early on a customer hold-out of them."""
    holdout = customer_holdout(train)
    fit_rows, valid_rows = train[~holdout], train[holdout]
    names = list(model.feature_set.names)
    return model.fit(
        fit_rows[names],
        value_targets(fit_rows),
        eval_set=(valid_rows[names], value_targets(valid_rows)),
    )


def _score_origin(
    table: pd.DataFrame,
    origin: ValueOrigin,
    factory: ModelFactory,
    variants: Sequence[str],
    feature_set: FeatureSet,
    summary: pd.DataFrame | None,
) -> tuple[pd.DataFrame, dict[str, WinbackValueRegressor]]:
    horizon = int(table.attrs["horizon_days"])
    train = _rows_at(table, list(origin.train_cutoffs))
    test = _rows_at(table, [origin.test_cutoff])
    out = pd.DataFrame({"origin": origin.test_cutoff, "y": value_targets(test)}, index=test.index)
    baselines = value_baselines(horizon, summary)
    for name, baseline in baselines.items():
        out[name] = baseline.fit(train).predict(test)
    if "btyd" in baselines:  # the fitted BTYD models' view of each customer, as features
        train = train.join(baselines["btyd"].features(train))
        test = test.join(baselines["btyd"].features(test))
    used = feature_set.subset(train.columns)
    models = {}
    for variant in variants:
        models[variant] = fit_with_holdout(factory(variant, used), train)
        out[variant] = models[variant].predict(test[list(used.names)])
    return out, models


def evaluate_value_models(
    table: pd.DataFrame,
    feature_set: FeatureSet,
    *,
    summary: pd.DataFrame | None = None,
    variants: Sequence[str] = tuple(VALUE_MODEL_VARIANTS),
    test_origins: int = 3,
    factory: ModelFactory | None = None,
    n_boot: int = 200,
) -> ValueEvaluation:
    """Fit each model variant and each baseline at every origin; metrics per origin, mean and CIs.

    Parameters
    ----------
    table
        A value table (``features.value_table.build_value_table``) over many cutoffs.
    feature_set
        The model's features; the ``btyd_*`` ones (``training.evaluation.value_baselines.BTYD_FEATURES``)
        come from the BG/NBD x Gamma-Gamma baseline fitted at each origin (when
        ``summary`` is given), the others from the table.
    summary
        ``training.evaluation.value_baselines.value_summary_at_cutoffs`` at the table's
        cutoffs, for the BG/NBD x Gamma-Gamma baseline (skipped without it).
    variants
        Model variants to compare (names of ``training.model.value_model.VALUE_MODEL_VARIANTS``
        unless ``factory`` knows others).
    factory
        Builds an unfitted model for a variant and the features present;
        ``WinbackValueRegressor(used, **VALUE_MODEL_VARIANTS[variant])`` by default.
    """
    if VALUE_LABEL not in table.columns or "horizon_days" not in table.attrs:
        raise ValueError("evaluate_value_models needs a value table (build_value_table)")
    if factory is None:

        def factory(variant: str, used: FeatureSet) -> WinbackValueRegressor:
            return WinbackValueRegressor(used, **VALUE_MODEL_VARIANTS[variant])

    origins = value_origins(
        table, horizon_days=int(table.attrs["horizon_days"]), test_origins=test_origins
    )
    frames, models = [], {}
    for origin in origins:
        scored, models = _score_origin(table, origin, factory, variants, feature_set, summary)
        frames.append(scored)
    predictions = pd.concat(frames)
    scorers = [c for c in predictions.columns if c not in ("origin", "y")]
    per_origin = pd.DataFrame(
        [
            {"origin": origin, "scorer": name, **value_metrics(rows["y"], rows[name])}
            for origin, rows in predictions.groupby("origin", sort=True)
            for name in scorers
        ]
    )
    mean = per_origin.drop(columns="origin").groupby("scorer", sort=False).mean()
    baselines = [s for s in scorers if s not in variants]
    deltas = pd.DataFrame(
        [
            {
                "model": variant,
                "baseline": name,
                **paired_bootstrap_delta(
                    predictions["y"],
                    predictions[variant],
                    predictions[name],
                    groups=predictions["origin"],
                    n_boot=n_boot,
                ),
            }
            for variant in variants
            for name in baselines
        ]
    )
    return ValueEvaluation(predictions, per_origin, mean, deltas, models)
