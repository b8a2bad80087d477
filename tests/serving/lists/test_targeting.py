"""Targeting: top N, budget and the profit-optimal cut on hand-built lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.lists.targeting import (
    TargetingConfig,
    apply_targeting,
    budget_count,
    profit_optimal_count,
    target_count,
)


def _ranked() -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": list("abcdef"), "incremental_margin": [9.0, 6.0, 4.0, 2.5, 1.0, 0.2]}
    )


def test_top_budget_and_profit_cut() -> None:
    ranked = _ranked()
    assert apply_targeting(ranked, TargetingConfig(top=2))["customer_id"].tolist() == ["a", "b"]
    # 10 / 3 pays for 3 contacts
    assert len(apply_targeting(ranked, TargetingConfig(budget=10.0, contact_cost=3.0))) == 3
    assert budget_count(0.3, 0.1) == 3  # no floating-point loss of a contact
    # contact while the expected incremental margin exceeds the cost of 2.5: a, b, c
    cut = apply_targeting(
        ranked,
        TargetingConfig(contact_cost=2.5, profit_optimal=True),
        value_column="incremental_margin",
    )
    assert cut["customer_id"].tolist() == ["a", "b", "c"]
    # the strictest limit wins
    both = TargetingConfig(top=2, contact_cost=0.5, profit_optimal=True)
    assert len(apply_targeting(ranked, both, value_column="incremental_margin")) == 2
    assert len(apply_targeting(ranked, TargetingConfig())) == 6


def test_profit_cut_stops_at_missing_values() -> None:
    assert profit_optimal_count(np.array([5.0, np.nan, 4.0]), 1.0) == 1
    assert profit_optimal_count(np.array([]), 1.0) == 0


def test_invalid_configs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="contact-cost"):
        TargetingConfig(budget=100.0)
    with pytest.raises(ValueError, match="top"):
        TargetingConfig(top=-1)
    with pytest.raises(ValueError, match="incremental margin"):
        apply_targeting(_ranked(), TargetingConfig(profit_optimal=True), value_column="nope")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-50, 50, allow_nan=False), min_size=0, max_size=40),
    cost=st.floats(0, 20, allow_nan=False),
)
def test_profit_cut_is_the_brute_force_best_prefix(values: list[float], cost: float) -> None:
    ordered = np.sort(np.asarray(values, dtype="float64"))[::-1]
    n = target_count(len(ordered), TargetingConfig(contact_cost=cost, profit_optimal=True), ordered)
    profits = [float(np.sum(ordered[:k] - cost)) for k in range(len(ordered) + 1)]
    assert profits[n] == pytest.approx(max(profits))
    assert all(ordered[:n] > cost)
