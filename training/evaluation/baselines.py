"""Simple baselines every model report is compared against, on the same test cutoff.

Each baseline is a small estimator with ``fit(train_table)`` and
``score(table) -> ndarray`` where a higher score means "more likely positive"
(more churn risk, more VIP potential, more likely to come back). Tables are
training tables from ``features.training_table.build_training_table``:
MultiIndex (``cutoff``, ``customer_id``), feature columns, the label column
and ``future_*`` outcome columns (never used as inputs).

* :class:`RecencyBaseline` -- days since the last order (churn: more days, more
  risk; reactivation: fewer days, more likely), or trailing 12-month spend for vip.
* :class:`RfmBaseline` -- R, F and M quintile scores (1-5, edges learned on the
  training cutoffs) summed.
* :class:`LogisticBaseline` -- logistic regression on the same features
  (median imputation with missing indicators, scaling, one-hot categoricals).
* :class:`BgNbdBaseline` -- BG/NBD expected purchases in the horizon, fitted on
  the training cutoffs' RFM summaries (few expected purchases, high churn risk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from features.training_table import TARGETS, VALUE_COLUMNS
from training.evaluation.bgnbd import RFM_COLUMNS, BetaGeoFitter, cutoff_days
from training.evaluation.metrics import classification_metrics

RECENCY_COLUMN = "days_since_last_order"
FREQUENCY_COLUMN = "order_count_365d"
MONETARY_COLUMN = "spend_365d_amount"

#: Columns of a training table that are outcomes, never inputs.
NON_FEATURE_COLUMNS = frozenset(TARGETS.values()) | frozenset(VALUE_COLUMNS)


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: choose one of {sorted(TARGETS)}")
    return target


def _require(table: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{who} needs columns {missing}, which the table lacks; "
            "build the training table with a feature set that includes them"
        )


def _numeric(table: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The input columns of a training table: numeric or categorical, not labels or outcomes."""
    out = []
    for name, dtype in table.dtypes.items():
        if name in NON_FEATURE_COLUMNS or pd.api.types.is_bool_dtype(dtype):
            continue
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(dtype):
            out.append(str(name))
    return out


class RecencyBaseline:
    """One-column rule: days since the last order (or trailing spend for vip).

    Parameters
    ----------
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"``.
    column
        Override the column; the default is ``days_since_last_order``
        (``spend_365d_amount`` for vip).
    """

    name = "recency"

    def __init__(self, target: str = "churn", column: str | None = None):
        self.target = target
        self.column = column

    def fit(self, table: pd.DataFrame) -> RecencyBaseline:
        """Check the column and learn its median (the score of a missing value)."""
        _check_target(self.target)
        default = MONETARY_COLUMN if self.target == "vip" else RECENCY_COLUMN
        self.column_ = self.column or default
        _require(table, [self.column_], "RecencyBaseline")
        # churn: long since the last order is risky; reactivation: recent lapsers return.
        self.sign_ = -1.0 if self.target == "reactivation" else 1.0
        values = _numeric(table, self.column_)
        self.fill_value_ = float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
        return self

    def score(self, table: pd.DataFrame) -> np.ndarray:
        _require(table, [self.column_], "RecencyBaseline")
        values = _numeric(table, self.column_)
        return self.sign_ * np.where(np.isnan(values), self.fill_value_, values)


