"""Uplift model: Qini by hand and by brute force, learners on known effects, campaign table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import REACTIVATION_FEATURES_V1
from tests.training import test_tracking as shared
from training.uplift.data import campaign_training_table
from training.uplift.fit import UpliftConfig, fit_campaign_uplift, fit_uplift
from training.uplift.model import UpliftModel, qini_coefficient, qini_curve
from training.uplift.record import load_uplift_model, save_uplift_model

# An empty MLflow store per test (schema migrated once per session), as test_registry does.
empty_tracking_db = shared.empty_tracking_db
tracking = shared.tracking

HILLSTROM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hillstrom.csv.gz"


def test_qini_curve_hand_computed() -> None:
    y = np.array([1, 0, 1, 0])
    t = np.array([True, True, False, False])
    curve = qini_curve(y, t, np.array([0.9, 0.8, 0.1, 0.0]))
    # k=1: 1 treated buyer; k=2: still 1; k=3: 1 - 1 * 2/1; k=4: 1 - 1 * 2/2
    assert curve["incremental"].tolist() == [0.0, 1.0, 1.0, -1.0, 0.0]
    assert curve["fraction"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # trapezoids of incremental/n over fraction: (0.125 + 0.25 + 0 - 0.125) * 0.25 ...
    expected = 0.25 * ((0 + 0.25) / 2 + (0.25 + 0.25) / 2 + (0.25 - 0.25) / 2 + (-0.25 + 0) / 2)
    assert qini_coefficient(y, t, np.array([0.9, 0.8, 0.1, 0.0])) == pytest.approx(expected)


def test_tied_scores_enter_together() -> None:
    y = np.array([1, 0, 0, 1])
    t = np.array([True, False, True, False])
    curve = qini_curve(y, t, np.array([0.5, 0.5, 0.5, 0.5]))
    assert curve["targeted"].tolist() == [0, 4]
    # a constant score is random targeting: no area between the curves
    assert qini_coefficient(y, t, np.zeros(4)) == pytest.approx(0.0)


def _synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """A randomised campaign where only customers with x1 > 0.5 respond to the contact."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "x1": rng.random(n),
            "x2": rng.random(n),
            "channel": pd.Categorical(rng.choice(["web", "app"], n)),
        }
    )
    t = rng.random(n) < 0.8
    base = 0.05 + 0.2 * X["x2"].to_numpy()
    effect = np.where(X["x1"].to_numpy() > 0.5, 0.25, 0.0)
    y = rng.random(n) < base + t * effect
    return X, t, y, effect


@pytest.mark.parametrize("learner", ["t", "x"])
def test_learners_find_who_responds(learner: str) -> None:
    X, t, y, effect = _synthetic(6_000, seed=1)
    model = UpliftModel(learner, n_estimators=80).fit(X, t, y)
    X_new, t_new, y_new, effect_new = _synthetic(3_000, seed=2)
    uplift = model.predict_uplift(X_new)
    responders = effect_new > 0
    assert uplift[responders].mean() > uplift[~responders].mean() + 0.1
    model_qini = qini_coefficient(y_new, t_new, uplift)
    assert model_qini > 0.01
    assert model_qini > qini_coefficient(y_new, t_new, -uplift)
    # the oracle ranking is the best one can do; the model should come close
    assert model_qini > 0.5 * qini_coefficient(y_new, t_new, effect_new)


def test_fit_uplift_splits_by_customer_and_reports_held_out_qini() -> None:
    X, t, y, _ = _synthetic(4_000, seed=3)
    ids = pd.Series([f"C{i // 2}" for i in range(len(X))])  # each customer contacted twice
    result = fit_uplift(X, t, y, ids, UpliftConfig(n_estimators=60, test_share=0.3))
    test_ids = set(ids[result.test_mask])
    assert not test_ids & set(ids[~result.test_mask])
    assert result.test_rows == int(result.test_mask.sum())
    assert 0.2 < result.test_rows / len(X) < 0.4
    assert result.qini_test > 0


