"""The deployable value model: BTYD features, the regressor and its yardsticks, fitted together.

A value prediction needs three fitted things that must travel together: the
BG/NBD and Gamma-Gamma parameters behind the ``btyd_*`` features, the LightGBM
regressor and the training medians its reason codes compare against. This
module fits them on the latest observed cutoffs and applies them to a scoring
frame, so training, the registry and serving share one object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.feature_sets import MODEL_DERIVED_FEATURES, FeatureSet
from features.value_table import value_targets
from training.evaluation.bgnbd import BetaGeoFitter
from training.evaluation.gamma_gamma import GammaGammaFitter
from training.evaluation.value_baselines import BtydValueBaseline, btyd_features
from training.evaluation.value_evaluation import fit_with_holdout
from training.model.value_model import VALUE_MODEL_VARIANTS, WinbackValueRegressor
from training.model.value_reasons import value_reason_codes, value_reference
from training.split import table_cutoffs

#: The variant chosen by the rolling-origin evaluation (see benchmarks/value_quality.py).
DEFAULT_VARIANT = "tweedie_btyd"


@dataclass
class FittedValueModel:
    """Everything a value prediction needs, fitted on the same training cutoffs.

    ``predict`` takes the feature frame of the customers to score and their
    ``training.evaluation.value_baselines.value_summary_at_cutoffs`` rows at the same
    cutoff (both indexed by ``customer_id``, or by (``cutoff``, ``customer_id``)).
    """

    horizon_days: int
    value_basis: str
    variant: str
    regressor: WinbackValueRegressor
    bgnbd: BetaGeoFitter
    gamma_gamma: GammaGammaFitter
    reference: dict[str, float]
    train_cutoffs: list[str] = field(default_factory=list)

    def _inputs(self, features: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
        rows = summary.reindex(features.index)
        derived = btyd_features(self.bgnbd, self.gamma_gamma, self.horizon_days, rows)
        plain = features.drop(columns=[c for c in MODEL_DERIVED_FEATURES if c in features])
        return plain.join(derived)

    def predict(self, features: pd.DataFrame, summary: pd.DataFrame) -> np.ndarray:
        """Expected ``value_basis`` over ``horizon_days`` for each row of ``features``."""
        inputs = self._inputs(features, summary)
        return self.regressor.predict(inputs[list(self.regressor.feature_set_.names)])

    def reasons(self, features: pd.DataFrame, summary: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """Value reason codes (``reason_1..top``, ``reason_code_1..top``) per row."""
        inputs = self._inputs(features, summary)[list(self.regressor.feature_set_.names)]
        return value_reason_codes(
            self.regressor.contributions(inputs),
            inputs,
            reference=self.reference,
            horizon_days=self.horizon_days,
            top=top,
        )

    def describe(self) -> dict[str, object]:
        """Parameters worth logging with the model."""
        return {
            "horizon_days": self.horizon_days,
            "value_basis": self.value_basis,
            "variant": self.variant,
            "train_cutoffs": self.train_cutoffs,
            "best_iteration": self.regressor.best_iteration_,
            **{f"bgnbd_{k}": v for k, v in self.bgnbd.params_.as_dict().items()},
            **{f"gamma_gamma_{k}": v for k, v in self.gamma_gamma.params_.as_dict().items()},
        }


def fit_value_model(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    feature_set: FeatureSet,
    *,
    variant: str = DEFAULT_VARIANT,
    train_cutoffs: int = 12,
    num_threads: int = 2,
) -> FittedValueModel:
    """Fit the BTYD models and the regressor on the latest ``train_cutoffs`` cutoffs of ``table``.

    Every cutoff of a value table has an observed horizon, so the latest ones
    are the most recent behaviour a model can learn from; early stopping
    watches a customer hold-out of them.
    """
    if variant not in VALUE_MODEL_VARIANTS:
        raise ValueError(f"unknown value model variant {variant!r}: {sorted(VALUE_MODEL_VARIANTS)}")
    cutoffs = table_cutoffs(table)[-train_cutoffs:]
    train = table[table.index.get_level_values("cutoff").isin(cutoffs)]
    value_targets(train)  # a clear error for a table without the label
    horizon = int(table.attrs["horizon_days"])
    btyd = BtydValueBaseline(horizon, summary).fit(train)
    train = train.join(btyd.features(train))
    used = feature_set.subset(train.columns)
    regressor = fit_with_holdout(
        WinbackValueRegressor(used, num_threads=num_threads, **VALUE_MODEL_VARIANTS[variant]), train
    )
    return FittedValueModel(
        horizon_days=horizon,
        value_basis=str(table.attrs.get("value_basis", "margin")),
        variant=variant,
        regressor=regressor,
        bgnbd=btyd.bgnbd_,
        gamma_gamma=btyd.gamma_gamma_,
        reference=value_reference(train[list(used.names)]),
        train_cutoffs=[str(c.date()) for c in cutoffs],
    )
