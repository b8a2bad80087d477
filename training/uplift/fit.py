"""Fitting the uplift model on past campaigns and judging it on held-out customers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from training.uplift.data import campaign_training_table
from training.uplift.model import UpliftModel, qini_coefficient, qini_curve


@dataclass(frozen=True)
class UpliftConfig:
    """How the uplift model is trained and judged.

    Parameters
    ----------
    learner
        ``"t"`` or ``"x"`` (see :class:`UpliftModel`).
    outcome_days
        Outcome window after each contact (the simulator's campaigns count 60 days).
    test_share
        Share of customers held out for the Qini (split by customer, so a
        customer contacted twice is on one side only).
    n_estimators, learning_rate, num_leaves, min_child_samples
        LightGBM parameters of the inner models.
    random_state
        Seed of the split and of LightGBM.
    """

    learner: Literal["t", "x"] = "t"
    outcome_days: int = 60
    test_share: float = 0.3
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 100
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.learner not in ("t", "x"):
            raise ValueError(f"UpliftConfig.learner must be 't' or 'x', got {self.learner!r}")
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"UpliftConfig.test_share must be in (0, 1), got {self.test_share}")

    def model(self) -> UpliftModel:
        return UpliftModel(
            self.learner,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            random_state=self.random_state,
        )


@dataclass(frozen=True)
class UpliftResult:
    """A fitted uplift model and how it ranks held-out contacts."""

    model: UpliftModel
    config: UpliftConfig
    qini_test: float
    qini_curve_test: pd.DataFrame = field(repr=False)
    test_uplift: np.ndarray = field(repr=False)
    test_mask: np.ndarray = field(repr=False)
    train_rows: int = 0
    test_rows: int = 0

    def metrics(self) -> dict[str, float]:
        return {
            "qini_test": self.qini_test,
            "train_rows": float(self.train_rows),
            "test_rows": float(self.test_rows),
        }


def held_out_mask(customer_ids: pd.Series | pd.Index, test_share: float, seed: int) -> np.ndarray:
    """True for the rows of the held-out customers (a seeded hash of ``customer_id``)."""
    ids = pd.Series(np.asarray(customer_ids, dtype=object)).astype(str)
    key = f"{seed:016d}"[-16:]
    hashed = pd.util.hash_pandas_object(ids, index=False, hash_key=key).to_numpy(dtype=np.uint64)
    return (hashed % np.uint64(10_000)).astype(np.int64) < int(round(test_share * 10_000))


def fit_uplift(
    X: pd.DataFrame,
    treatment: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    customer_ids: pd.Series | pd.Index | np.ndarray,
    config: UpliftConfig = UpliftConfig(),
) -> UpliftResult:
    """Fit on the training customers, report the Qini coefficient on the held-out ones.

    The returned model is the one fitted on the training part (the Qini describes
    exactly that model).
    """
    t = np.asarray(treatment, dtype=bool)
    outcome = np.asarray(y, dtype=bool)
    test = held_out_mask(customer_ids, config.test_share, config.random_state)
    if test.all() or not test.any():
        raise ValueError(
            f"the held-out split left {int((~test).sum())} training and {int(test.sum())} test "
            f"rows: use more customers or another test_share"
        )
    model = config.model().fit(X[~test], t[~test], outcome[~test])
    uplift = model.predict_uplift(X[test])
    curve = qini_curve(outcome[test], t[test], uplift)
    return UpliftResult(
        model=model,
        config=config,
        qini_test=qini_coefficient(outcome[test], t[test], uplift),
        qini_curve_test=curve,
        test_uplift=uplift,
        test_mask=test,
        train_rows=int((~test).sum()),
        test_rows=int(test.sum()),
    )


def fit_campaign_uplift(
    tables: ShopTables,
    config: UpliftConfig = UpliftConfig(),
    *,
    feature_set: FeatureSet | None = None,
) -> tuple[UpliftResult, pd.DataFrame]:
    """Build the campaign table from ``campaign_contacts`` and fit :func:`fit_uplift` on it.

    Returns the result and the table (its ``attrs["feature_columns"]`` are the model inputs).
    """
    table = campaign_training_table(
        tables, feature_set=feature_set, outcome_days=config.outcome_days
    )
    columns = table.attrs["feature_columns"]
    result = fit_uplift(
        table[columns],
        table["treatment"].to_numpy(),
        table["reactivated"].to_numpy(),
        table.index.get_level_values("customer_id"),
        config,
    )
    return result, table