def test_errors_name_the_problem() -> None:
    X, t, y, _ = _synthetic(200, seed=4)
    with pytest.raises(ValueError, match="single outcome class"):
        UpliftModel().fit(X, t, np.zeros(len(X), dtype=bool))
    with pytest.raises(ValueError, match="learner"):
        UpliftModel("z").fit(X, t, y)  # type: ignore[arg-type]
    model = UpliftModel(n_estimators=5).fit(X, t, y)
    with pytest.raises(ValueError, match="x2"):
        model.predict_uplift(X.drop(columns=["x2"]))


def test_campaign_table_matches_the_simulator_truth(small_shop) -> None:
    table = campaign_training_table(small_shop.tables, feature_set=REACTIVATION_FEATURES_V1)
    truth = small_shop.contact_truth.set_index(["campaign_id", "customer_id"])
    assert len(table) == len(truth)
    aligned = truth.loc[table.index]
    assert (table["reactivated"].to_numpy() == aligned["reactivated"].to_numpy()).all()
    assert (table["treatment"].to_numpy() == (aligned["group"] == "treatment").to_numpy()).all()
    # features are as of the day before the contact: recency is at least the lapse of the
    # campaign (120 days) minus the day between the cutoff and the contact
    contact_day = table["contacted_at"].dt.tz_localize(None).dt.floor("D")
    assert ((contact_day - table["cutoff"]) == pd.Timedelta(days=1)).all()
    assert (table["days_since_last_order"] >= small_shop.config.lapse_days - 1).all()
    assert table.attrs["feature_columns"][0] == "days_since_last_order"


def test_campaign_table_needs_contacts(small_shop) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="campaign_contacts"):
        campaign_training_table(replace(small_shop.tables, campaign_contacts=None))


def test_campaign_uplift_ranks_true_uplift_and_round_trips(small_shop, tmp_path) -> None:
    result, table = fit_campaign_uplift(
        small_shop.tables, UpliftConfig(n_estimators=100), feature_set=REACTIVATION_FEATURES_V1
    )
    truth = small_shop.contact_truth.set_index(["campaign_id", "customer_id"])
    true_uplift = truth.loc[table.index[result.test_mask], "true_uplift"].to_numpy()
    assert np.corrcoef(true_uplift, result.test_uplift)[0, 1] > 0.2
    assert result.qini_test > 0
    path = save_uplift_model(result.model, tmp_path / "uplift.pkl")
    loaded = load_uplift_model(path)
    columns = table.attrs["feature_columns"]
    np.testing.assert_allclose(
        loaded.predict_uplift(table[columns]), result.model.predict_uplift(table[columns])
    )
    with pytest.raises(FileNotFoundError, match="no uplift model"):
        load_uplift_model(tmp_path / "missing.pkl")


def test_logged_uplift_model_loads_from_its_run(tracking) -> None:
    from training.uplift.record import log_uplift_model

    X, t, y, _ = _synthetic(1_500, seed=5)
    result = fit_uplift(
        X, t, y, pd.Series(range(len(X))).astype(str), UpliftConfig(n_estimators=20)
    )
    run_id = log_uplift_model(result, tracking=tracking)
    loaded = load_uplift_model(f"runs:/{run_id}")
    np.testing.assert_allclose(loaded.predict_uplift(X), result.model.predict_uplift(X))


@pytest.mark.realdata
@pytest.mark.skipif(not HILLSTROM.is_file(), reason="../shared/data/hillstrom.csv.gz is absent")
def test_hillstrom_uplift_has_positive_held_out_qini() -> None:
    frame = pd.read_csv(HILLSTROM)
    part = frame[frame["segment"].isin(["Womens E-Mail", "No E-Mail"])].reset_index(drop=True)
    X = part[["recency", "history", "mens", "womens", "zip_code", "newbie", "channel"]].copy()
    for column in ("zip_code", "channel"):
        X[column] = X[column].astype("category")
    result = fit_uplift(
        X,
        (part["segment"] == "Womens E-Mail").to_numpy(),
        part["visit"].to_numpy(dtype=bool),
        pd.Series(part.index).astype(str),
        UpliftConfig(outcome_days=14),
    )
    assert result.qini_test > 0
