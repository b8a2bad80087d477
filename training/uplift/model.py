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

import datetime as dt
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from features.build import build_feature_table
from features.feature_sets import FeatureSet, latest_feature_set
from features.inputs.schema import ShopTables
from features.publish import publish_bytes
from training.model.classifier import WinbackClassifier, infer_feature_set

#: MLflow experiment of uplift runs, and the artifact holding the pickled model.
UPLIFT_EXPERIMENT = "winback-uplift"
UPLIFT_ARTIFACT = "uplift_model/model.pkl"
#: The uplift model's name in ``training.tracking.model_registry`` (registered model ``winback-uplift``).
UPLIFT_TARGET = "uplift"
#: The metric the registry gate compares (held-out Qini coefficient).
GATE_METRIC = "qini_test"

KEYS = ("campaign_id", "customer_id")


# -------------------------------------------------------------- training table


def campaign_outcomes(
    tables: ShopTables, contacts: pd.DataFrame, outcome_days: int
) -> pd.DataFrame:
    """Whether each contacted customer bought in ``(contacted_at, contacted_at + outcome_days]``.

    Returns ``reactivated`` (bool: a purchase line in the window), ``outcome_orders``
    and ``outcome_margin`` (signed margin of every line in the window; revenue
    when there is no ``margin_amount``), one row per contact in ``contacts`` order.
    """
    tx = tables.transactions
    is_return = (
        tx["is_return"].fillna(False).astype(bool).to_numpy()
        if "is_return" in tx.columns
        else np.zeros(len(tx), dtype=bool)
    )
    amount = tx["amount"].to_numpy(dtype="float64")
    margin = (
        tx["margin_amount"].astype("float64").fillna(0.0).to_numpy()
        if "margin_amount" in tx.columns
        else np.where(is_return, -amount, amount)
    )
    lines = pd.DataFrame(
        {
            "customer_id": tx["customer_id"].astype("string").to_numpy(),
            "ordered_at": tx["ordered_at"].to_numpy(),
            "order_id": tx["order_id"].astype("string").where(~is_return).to_numpy(),
            "margin": margin,
        }
    )
    keyed = contacts[["customer_id", "contacted_at"]].copy()
    keyed["customer_id"] = keyed["customer_id"].astype("string")
    keyed["_row"] = np.arange(len(keyed))
    lines = lines[lines["customer_id"].isin(keyed["customer_id"])]
    joined = keyed.merge(lines, on="customer_id", how="inner")
    end = joined["contacted_at"] + pd.Timedelta(days=outcome_days)
    inside = (joined["ordered_at"] > joined["contacted_at"]) & (joined["ordered_at"] <= end)
    joined = joined[inside]
    per_row = joined.groupby("_row").agg(
        outcome_orders=("order_id", "nunique"), outcome_margin=("margin", "sum")
    )
    per_row = per_row.reindex(np.arange(len(contacts)))
    out = pd.DataFrame(index=contacts.index)
    out["outcome_orders"] = per_row["outcome_orders"].fillna(0).astype("int64").to_numpy()
    out["reactivated"] = out["outcome_orders"] > 0
    out["outcome_margin"] = per_row["outcome_margin"].fillna(0.0).to_numpy(dtype="float64")
    return out


