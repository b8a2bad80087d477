"""BG/NBD expected purchases as a model feature, and the experiment that checks it helps.

The BG/NBD parameters are fitted on the training cutoffs' RFM summaries only, so
the feature at a cutoff uses nothing after it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.feature_sets import FeatureSet
from training.config import TrainConfig
from training.evaluation.run_report import xy
from training.model.classifier import classifier_from_config
from training.split import TimeSplit

#: Name of the BG/NBD column added in the feature experiment.
BGNBD_FEATURE = "bgnbd_expected_purchases"


def add_bgnbd_feature(
    rfm: pd.DataFrame, split: TimeSplit, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/validation/test periods with BG/NBD expected purchases as an extra column.

    The BG/NBD parameters are fitted on the training cutoffs' RFM summaries only
    (``rfm`` from ``training.evaluation.bgnbd.rfm_summary_at_cutoffs``).
    """
    from training.evaluation.bgnbd import bgnbd_expected_purchases

    expected = bgnbd_expected_purchases(
        rfm, train_cutoffs=split.train_cutoffs, horizon_days=horizon_days
    )
    lookup = pd.Series(
        expected.to_numpy(dtype="float64"), index=_day_keys(expected.index), name=BGNBD_FEATURE
    )

    def with_feature(period: pd.DataFrame) -> pd.DataFrame:
        out = period.copy()
        out[BGNBD_FEATURE] = lookup.reindex(_day_keys(period.index)).to_numpy(dtype="float64")
        return out

    return with_feature(split.train), with_feature(split.validation), with_feature(split.test)


def _day_keys(index: pd.MultiIndex) -> pd.MultiIndex:
    """(cutoff day as naive datetime64[us], customer_id as str) keys for joining."""
    days = pd.DatetimeIndex(index.get_level_values("cutoff"))
    if days.tz is not None:
        days = days.tz_convert("UTC").tz_localize(None)
    return pd.MultiIndex.from_arrays(
        [days.as_unit("us").normalize(), index.get_level_values("customer_id").astype(str)],
        names=["cutoff", "customer_id"],
    )


def bgnbd_feature_experiment(
    rfm: pd.DataFrame,
    split: TimeSplit,
    feature_set: FeatureSet,
    config: TrainConfig,
    params: dict[str, Any],
    label: str,
    test_auc_without: float,
) -> dict[str, Any]:
    """Refit the model with BG/NBD expected purchases as a feature; report test AUC both ways."""
    from training.evaluation.metrics import classification_metrics

    train, validation, test = add_bgnbd_feature(rfm, split, config.horizon_days)
    extended = FeatureSet(
        f"{feature_set.name}+bgnbd", (*feature_set.columns, (BGNBD_FEATURE, "float64"))
    )
    model = classifier_from_config(config, extended, **params)
    model.fit(*xy(train, extended, label), eval_set=xy(validation, extended, label))
    if config.refit_on_validation:
        model.refit(*xy(pd.concat([train, validation]), extended, label))
    X_test, y_test = xy(test, extended, label)
    with_auc = classification_metrics(y_test, model.predict_proba(X_test))["roc_auc"]
    return {
        "roc_auc_without": float(test_auc_without),
        "roc_auc_with": float(with_auc),
        "roc_auc_change": float(with_auc - test_auc_without),
        "helps": bool(with_auc > test_auc_without),
    }
