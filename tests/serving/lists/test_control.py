"""Control groups: share, stratification by score decile, reproducibility from the list id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.lists.control import assign_groups, control_counts, list_seed, score_deciles


def _list(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(n)], "score": rng.random(n)})


def test_share_is_exact_and_every_decile_gives_its_share() -> None:
    frame = _list(1_000)
    groups = assign_groups(frame["customer_id"], frame["score"], "L-1", share=0.1)
    assert set(groups) == {"treatment", "control"}
    assert int((groups == "control").sum()) == 100
    deciles = score_deciles(frame["score"].to_numpy())
    per_decile = pd.Series(groups.to_numpy() == "control").groupby(deciles).sum()
    assert per_decile.tolist() == [10] * 10


def test_same_id_same_groups_whatever_the_row_order() -> None:
    frame = _list(500)
    first = assign_groups(frame["customer_id"], frame["score"], "winback-20250101-abc", share=0.2)
    shuffled = frame.sample(frac=1.0, random_state=3)
    again = assign_groups(
        shuffled["customer_id"], shuffled["score"], "winback-20250101-abc", share=0.2
    )
    by_id = dict(zip(frame["customer_id"], first, strict=True))
    assert [by_id[c] for c in shuffled["customer_id"]] == again.tolist()
    other = assign_groups(frame["customer_id"], frame["score"], "winback-20250101-abd", share=0.2)
    assert (other != first).any()
    assert list_seed("a") == list_seed("a") != list_seed("b")


def test_control_and_treatment_have_the_same_score_mix() -> None:
    frame = _list(5_000, seed=1)
    groups = assign_groups(frame["customer_id"], frame["score"], "L-mix", share=0.1)
    control = frame.loc[groups.to_numpy() == "control", "score"]
    treated = frame.loc[groups.to_numpy() == "treatment", "score"]
    assert abs(control.mean() - treated.mean()) < 0.02


def test_largest_remainder_counts() -> None:
    assert control_counts(np.array([5, 5, 5]), 0.1).tolist() == [1, 1, 0]
    assert control_counts(np.array([3, 3]), 0.0).tolist() == [0, 0]


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="share"):
        assign_groups(["a"], [1.0], "L", share=1.0)
    with pytest.raises(ValueError, match="duplicated"):
        assign_groups(["a", "a"], [1.0, 2.0], "L")
    with pytest.raises(ValueError, match="empty"):
        list_seed("")


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 300), share=st.floats(0.0, 0.5), list_id=st.text(min_size=1, max_size=8))
def test_share_and_strata_properties(n: int, share: float, list_id: str) -> None:
    frame = _list(n, seed=n)
    groups = assign_groups(frame["customer_id"], frame["score"], list_id, share=share)
    is_control = groups.to_numpy() == "control"
    assert is_control.sum() == int(np.floor(share * n + 0.5))
    if n:
        deciles = score_deciles(frame["score"].to_numpy())
        sizes = np.bincount(deciles, minlength=10)
        per = np.bincount(deciles, weights=is_control, minlength=10)
        # each stratum within one customer of its exact share
        assert np.all(np.abs(per - share * sizes) < 1.0 + 1e-9)