def campaign_training_table(
    tables: ShopTables,
    *,
    feature_set: FeatureSet | None = None,
    outcome_days: int = 60,
) -> pd.DataFrame:
    """Every past campaign contact with its point-in-time features and outcome.

    Features are as of the day before the contact (``cutoff = contact date - 1``),
    so nothing on or after the contact day leaks in; the outcome is read from
    ``(contacted_at, contacted_at + outcome_days]``. The features are
    ``feature_set``'s, by default the newest reactivation set
    (``features.feature_sets.latest_feature_set("reactivation")``): the uplift
    model scores the same lapsed customers the reactivation model does.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(campaign_id, customer_id)``: the feature columns, then
        ``treatment`` (bool), ``reactivated`` (bool), ``outcome_orders``,
        ``outcome_margin``, ``contacted_at`` and ``cutoff``. ``attrs`` holds
        ``feature_columns``, ``outcome_days`` and ``omitted_features``.

    Raises
    ------
    ValueError
        When the shop has no ``campaign_contacts`` (or none with both groups).
    """
    contacts = tables.campaign_contacts
    if contacts is None or contacts.empty:
        raise ValueError(
            "no campaign_contacts: an uplift model needs past campaigns with control groups "
            "(table campaign_contacts with group = treatment/control)"
        )
    groups = set(contacts["group"].astype(str))
    if not {"treatment", "control"} <= groups:
        raise ValueError(
            f"campaign_contacts has groups {sorted(groups)}: an uplift model needs both "
            f"'treatment' and 'control' contacts"
        )
    if outcome_days < 1:
        raise ValueError(f"outcome_days must be >= 1, got {outcome_days}")
    contacts = contacts.reset_index(drop=True)
    contact_day = contacts["contacted_at"].dt.tz_convert("UTC").dt.floor("D").dt.tz_localize(None)
    cutoff = (contact_day - pd.Timedelta(days=1)).astype("datetime64[s]")
    dates = sorted({c.date() for c in cutoff})
    feature_set = feature_set or latest_feature_set("reactivation")
    features = build_feature_table(tables, dates, feature_set=feature_set)
    keys = pd.MultiIndex.from_arrays(
        [cutoff, contacts["customer_id"].astype("string")], names=["cutoff", "customer_id"]
    )
    known = keys.isin(features.index)
    if not known.all():
        # contacted before their first order (should not happen): no features to learn from
        contacts, keys, cutoff = contacts[known], keys[known], cutoff[known]
    table = features.loc[keys].reset_index(drop=True)
    feature_columns = list(features.columns)
    outcomes = campaign_outcomes(tables, contacts.reset_index(drop=True), outcome_days)
    table["treatment"] = (contacts["group"].astype(str) == "treatment").to_numpy()
    for column in ("reactivated", "outcome_orders", "outcome_margin"):
        table[column] = outcomes[column].to_numpy()
    table["contacted_at"] = contacts["contacted_at"].to_numpy()
    table["cutoff"] = cutoff.to_numpy()
    table.index = pd.MultiIndex.from_arrays(
        [
            contacts["campaign_id"].astype("string").to_numpy(),
            contacts["customer_id"].astype("string").to_numpy(),
        ],
        names=list(KEYS),
    )
    table.attrs = {
        "feature_columns": feature_columns,
        "outcome_days": outcome_days,
        "omitted_features": list(features.attrs.get("omitted_features", [])),
    }
    return table


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


# ------------------------------------------------------------ save and load


def save_uplift_model(model: UpliftModel, path: str | Path) -> Path:
    """Pickle the model to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    publish_bytes(path, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_uplift_model(location: str | Path) -> UpliftModel:
    """An uplift model from a local pickle or an MLflow URI.

    ``runs:/<run_id>`` (or a path inside the run) and registry URIs such as
    ``models:/winback-uplift/3`` or ``models:/winback-uplift@champion`` work; a
    registered version is unpickled only when its file still has the SHA-256
    recorded at registration (``training.tracking.integrity``).
    """
    text = str(location)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        from training.tracking.integrity import verified_download

        if text.startswith("runs:/") and text.rstrip("/").count("/") == 1:
            text = f"{text.rstrip('/')}/{UPLIFT_ARTIFACT}"
        with tempfile.TemporaryDirectory() as folder:
            return _unpickle_uplift(verified_download(text, folder), location)
    return _unpickle_uplift(Path(text), location)


def _unpickle_uplift(path: Path, location: str | Path) -> UpliftModel:
    if path.is_dir():  # a registered version is the folder holding the pickle
        path = path / Path(UPLIFT_ARTIFACT).name
    if not path.is_file():
        raise FileNotFoundError(
            f"no uplift model at {str(location)!r}: train one with `winback train --target "
            f"uplift`, or pass a file, runs:/<run_id> or models:/winback-uplift/<version>"
        )
    with path.open("rb") as handle:
        model = pickle.load(handle)  # noqa: S301 - our own artifact, digest checked
    if not isinstance(model, UpliftModel):
        raise TypeError(f"{location} holds a {type(model).__name__}, not an UpliftModel")
    return model


def log_uplift_model(
    result: UpliftResult,
    *,
    tracking: Any = None,
    tags: dict[str, str] | None = None,
    trained_at: dt.datetime | None = None,
) -> str:
    """Log the model, its config and held-out Qini as a run of ``winback-uplift``; return the run id.

    ``tracking`` is a ``training.tracking.runs.TrackingConfig`` (the default store when None).
    Load the model back with ``load_uplift_model(f"runs:/{run_id}")``.
    """
    import mlflow

    from training.tracking.runs import log_figures, start_run

    run_tags = {"kind": "uplift", "learner": result.config.learner, **(tags or {})}
    with start_run(UPLIFT_EXPERIMENT, tracking, tags=run_tags) as run:
        params = {k: v for k, v in result.config.__dict__.items()}
        params["feature_columns"] = ",".join(result.model.feature_names_)[:6000]
        mlflow.log_params(params)
        mlflow.log_metrics(result.metrics())
        with tempfile.TemporaryDirectory() as folder:
            local = save_uplift_model(result.model, Path(folder) / Path(UPLIFT_ARTIFACT).name)
            mlflow.log_artifact(str(local), artifact_path=str(Path(UPLIFT_ARTIFACT).parent))
        ax = plot_qini(result.qini_curve_test)
        log_figures({"qini_test": ax.figure})
        if trained_at is not None:
            mlflow.set_tag("trained_at", trained_at.isoformat())
        return run.info.run_id


# ---------------------------------------------------------------- registry


def champion_uplift_location(*, client: Any = None) -> str | None:
    """``models:/winback-uplift/<version>`` of the champion uplift model, or None without one.

    Uses the tracking/registry URIs set by ``training.tracking.runs.configure_tracking``.
    """
    from training.tracking.model_registry import champion

    version = champion(UPLIFT_TARGET, client=client)
    return None if version is None else f"models:/{version.name}/{version.version}"


def champion_qini_on(
    X: pd.DataFrame,
    treatment: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    *,
    client: Any = None,
) -> tuple[str | None, float | None]:
    """``(champion version, its Qini)`` on the given held-out contacts.

    ``(None, None)`` without a champion; ``(version, None)`` when the champion
    cannot score these rows (e.g. it was fitted on columns the table lacks), so
    the gate keeps the new model a challenger rather than compare unlike things.
    """
    location = champion_uplift_location(client=client)
    if location is None:
        return None, None
    version = location.rsplit("/", 1)[-1]
    try:
        uplift = load_uplift_model(location).predict_uplift(X)
    except (FileNotFoundError, ValueError, TypeError):
        return version, None
    return version, qini_coefficient(np.asarray(y, dtype=bool), treatment, uplift)


@dataclass(frozen=True)
class UpliftTraining:
    """A fitted, logged and registered uplift model and the gate's decision."""

    result: UpliftResult
    run_id: str
    version: str
    promoted: bool
    reason: str
    champion_version: str | None = None
    champion_qini: float | None = None


