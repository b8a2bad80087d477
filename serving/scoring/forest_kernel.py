"""The compiled loops of :mod:`serving.scoring.forest`: a block of rows through every tree.

Kept apart so only a large batch imports numba (the service's small requests never do)
and the machine code is cached on disk (``cache=True``: compiled once per install,
then loaded in milliseconds).
"""

from __future__ import annotations

import numba
import numpy as np

#: How a split reads its column (its variant): missing values sent right (NaN: every
#: comparison false), sent left (``-inf``), zero and missing sent left or right, or a
#: categorical split's membership (0.0 for a member, NaN otherwise, against 0.5).
RIGHT, LEFT, ZERO_LEFT, ZERO_RIGHT, MEMBER = 0, 1, 2, 3, 4
#: LightGBM's predictor reads values within this distance of zero as zero (``kZeroThreshold``).
ZERO_THRESHOLD = 1e-35


@numba.njit(nogil=True, cache=True)
def read_variants(
    block: np.ndarray,
    feature: np.ndarray,
    mode: np.ndarray,
    member_start: np.ndarray,
    member_size: np.ndarray,
    members: np.ndarray,
    stacked: np.ndarray,
) -> None:
    """Each variant's values as the splits compare them, into ``stacked`` (variants x rows).

    ``block`` (features x rows) holds a block's raw values. Variant ``v`` reads
    feature ``feature[v]`` as ``mode[v]`` says; a categorical variant's categories are
    ``members[member_start[v]:member_start[v] + member_size[v]]`` (1 where the category
    goes left). As LightGBM's predictor: a value within :data:`ZERO_THRESHOLD` of zero
    is zero; a category is the value truncated to an integer, and missing or
    negative categories go right.
    """
    rows = block.shape[1]
    nan = np.nan
    for v in range(feature.shape[0]):
        src = block[feature[v]]
        dst = stacked[v]
        m = mode[v]
        if m == MEMBER:
            start = member_start[v]
            size = member_size[v]
            for r in range(rows):
                x = src[r]
                if abs(x) <= ZERO_THRESHOLD:
                    x = 0.0
                dst[r] = nan
                if x > -1.0 and x < size and members[start + int(x)]:  # false for NaN
                    dst[r] = 0.0
        elif m == RIGHT:
            for r in range(rows):
                x = src[r]
                dst[r] = 0.0 if abs(x) <= ZERO_THRESHOLD else x
        elif m == LEFT:
            for r in range(rows):
                x = src[r]
                x = 0.0 if abs(x) <= ZERO_THRESHOLD else x
                dst[r] = -np.inf if x != x else x
        else:  # zero and missing go the default way
            default = -np.inf if m == ZERO_LEFT else nan
            for r in range(rows):
                x = src[r]
                dst[r] = default if (x != x or abs(x) <= ZERO_THRESHOLD) else x


@numba.njit(nogil=True, cache=True)
def add_trees(
    columns: np.ndarray,
    split_column: np.ndarray,
    thresholds: np.ndarray,
    tree_starts: np.ndarray,
    table_starts: np.ndarray,
    tables: np.ndarray,
    total: np.ndarray,
) -> None:
    """Add each tree's leaf value to ``total``, tree by tree in order (LightGBM's sum, bit for bit).

    ``columns`` (variants x rows) holds each split's values as the comparison reads them
    (:func:`read_variants`); split ``k`` goes left when ``columns[split_column[k]] <=
    thresholds[k]``. The splits of tree ``t`` are ``tree_starts[t]:tree_starts[t + 1]``;
    their outcomes, packed into a code (bit ``k - start`` for split ``k``), index the tree's
    table of leaf values at ``table_starts[t]``. The inner loops run over rows only, so
    the compiler vectorises the comparison, the shift and the or, which NumPy makes
    three passes over memory.
    """
    rows = columns.shape[1]
    code = np.zeros(rows, np.uint32)
    for tree in range(tree_starts.shape[0] - 1):
        start = tree_starts[tree]
        for r in range(rows):
            code[r] = 0
        for k in range(start, tree_starts[tree + 1]):
            values = columns[split_column[k]]
            threshold = thresholds[k]
            shift = np.uint32(k - start)
            for r in range(rows):
                code[r] |= np.uint32(values[r] <= threshold) << shift
        base = table_starts[tree]
        for r in range(rows):
            total[r] += tables[base + code[r]]


@numba.njit(nogil=True, cache=True)
def score_block(
    block: np.ndarray,
    variants: tuple,
    trees: tuple,
    stacked: np.ndarray,
    total: np.ndarray,
) -> None:
    """:func:`read_variants` then :func:`add_trees` for one block: one call, the GIL released.

    ``variants`` is ``(feature, mode, member_start, member_size, members)`` and ``trees``
    ``(split_column, thresholds, tree_starts, table_starts, tables)``; ``stacked`` is scratch
    (variants x rows) and ``total`` starts at zero.
    """
    read_variants(block, variants[0], variants[1], variants[2], variants[3], variants[4], stacked)
    add_trees(stacked, trees[0], trees[1], trees[2], trees[3], trees[4], total)
