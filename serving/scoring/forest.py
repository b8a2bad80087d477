"""LightGBM trees evaluated over many rows at once: LightGBM's raw scores, for less CPU.

LightGBM's predictor walks each row down each tree in turn, about 90 ns a tree
and a row on a 2-core machine: scoring a million customers with four models of
150-350 trees took about 45 CPU s. Here every split of a tree is evaluated for
a block of rows at once, the outcomes are packed into a small integer code, and
a table made once per tree maps the code to the leaf value
(:mod:`serving.scoring.forest_kernel`, compiled with numba: each split's column
read as LightGBM reads it, then the comparison, the packing and the lookup in one
vectorised pass per split, the whole block in one call without the GIL, where NumPy
took several passes over memory per split and column). The result is bit for bit LightGBM's raw
score: the comparisons are LightGBM's (missing values and near-zero values as
its predictor sends them) and the trees are added in the same order, starting
from zero.

Used for large batches only: a tree with more than :data:`MAX_SPLITS` splits,
linear trees or several trees per iteration make :meth:`Forest.from_booster`
return ``None``, and the caller keeps LightGBM's predictor.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Most splits per tree (17 leaves): the outcome code fits ``uint16``, its table 65,536 leaves.
MAX_SPLITS = 16
#: Largest category a categorical split may name (the kernel looks categories up in a table).
MAX_CATEGORY = 65_535
#: Rows evaluated together: the block's column variants (~60-100 of 8 bytes a row) and
#: codes stay in the core's L2 cache (2,048 rows: ~30% less CPU than 8,192 for the demo's
#: churn model, 600k rows).
BLOCK_ROWS = 2_048


@dataclass(frozen=True)
class _Split:
    """One split: numerical (``value <= threshold``) or categorical (``value in categories``).

    ``missing`` says where LightGBM sends a missing value: ``"left"``, ``"right"``, or
    ``"zero-left"``/``"zero-right"`` when zero and missing go the default way.
    """

    feature: int
    threshold: float
    missing: str
    categories: np.ndarray | None = None


@dataclass(frozen=True)
class _Tree:
    splits: tuple[_Split, ...]
    leaf_of_code: np.ndarray  # uint8, one leaf per combination of split outcomes
    leaf_values: np.ndarray  # float64

    @property
    def value_of_code(self) -> np.ndarray:
        """The leaf value each combination of split outcomes reaches (one lookup, not two)."""
        return self.leaf_values[self.leaf_of_code]


def _split(node: dict) -> _Split:
    """The :class:`_Split` of a ``dump_model`` node, its missing values routed as LightGBM does."""
    feature = int(node["split_feature"])
    if node["decision_type"] == "==":  # categorical: missing and negative values go right
        categories = np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=float)
        if categories.min(initial=0) < 0 or categories.max(initial=0) > MAX_CATEGORY:
            raise NotImplementedError("category out of the kernel's table")
        return _Split(feature, np.nan, "right", categories)
    if node["decision_type"] != "<=":
        raise NotImplementedError(node["decision_type"])
    threshold = float(node["threshold"])
    left = bool(node["default_left"])
    kind = node["missing_type"]
    if kind == "NaN":
        return _Split(feature, threshold, "left" if left else "right")
    if kind == "None":  # a missing value is read as 0.0
        return _Split(feature, threshold, "left" if threshold >= 0.0 else "right")
    if kind == "Zero":
        return _Split(feature, threshold, "zero-left" if left else "zero-right")
    raise NotImplementedError(kind)


def _tree(root: dict) -> _Tree | None:
    """The splits of a tree (pre-order) and the leaf each combination of their outcomes reaches."""
    splits: list[_Split] = []
    leaves: list[float] = []

    def walk(node: dict) -> tuple:
        if "split_feature" not in node:
            leaves.append(float(node["leaf_value"]))
            return ("leaf", len(leaves) - 1)
        splits.append(_split(node))
        k = len(splits) - 1
        return ("split", k, walk(node["left_child"]), walk(node["right_child"]))

    shape = walk(root)
    if len(splits) > MAX_SPLITS:
        return None
    codes = np.arange(2 ** len(splits), dtype=np.int64)
    leaf_of_code = np.zeros(len(codes), dtype=np.uint8)

    def fill(node: tuple, rows: np.ndarray) -> None:
        if node[0] == "leaf":
            leaf_of_code[rows] = node[1]
            return
        left = ((codes[rows] >> node[1]) & 1).astype(bool)
        fill(node[2], rows[left])
        fill(node[3], rows[~left])

    fill(shape, codes)
    return _Tree(tuple(splits), leaf_of_code, np.array(leaves, dtype="float64"))


class Forest:
    """The first trees of a LightGBM booster, evaluated block by block."""

    def __init__(self, trees: tuple[_Tree, ...]) -> None:
        self.trees = trees
        self.features = sorted({s.feature for t in trees for s in t.splits})
        # Each split reads one variant of a column (its missing values routed as it routes
        # them; a categorical split's membership as 0 or NaN against 0.5), made once per block.
        variants: dict[tuple, int] = {}
        column, thresholds = [], []
        for tree in trees:
            for split in tree.splits:
                if split.categories is None:
                    key: tuple = (split.feature, split.missing, None)
                    thresholds.append(split.threshold)
                else:
                    key = (split.feature, "member", tuple(split.categories.tolist()))
                    thresholds.append(0.5)
                column.append(variants.setdefault(key, len(variants)))
        self._variants = list(variants)
        tables = [t.value_of_code for t in trees]
        self._trees = (
            np.array(column, dtype=np.int64),
            np.array(thresholds, dtype="float64"),
            np.cumsum([0] + [len(t.splits) for t in trees], dtype=np.int64),
            np.cumsum([0] + [len(t) for t in tables], dtype=np.int64),
            np.concatenate(tables) if tables else np.zeros(0),
        )
        self._variant_arrays: tuple | None = None

    @classmethod
    def from_booster(cls, booster: Any, num_iteration: int | None = None) -> Forest | None:
        """The forest of ``booster``'s first ``num_iteration`` trees, or None if not supported."""
        model = booster.dump_model(num_iteration=num_iteration)
        if int(model.get("num_tree_per_iteration", 1)) != 1:
            return None
        trees = []
        for info in model["tree_info"]:
            if info.get("is_linear"):
                return None
            try:
                tree = _tree(info["tree_structure"])
            except NotImplementedError:
                return None
            if tree is None:
                return None
            trees.append(tree)
        return cls(tuple(trees))

    def raw_score(self, matrix: Any, *, threads: int | None = None) -> np.ndarray:
        """Sum of the trees' leaf values per row of ``matrix`` (rows x features, float64).

        ``matrix`` is an array or a ``serving.scoring.predict.MatrixBlocks``.

        Blocks are evaluated on ``threads`` threads (default: the cores this process
        may use, at most :data:`MAX_THREADS`): each block is one compiled call that
        releases the GIL, so a million rows take about half the wall time on two cores,
        for the same CPU.
        """
        out = np.empty(len(matrix), dtype="float64")
        starts = range(0, len(matrix), BLOCK_ROWS)
        threads = min(default_threads() if threads is None else threads, len(starts))

        def score(start: int) -> None:
            if isinstance(matrix, np.ndarray):
                block = matrix[start : start + BLOCK_ROWS]
            else:  # serving.scoring.predict.MatrixBlocks: the block made now, its features only
                block = matrix.block(start, start + BLOCK_ROWS, self.features)
            out[start : start + len(block)] = self._block(block)

        if threads <= 1:
            for start in starts:
                score(start)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(score, starts))
        return out

    def _block(self, block: np.ndarray) -> np.ndarray:
        """The raw scores of a block (rows x features): one compiled call."""
        from serving.scoring.forest_kernel import score_block

        variants = self._variant_arrays or self._make_variant_arrays()
        rows = np.ascontiguousarray(np.asarray(block, dtype="float64").T)  # a view when F-ordered
        stacked = np.empty((len(self._variants), len(block)), dtype="float64")
        total = np.zeros(len(block), dtype="float64")
        score_block(rows, variants, self._trees, stacked, total)
        return total

    def _make_variant_arrays(self) -> tuple:
        """The variants as the kernel reads them: feature, mode, and categorical members."""
        from serving.scoring import forest_kernel as kernel

        modes = {"right": kernel.RIGHT, "left": kernel.LEFT, "zero-left": kernel.ZERO_LEFT,
                 "zero-right": kernel.ZERO_RIGHT, "member": kernel.MEMBER}  # fmt: skip
        starts, sizes, members = [], [], [np.zeros(0, dtype=np.uint8)]
        offset = 0
        for _, _, categories in self._variants:
            size = 0 if categories is None else int(max(categories, default=-1)) + 1
            if size:
                table = np.zeros(size, dtype=np.uint8)
                table[np.array(categories, dtype=np.int64)] = 1
                members.append(table)
            starts.append(offset)
            sizes.append(size)
            offset += size
        self._variant_arrays = (
            np.array([v[0] for v in self._variants], dtype=np.int64),
            np.array([modes[v[1]] for v in self._variants], dtype=np.int64),
            np.array(starts, dtype=np.int64),
            np.array(sizes, dtype=np.int64),
            np.concatenate(members),
        )
        return self._variant_arrays


#: Most threads a batch is scored on.
MAX_THREADS = 2


def default_threads() -> int:
    """The cores this process may run on, at most :data:`MAX_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FORESTS_LOCK = threading.Lock()


def forest_of(booster: Any, num_iteration: int | None) -> Forest | None:
    """The (cached) :class:`Forest` of a booster's first ``num_iteration`` trees, or None."""
    with _FORESTS_LOCK:  # one build per booster when a warm-up thread is at it too
        cached = _FORESTS.get(booster)
        if cached is None or cached[0] != num_iteration:
            cached = (num_iteration, Forest.from_booster(booster, num_iteration))
            _FORESTS[booster] = cached
    return cached[1]


def warm(booster: Any, num_iteration: int | None, *, kernel: bool = True) -> None:
    """Make the booster's forest and (with ``kernel``) load the compiled kernel, ahead of a batch.

    The forest's tables take a few tenths of a second of Python per model; the
    kernel (numba's import and its machine code from the on-disk cache, about a
    second of CPU and 100 MiB) loads when one row is scored. A caller spends
    them while something else waits.
    """
    forest = forest_of(booster, num_iteration)
    if forest is not None and kernel:
        forest.raw_score(np.zeros((1, booster.num_feature())), threads=1)
