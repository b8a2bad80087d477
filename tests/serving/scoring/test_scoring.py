"""Batch scoring, the expected value, posted-row validation, the score store and batching."""

from __future__ import annotations

import asyncio
import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.feature_sets import FeatureSet, FeatureSetMismatch
from serving.api.batching import FrameBatcher, Overloaded
from serving.config import ServingConfig, format_model_versions, parse_model_versions
from serving.scoring import store
from serving.scoring.lookup import ScoreLookup, stale_targets
from serving.scoring.models import (
    ServedModel,
    ServedModels,
    ServingSetupError,
    check_registry_exists,
)
from serving.scoring.predict import predict_scores
from serving.scoring.reasons import top_scored
from serving.scoring.rows import RowsInvalid, rows_to_columns, rows_to_frame
from serving.scoring.table import expected_value, populations, score_table

FS = FeatureSet("tiny_v1", (("recency_days", "float64"), ("orders", "float64")))
FS_CAT = FeatureSet(
    "tiny_cat_v1",
    (("recency_days", "float64"), ("orders", "float64"), ("channel", "category")),
)


class LinearModel:
    """A stand-in with the interface serving needs: logistic in a weighted sum."""

    def __init__(self, feature_set: FeatureSet, weights: dict[str, float], bias: float = 0.0):
        self.feature_set_ = feature_set
        self.weights = weights
        self.bias = bias

    def _terms(self, X: pd.DataFrame) -> pd.DataFrame:
        self.feature_set_.check(X)
        return pd.DataFrame(
            {c: X[c].astype("float64").fillna(0.0) * w for c, w in self.weights.items()},
            index=X.index,
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raw = self._terms(X).sum(axis=1).to_numpy() + self.bias
        return 1.0 / (1.0 + np.exp(-raw))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        out = self._terms(X)
        out["bias"] = self.bias
        return out


def stand_in_models() -> ServedModels:
    return ServedModels(
        {
            "churn": ServedModel("churn", LinearModel(FS, {"recency_days": 0.02}, -2), "c", "3"),
            "vip": ServedModel("vip", LinearModel(FS, {"orders": 0.5}, -3), "v", "2"),
            "reactivation": ServedModel(
                "reactivation", LinearModel(FS, {"recency_days": -0.01}, 0), "r", "1"
            ),
        }
    )


def scoring_frame() -> pd.DataFrame:
    """Four customers: active, active VIP, lapsed, and one with no population."""
    frame = pd.DataFrame(
        {
            "recency_days": [10.0, 5.0, 300.0, np.nan],
            "orders": [2.0, 20.0, 1.0, 0.0],
            "is_active": [True, True, False, False],
            "is_lapsed": [False, False, True, False],
            "is_vip": [False, True, False, False],
            "tier": ["standard", "gold", "standard", "standard"],
            "trailing_margin": [100.0, 900.0, 0.0, 0.0],
        },
        index=pd.Index(["a", "b", "c", "d"], dtype="string", name="customer_id"),
    )
    return frame


# ------------------------------------------------------------ expected value


def test_expected_value_hand_computed():
    value = expected_value(
        churn_risk=[0.2, np.nan],
        reactivation_probability=[np.nan, 0.5],
        is_lapsed=[False, True],
        trailing_margin=[365.0, 0.0],
        typical_margin=730.0,
        horizon_days=90,
    )
    # active: (1 - 0.2) * 365 * 90/365 = 72; lapsed: 0.5 * 730 * 90/365 = 90
    np.testing.assert_allclose(value, [72.0, 90.0])


def test_expected_value_is_missing_without_the_score_it_needs():
    value = expected_value([np.nan], [0.9], [False], [100.0], 50.0)
    assert np.isnan(value[0])


@given(
    risk=st.floats(0, 1),
    margin=st.floats(0, 1e6),
    horizon=st.integers(1, 730),
)
def test_expected_value_falls_with_churn_risk_and_scales_with_horizon(risk, margin, horizon):
    lower = expected_value([min(1.0, risk + 0.1)], [np.nan], [False], [margin], 0.0)
    base = expected_value([risk], [np.nan], [False], [margin], 0.0, horizon_days=horizon)
    assert lower[0] <= expected_value([risk], [np.nan], [False], [margin], 0.0)[0] + 1e-9
    np.testing.assert_allclose(base[0], (1 - risk) * margin * horizon / 365)


def test_expected_value_rejects_a_non_positive_horizon():
    with pytest.raises(ValueError, match="horizon_days"):
        expected_value([0.1], [0.1], [False], [1.0], 1.0, horizon_days=0)


# ---------------------------------------------------------------- scoring


def test_populations_partition_as_documented():
    masks = populations(scoring_frame())
    assert masks["churn"].tolist() == [True, True, False, False]
    assert masks["vip"].tolist() == [True, False, False, False]
    assert masks["reactivation"].tolist() == [False, False, True, False]


def test_score_table_scores_each_population_only():
    models = stand_in_models()
    frame = scoring_frame()
    at = dt.datetime(2024, 4, 1, 2, tzinfo=dt.UTC)
    table = score_table(
        frame, models, as_of=dt.date(2024, 3, 31), explain_top=0, scored_at=at
    ).set_index("customer_id")
    churn = 1 / (1 + np.exp(-(0.02 * np.array([10.0, 5.0]) - 2)))
    np.testing.assert_allclose(table.loc[["a", "b"], "churn_risk"], churn)
    assert table.loc[["c", "d"], "churn_risk"].isna().all()
    assert table["vip_potential"].notna().tolist() == [True, False, False, False]
    assert table["reactivation_probability"].notna().tolist() == [False, False, True, False]
    # expected value: a active (100 margin), c lapsed valued at the median active margin (500)
    np.testing.assert_allclose(table.loc["a", "expected_value"], (1 - churn[0]) * 100 * 90 / 365)
    react = 1 / (1 + np.exp(-(-0.01 * 300)))
    np.testing.assert_allclose(table.loc["c", "expected_value"], react * 500 * 90 / 365)
    assert np.isnan(table.loc["d", "expected_value"])
    assert table["tier"].tolist() == ["standard", "gold", "standard", "standard"]
    assert set(table["churn_model_version"]) == {"3"}
    assert set(table["vip_feature_set"]) == {"tiny_v1"}
    assert table["churn_reasons"].isna().all()
    assert (table["scored_at"] == pd.Timestamp(at)).all()
    assert (table["as_of"] == dt.date(2024, 3, 31)).all()


def test_score_table_names_missing_context_columns():
    with pytest.raises(ValueError, match="trailing_margin"):
        score_table(
            scoring_frame().drop(columns="trailing_margin"),
            stand_in_models(),
            as_of=dt.date(2024, 3, 31),
        )


def test_predict_scores_refuses_a_frame_missing_a_feature():
    with pytest.raises(FeatureSetMismatch, match="orders"):
        predict_scores(stand_in_models(), scoring_frame().drop(columns="orders"))


def test_an_irrelevant_column_does_not_move_a_score():
    models = stand_in_models()
    frame = scoring_frame()
    base = predict_scores(models, frame)
    moved = predict_scores(models, frame.assign(unrelated=np.arange(4.0)))
    pd.testing.assert_frame_equal(base, moved)


def test_top_scored_skips_missing_and_breaks_ties_by_order():
    scores = pd.Series([0.5, np.nan, 0.9, 0.5], index=list("wxyz"))
    assert top_scored(scores, 2).tolist() == ["y", "w"]
    assert top_scored(scores, 10).tolist() == ["y", "w", "z"]
    assert top_scored(scores, 0).tolist() == []


@pytest.mark.parametrize("seed", range(6))
def test_top_scored_equals_sorting_every_score(seed):
    """Only candidates are sorted: the same rows, in the same order, ties and signed zeros too."""
    rng = np.random.default_rng(seed)
    values = rng.choice([0.0, -0.0, 0.25, 0.5, 0.75, np.inf, -np.inf, np.nan], 5_000)
    distinct = rng.random(5_000) < 0.4
    values[distinct] = rng.random(distinct.sum())  # ties among a few values, the rest distinct
    scores = pd.Series(values, index=rng.permutation(10_000)[:5_000])
    valid = scores.dropna()
    for n in (1, 7, 999, 1_000, 3_000, len(valid), len(valid) + 5):
        expected = valid.index[np.lexsort((np.arange(len(valid)), -valid.to_numpy()))][:n]
        assert top_scored(scores, n).tolist() == expected.tolist()


# -------------------------------------------------------------- posted rows


def test_rows_to_frame_accepts_rows_and_columns_alike():
    rows = [
        {"recency_days": 10, "orders": 2.0, "channel": "web"},
        {"recency_days": None, "orders": 1, "channel": None},
    ]
    by_rows = rows_to_frame(FS_CAT, rows=rows)
    by_columns = rows_to_frame(
        FS_CAT,
        columns={"recency_days": [10, None], "orders": [2.0, 1], "channel": ["web", None]},
    )
    pd.testing.assert_frame_equal(by_rows, by_columns)
    assert by_rows["recency_days"].dtype == "float64"
    assert np.isnan(by_rows.loc[1, "recency_days"])
    assert list(by_rows.columns) == FS_CAT.names


@pytest.mark.parametrize(
    ("rows", "field", "expected"),
    [
        ([{"recency_days": 1.0}], "missing", ["channel", "orders"]),
        (
            [{"recency_days": 1.0, "orders": 1.0, "channel": "web", "zip": "123"}],
            "unexpected",
            ["zip"],
        ),
        (
            [{"recency_days": "12", "orders": True, "channel": 3}],
            "wrong_dtypes",
            {
                "recency_days": ("float64", "str"),
                "orders": ("float64", "bool"),
                "channel": ("category", "int"),
            },
        ),
        (
            [
                {"recency_days": 1.0, "orders": 1.0, "channel": "web"},
                {"recency_days": 1.0, "channel": "web"},
            ],
            "incomplete_rows",
            {"orders": [1]},
        ),
    ],
)
def test_rows_to_frame_names_the_offending_columns(rows, field, expected):
    with pytest.raises(RowsInvalid) as info:
        rows_to_frame(FS_CAT, rows=rows)
    assert getattr(info.value, field) == expected
    for name in expected:
        assert name in str(info.value)


def test_rows_to_frame_rejects_empty_and_ambiguous_input():
    with pytest.raises(RowsInvalid, match="no rows"):
        rows_to_frame(FS, rows=[])
    with pytest.raises(RowsInvalid, match="exactly one"):
        rows_to_frame(FS, rows=[{"recency_days": 1, "orders": 1}], columns={"orders": [1]})
    with pytest.raises(RowsInvalid, match="different lengths"):
        rows_to_frame(FS, columns={"recency_days": [1, 2], "orders": [1]})


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "recency_days": st.none()
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.integers(-1000, 1000),
                "orders": st.floats(allow_nan=False, allow_infinity=False),
            }
        ),
        min_size=1,
        max_size=20,
    )
)
def test_valid_rows_keep_their_values(rows):
    frame = rows_to_frame(FS, rows=rows)
    assert len(frame) == len(rows)
    for i, row in enumerate(rows):
        got = frame.loc[i, "recency_days"]
        assert (np.isnan(got) and row["recency_days"] is None) or got == row["recency_days"]
        assert frame.loc[i, "orders"] == row["orders"]


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("as_columns", [False, True])
def test_non_finite_numbers_are_refused_naming_the_column(bad, as_columns):
    rows = [{"recency_days": None, "orders": 1.0}, {"recency_days": bad, "orders": 2.0}]
    sent = {"columns": {k: [r[k] for r in rows] for k in rows[0]}} if as_columns else {"rows": rows}
    with pytest.raises(RowsInvalid, match="recency_days: expected float64, got a non-finite") as e:
        rows_to_columns(FS, **sent)
    assert e.value.wrong_dtypes == {
        "recency_days": ("float64", "a non-finite number (send null for a missing value)")
    }
    assert len(rows_to_columns(FS, rows=rows[:1])) == 1  # null alone is a missing value


