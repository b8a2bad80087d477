"""MLflow tracking: where runs go, the data fingerprint, and the model round-trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.feature_sets import FeatureSet
from features.inputs.schema import ShopTables
from training.tracking.fingerprint import data_fingerprint
from training.tracking.model_io import (
    decode_model_input,
    encode_model_input,
    load_model,
    log_model,
    model_pip_requirements,
)
from training.tracking.runs import (
    TrackingConfig,
    code_version,
    configure_tracking,
    experiment_name,
    flatten_params,
    log_config,
    log_data_fingerprint,
    log_feature_set,
    log_figures,
    log_metrics,
    package_versions,
    start_training_run,
)

FEATURES = FeatureSet(
    "test_features_v1",
    (
        ("days_since_last_order", "float64"),
        ("orders_90d", "float64"),
        ("channel", "category"),
    ),
)


class LinearStandIn:
    """A tiny fitted model with the ``WinbackClassifier`` interface used by tracking.

    Raw score = w · numeric features + per-channel offset; calibrated
    probability = logistic(raw / 2) (a fixed "calibrator"); contributions are
    the per-feature terms plus a bias, summing to the raw score.
    """

    def __init__(self, feature_set: FeatureSet = FEATURES):
        self.feature_set_ = feature_set
        self.weights_ = {"days_since_last_order": 0.01, "orders_90d": -0.4}
        self.channel_offsets_ = {"web": 0.3, "store": -0.2}
        self.bias_ = -0.5
        self.calibrator_ = 0.5  # the scale applied before the logistic

    def _terms(self, X: pd.DataFrame) -> pd.DataFrame:
        self.feature_set_.check(X)
        terms = pd.DataFrame(index=X.index)
        for col, w in self.weights_.items():
            terms[col] = X[col].astype("float64").fillna(0.0) * w
        channel = X["channel"].astype("string").astype(object)
        terms["channel"] = channel.map(self.channel_offsets_).astype("float64").fillna(0.0)
        terms["bias"] = self.bias_
        return terms

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        return self._terms(X).sum(axis=1).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.calibrator_ * self.predict_raw(X)))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._terms(X)


def feature_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_arrays(
        [
            pd.to_datetime(["2024-03-31"] * n),
            pd.array([f"c{i:03d}" for i in range(n)], dtype="string"),
        ],
        names=["cutoff", "customer_id"],
    )
    frame = pd.DataFrame(
        {
            "days_since_last_order": rng.integers(0, 400, n).astype("float64"),
            "orders_90d": rng.integers(0, 6, n).astype("float64"),
            "channel": pd.Categorical(rng.choice(["web", "store", "app"], n)),
        },
        index=index,
    )
    frame.iloc[min(3, n - 1), 0] = np.nan
    frame.iloc[min(5, n - 1), 2] = np.nan
    return frame


def shop_tables(n_orders: int = 30, seed: int = 1) -> ShopTables:
    rng = np.random.default_rng(seed)
    transactions = pd.DataFrame(
        {
            "customer_id": pd.array([f"c{i % 7}" for i in range(n_orders)], dtype="string"),
            "order_id": pd.array([f"o{i}" for i in range(n_orders)], dtype="string"),
            "ordered_at": pd.to_datetime("2023-01-01", utc=True)
            + pd.to_timedelta(rng.integers(0, 500, n_orders), unit="D"),
            "amount": rng.uniform(1, 100, n_orders).round(2),
            "is_return": rng.random(n_orders) < 0.1,
        }
    )
    transactions["ordered_at"] = transactions["ordered_at"].astype("datetime64[us, UTC]")
    tickets = pd.DataFrame(
        {
            "customer_id": pd.array(["c1", "c2"], dtype="string"),
            "ticket_id": pd.array(["t1", "t2"], dtype="string"),
            "opened_at": pd.to_datetime(["2023-05-01", "2023-06-01"], utc=True).astype(
                "datetime64[us, UTC]"
            ),
        }
    )
    return ShopTables(transactions=transactions, support_tickets=tickets)


CUTOFFS = [pd.Timestamp("2023-09-30"), pd.Timestamp("2023-10-30")]


# ---------------------------------------------------------------- config


def test_default_store_is_sqlite_under_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = TrackingConfig()
    assert config.resolved_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert config.resolved_artifact_root() == (tmp_path.resolve() / "mlruns/artifacts").as_uri()
    assert config.resolved_registry_uri() == config.resolved_tracking_uri()


def test_environment_then_explicit_uri_override_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/db.sqlite")
    assert TrackingConfig().resolved_tracking_uri() == "sqlite:////elsewhere/db.sqlite"
    explicit = TrackingConfig(tracking_uri="sqlite:////mine.db", artifact_root="art")
    assert explicit.resolved_tracking_uri() == "sqlite:////mine.db"
    assert explicit.resolved_artifact_root() == (tmp_path.resolve() / "art").as_uri()


def test_tracking_config_is_frozen_and_rejects_unknown_keys():
    with pytest.raises(ValueError, match="tracking_url"):
        TrackingConfig(tracking_url="x")
    config = TrackingConfig()
    with pytest.raises(ValueError):
        config.root = "other"


def test_configure_tracking_creates_folder_and_sets_uris(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not (tmp_path / "mlruns").exists()
    uri = configure_tracking()
    assert (tmp_path / "mlruns").is_dir()
    assert (tmp_path / "mlruns" / "artifacts").is_dir()
    assert mlflow.get_tracking_uri() == uri
    assert mlflow.get_registry_uri() == uri


def test_experiment_name_per_target():
    assert experiment_name("churn") == "winback-churn"
    assert experiment_name("reactivation") == "winback-reactivation"
    with pytest.raises(ValueError, match="'churm'"):
        experiment_name("churm")


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_ignores_row_and_column_order():
    tables = shop_tables()
    reference = data_fingerprint(tables, CUTOFFS)
    assert reference == data_fingerprint(shop_tables(), list(reversed(CUTOFFS)))
    assert len(reference) == 32
    shuffled = tables.transactions.sample(frac=1.0, random_state=3).reset_index(drop=True)
    reordered = shuffled[list(reversed(shuffled.columns))]
    again = ShopTables(transactions=reordered, support_tickets=tables.support_tickets)
    assert data_fingerprint(again, CUTOFFS) == reference


def test_fingerprint_changes_with_any_value_cutoff_table_or_dtype():
    tables = shop_tables()
    reference = data_fingerprint(tables, CUTOFFS)
    seen = {reference}

    def variant(transactions=None, tickets="same", cutoffs=CUTOFFS):
        t = ShopTables(
            transactions=tables.transactions if transactions is None else transactions,
            support_tickets=tables.support_tickets if tickets == "same" else tickets,
        )
        return data_fingerprint(t, cutoffs)

    one_amount = tables.transactions.copy()
    one_amount.loc[4, "amount"] += 0.01
    one_time = tables.transactions.copy()
    one_time.loc[0, "ordered_at"] += pd.Timedelta(microseconds=1)
    one_id = tables.transactions.copy()
    one_id.loc[2, "customer_id"] = "c99"
    one_flag = tables.transactions.copy()
    one_flag.loc[1, "is_return"] = not one_flag.loc[1, "is_return"]
    dropped = tables.transactions.iloc[1:]
    duplicated = pd.concat([tables.transactions, tables.transactions.iloc[:1]], ignore_index=True)
    swapped = tables.transactions.copy()  # two values swapped between rows of one column
    swapped.loc[[0, 1], "amount"] = swapped.loc[[1, 0], "amount"].to_numpy()
    as_int = tables.transactions.assign(
        amount=tables.transactions["amount"].round().astype("int64")
    )
    variants = [
        variant(one_amount),
        variant(one_time),
        variant(one_id),
        variant(one_flag),
        variant(dropped),
        variant(duplicated),
        variant(swapped),
        variant(as_int),
        variant(tickets=None),
        variant(cutoffs=CUTOFFS[:1]),
        variant(cutoffs=[*CUTOFFS, pd.Timestamp("2023-11-29")]),
    ]
    for fingerprint in variants:
        assert fingerprint not in seen
        seen.add(fingerprint)


def test_fingerprint_accepts_mapping_and_frame_and_equal_content_gives_equal_hash():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": pd.array(["x", None], dtype="string")})
    same = pd.DataFrame({"b": pd.array([None, "x"], dtype="string"), "a": [2.0, 1.0]})
    assert data_fingerprint(frame) == data_fingerprint(same)
    assert data_fingerprint({"t": frame}) == data_fingerprint({"t": same})
    assert data_fingerprint({"t": frame}) != data_fingerprint({"u": frame})


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000), min_size=1, max_size=30),
    permutation_seed=st.integers(0, 2**16),
)
def test_fingerprint_property_order_free_and_value_sensitive(values, permutation_seed):
    frame = pd.DataFrame({"x": np.asarray(values, dtype="float64"), "i": range(len(values))})
    permuted = frame.sample(frac=1.0, random_state=permutation_seed)
    assert data_fingerprint(frame) == data_fingerprint(permuted)
    changed = frame.copy()
    changed.loc[0, "x"] += 0.5
    assert data_fingerprint(changed) != data_fingerprint(frame)


# ---------------------------------------------------------------- environment


def test_code_version_names_the_commit_of_this_checkout():
    version = code_version()
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        head = (root / ".git" / "HEAD").read_text().strip()
        assert version.startswith("git:")
        sha = version.removeprefix("git:").removesuffix("+dirty")
        assert len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
        if not head.startswith("ref:"):
            assert sha == head
    else:  # pragma: no cover - installed package
        assert version.startswith("winback==")


def test_package_versions_and_requirements_are_pinned():
    from importlib.metadata import version

    import mlflow

    versions = package_versions()
    assert versions["lightgbm"] == version("lightgbm")
    assert versions["mlflow"] == mlflow.__version__
    assert "python" in versions
    requirements = model_pip_requirements()
    assert f"lightgbm=={version('lightgbm')}" in requirements
    assert all("==" in r for r in requirements)
    assert not any(r.startswith("winback") for r in requirements)


def test_flatten_params_dots_nested_keys():
    from pydantic import BaseModel

    class Inner(BaseModel):
        rate: float = 0.1

    class Outer(BaseModel):
        target: str = "churn"
        inner: Inner = Inner()
        cutoffs: list[str] = ["2024-01-01"]
        empty: dict = {}

    assert flatten_params(Outer()) == {
        "target": "churn",
        "inner.rate": "0.1",
        "cutoffs": '["2024-01-01"]',
        "empty": "{}",
    }


# ---------------------------------------------------------------- runs and models


def test_encode_and_decode_model_input_round_trip():
    frame = feature_frame(8)
    encoded = encode_model_input(frame.assign(extra=1), FEATURES)
    assert list(encoded.columns) == FEATURES.names  # extra column and index dropped
    assert isinstance(encoded.index, pd.RangeIndex)
    assert encoded["channel"].dtype == object
    assert encoded.loc[5, "channel"] is None
    decoded = decode_model_input(encoded, FEATURES)
    assert isinstance(decoded["channel"].dtype, pd.CategoricalDtype)
    model = LinearStandIn()
    np.testing.assert_array_equal(model.predict_proba(decoded), model.predict_proba(frame))
    with pytest.raises(ValueError, match="orders_90d"):
        encode_model_input(frame.drop(columns="orders_90d"), FEATURES)


@pytest.fixture(scope="session")
def empty_tracking_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its schema created once (migrations take seconds)."""
    return migrated_tracking_db(tmp_path_factory)


