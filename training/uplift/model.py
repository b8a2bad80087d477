"""The uplift model for win-back campaigns: who comes back *because* of the contact.

A reactivation model ranks lapsed customers by how likely they are to buy again;
many of them would have bought anyway. Past campaigns with random control
groups (``campaign_contacts``) tell the two apart: the uplift of a customer is
``P(reactivate | contacted) - P(reactivate | not contacted)``.

* :func:`campaign_training_table` joins every past contact with the customer's
  point-in-time features as of the day before the contact and the outcome in the
  ``outcome_days`` after it (any purchase; margin).
* :class:`UpliftModel` is a T-learner (one LightGBM classifier per group, uplift
  = difference of their probabilities) or an X-learner (Künzel et al. 2019:
  imputed individual effects regressed per group, blended by the propensity).
* :func:`qini_curve` / :func:`qini_coefficient` judge the ranking on a held-out
  part: incremental outcomes captured when targeting the top of the ranking,
  against targeting at random.
* :func:`fit_uplift` wires split, fit and held-out Qini;
  :func:`log_uplift_model` saves the fitted model as an MLflow artifact of a run
  in the experiment ``winback-uplift``;
* :func:`train_uplift` (``winback train --target uplift``) fits, logs and
  registers it as a version of the registered model ``winback-uplift``, whose
  ``champion`` alias moves only through the registry's gate
  (``training.tracking.model_registry.promote_if_better``) on held-out Qini: the current
  champion is scored on the *same* held-out contacts. Win-back lists use that
  champion by default (:func:`champion_uplift_location`, :func:`load_uplift_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from features.feature_sets import FeatureSet
from training.model.classifier import WinbackClassifier, infer_feature_set

# -------------------------------------------------------------- training table


# ---------------------------------------------------------------------- model


class UpliftModel(BaseEstimator):
    """T- or X-learner with LightGBM: estimated uplift of a contact on a binary outcome.

    The outcome models are :class:`training.model.classifier.WinbackClassifier` (uncalibrated,
    no early stopping), so LightGBM settings, categorical encoding and the
    feature-set check are the churn/VIP/reactivation models' own.

    Parameters
    ----------
    learner
        ``"t"``: uplift = P(y | treated, x) - P(y | control, x), one classifier per
        group. ``"x"``: the X-learner, which borrows strength from the larger group
        (useful when the control group is small, as it is in campaigns).
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree, reg_lambda
        LightGBM parameters of every inner model (small trees: effects are noisy).
    num_threads
        LightGBM threads; fixed for reproducibility. One by default: campaign tables
        are small, and on a busy machine more threads spin and slow LightGBM down
        by an order of magnitude.
    random_state
        Seed of LightGBM's sampling.
    """

    def __init__(
        self,
        learner: Literal["t", "x"] = "t",
        *,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 100,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.learner = learner
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.num_threads = num_threads
        self.random_state = random_state

    def _classifier(self, feature_set: FeatureSet | None) -> WinbackClassifier:
        """An outcome model: the shared classifier, uncalibrated (uplift is a difference)."""
        return WinbackClassifier(
            feature_set,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            calibration="none",
            num_threads=self.num_threads,
            random_state=self.random_state,
        )

    def _regressor(self) -> lgb.LGBMRegressor:
        """An X-learner effect model with exactly the outcome models' LightGBM settings."""
        params = self._classifier(None)._lgbm().get_params()
        for key in ("objective", "metric"):
            params.pop(key, None)
        return lgb.LGBMRegressor(**params)

    def fit(
        self,
        X: pd.DataFrame,
        treatment: Sequence[bool] | np.ndarray | pd.Series,
        y: Sequence[bool] | np.ndarray | pd.Series,
    ) -> UpliftModel:
        """Fit on contacts: features ``X``, ``treatment`` (True = contacted), outcome ``y``."""
        if self.learner not in ("t", "x"):
            raise ValueError(f"learner={self.learner!r}: use 't' or 'x'")
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        t = np.asarray(treatment, dtype=bool)
        outcome = np.asarray(y, dtype=bool).astype(np.int64)
        if len(t) != len(X) or len(outcome) != len(X):
            raise ValueError(f"X has {len(X)} rows, treatment {len(t)}, y {len(outcome)}")
        for name, mask in (("treatment", t), ("control", ~t)):
            values = np.unique(outcome[mask])
            if len(values) < 2:
                raise ValueError(
                    f"the {name} group ({int(mask.sum())} rows) has a single outcome class: "
                    f"an uplift model needs buyers and non-buyers in both groups"
                )
        feature_set = infer_feature_set(X, "uplift")
        self.feature_names_ = feature_set.names
        self.propensity_ = float(t.mean())
        self.model_control_ = self._classifier(feature_set).fit(X[~t], outcome[~t])
        self.model_treatment_ = self._classifier(feature_set).fit(X[t], outcome[t])
        if self.learner == "x":
            mu0 = self.model_control_.predict_proba(X)
            mu1 = self.model_treatment_.predict_proba(X)
            Xe = self.model_control_._encode(X)
            self.effect_treated_ = self._regressor().fit(Xe[t], outcome[t] - mu0[t])
            self.effect_control_ = self._regressor().fit(Xe[~t], mu1[~t] - outcome[~t])
        return self

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(P(y | control, x), P(y | treated, x))`` of each row."""
        return self.model_control_.predict_proba(X), self.model_treatment_.predict_proba(X)

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """Estimated uplift of contacting each row (a difference of probabilities).

        Raises ``features.feature_sets.FeatureSetMismatch`` (a ``ValueError``)
        naming the columns ``X`` lacks.
        """
        if self.learner == "x":
            Xe = self.model_control_._encode(X)
            tau_treated = self.effect_treated_.predict(Xe)
            tau_control = self.effect_control_.predict(Xe)
            g = self.propensity_
            return np.clip(g * tau_control + (1 - g) * tau_treated, -1.0, 1.0)
        p0, p1 = self.predict_outcomes(X)
        return p1 - p0

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_control_")


# ---------------------------------------------------------------------- Qini


def qini_curve(
    y: np.ndarray | pd.Series, treatment: np.ndarray | pd.Series, uplift: np.ndarray | pd.Series
) -> pd.DataFrame:
    """Incremental outcomes captured when targeting the top of the uplift ranking.

    At each cut (the top ``k`` rows; rows tied on the score enter together) the
    Qini value is ``Y_t(k) - Y_c(k) * N_t(k) / N_c(k)``: treated outcomes minus
    control outcomes scaled to the treated count. Returns ``fraction`` (k / n),
    ``targeted`` (k) and ``incremental`` (the Qini value), starting at (0, 0).
    """
    outcome = np.asarray(y, dtype="float64")
    t = np.asarray(treatment, dtype=bool)
    score = np.asarray(uplift, dtype="float64")
    n = len(outcome)
    if not (len(t) == n == len(score)):
        raise ValueError(f"y, treatment and uplift lengths differ: {n}, {len(t)}, {len(score)}")
    if n == 0:
        raise ValueError("the Qini curve needs at least one row")
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    s, o, tr = score[order], outcome[order], t[order]
    n_t = np.cumsum(tr)
    n_c = np.cumsum(~tr)
    y_t = np.cumsum(o * tr)
    y_c = np.cumsum(o * ~tr)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(n_c > 0, y_c * n_t / np.maximum(n_c, 1), 0.0)
    incremental = y_t - scaled
    # keep only the end of each group of tied scores
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    targeted = np.r_[0, ends + 1]
    return pd.DataFrame(
        {
            "fraction": targeted / n,
            "targeted": targeted,
            "incremental": np.r_[0.0, incremental[ends]],
        }
    )


def qini_coefficient(
    y: np.ndarray | pd.Series, treatment: np.ndarray | pd.Series, uplift: np.ndarray | pd.Series
) -> float:
    """Area between the Qini curve and random targeting, per customer of the population.

    Both axes are normalised by the number of rows n (x: share targeted, y:
    incremental outcomes / n), so the coefficient is comparable across sizes:
    0 is no better than random, positive means the ranking puts the customers
    who respond *because* of the contact first.
    """
    curve = qini_curve(y, treatment, uplift)
    n = curve["targeted"].iloc[-1]
    x = curve["fraction"].to_numpy()
    q = curve["incremental"].to_numpy() / n
    area = float(np.sum((x[1:] - x[:-1]) * (q[1:] + q[:-1]) / 2.0))
    return area - q[-1] / 2.0


def plot_qini(curve: pd.DataFrame, *, ax: Any = None) -> Any:
    """The Qini curve against random targeting; returns the matplotlib Axes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    ax.plot(curve["fraction"], curve["incremental"], label="uplift model")
    ax.plot([0, 1], [0, curve["incremental"].iloc[-1]], "--", color="grey", label="random")
    ax.set_xlabel("share targeted")
    ax.set_ylabel("incremental outcomes")
    ax.legend()
    return ax


# ------------------------------------------------------------------- wiring


# ------------------------------------------------------------ save and load


# ---------------------------------------------------------------- registry