def quintile_score(values: np.ndarray, edges: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Scores 1-5 from four quintile edges; 5 is the best fifth. Missing values score 1."""
    values = np.asarray(values, dtype=float)
    if higher_is_better:
        score = 1 + np.searchsorted(edges, values, side="right")
    else:
        score = 5 - np.searchsorted(edges, values, side="left")
    return np.where(np.isnan(values), 1, score).astype(float)


class RfmBaseline:
    """Sum of recency, frequency and monetary quintile scores (3-15).

    Quintile edges are learned on the training table only. A higher RFM sum is
    a more valuable, more engaged customer: for churn the score is ``-rfm``,
    for vip and reactivation ``+rfm``.
    """

    name = "rfm"

    def __init__(
        self,
        target: str = "churn",
        *,
        recency: str = RECENCY_COLUMN,
        frequency: str = FREQUENCY_COLUMN,
        monetary: str = MONETARY_COLUMN,
    ):
        self.target = target
        self.recency = recency
        self.frequency = frequency
        self.monetary = monetary

    def fit(self, table: pd.DataFrame) -> RfmBaseline:
        """Learn the quintile edges of R, F and M on the training table."""
        _check_target(self.target)
        columns = [self.recency, self.frequency, self.monetary]
        _require(table, columns, "RfmBaseline")
        quantiles = [0.2, 0.4, 0.6, 0.8]
        self.edges_ = {}
        for column in columns:
            values = _numeric(table, column)
            if not np.isfinite(values).any():
                raise ValueError(f"RfmBaseline: column {column!r} has no values in the train table")
            self.edges_[column] = np.nanquantile(values, quantiles)
        self.sign_ = -1.0 if self.target == "churn" else 1.0
        return self

    def rfm_score(self, table: pd.DataFrame) -> np.ndarray:
        """R + F + M, each 1-5 (5 = most recent, most frequent, highest spend)."""
        _require(table, [self.recency, self.frequency, self.monetary], "RfmBaseline")
        r = quintile_score(
            _numeric(table, self.recency), self.edges_[self.recency], higher_is_better=False
        )
        f = quintile_score(
            _numeric(table, self.frequency), self.edges_[self.frequency], higher_is_better=True
        )
        m = quintile_score(
            _numeric(table, self.monetary), self.edges_[self.monetary], higher_is_better=True
        )
        return r + f + m

    def score(self, table: pd.DataFrame) -> np.ndarray:
        return self.sign_ * self.rfm_score(table)


class LogisticBaseline:
    """Logistic regression on the model's own features.

    Numeric columns: median imputation with missing-value indicators, then
    standard scaling; categorical columns: one-hot with a ``"missing"`` level
    (unseen categories ignored at scoring).

    Parameters
    ----------
    features
        Input columns; by default every numeric and categorical column that is
        not a label or outcome (see :func:`feature_columns`).
    C, max_iter, random_state
        Passed to :class:`sklearn.linear_model.LogisticRegression`.
    blas_threads
        BLAS threads while fitting and scoring. 1 by default: on these small
        dense problems extra threads only contend (measured 6x slower with 2
        threads on a busy 2-core machine).
    """

    name = "logistic"

    def __init__(
        self,
        features: Sequence[str] | None = None,
        *,
        C: float = 1.0,
        max_iter: int = 2000,
        random_state: int = 0,
        blas_threads: int | None = 1,
    ):
        self.features = features
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.blas_threads = blas_threads

    def _inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        _require(table, self.features_, "LogisticBaseline")
        frame = table[self.features_].copy()
        for column in self.categorical_:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "missing")
            frame[column] = frame[column].astype(str)
        for column in self.numeric_:
            frame[column] = _numeric(frame, column)
        return frame

    def fit(self, table: pd.DataFrame, y=None) -> LogisticBaseline:
        """Fit on the training table; ``y`` defaults to its label column."""
        self.features_ = list(self.features) if self.features is not None else None
        if self.features_ is None:
            self.features_ = feature_columns(table)
        if not self.features_:
            raise ValueError("LogisticBaseline: the table has no feature columns")
        _require(table, self.features_, "LogisticBaseline")
        self.categorical_ = [
            c for c in self.features_ if isinstance(table[c].dtype, pd.CategoricalDtype)
        ]
        # a column missing on every training row carries nothing (and the imputer would warn)
        self.numeric_ = [
            c for c in self.features_ if c not in self.categorical_ and table[c].notna().any()
        ]
        if y is None:
            y = label_values(table)
        transformers = []
        if self.numeric_:
            transformers.append(
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(
                            strategy="median", add_indicator=True, keep_empty_features=True
                        ),
                        StandardScaler(),
                    ),
                    self.numeric_,
                )
            )
        if self.categorical_:
            transformers.append(
                ("categorical", OneHotEncoder(handle_unknown="ignore"), self.categorical_)
            )
        self.pipeline_ = Pipeline(
            [
                ("prepare", ColumnTransformer(transformers)),
                (
                    "model",
                    LogisticRegression(
                        C=self.C, max_iter=self.max_iter, random_state=self.random_state
                    ),
                ),
            ]
        )
        with threadpool_limits(self.blas_threads):
            self.pipeline_.fit(self._inputs(table), np.asarray(y, dtype=int))
        return self

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted probability of the positive class."""
        with threadpool_limits(self.blas_threads):
            return self.pipeline_.predict_proba(self._inputs(table))[:, 1]


def _cutoff_keys(index: pd.MultiIndex) -> pd.MultiIndex:
    cutoffs = cutoff_days(index.get_level_values("cutoff"))
    customers = index.get_level_values("customer_id").astype(str)
    return pd.MultiIndex.from_arrays([cutoffs, customers], names=["cutoff", "customer_id"])


class BgNbdBaseline:
    """BG/NBD in the horizon: a probability for churn and reactivation, a ranking for vip.

    Churn scores P(no order in the horizon), reactivation one minus it (both in
    closed form, so log loss, Brier and ECE apply); vip ranks by expected
    purchases.

    Parameters
    ----------
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"``.
    horizon_days
        Length of the label horizon (the ``t`` of the expectation).
    rfm
        RFM summaries indexed by (``cutoff``, ``customer_id``) at least at the
        train and scored cutoffs (``training.evaluation.bgnbd.rfm_summary_at_cutoffs``).
        The model is fitted on every customer's summary at the train table's
        cutoffs -- never on later cutoffs.
    """

    name = "bgnbd"

    def __init__(
        self,
        target: str,
        horizon_days: int,
        rfm: pd.DataFrame,
        *,
        penalizer_coef: float = 0.0,
    ):
        self.target = target
        self.horizon_days = horizon_days
        self.rfm = rfm
        self.penalizer_coef = penalizer_coef

    def _rfm(self) -> pd.DataFrame:
        missing = [c for c in RFM_COLUMNS if c not in self.rfm.columns]
        if missing or list(self.rfm.index.names) != ["cutoff", "customer_id"]:
            raise ValueError(
                "BgNbdBaseline: rfm must be indexed by (cutoff, customer_id) with columns "
                f"{list(RFM_COLUMNS)} (missing {missing}); use rfm_summary_at_cutoffs"
            )
        frame = self.rfm[list(RFM_COLUMNS)].copy()
        frame.index = _cutoff_keys(frame.index)
        return frame

    def fit(self, table: pd.DataFrame) -> BgNbdBaseline:
        """Fit BG/NBD on the RFM summaries at the train table's cutoffs."""
        _check_target(self.target)
        rfm = self._rfm()
        cutoffs = _cutoff_keys(table.index).get_level_values("cutoff").unique()
        train = rfm[rfm.index.get_level_values("cutoff").isin(cutoffs)]
        if train.empty:
            raise ValueError(
                f"BgNbdBaseline: rfm has no rows at the train cutoffs {list(cutoffs.date)}; "
                "compute it with rfm_summary_at_cutoffs(tables, cutoffs)"
            )
        self.fitter_ = BetaGeoFitter(penalizer_coef=self.penalizer_coef).fit(
            train["frequency"], train["recency"], train["T"]
        )
        self.rfm_ = rfm
        return self

    def _per_row(self, table: pd.DataFrame, method: str, default: float) -> np.ndarray:
        """The fitter's ``method`` over the horizon per row; ``default`` without a purchase yet."""
        rows = self.rfm_.reindex(_cutoff_keys(table.index))
        known = rows["frequency"].notna().to_numpy()
        out = np.full(len(table), default)
        if known.any():
            r = rows[known]
            out[known] = getattr(self.fitter_, method)(
                self.horizon_days, r["frequency"], r["recency"], r["T"]
            )
        return out

    def expected_purchases(self, table: pd.DataFrame) -> np.ndarray:
        """Expected purchases in the horizon for each row (0 for customers without a purchase)."""
        return self._per_row(table, "expected_purchases", 0.0)

    def probability_no_purchase(self, table: pd.DataFrame) -> np.ndarray:
        """P(no order in the horizon) per row (1 for customers without a purchase yet)."""
        return self._per_row(table, "probability_no_purchase", 1.0)

    def score(self, table: pd.DataFrame) -> np.ndarray:
        if self.target == "churn":
            return self.probability_no_purchase(table)
        if self.target == "reactivation":
            return 1.0 - self.probability_no_purchase(table)
        return self.expected_purchases(table)


def label_values(table: pd.DataFrame, label_col: str | None = None) -> np.ndarray:
    """The 0/1 label of a training table (its ``attrs['label']`` or the one label column)."""
    if label_col is None:
        label_col = table.attrs.get("label")
    if label_col is None:
        present = [c for c in TARGETS.values() if c in table.columns]
        if len(present) != 1:
            raise ValueError(
                f"cannot tell the label column: found {present}; pass label_col explicitly"
            )
        label_col = present[0]
    _require(table, [label_col], "label_values")
    values = table[label_col]
    if values.isna().any():
        raise ValueError(
            f"label column {label_col!r} has {int(values.isna().sum())} missing values"
        )
    return values.to_numpy(dtype=int)


def fit_baselines(
    target: str,
    train: pd.DataFrame,
    *,
    label_col: str | None = None,
    rfm: pd.DataFrame | None = None,
    horizon_days: int | None = None,
    features: Sequence[str] | None = None,
    random_state: int = 0,
) -> dict[str, object]:
    """Fit every baseline on the training table; BG/NBD only when ``rfm`` is given.

    Returns
    -------
    dict
        ``{"recency": ..., "rfm": ..., "logistic": ..., "bgnbd": ...}`` fitted estimators.
    """
    _check_target(target)
    y = label_values(train, label_col)
    out: dict[str, object] = {
        "recency": RecencyBaseline(target).fit(train),
        "rfm": RfmBaseline(target).fit(train),
        "logistic": LogisticBaseline(features, random_state=random_state).fit(train, y),
    }
    if rfm is not None:
        horizon = horizon_days if horizon_days is not None else train.attrs.get("horizon_days")
        if horizon is None:
            raise ValueError("the BG/NBD baseline needs horizon_days (not in the table's attrs)")
        out["bgnbd"] = BgNbdBaseline(target, int(horizon), rfm).fit(train)
    return out


def baseline_scores(baselines: Mapping[str, object], table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each fitted baseline's score on a table (higher = more likely positive)."""
    return {name: baseline.score(table) for name, baseline in baselines.items()}


#: Baselines whose score is a probability for every target (so log loss, Brier and ECE apply).
PROBABILISTIC_BASELINES = frozenset({"logistic"})


def probabilistic_baselines(target: str) -> frozenset[str]:
    """The baselines whose scores are probabilities for ``target`` (BG/NBD: churn, reactivation)."""
    if target in ("churn", "reactivation"):
        return PROBABILISTIC_BASELINES | {"bgnbd"}
    return PROBABILISTIC_BASELINES


def evaluate_baselines(
    target: str,
    split_train: pd.DataFrame,
    split_test: pd.DataFrame,
    *,
    rfm: pd.DataFrame | None = None,
    horizon_days: int | None = None,
    features: Sequence[str] | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """Fit the baselines on the train split and evaluate them on the test split.

    Parameters
    ----------
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"``.
    split_train, split_test
        Training-table rows of the train and test cutoffs (``training.split``).
    rfm, horizon_days
        RFM summaries and horizon for the BG/NBD baseline (skipped without ``rfm``).

    Returns
    -------
    pandas.DataFrame
        One row per baseline (index ``baseline``), the columns of
        :func:`training.evaluation.metrics.classification_metrics`. Rule baselines have
        NaN log loss, Brier and ECE: their scores are not probabilities.
    """
    label_col = TARGETS.get(target)
    baselines = fit_baselines(
        target,
        split_train,
        label_col=label_col,
        rfm=rfm,
        horizon_days=horizon_days,
        features=features,
        random_state=random_state,
    )
    y = label_values(split_test, label_col)
    rows = {
        name: classification_metrics(
            y, score, probabilities=name in probabilistic_baselines(target)
        )
        for name, score in baseline_scores(baselines, split_test).items()
    }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "baseline"
    return out
