"""Every vectorised feature equals the slow per-customer reference on simulated data."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.build import build_feature_table
from features.simulation import SimulationConfig, simulate_shop
from tests.features.reference_features import random_shop, reference_features

CUTOFFS = (date(2024, 3, 31), date(2025, 6, 30))


def assert_matches_reference(built: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(built.index) == list(reference.index)
    assert set(built.columns) == set(reference.columns)
    for name in built.columns:
        got, want = built[name], reference[name]
        if isinstance(got.dtype, pd.CategoricalDtype):
            got_values = [None if pd.isna(v) else str(v) for v in got]
            want_values = [None if pd.isna(v) else str(v) for v in want]
            assert got_values == want_values, name
        else:
            np.testing.assert_allclose(
                got.to_numpy(float), want.to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=name
            )


@pytest.fixture(scope="module")
def simulated():
    return simulate_shop(SimulationConfig(customers=300, seed=1)).tables


@pytest.fixture(scope="module")
def simulated_table(simulated):
    return build_feature_table(simulated, CUTOFFS)


@pytest.mark.parametrize("cutoff", CUTOFFS)
def test_simulated_shop_matches_reference(simulated, simulated_table, cutoff):
    built = simulated_table.xs(pd.Timestamp(cutoff), level="cutoff")
    reference = reference_features(simulated, cutoff)
    assert len(reference) > 50
    assert_matches_reference(built, reference)


@pytest.mark.parametrize("cutoff", [date(2022, 9, 30), date(2023, 12, 31)])
def test_random_shop_with_returns_in_separate_orders_matches_reference(cutoff):
    shop = random_shop(customers=200, seed=7)
    built = build_feature_table(shop, [cutoff]).droplevel("cutoff")
    assert_matches_reference(built, reference_features(shop, cutoff))
