"""Contract checks over the whole feature registry, the feature sets and the SQL."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import sqlglot

from features.build import build_feature_table, build_feature_table_from, build_features
from features.definitions import RELATIONS, feature_names, get_feature, registry, resolve
from features.engines.duckdb_engine import connect_parquet
from features.feature_sets import (
    CHURN_FEATURES_V1,
    FEATURE_SETS,
    REACTIVATION_FEATURES_V1,
    VIP_FEATURES_V1,
    FeatureSet,
    get_feature_set,
)
from features.inputs.schema import SCHEMAS, ShopTables
from features.query import feature_query
from tests.features.reference_features import random_shop

CUTOFF = date(2023, 6, 30)
UNITS = (
    "days_",
    "_days",
    "_amount",
    "_share",
    "_rate",
    "_ratio",
    "_count",
    "_mean",
    "_trend_90d",
    "_trend_30d",
    "_per_order",
)
#: Registered features deliberately in no released feature set (none so far).
EXCLUDED_FROM_SETS: frozenset[str] = frozenset()
FAMILIES = {
    "recency_frequency",
    "monetary_margin",
    "categories",
    "returns_support",
    "engagement_advocacy",
    "digital_engagement",
    "static_attributes",
    "products",
}


def truncated(shop: ShopTables, cutoff: date) -> ShopTables:
    """The shop as it stood at the end of the cutoff day: later events removed."""
    end = pd.Timestamp(cutoff + timedelta(days=1), tz="UTC")
    out = {}
    for name, frame in shop.present().items():
        column = SCHEMAS[name].time_column
        out[name] = frame if name == "customers" else frame[frame[column] < end]
    return ShopTables(**out)


@pytest.fixture(scope="module")
def shop() -> ShopTables:
    return random_shop(customers=120, seed=11)


@pytest.fixture(scope="module")
def built(shop) -> pd.DataFrame:
    return build_features(shop, CUTOFF)


@pytest.fixture(scope="module")
def built_from_past(shop) -> pd.DataFrame:
    return build_features(truncated(shop, CUTOFF), CUTOFF)


def test_registry_has_at_least_40_features():
    assert len(feature_names()) >= 40


@pytest.mark.parametrize("name", feature_names())
def test_feature_contract(name, built, built_from_past):
    definition = get_feature(name)
    # described, typed, in a known family, a known relation, with a unit or kind in its name
    assert definition.description.strip().endswith(".")
    assert definition.family in FAMILIES
    assert definition.relation in RELATIONS
    assert definition.dtype in ("float64", "category")
    if definition.dtype == "float64":
        assert any(u in name for u in UNITS), f"{name}: say its unit or kind in the name"
    # present in the output, with the canonical dtype and index
    assert name in built.columns
    assert built.index.name == "customer_id"
    if definition.dtype == "category":
        assert isinstance(built[name].dtype, pd.CategoricalDtype)
    else:
        assert built[name].dtype == "float64"
    # no leakage: the same value from the tables cut at the cutoff
    pd.testing.assert_series_equal(
        built[name], built_from_past[name], check_categorical=False, rtol=1e-12
    )
    # in a released feature set, or excluded on purpose
    in_sets = [fs.name for fs in FEATURE_SETS.values() if name in fs.dtypes]
    assert in_sets or name in EXCLUDED_FROM_SETS
    for fs in FEATURE_SETS.values():
        if name in fs.dtypes:
            assert fs.dtypes[name] == definition.dtype, fs.name


def test_output_columns_follow_registry_order(built):
    assert list(built.columns) == feature_names()
    assert built.index.is_monotonic_increasing


@pytest.mark.parametrize("feature_set", list(FEATURE_SETS.values()), ids=list(FEATURE_SETS))
def test_feature_set_builds_in_its_order_and_passes_its_check(shop, feature_set):
    frame = build_features(shop, CUTOFF, feature_set=feature_set)
    assert list(frame.columns) == feature_set.names
    feature_set.check(frame, allow_extra=False)
    assert len(set(feature_set.names)) == len(feature_set.names)
    assert FeatureSet.from_dict(feature_set.to_dict()) == feature_set


def test_feature_sets_are_named_and_found():
    assert get_feature_set("churn_features_v1") is CHURN_FEATURES_V1
    assert VIP_FEATURES_V1.name == "vip_features_v1"
    assert REACTIVATION_FEATURES_V1.name == "reactivation_features_v1"
    with pytest.raises(KeyError, match="known sets"):
        get_feature_set("churn_features_v0")


def test_unknown_feature_in_a_set_is_refused(shop):
    bad = FeatureSet("bad", (("days_since_last_order", "float64"), ("no_such_feature", "float64")))
    with pytest.raises(KeyError, match="no_such_feature"):
        build_features(shop, CUTOFF, feature_set=bad)


def test_derived_feature_alone_computes_its_dependencies_without_returning_them(shop, built):
    only = FeatureSet("only", (("overdue_ratio", "float64"),))
    frame = build_features(shop, CUTOFF, feature_set=only)
    assert list(frame.columns) == ["overdue_ratio"]
    pd.testing.assert_series_equal(frame["overdue_ratio"], built["overdue_ratio"])


def test_every_query_transpiles_to_spark_sql_that_parses_back(shop):
    columns = {name: list(frame.columns) for name, frame in shop.present().items()}
    definitions, _ = resolve(None, columns)
    queries = [feature_query(definitions, columns)]
    queries += [feature_query([d], columns) for d in registry().values()]
    for sql in queries:
        spark = sqlglot.transpile(sql, read="duckdb", write="spark")
        assert len(spark) == 1
        tree = sqlglot.parse_one(spark[0], read="spark")
        assert tree.find(sqlglot.exp.Select) is not None
        assert "date_diff('day'" not in spark[0]
    assert "DATEDIFF(DAY" in sqlglot.transpile(queries[0], read="duckdb", write="spark")[0]


def test_parquet_views_give_the_same_features_as_pandas_tables(shop, tmp_path):
    for name, frame in shop.present().items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    cutoffs = [CUTOFF, date(2023, 12, 31)]
    from_parquet = build_feature_table_from(connect_parquet(tmp_path, threads=1), cutoffs)
    from_pandas = build_feature_table(shop, cutoffs)
    pd.testing.assert_frame_equal(from_parquet, from_pandas, check_categorical=False, rtol=1e-12)


def test_parquet_folder_without_transactions_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="transactions"):
        connect_parquet(tmp_path)


def test_every_registered_feature_is_listed_in_the_docs():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    missing = [n for n in feature_names() if f"| `{n}` |" not in text]
    assert not missing, f"add {missing} to docs/features.md (see the registry)"