# -------------------------------------------------------------------- store


def _tiny_table(as_of: dt.date, value: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    features = scoring_frame()[FS.names]
    table = score_table(
        scoring_frame().assign(recency_days=[value, 5.0, 300.0, np.nan]),
        stand_in_models(),
        as_of=as_of,
        explain_top=0,
    )
    return table, features


def test_store_writes_versions_and_a_rerun_replaces_its_date(tmp_path):
    d1, d2 = dt.date(2024, 1, 31), dt.date(2024, 2, 29)
    store.write_score_table(*_tiny_table(d1, 10.0), tmp_path, d1)
    store.write_score_table(*_tiny_table(d2, 10.0), tmp_path, d2)
    written = store.write_score_table(*_tiny_table(d1, 200.0), tmp_path, d1)
    assert written.rows == 4
    assert store.score_versions(tmp_path) == [d1, d2]
    assert store.latest_version(tmp_path) == d2
    again = store.read_scores(tmp_path, d1).set_index("customer_id")
    assert again.loc["a", "churn_risk"] == pytest.approx(1 / (1 + np.exp(-(0.02 * 200 - 2))))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    con = duckdb.connect(str(store.catalogue_path(tmp_path)), read_only=True)
    try:
        counts = con.execute("SELECT as_of, count(*) FROM scores GROUP BY 1 ORDER BY 1").fetchall()
        latest = con.execute("SELECT DISTINCT as_of FROM latest_scores").fetchall()
        versions = con.execute("SELECT as_of, rows FROM score_versions ORDER BY 1").fetchall()
    finally:
        con.close()
    assert counts == [(d1, 4), (d2, 4)]
    assert latest == [(d2,)]
    assert versions == [(d1, 4), (d2, 4)]
    features = store.read_features(tmp_path, d1)
    assert list(features.columns) == FS.names


def test_store_refuses_duplicate_customers(tmp_path):
    table, features = _tiny_table(dt.date(2024, 1, 31), 1.0)
    doubled = pd.concat([table, table.head(1)])
    with pytest.raises(ValueError, match="duplicate customer_id"):
        store.write_score_table(doubled, features, tmp_path, dt.date(2024, 1, 31))
    in_order = doubled.sort_values("customer_id", kind="stable")  # the repeat next to itself
    with pytest.raises(ValueError, match="duplicate customer_id"):
        store.write_score_table(in_order, features, tmp_path, dt.date(2024, 1, 31))
    assert not store._strictly_increasing(in_order["customer_id"])
    assert store._strictly_increasing(in_order["customer_id"].drop_duplicates())


def test_a_failed_write_leaves_the_previous_version(tmp_path):
    d1 = dt.date(2024, 1, 31)
    first = store.write_score_table(*_tiny_table(d1, 10.0), tmp_path, d1)
    table, features = _tiny_table(d1, 200.0)
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error type
        store.write_score_table(table, features.assign(bad=object()), tmp_path, d1)
    assert store.read_scores(tmp_path, d1).equals(pd.read_parquet(first.scores_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([".score.lock", first.folder.name, "scores.duckdb"])


def test_each_write_is_a_new_version_folder_and_old_layout_is_still_read(tmp_path):
    d1, d2 = dt.date(2024, 1, 31), dt.date(2024, 2, 29)
    table, features = _tiny_table(d1, 10.0)
    table.to_parquet(tmp_path / "scores_2024-01-31.parquet")  # the earlier flat layout
    features.to_parquet(tmp_path / "features_2024-01-31.parquet")
    assert store.score_versions(tmp_path) == [d1]
    assert store.read_scores(tmp_path, d1)["customer_id"].tolist() == ["a", "b", "c", "d"]
    written = store.write_score_table(*_tiny_table(d2, 10.0), tmp_path, d2)
    assert sorted(p.name for p in written.folder.iterdir()) == [
        "customer_ids.npy",
        "features.arrow",
        "features.parquet",
        "metadata.json",
        "record_offsets.npy",
        "record_parts.json",
        "records.jsonl",
        "scores.arrow",
        "scores.parquet",
    ]
    again = store.write_score_table(*_tiny_table(d1, 20.0), tmp_path, d1)
    assert not (tmp_path / "scores_2024-01-31.parquet").exists()  # replaced by the folder
    assert store.read_version(tmp_path, d1)[0].equals(pd.read_parquet(again.scores_path))


# ------------------------------------------------------------------ lookups


def test_lookup_finds_known_ids_and_lists_unknown_ones(tmp_path):
    d1 = dt.date(2024, 1, 31)
    store.write_score_table(*_tiny_table(d1, 10.0), tmp_path, d1)
    lookup = ScoreLookup.load(tmp_path)
    found, unknown = lookup.find(["c", "zz", "a", "c"])
    assert found == ["c", "a"]
    assert unknown == ["zz"]
    records = lookup.records(found, explain=False)
    assert [r["customer_id"] for r in records] == ["c", "a"]
    assert records[0]["churn_risk"] is None
    assert records[0]["reactivation_probability"] == pytest.approx(1 / (1 + np.exp(3)))
    assert records[1]["model_versions"] == {"churn": "3", "vip": "2", "reactivation": "1"}
    assert records[1]["reasons"] == {"churn": None, "vip": None, "reactivation": None}
    assert stale_targets(lookup, stand_in_models()) == {}


def test_lookup_without_a_score_table_says_how_to_make_one(tmp_path):
    with pytest.raises(ServingSetupError, match="winback score --as-of"):
        ScoreLookup.load(tmp_path / "scores")


def test_missing_registry_names_the_train_command(tmp_path):
    with pytest.raises(ServingSetupError, match="winback train --target churn"):
        check_registry_exists(f"sqlite:///{tmp_path}/mlruns/mlflow.db")


# ------------------------------------------------------------------- config


def test_model_versions_round_trip_and_validation():
    assert parse_model_versions("churn=3, vip=2") == {"churn": 3, "vip": 2}
    assert format_model_versions({"vip": 2, "churn": 3}) == "churn=3,vip=2"
    with pytest.raises(ValueError, match="churn=x"):
        parse_model_versions("churn=x")
    with pytest.raises(ValueError, match="unknown targets"):
        ServingConfig(model_versions={"upsell": 1})
    config = ServingConfig.from_env(
        {"WINBACK_HOME": "/srv/shop", "WINBACK_MODEL_VERSIONS": "vip=4"}
    )
    assert config.model_versions == {"vip": 4}
    assert str(config.score_path) == "/srv/shop/winback_output/scores"


# ----------------------------------------------------------------- batching


def test_batcher_merges_waiting_requests_and_returns_each_its_rows():
    calls = []

    def predict(key, frame):
        calls.append(len(frame))
        return pd.DataFrame({"double": frame["x"] * 2})

    async def main():
        batcher = FrameBatcher(predict, max_batch_rows=100, max_queued=50)
        frames = [pd.DataFrame({"x": [float(i), float(i) + 0.5]}) for i in range(10)]
        results = await asyncio.gather(*(batcher.submit("k", f) for f in frames))
        return frames, results, batcher

    frames, results, batcher = asyncio.run(main())
    for frame, result in zip(frames, results, strict=True):
        assert result["double"].tolist() == (frame["x"] * 2).tolist()
    assert sum(calls) == 20
    assert len(calls) < 10  # requests that waited were scored together
    assert batcher.batches == len(calls)


def test_batcher_keeps_keys_apart_and_respects_the_row_limit():
    seen = []

    def predict(key, frame):
        seen.append((key, len(frame)))
        return frame

    async def main():
        batcher = FrameBatcher(predict, max_batch_rows=3, max_queued=50)
        one = pd.DataFrame({"x": [1.0]})
        await asyncio.gather(*(batcher.submit(k, one) for k in ["a", "b", "a", "a", "a", "b"]))

    asyncio.run(main())
    assert all(n <= 3 for _, n in seen)
    assert sum(n for k, n in seen if k == "a") == 4
    assert sum(n for k, n in seen if k == "b") == 2


def test_batcher_refuses_when_too_many_wait_and_propagates_errors():
    def predict(key, frame):
        if (frame["x"] < 0).any():
            raise ValueError("negative")
        return frame

    async def main():
        batcher = FrameBatcher(predict, max_batch_rows=100, max_queued=2)
        one = pd.DataFrame({"x": [1.0]})
        outcomes = await asyncio.gather(
            *(batcher.submit("k", one) for _ in range(5)), return_exceptions=True
        )
        bad = FrameBatcher(predict, max_queued=5)
        with pytest.raises(ValueError, match="negative"):
            await bad.submit("k", pd.DataFrame({"x": [-1.0]}))
        return outcomes

    outcomes = asyncio.run(main())
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 3
    assert sum(isinstance(o, pd.DataFrame) for o in outcomes) == 2


# ------------------------------------------------- end to end on a simulated shop


def test_score_customers_on_the_small_shop(small_shop, tmp_path):
    """Real features (build_scoring_frame) through real models into the store, rerun included."""
    from features.feature_sets import (
        CHURN_FEATURES_V1,
        REACTIVATION_FEATURES_V1,
        VIP_FEATURES_V1,
    )
    from features.training_table import build_scoring_frame
    from serving.scoring.table import score_customers
    from training.model.classifier import WinbackClassifier

    tables = small_shop.tables
    sets = {
        "churn": CHURN_FEATURES_V1,
        "vip": VIP_FEATURES_V1,
        "reactivation": REACTIVATION_FEATURES_V1,
    }
    union = ServedModels(
        {t: ServedModel(t, LinearModel(fs, {}), t, "0") for t, fs in sets.items()}
    ).feature_set()
    as_of = dt.date(2025, 9, 30)
    frame = build_scoring_frame(tables, as_of, union)
    train = frame  # the models only need to be real LightGBM models of these feature sets
    label = (train["days_since_last_order"].fillna(999) > 60).to_numpy().astype(int)
    models = {}
    for target, fs in sets.items():
        model = WinbackClassifier(fs, n_estimators=10, num_leaves=4, calibration="none")
        models[target] = ServedModel(target, model.fit(train[fs.names], label), f"w-{target}", "1")
    models = ServedModels(models)
    config = ServingConfig(home=tmp_path, explain_top=5)

    first = score_customers(tables, as_of, models, config)
    table = store.read_scores(config.score_path, as_of).set_index("customer_id")
    assert first.rows == len(frame) == len(table)
    assert set(table.index) == set(frame.index.astype(str))
    status = frame.set_index(frame.index.astype(str)).loc[table.index]
    assert table["churn_risk"].notna().tolist() == status["is_active"].fillna(False).tolist()
    assert (
        table["reactivation_probability"].notna().tolist()
        == status["is_lapsed"].fillna(False).tolist()
    )
    assert table["churn_risk"].dropna().between(0, 1).all()
    pd.testing.assert_series_equal(
        table["tier"].astype("string"),
        status["tier"].astype("string"),
        check_names=False,
        check_index=False,
    )
    for target in ("churn", "vip", "reactivation"):
        explained = table[f"{target}_reasons"].dropna()
        assert len(explained) == 5
        top = table[f"{target}_risk" if target == "churn" else "vip_potential"]
        if target == "churn":
            assert set(explained.index) <= set(top.nlargest(5, keep="all").index)
    assert set(table["churn_feature_set"]) == {"churn_features_v1"}
    assert list(store.read_features(config.score_path, as_of).columns) == union.names
    con = duckdb.connect(str(store.catalogue_path(config.score_path)), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM latest_scores").fetchall()[0][0] == first.rows
    finally:
        con.close()


def test_score_command_writes_the_table_with_the_registry_champions(
    small_shop_dir, tmp_path_factory, tmp_path, monkeypatch
):
    """``winback score`` (the Typer command): champions from the registry, data from a folder."""
    import typer
    from typer.testing import CliRunner

    from tests.serving.api.test_service_http import shared_serving_home
    from winback.commands.serving import score

    home = shared_serving_home(tmp_path_factory)
    monkeypatch.chdir(home)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    app = typer.Typer()
    app.command()(score)
    app.command("other")(lambda: None)  # two commands: Typer keeps "score" as a subcommand
    out = tmp_path / "scores"
    args = ["score", "--as-of", "2025-09-30", "--data", str(small_shop_dir)]
    result = CliRunner().invoke(app, [*args, "--score-dir", str(out), "--explain-top", "3"])
    assert result.exit_code == 0, result.output
    assert "as of 2025-09-30" in result.output
    table = store.read_scores(out, dt.date(2025, 9, 30))
    assert set(table["churn_model_version"]) == {"1"}
    assert table["churn_reasons"].notna().sum() == 3

    bad = CliRunner().invoke(app, [*args, "--score-dir", str(out), "--model-versions", "churn=9"])
    assert bad.exit_code == 1
    assert "winback-churn v9" in bad.output
