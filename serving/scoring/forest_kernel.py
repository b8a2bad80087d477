"""The compiled loop of :mod:`serving.scoring.forest`: every split of every tree over a block of rows.

Kept apart so only a large batch imports numba (the service's small requests never do)
and the machine code is cached on disk (``cache=True``: compiled once per install,
about 1.7 CPU s, then loaded in milliseconds).
"""

from __future__ import annotations

import numba
import numpy as np


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
    (``forest._BlockColumns``); split ``k`` goes left when ``columns[split_column[k]] <=
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