def register_uplift(
    result: UpliftResult,
    X: pd.DataFrame,
    treatment: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    *,
    test_cutoff: dt.date | dt.datetime | str | pd.Timestamp,
    tracking: Any = None,
    min_improvement: float = 0.0,
    trained_at: dt.datetime | None = None,
) -> UpliftTraining:
    """Log a fitted uplift model, register it as ``winback-uplift`` and gate the champion.

    ``X``, ``treatment`` and ``y`` are the rows ``result`` was fitted and tested
    on (``result.test_mask`` picks the held-out ones). The current champion is
    scored on the *same* held-out rows, and ``training.tracking.model_registry.promote_if_better``
    moves the ``champion`` alias only if the new held-out Qini beats it by more
    than zero and at least ``min_improvement``; otherwise the version is tagged
    ``role=challenger`` with the reason.
    """
    from training.tracking.gate import GateConfig
    from training.tracking.model_registry import promote_if_better, register
    from training.tracking.runs import TrackingConfig, configure_tracking

    tracking = tracking or TrackingConfig()
    run_id = log_uplift_model(result, tracking=tracking, trained_at=trained_at)
    configure_tracking(tracking)
    test = result.test_mask
    champion_version, champion_qini = champion_qini_on(
        X[test], np.asarray(treatment, dtype=bool)[test], np.asarray(y, dtype=bool)[test]
    )
    metrics = result.metrics()
    version = register(
        run_id,
        UPLIFT_TARGET,
        str(Path(UPLIFT_ARTIFACT).parent),
        test_cutoff=test_cutoff,
        metrics=metrics,
        tags={
            "test_split": (
                f"customers hashed with seed {result.config.random_state}, "
                f"test_share {result.config.test_share}"
            ),
            "learner": result.config.learner,
        },
    )
    decision = promote_if_better(
        UPLIFT_TARGET,
        version,
        metrics,
        None if champion_qini is None else {GATE_METRIC: champion_qini},
        GateConfig(metric=GATE_METRIC, min_improvement=min_improvement),
    )
    return UpliftTraining(
        result=result,
        run_id=run_id,
        version=version,
        promoted=decision.promote,
        reason=decision.reason,
        champion_version=champion_version,
        champion_qini=champion_qini,
    )


def train_uplift(
    tables: ShopTables,
    config: UpliftConfig = UpliftConfig(),
    *,
    feature_set: FeatureSet | None = None,
    tracking: Any = None,
    min_improvement: float = 0.0,
    trained_at: dt.datetime | None = None,
) -> UpliftTraining:
    """Fit on past campaigns (:func:`fit_campaign_uplift`), then :func:`register_uplift`.

    What ``winback train --target uplift`` and ``winback demo`` run. The test
    cutoff recorded with the version is the day of the last contact.
    """
    result, table = fit_campaign_uplift(tables, config, feature_set=feature_set)
    return register_uplift(
        result,
        table[table.attrs["feature_columns"]],
        table["treatment"].to_numpy(),
        table["reactivated"].to_numpy(),
        test_cutoff=pd.Timestamp(table["contacted_at"].max()),
        tracking=tracking,
        min_improvement=min_improvement,
        trained_at=trained_at,
    )
