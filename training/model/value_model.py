"""The winback value model: LightGBM regression of each customer's future margin.

Money in a horizon is skewed and zero-heavy: most customers bring nothing, a few
bring a lot, returns make a handful negative. Two losses fit that shape:

* ``"tweedie"``: one LightGBM with the Tweedie deviance (a compound
  Poisson-gamma: a point mass at 0 plus a continuous positive part) and a log
  link, so it predicts a mean and never a negative one;
* ``"hurdle"``: ``P(buys) x E[value | buys]`` -- a calibrated classifier of a
  positive value times a gamma regression fitted on the customers who brought
  some -- two models, each with a simpler job.

Targets below 0 (net returns) are fitted as 0: both losses model non-negative
money, and a customer who only returned things is worth nothing to contact.
``training.evaluation.value_evaluation`` compares the two on the same origins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError

from features.feature_sets import FeatureSet
from training.model.classifier import (
    BIAS_COLUMN,
    WinbackClassifier,
    category_values,
    encode_features,
    infer_feature_set,
)

LOSSES = ("tweedie", "hurdle")
#: The model variants compared by the evaluation: keyword arguments of the regressor.
VALUE_MODEL_VARIANTS: dict[str, dict[str, Any]] = {
    "tweedie": {"loss": "tweedie"},
    "tweedie_btyd": {"loss": "tweedie", "offset": "btyd_expected_value"},
    "hurdle": {"loss": "hurdle"},
}

#: Regularised defaults: value targets are noisy, so small leaves and many samples per leaf.
DEFAULT_LIGHTGBM: dict[str, Any] = {
    "n_estimators": 2000,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 100,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "tweedie_variance_power": 1.5,
}
#: Offsets below this (a customer the prior gives nothing) are floored before the log.
OFFSET_FLOOR = 1e-3


def _as_values(y: Any, n_rows: int) -> np.ndarray:
    values = np.asarray(y, dtype=float)
    if values.shape != (n_rows,):
        raise ValueError(f"X has {n_rows} rows but y has shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"y has {int(np.isnan(values).sum())} missing values")
    return np.clip(values, 0.0, None)


class WinbackValueRegressor(RegressorMixin, BaseEstimator):
    """Expected future value of each customer from point-in-time features.

    Parameters
    ----------
    feature_set
        Columns (and kinds) to use; inferred from ``X`` in ``fit`` when None.
    loss
        ``"tweedie"`` or ``"hurdle"`` (see the module docstring).
    lightgbm
        LightGBM parameters (scikit-learn API names) over :data:`DEFAULT_LIGHTGBM`;
        ``tweedie_variance_power`` between 1 (Poisson) and 2 (gamma).
    offset
        A feature column holding a prior expected value (e.g. ``btyd_expected_value``):
        the Tweedie model then starts from ``log(offset)`` (shifted so that it
        sums to the training targets) and its trees learn only the correction,
        so early stopping falls back to the prior where the features add
        nothing. Tweedie only.
    early_stopping_rounds
        Stop when the validation deviance has not improved for this many rounds.
    num_threads, random_state
        Fixed so that results are reproducible.
    """

    def __init__(
        self,
        feature_set: FeatureSet | None = None,
        *,
        loss: Literal["tweedie", "hurdle"] = "tweedie",
        lightgbm: Mapping[str, Any] | None = None,
        offset: str | None = None,
        early_stopping_rounds: int = 50,
        num_threads: int = 2,
        random_state: int = 0,
    ) -> None:
        self.feature_set = feature_set
        self.loss = loss
        self.lightgbm = lightgbm
        self.offset = offset
        self.early_stopping_rounds = early_stopping_rounds
        self.num_threads = num_threads
        self.random_state = random_state

    def _params(self) -> dict[str, Any]:
        params = {**DEFAULT_LIGHTGBM, **dict(self.lightgbm or {})}
        params.update(
            random_state=self.random_state,
            n_jobs=self.num_threads,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        return params

    def fit(
        self, X: pd.DataFrame, y, *, eval_set: tuple[pd.DataFrame, Any] | None = None
    ) -> WinbackValueRegressor:
        """Fit on ``(X, y)``, stopping early on ``eval_set`` (a later period or a hold-out)."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}; use one of {LOSSES}")
        if self.offset is not None and (self.loss != "tweedie" or self.offset not in X.columns):
            raise ValueError(
                f"offset={self.offset!r} needs loss='tweedie' and a column of that name in X"
            )
        feature_set = self.feature_set or infer_feature_set(X)
        feature_set.check(X)
        self.feature_set_ = feature_set
        self.feature_names_in_ = np.asarray(feature_set.names, dtype=object)
        self.n_features_in_ = len(feature_set.names)
        self.categories_ = {c: category_values(X[c]) for c in feature_set.categorical}
        values = _as_values(y, len(X))
        if not (values > 0).any():
            raise ValueError("y has no positive value: nothing to learn a customer value from")
        held_out = None
        if eval_set is not None:
            held_out = (eval_set[0], _as_values(eval_set[1], len(eval_set[0])))
        if self.offset is not None:
            # start from the prior's ranking at the training data's level: the trees then
            # spend their rounds on the ranking, not on moving the mean
            prior = np.maximum(X[self.offset].to_numpy(dtype=float), OFFSET_FLOOR)
            self.offset_shift_ = float(np.log(values.sum() / prior.sum()))
        if self.loss == "tweedie":
            self.booster_, self.best_iteration_ = self._fit_booster(
                X, values, held_out, objective="tweedie"
            )
            return self
        buys = values > 0
        self.buyer_model_ = WinbackClassifier(
            feature_set,
            **{k: v for k, v in self._params().items() if k in _CLASSIFIER_KEYS},
            early_stopping_rounds=self.early_stopping_rounds,
            eval_metric="binary_logloss",
            num_threads=self.num_threads,
            random_state=self.random_state,
        ).fit(
            X,
            buys,
            eval_set=None if held_out is None else (held_out[0], held_out[1] > 0),
        )
        positive = None
        if held_out is not None and (held_out[1] > 0).any():
            keep = held_out[1] > 0
            positive = (held_out[0][keep], held_out[1][keep])
        self.booster_, self.best_iteration_ = self._fit_booster(
            X[buys], values[buys], positive, objective="gamma"
        )
        return self

    def log_offset(self, X: pd.DataFrame) -> np.ndarray | None:
        """``log(offset)`` per row (floored) plus the fitted level shift, or None without one."""
        if self.offset is None:
            return None
        raw = np.log(np.maximum(X[self.offset].to_numpy(dtype=float), OFFSET_FLOOR))
        return raw + getattr(self, "offset_shift_", 0.0)

    def _fit_booster(
        self, X: pd.DataFrame, y: np.ndarray, eval_set, *, objective: str
    ) -> tuple[lgb.Booster, int]:
        params = self._params()
        if objective != "tweedie":
            params.pop("tweedie_variance_power", None)
        model = lgb.LGBMRegressor(objective=objective, **params)
        kwargs: dict[str, Any] = {
            "categorical_feature": self.feature_set_.categorical or "auto",
            "init_score": self.log_offset(X),
        }
        if eval_set is not None:
            kwargs["eval_X"] = (self._encode(eval_set[0]),)
            kwargs["eval_y"] = (eval_set[1],)
            if self.offset is not None:
                kwargs["eval_init_score"] = [self.log_offset(eval_set[0])]
            kwargs["callbacks"] = [
                lgb.early_stopping(
                    self.early_stopping_rounds, first_metric_only=True, verbose=False
                )
            ]
        model.fit(self._encode(X), y, **kwargs)
        return model.booster_, int(model.best_iteration_ or model.n_estimators)

    def trees(self) -> tuple[lgb.Booster, int | None]:
        """The fitted booster and the tree count early stopping chose (see :meth:`log_offset`)."""
        self._check_fitted()
        return self.booster_, self.best_iteration_

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("WinbackValueRegressor is not fitted yet; call fit(X, y) first")

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        return encode_features(X, self.feature_set_, self.categories_)

    def _booster_predict(self, X: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        return np.asarray(
            self.booster_.predict(
                self._encode(X),
                num_iteration=self.best_iteration_,
                num_threads=self.num_threads,
                **kwargs,
            ),
            dtype="float64",
        )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected value over the horizon for each row (never negative)."""
        self._check_fitted()
        if self.offset is not None:
            return np.exp(self._booster_predict(X, raw_score=True) + self.log_offset(X))
        mean = self._booster_predict(X)
        if self.loss == "hurdle":
            mean = mean * self.buyer_model_.predict_proba(X)
        return mean

    def predict_parts(self, X: pd.DataFrame) -> pd.DataFrame:
        """For a hurdle model, ``p_buys`` and ``value_if_buys`` (their product is ``predict``)."""
        self._check_fitted()
        if self.loss != "hurdle":
            raise ValueError(f"predict_parts needs loss='hurdle', the model has {self.loss!r}")
        return pd.DataFrame(
            {
                "p_buys": self.buyer_model_.predict_proba(X),
                "value_if_buys": self._booster_predict(X),
            },
            index=X.index,
        )

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP contributions in log-value units (plus ``bias``), for reason codes.

        The Tweedie model's raw score is the log of the expected value, so these
        sum to ``log(predict)``; an ``offset``'s log is credited to its own
        column. For a hurdle they add the buyer model's log-odds
        contributions to the spend model's log ones: an approximation that ranks
        the features pushing value up, not an exact decomposition.
        """
        self._check_fitted()
        values = self._booster_predict(X, pred_contrib=True)
        if self.loss == "hurdle":
            values = values + self.buyer_model_.contributions(X).to_numpy()
        if self.offset is not None:
            values[:, self.feature_set_.names.index(self.offset)] += self.log_offset(X)
        columns = [*self.feature_set_.names, BIAS_COLUMN]
        return pd.DataFrame(values, index=X.index, columns=columns)

    def feature_importance(self) -> pd.Series:
        """Total gain per feature of the value (or, for a hurdle, the spend) booster."""
        self._check_fitted()
        gain = self.booster_.feature_importance(
            importance_type="gain", iteration=self.best_iteration_
        )
        return pd.Series(gain, index=self.feature_set_.names, name="gain").sort_values(
            ascending=False, kind="stable"
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")


#: LightGBM parameters the hurdle's buyer classifier takes from the value model's settings.
_CLASSIFIER_KEYS = frozenset(
    {
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "min_child_samples",
        "subsample",
        "subsample_freq",
        "colsample_bytree",
        "reg_lambda",
        "reg_alpha",
        "max_depth",
        "min_split_gain",
    }
)