def migrated_tracking_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's empty MLflow SQLite store, its schema created on the first call."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.getbasetemp() / "mlflow-template"
    path = folder / "mlflow.db"
    if not path.exists():  # shared by every test module importing this fixture
        folder.mkdir(exist_ok=True)
        uri = f"sqlite:///{path}"
        MlflowClient(uri, uri).search_experiments()
    return path


@pytest.fixture
def tracking(tmp_path, monkeypatch, empty_tracking_db) -> TrackingConfig:
    """A fresh default store under ``tmp_path/mlruns``, with ``tmp_path`` the working dir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_tracking_db, tmp_path / "mlruns" / "mlflow.db")
    config = TrackingConfig()
    configure_tracking(config)
    return config


def test_training_run_records_config_features_fingerprint_and_environment(tracking, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    tables = shop_tables()
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with start_training_run("churn", tracking, run_name="t") as run:
        log_config({"target": "churn", "lightgbm": {"num_leaves": 7}})
        log_feature_set(FEATURES)
        fingerprint = log_data_fingerprint(tables, CUTOFFS)
        log_metrics({"roc_auc": 0.8, "n": 3, "label": "x", "flag": True, "none": None})
        log_figures({"reliability": figure})
    plt.close(figure)
    stored = mlflow.get_run(run.info.run_id)
    experiment = mlflow.get_experiment(stored.info.experiment_id)
    assert experiment.name == "winback-churn"
    assert experiment.artifact_location.startswith((tmp_path.resolve() / "mlruns").as_uri())
    assert stored.data.params["lightgbm.num_leaves"] == "7"
    assert stored.data.params["feature_set"] == "test_features_v1"
    assert stored.data.tags["data_fingerprint"] == fingerprint == data_fingerprint(tables, CUTOFFS)
    assert stored.data.tags["code_version"] == code_version()
    assert stored.data.tags["target"] == "churn"
    assert stored.data.params["version.mlflow"] == mlflow.__version__
    assert stored.data.metrics == {"roc_auc": 0.8, "n": 3.0}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"config.json", "feature_set.json", "cutoffs.json", "package_versions.json"} <= artifacts
    plots = mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")
    assert [a.path for a in plots] == ["plots/reliability.png"]
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="cutoffs.json"
    )
    assert json.loads(Path(local).read_text()) == {"cutoffs": ["2023-09-30", "2023-10-30"]}


def test_failed_run_is_marked_failed(tracking):
    import mlflow

    with pytest.raises(RuntimeError), start_training_run("vip", tracking) as run:
        raise RuntimeError("boom")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_model_round_trip_gives_identical_probabilities_and_contributions(tracking):
    import mlflow

    model = LinearStandIn()
    frame = feature_frame(40)
    with start_training_run("churn", tracking) as run:
        uri = log_model(model, input_example=frame)
    loaded = load_model(uri)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    pd.testing.assert_frame_equal(loaded.contributions(frame), model.contributions(frame))
    assert loaded.feature_set_ == FEATURES
    # the same model through the run URI and through MLflow's generic pyfunc interface
    again = load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(again.predict_proba(frame), model.predict_proba(frame))
    pyfunc = mlflow.pyfunc.load_model(uri)
    served = pyfunc.predict(encode_model_input(frame, FEATURES))
    np.testing.assert_allclose(np.asarray(served), model.predict_proba(frame), rtol=0, atol=0)
    signature = pyfunc.metadata.get_input_schema().to_dict()
    assert [c["name"] for c in signature] == FEATURES.names
    assert signature[2]["type"] == "string"
    assert pyfunc.metadata.metadata["feature_set"] == FEATURES.to_dict()


def test_input_example_holds_no_customer_ids(tracking):
    import mlflow

    frame = feature_frame(10).assign(email="someone@example.com")
    with start_training_run("churn", tracking):
        uri = log_model(LinearStandIn(), input_example=frame)
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    example = (folder / "input_example.json").read_text()
    assert "c000" not in example and "example.com" not in example
    assert "days_since_last_order" in example


def test_log_model_refuses_unfitted_or_empty_input(tracking):
    with start_training_run("churn", tracking):
        with pytest.raises(TypeError, match="predict_proba"):
            log_model(object(), input_example=feature_frame(8))
        with pytest.raises(ValueError, match="no rows"):
            log_model(LinearStandIn(), input_example=feature_frame(8).iloc[:0])


def test_load_model_rejects_foreign_models(tracking):
    import mlflow

    class Plain(mlflow.pyfunc.PythonModel):
        _skip_type_hint_validation = True

        def predict(self, context, model_input, params=None):
            return np.zeros(len(model_input))

    with start_training_run("churn", tracking):
        info = mlflow.pyfunc.log_model(name="plain", python_model=Plain(), pip_requirements=[])
    with pytest.raises(TypeError, match="not a winback model"):
        load_model(info.model_uri)


@pytest.fixture(scope="session")
def fitted_classifier():
    """A small real ``WinbackClassifier`` (few trees) fitted on synthetic features."""
    from training.model.classifier import WinbackClassifier

    train, valid = feature_frame(400, seed=1), feature_frame(200, seed=2)

    def labels(frame: pd.DataFrame) -> np.ndarray:
        rng = np.random.default_rng(len(frame))
        days = frame["days_since_last_order"].fillna(200).to_numpy()
        logit = (days - 200) / 60 + (frame["channel"] == "app").to_numpy() * 0.8
        return rng.random(len(frame)) < 1 / (1 + np.exp(-logit))

    model = WinbackClassifier(
        FEATURES, n_estimators=30, num_leaves=7, min_child_samples=10, random_state=3
    )
    return model.fit(train, labels(train), eval_set=(valid, labels(valid)))


def test_winback_classifier_round_trip_keeps_probabilities_contributions_and_calibrator(
    tracking, fitted_classifier
):
    import mlflow

    frame = feature_frame(60, seed=5)
    frame.loc[frame.index[7], "channel"] = np.nan
    with start_training_run("churn", tracking):
        uri = log_model(fitted_classifier, input_example=frame)
    loaded = load_model(uri)
    assert type(loaded) is type(fitted_classifier)
    assert loaded.calibration_method_ == fitted_classifier.calibration_method_
    np.testing.assert_array_equal(
        loaded.predict_proba(frame), fitted_classifier.predict_proba(frame)
    )
    pd.testing.assert_frame_equal(
        loaded.contributions(frame), fitted_classifier.contributions(frame)
    )
    served = mlflow.pyfunc.load_model(uri).predict(encode_model_input(frame, FEATURES))
    np.testing.assert_array_equal(np.asarray(served), fitted_classifier.predict_proba(frame))


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=40),
    start=st.integers(0, 5),
)
def test_string_hash_is_by_value_across_dtypes_and_slices(texts, start):
    from training.tracking.fingerprint import _string_hash

    strings = pd.Series(texts, dtype="string")
    hashed = _string_hash(strings)
    np.testing.assert_array_equal(_string_hash(strings.astype(object)), hashed)
    np.testing.assert_array_equal(_string_hash(strings.astype("category")), hashed)
    np.testing.assert_array_equal(_string_hash(strings.iloc[start:]), hashed[start:])
    # equal values hash equal, different values (including missing) hash differently
    by_value: dict = {}
    for value, h in zip(texts, hashed, strict=True):
        by_value.setdefault(value, set()).add(int(h))
    assert all(len(hs) == 1 for hs in by_value.values())
    assert len({next(iter(hs)) for hs in by_value.values()}) == len(by_value)


def test_configure_tracking_leaves_the_environment_as_the_user_set_it(tmp_path, monkeypatch):
    """MLflow writes MLFLOW_TRACKING_URI itself; a later store must not inherit it."""
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = configure_tracking(TrackingConfig(root=str(tmp_path / "a")))
    assert "MLFLOW_TRACKING_URI" not in os.environ
    second = TrackingConfig(root=str(tmp_path / "b")).resolved_tracking_uri()
    assert first != second and second.endswith("/b/mlflow.db")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///chosen.db")
    configure_tracking(TrackingConfig(root=str(tmp_path / "c")))
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///chosen.db"
