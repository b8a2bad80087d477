"""Random control groups, stratified by score decile and reproducible from the list id.

Every list holds out a random share of its customers (``group = "control"``)
who are not contacted, so that the campaign's effect can be measured afterwards
as treated minus control. The hold-out is

* **stratified** by score decile within the list: each decile gives (up to
  rounding) the same share, so control and treatment have the same score mix;
* **reproducible from the list id**: a customer's draw is a keyed hash of their
  ``customer_id`` with a key derived from the list id, so the same list id and
  the same customers give the same groups whatever the row order;
* **exact in total**: ``round(share * n)`` customers, spread over the deciles by
  largest remainder.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

GROUP_TREATMENT = "treatment"
GROUP_CONTROL = "control"


def list_seed(list_id: str) -> int:
    """A 64-bit seed derived from the list id (SHA-256), stable across runs and machines."""
    if not list_id:
        raise ValueError("list_id is empty: every list needs an id to seed its control group")
    return int.from_bytes(hashlib.sha256(list_id.encode("utf-8")).digest()[:8], "big")


def customer_draws(customer_ids: pd.Series | pd.Index, list_id: str) -> np.ndarray:
    """A uniform draw in [0, 1) per customer, determined by ``(list_id, customer_id)`` only."""
    key = hashlib.sha256(list_id.encode("utf-8")).hexdigest()[:16]
    ids = pd.Series(np.asarray(customer_ids, dtype=object)).astype(str)
    hashed = pd.util.hash_pandas_object(ids, index=False, hash_key=key).to_numpy(dtype=np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def score_deciles(scores: np.ndarray | pd.Series, n_strata: int = 10) -> np.ndarray:
    """Stratum of each row: 0 for the top-scored tenth of the list, ``n_strata - 1`` the bottom.

    Ranks are taken on the scores (descending, ties by position), so strata have
    equal sizes up to one row. Missing scores rank last.
    """
    values = np.nan_to_num(np.asarray(scores, dtype="float64"), nan=-np.inf)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(n), -values))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return (rank * n_strata) // n


def control_counts(stratum_sizes: np.ndarray, share: float) -> np.ndarray:
    """Controls per stratum: ``round(share * total)`` in all, split by largest remainder."""
    sizes = np.asarray(stratum_sizes, dtype=np.int64)
    total = int(np.floor(share * sizes.sum() + 0.5))
    exact = share * sizes
    counts = np.floor(exact).astype(np.int64)
    left = total - int(counts.sum())
    if left > 0:
        # largest remainder first; ties to the bigger (then earlier) stratum
        order = np.lexsort((np.arange(len(sizes)), -sizes, -(exact - counts)))
        for i in order:
            if left == 0:
                break
            if counts[i] < sizes[i]:
                counts[i] += 1
                left -= 1
    return counts


def assign_groups(
    customer_ids: pd.Series | pd.Index | np.ndarray,
    scores: pd.Series | np.ndarray,
    list_id: str,
    *,
    share: float = 0.1,
    n_strata: int = 10,
) -> pd.Series:
    """``treatment``/``control`` for each customer of a list.

    Parameters
    ----------
    customer_ids
        The list's customers (unique).
    scores
        The score the list is ranked by (strata are its deciles within the list).
    list_id
        Seeds the draws: the same id gives the same groups.
    share
        Share held out as control, in [0, 1).
    n_strata
        Number of score strata (10: deciles).

    Returns
    -------
    pandas.Series
        ``string`` dtype, ``"treatment"`` or ``"control"``, in the order of
        ``customer_ids`` (default index).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"control share must be in [0, 1), got {share}")
    if n_strata < 1:
        raise ValueError(f"n_strata must be >= 1, got {n_strata}")
    ids = pd.Series(np.asarray(customer_ids, dtype=object))
    if len(ids) != len(scores):
        raise ValueError(f"{len(ids)} customer ids but {len(scores)} scores")
    if ids.duplicated().any():
        raise ValueError(
            f"a list holds each customer once; duplicated ids e.g. {ids[ids.duplicated()].head(3).tolist()}"
        )
    n = len(ids)
    strata = score_deciles(scores, n_strata)
    draws = customer_draws(ids, list_id)
    sizes = np.bincount(strata, minlength=n_strata)
    counts = control_counts(sizes, share)
    control = np.zeros(n, dtype=bool)
    for s in range(n_strata):
        members = np.flatnonzero(strata == s)
        if counts[s] == 0 or len(members) == 0:
            continue
        # smallest draws are the controls; ties (practically impossible) by customer id
        order = np.lexsort((ids.to_numpy()[members].astype(str), draws[members]))
        control[members[order[: counts[s]]]] = True
    groups = np.where(control, GROUP_CONTROL, GROUP_TREATMENT)
    return pd.Series(groups, dtype="string", name="group")
