"""The deployable value model: fitted on a simulated shop, applied to a scoring frame."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.feature_sets import VALUE_FEATURES_V1
from features.training_table import build_scoring_frame
from features.value_table import build_value_table
from training.evaluation.value_baselines import value_summary_at_cutoffs
from training.evaluation.value_evaluation import value_cutoffs
from training.value_fit import fit_value_model


@pytest.fixture(scope="module")
def fitted(small_shop):
    tables = small_shop.tables
    cutoffs = value_cutoffs(tables, 365, test_origins=1, train_cutoffs=4)
    table = build_value_table(tables, cutoffs, horizon_days=365, feature_set=VALUE_FEATURES_V1)
    summary = value_summary_at_cutoffs(tables, cutoffs)
    return fit_value_model(table, summary, VALUE_FEATURES_V1, train_cutoffs=4, num_threads=1), table


def test_fitted_model_scores_a_later_day_and_explains_it(fitted, small_shop):
    model, table = fitted
    assert model.variant == "tweedie_btyd" and model.value_basis == "margin"
    assert len(model.train_cutoffs) == 4 and "gamma_gamma_p" in model.describe()
    as_of = "2025-06-30"
    frame = build_scoring_frame(small_shop.tables, as_of, VALUE_FEATURES_V1.subset(table.columns))
    summary = value_summary_at_cutoffs(small_shop.tables, [as_of]).droplevel("cutoff")
    predicted = model.predict(frame, summary)
    assert predicted.shape == (len(frame),) and (predicted >= 0).all()
    # a customer's value follows their own history: the top decile spent more in the past year
    top = predicted >= np.quantile(predicted, 0.9)
    assert frame.loc[top, "spend_365d_amount"].mean() > 2 * frame["spend_365d_amount"].mean()
    reasons = model.reasons(frame.iloc[np.argsort(-predicted)[:5]], summary)
    assert reasons["reason_1"].notna().all()
    # the object travels (MLflow logs it by pickling) and predicts the same after
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(frame, summary), predicted)


def test_unknown_variant_is_refused(fitted):
    _, table = fitted
    with pytest.raises(ValueError, match="unknown value model variant 'gbm'"):
        fit_value_model(table, pd.DataFrame(), VALUE_FEATURES_V1, variant="gbm")


def test_value_model_round_trips_through_the_registry(fitted, small_shop, tmp_path, monkeypatch):
    import mlflow

    from training.tracking.model_io import model_pip_requirements
    from training.tracking.runs import TrackingConfig, configure_tracking, ensure_named_experiment
    from training.tracking.value_tracking import (
        VALUE_MODEL_NAME,
        load_value_model,
        log_value_model,
        register_value_model,
        value_champion,
    )

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    tracking = TrackingConfig(root=str(tmp_path / "mlruns"))
    configure_tracking(tracking)
    experiment_id = ensure_named_experiment(VALUE_MODEL_NAME, tracking)
    client = mlflow.MlflowClient()
    assert value_champion(client) is None  # nothing registered: serving falls back
    model, table = fitted
    with mlflow.start_run(experiment_id=experiment_id) as run:
        uri = log_value_model(model, pip_requirements=model_pip_requirements())
        register_value_model(client, uri, run.info.run_id)
    client.set_registered_model_alias(VALUE_MODEL_NAME, "champion", "1")
    version = value_champion(client)
    loaded = load_value_model(f"models:/{VALUE_MODEL_NAME}/{version.version}")
    as_of = "2025-06-30"
    frame = build_scoring_frame(small_shop.tables, as_of, VALUE_FEATURES_V1.subset(table.columns))
    summary = value_summary_at_cutoffs(small_shop.tables, [as_of]).droplevel("cutoff")
    np.testing.assert_array_equal(loaded.predict(frame, summary), model.predict(frame, summary))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{VALUE_MODEL_NAME}@champion")
    np.testing.assert_allclose(
        pyfunc.predict(frame.join(summary)), model.predict(frame, summary), rtol=1e-12
    )
    # a registered value model whose pickle changed afterwards is refused, never unpickled
    from training.tracking.integrity import ModelIntegrityError

    pickles = [p for p in (tmp_path / "mlruns").rglob("python_model.pkl")]
    assert pickles
    for path in pickles:
        path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ModelIntegrityError, match="changed after registration"):
        load_value_model(f"models:/{VALUE_MODEL_NAME}/{version.version}")
