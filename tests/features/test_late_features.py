"""A keyed build of one cutoff in two queries gives the frame of one query, to the bit.

``features.late_features`` leaves the window features (and, with the NumPy category
sums, the category features) out of the first query and computes them in a second one
over the first's rows; the frame must be the one a single sorted query gives, whatever
the feature set, the shop's columns or the user-defined features.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.build import build_feature_table_from
from features.custom.active import use_custom_features
from features.custom.spec import CustomFeature, custom_definitions
from features.definitions import get_feature, resolve
from features.engines.duckdb_engine import connect_parquet, table_columns
from features.feature_sets import CHURN_FEATURES_V1, VIP_FEATURES_V4
from features.inputs.table_files import write_tables
from features.late_features import stages
from tests.features.reference_features import random_shop

CUTOFF = date(2024, 6, 17)


def _both(folder, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default build (two queries) and one sorted query, from ``folder``."""
    two = build_feature_table_from(connect_parquet(folder, threads=2), [CUTOFF], **options)
    one = build_feature_table_from(
        connect_parquet(folder, threads=2), [CUTOFF], sort_in_query=True, **options
    )
    return two, one


def test_the_window_features_are_late_with_the_inputs_they_read(tmp_path):
    write_tables(random_shop(customers=20, seed=1).present(), tmp_path)
    definitions, _ = resolve(None, table_columns(connect_parquet(tmp_path)))
    plan = stages(definitions, categories=False)
    assert plan is not None
    late = {d.name for d in plan.late}
    assert "spend_365d_rank_share" in late and "net_spend_275d_mean_share" in late
    assert "category_count" not in late
    assert "spend_365d_amount" in plan.inputs and "_purchase_365d_e4" in plan.inputs
    first = [d.name for d in plan.first]
    assert not late & set(first) and first[-1] in plan.inputs  # the inputs come last
    with_categories = stages(definitions, categories=True)
    assert with_categories is not None
    assert {d.name for d in with_categories.late} - late == {
        "category_count",
        "top_category_spend_share",
        "category_concentration_share",
        "high_margin_spend_share",
    }
    assert stages([get_feature("order_count")], categories=True) is None


@pytest.mark.parametrize("feature_set", [None, VIP_FEATURES_V4, CHURN_FEATURES_V1])
def test_two_queries_give_the_frame_of_one(tmp_path, feature_set):
    write_tables(random_shop(customers=120, seed=31).present(), tmp_path)
    two, one = _both(tmp_path, feature_set=feature_set)
    assert len(two) > 50
    pd.testing.assert_frame_equal(two, one, check_exact=True)


def test_a_shop_without_categories_or_margins_gives_the_frame_of_one_query(tmp_path):
    shop = random_shop(customers=80, seed=32)
    lines = shop.transactions.drop(columns=["category", "margin_amount"])
    write_tables({**shop.present(), "transactions": lines}, tmp_path)
    two, one = _both(tmp_path)
    assert "category_count" not in two.columns and "spend_365d_rank_share" in two.columns
    pd.testing.assert_frame_equal(two, one, check_exact=True)


def test_user_defined_features_give_the_frame_of_one_query(tmp_path):
    write_tables(random_shop(customers=80, seed=33).present(), tmp_path)
    entries = [
        CustomFeature(
            name="spend_30d_custom",
            expression="sum(amount)",
            window_days=30,
            description="spend of the last 30 days",
        )
    ]
    with use_custom_features(custom_definitions(entries)):
        two, one = _both(tmp_path)
    assert two["spend_30d_custom"].notna().sum() > 5
    pd.testing.assert_frame_equal(two, one, check_exact=True)
