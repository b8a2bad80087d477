"""Shared fixtures: a small simulated shop (in memory and written to disk).

Session-scoped so that every test module reuses the same ~2,000-customer shop;
tests must not mutate its frames (copy first).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from features.erasure import ENV_ERASURE_DIR
from features.simulation import SimulatedShop, SimulationConfig, simulate_shop, write_shop

SMALL_SHOP_CONFIG = SimulationConfig(customers=2_000, seed=42)


@pytest.fixture(scope="session")
def small_shop() -> SimulatedShop:
    """A simulated shop of 2,000 customers (seed 42, 2023-01-01 to 2025-12-31)."""
    return simulate_shop(SMALL_SHOP_CONFIG)


@pytest.fixture(scope="session")
def small_shop_dir(small_shop: SimulatedShop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_shop`` written by ``write_shop`` (one Parquet per table, truth, config)."""
    out = tmp_path_factory.mktemp("small_shop")
    write_shop(small_shop, out)
    return out


@pytest.fixture(autouse=True)
def erasure_registry_outside_the_checkout(tmp_path_factory, monkeypatch):
    """Each test's own erasure registry: commands note the files they write there, and its
    default (``winback_output/erasure`` of the working directory) would be the checkout."""
    monkeypatch.setenv(ENV_ERASURE_DIR, str(tmp_path_factory.mktemp("erasure")))
