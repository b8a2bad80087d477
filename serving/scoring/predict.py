"""Predictions of the served models: feature columns as NumPy arrays, calibrated probabilities.

The fast route the service and batch scoring share: each feature column is
converted once, models with the same columns share one matrix, LightGBM is
called on it directly (no pandas round trip), optionally on a thread pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet, FeatureSetMismatch
from serving.config import SCORE_COLUMNS
from serving.scoring.forest import forest_of
from serving.scoring.models import ServedModels


class FeatureColumns:
    """Feature columns as NumPy arrays, each converted once and shared by every model.

    Built from a frame (batch scoring, tests) or straight from a request's typed
    columns (:meth:`from_arrays`, what :func:`rows_to_columns` returns): posted rows
    then never become a DataFrame only for their arrays to be taken back out of
    it. The three models read mostly the same columns; a model's matrix is built
    once and shared by every model with the same columns and categories.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame: pd.DataFrame | None = frame
        self._rows = len(frame)
        self._dtypes: dict[str, str] | None = None
        self._floats: dict[str, np.ndarray] = {}
        self._strings: dict[str, np.ndarray] = {}
        self._codes: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self._matrices: dict[tuple, np.ndarray] = {}

    @classmethod
    def from_arrays(
        cls, feature_set: FeatureSet, arrays: Mapping[str, np.ndarray]
    ) -> FeatureColumns:
        """Typed columns of ``feature_set``: float64 arrays, or object arrays of str/None.

        The arrays must already fit the feature set (what :func:`rows_to_columns`
        checks); they are used as they are, not copied.
        """
        lengths = {len(v) for v in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths {sorted(lengths)}")
        self = cls.__new__(cls)
        self._frame = None
        self._rows = lengths.pop()
        dtypes = feature_set.dtypes  # a property building a dict: once, not once per column
        self._dtypes = {name: dtypes[name] for name in arrays}
        self._floats = {n: a for n, a in arrays.items() if self._dtypes[n] != "category"}
        self._strings = {n: a for n, a in arrays.items() if self._dtypes[n] == "category"}
        self._codes = {}
        self._matrices = {}
        return self

    @classmethod
    def concat(cls, parts: Sequence[FeatureColumns]) -> FeatureColumns:
        """The rows of ``parts`` one after the other (the micro-batcher merges requests so)."""
        if len(parts) == 1:
            return parts[0]
        if any(p._dtypes is None for p in parts):
            return cls(pd.concat([p.frame for p in parts], ignore_index=True))
        dtypes = parts[0]._dtypes
        if any(p._dtypes != dtypes for p in parts):
            raise ValueError("cannot merge requests with different columns")
        arrays = {
            name: np.concatenate(
                [(p._strings if kind == "category" else p._floats)[name] for p in parts]
            )
            for name, kind in dtypes.items()
        }
        return cls.from_arrays(FeatureSet("merged", tuple(dtypes.items())), arrays)

    def __len__(self) -> int:
        return self._rows

    def take(self, rows: np.ndarray, feature_set: FeatureSet) -> FeatureColumns:
        """The rows at positions ``rows`` of ``feature_set``'s columns (each column converted once).

        What a by-id lookup needs to explain a few customers of the whole score
        table: fancy indexing of cached arrays, no frame slicing.
        """
        arrays = {
            name: (self.strings(name) if kind == "category" else self.floats(name))[rows]
            for name, kind in feature_set.columns
        }
        return FeatureColumns.from_arrays(feature_set, arrays)

    @property
    def frame(self) -> pd.DataFrame:
        """The columns as a frame (float64, categoricals as ``string``), built on first use."""
        if self._frame is None:
            assert self._dtypes is not None
            data = {
                name: pd.array(self._strings[name], dtype="string")
                if kind == "category"
                else self._floats[name]
                for name, kind in self._dtypes.items()
            }
            self._frame = pd.DataFrame(data, columns=list(self._dtypes))
        return self._frame

    def check(self, feature_set: FeatureSet) -> None:
        """Raise ``FeatureSetMismatch`` naming every column of ``feature_set`` missing or mistyped."""
        if self._dtypes is None:
            feature_set.check(self.frame)
            return
        missing = [c for c in feature_set.names if c not in self._dtypes]
        wrong = {
            c: (kind, self._dtypes[c])
            for c, kind in feature_set.columns
            if c in self._dtypes and (kind == "category") != (self._dtypes[c] == "category")
        }
        if missing or wrong:
            raise FeatureSetMismatch(feature_set.name, missing, [], wrong)

    def floats(self, name: str) -> np.ndarray:
        """Column ``name`` as float64, missing values NaN (read-only).

        A ``float64`` column is its frame's own array (its missing values are
        NaN already): a copy of every feature column would add half a gigabyte
        at a million customers.
        """
        if name not in self._floats:
            column = self.frame[name]
            if column.dtype == np.float64:
                values = column.to_numpy().view()
                values.flags.writeable = False
            else:
                values = column.to_numpy(dtype="float64", na_value=np.nan)
            self._floats[name] = values
        return self._floats[name]

    def strings(self, name: str) -> np.ndarray:
        """Column ``name`` as an object array of str, missing values None."""
        if name not in self._strings:
            column = self.frame[name].astype("string")
            self._strings[name] = column.to_numpy(dtype=object, na_value=None)
        return self._strings[name]

    def codes(self, name: str, categories: Sequence[str]) -> np.ndarray:
        """Column ``name`` as positions in ``categories`` (float64; unknown or missing NaN)."""
        key = (name, tuple(categories))  # models trained on the same data share categories
        if key not in self._codes:
            column = None if self._frame is None else self._frame[name]
            if column is not None and isinstance(column.dtype, pd.CategoricalDtype):
                self._codes[key] = _categorical_codes(column, key[1])
            else:
                positions = {category: float(i) for i, category in enumerate(key[1])}
                values = self.strings(name)
                self._codes[key] = np.fromiter(
                    (positions.get(v, np.nan) for v in values), dtype="float64", count=len(values)
                )  # a dict lookup per value: a third of Index.get_indexer's time on object arrays
        return self._codes[key]

    def source(
        self, name: str, categories: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Column ``name``'s whole array (codes when it has ``categories``) and the rows to read.

        The rows are ``None`` for every row in order; a :meth:`subset` names its rows.
        """
        return (self.floats(name) if categories is None else self.codes(name, categories)), None

    def with_floats(self, arrays: Mapping[str, np.ndarray]) -> FeatureColumns:
        """These columns plus (or replaced by) the float64 ``arrays``, sharing every conversion."""
        return _WithFloats(self, arrays)

    def subset(self, rows: np.ndarray) -> FeatureColumns:
        """The rows at positions ``rows``, sharing this object's converted columns.

        Batch scoring converts each column of the whole frame once and gives each
        model its population's rows: no frame is sliced, no column converted twice.
        """
        return _RowSubset(self, np.asarray(rows, dtype="int64"))

    def matrix(self, names: Sequence[str], categories: Mapping[str, Sequence[str]]) -> np.ndarray:
        """The float64 matrix of ``names`` (categoricals as codes), shared by equal requests."""
        names = tuple(names)
        key = (names, tuple((n, tuple(categories[n])) for n in names if n in categories))
        matrix = self._matrices.get(key)
        if matrix is None:  # a batch for the forest column-major (its columns read contiguously)
            order = "F" if self._rows >= FOREST_MIN_ROWS else "C"
            matrix = np.empty((self._rows, len(names)), dtype="float64", order=order)
            for j, name in enumerate(names):
                if name in categories:
                    matrix[:, j] = self.codes(name, categories[name])
                else:
                    matrix[:, j] = self.floats(name)
            self._matrices[key] = matrix
        return matrix


def _categorical_codes(column: pd.Series, categories: Sequence[str]) -> np.ndarray:
    """Positions in ``categories`` of a pandas categorical's values, by its (few) categories.

    The same values as a lookup of each value's text: unknown or missing NaN.
    """
    own = column.cat.categories.astype("string").to_numpy(dtype=object, na_value=None)
    positions = {category: float(i) for i, category in enumerate(categories)}
    lookup = np.array([positions.get(v, np.nan) for v in own] + [np.nan], dtype="float64")
    return lookup[column.cat.codes.to_numpy()]  # code -1 (missing) takes the trailing NaN


class _RowSubset(FeatureColumns):
    """Some rows of a :class:`FeatureColumns`: slices of the parent's converted columns."""

    def __init__(self, parent: FeatureColumns, rows: np.ndarray) -> None:
        self._parent = parent
        self._positions = rows
        self._rows = len(rows)
        self._dtypes = parent._dtypes
        self._frame = None
        self._floats, self._strings, self._codes, self._matrices = {}, {}, {}, {}

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self._parent.frame.iloc[self._positions]
        return self._frame

    def check(self, feature_set: FeatureSet) -> None:
        self._parent.check(feature_set)

    # Not cached: each slice feeds one model matrix (which is), and a cache would hold
    # a second copy of the population's columns beside it.
    def floats(self, name: str) -> np.ndarray:
        return self._parent.floats(name)[self._positions]

    def strings(self, name: str) -> np.ndarray:
        parent = self._parent
        if name in parent._strings or type(parent) is not FeatureColumns or parent._frame is None:
            return parent.strings(name)[self._positions]
        # Only these rows converted: the reasons of a million customers' top thousand read
        # two categorical columns, whose whole conversion took half a second.
        column = parent._frame[name].iloc[self._positions].astype("string")
        return column.to_numpy(dtype=object, na_value=None)

    def codes(self, name: str, categories: Sequence[str]) -> np.ndarray:
        return self._parent.codes(name, categories)[self._positions]

    def source(
        self, name: str, categories: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        values, rows = self._parent.source(name, categories)
        return values, (self._positions if rows is None else rows[self._positions])


class _WithFloats(FeatureColumns):
    """A :class:`FeatureColumns` with some float64 columns added or replaced (model inputs
    computed in scoring, e.g. the value model's BTYD features), the rest its parent's."""

    def __init__(self, parent: FeatureColumns, arrays: Mapping[str, np.ndarray]) -> None:
        lengths = {len(a) for a in arrays.values()} | {len(parent)}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths {sorted(lengths)}")
        self._parent = parent
        self._extra = {name: np.asarray(a, dtype="float64") for name, a in arrays.items()}
        self._rows = len(parent)
        self._dtypes = (
            None
            if parent._dtypes is None
            else {**parent._dtypes, **dict.fromkeys(arrays, "float64")}
        )
        self._frame = None
        self._floats, self._strings, self._codes, self._matrices = {}, {}, {}, {}

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self._parent.frame.assign(**self._extra)
        return self._frame

    def floats(self, name: str) -> np.ndarray:
        return self._extra[name] if name in self._extra else self._parent.floats(name)

    def strings(self, name: str) -> np.ndarray:
        return self._parent.strings(name)

    def codes(self, name: str, categories: Sequence[str]) -> np.ndarray:
        return self._parent.codes(name, categories)

    def source(
        self, name: str, categories: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if name in self._extra and categories is None:
            return self._extra[name], None
        return self._parent.source(name, categories)


class MatrixBlocks:
    """A model's matrix (:func:`model_matrix`) made block by block, never whole.

    What :mod:`serving.scoring.forest` reads for a large batch: each block holds
    only the features the trees split on, taken from the columns' own arrays
    (views of the scoring frame), so scoring a million customers does not copy
    every feature into a matrix first (half a gigabyte per model).
    """

    def __init__(self, columns: FeatureColumns, names: Sequence[str], categories: Mapping) -> None:
        # Every column converted (and its codes made) here, once: blocks are read on threads.
        self._sources = [columns.source(n, categories.get(n)) for n in names]
        self._rows = len(columns)

    def __len__(self) -> int:
        return self._rows

    def block(self, start: int, stop: int, features: Sequence[int] | None = None) -> np.ndarray:
        """Rows ``start:stop`` (column-major); only ``features`` filled when given (others NaN)."""
        stop = min(stop, self._rows)
        wanted = range(len(self._sources)) if features is None else features
        out = np.full((stop - start, len(self._sources)), np.nan, dtype="float64", order="F")
        for j in wanted:
            values, rows = self._sources[j]
            out[:, j] = values[start:stop] if rows is None else values[rows[start:stop]]
        return out


def model_matrix(model: Any, features: pd.DataFrame | FeatureColumns) -> np.ndarray:
    """The float64 matrix LightGBM sees for ``features``: the model's columns, categoricals as codes.

    The same values ``WinbackClassifier._encode`` hands LightGBM through pandas
    (a categorical becomes its position in the fitted ``categories_``, unknown or
    missing values NaN), built directly as one C-ordered array (column-major from
    ``FOREST_MIN_ROWS`` rows, for :mod:`serving.scoring.forest`): for a 1,000-row
    request this is ~0.3 ms instead of ~15 ms of frame copies and conversions.
    Models with the same columns and categories get the same (read-only) matrix.
    """
    columns = features if isinstance(features, FeatureColumns) else FeatureColumns(features)
    return columns.matrix(model.feature_set_.names, model.categories_)


def model_input(model: Any, columns: FeatureColumns) -> np.ndarray | MatrixBlocks:
    """The model's matrix, or its :class:`MatrixBlocks` for a batch the forest scores."""
    if len(columns) >= FOREST_MIN_ROWS:
        return MatrixBlocks(columns, model.feature_set_.names, model.categories_)
    return model_matrix(model, columns)


def has_booster(model: Any) -> bool:
    """Whether ``model`` is a fitted ``WinbackClassifier``: its trees can score a matrix."""
    return callable(getattr(model, "trees", None)) and hasattr(model, "categories_")


#: Rows from which a batch is scored by :mod:`serving.scoring.forest` (its tables cost
#: about a second per model; LightGBM's predictor is faster below).
FOREST_MIN_ROWS = 50_000


def raw_scores(
    booster: Any,
    matrix: np.ndarray | MatrixBlocks,
    num_iteration: int | None,
    *,
    num_threads: int = 0,
) -> np.ndarray:
    """LightGBM's raw score of each row: NumPy-evaluated trees for large batches, else LightGBM.

    Both routes give the same values, bit for bit (see :mod:`serving.scoring.forest`).
    """
    if len(matrix) >= FOREST_MIN_ROWS:
        forest = forest_of(booster, num_iteration)
        if forest is not None:
            return forest.raw_score(matrix)
    if isinstance(matrix, MatrixBlocks):
        matrix = matrix.block(0, len(matrix))
    return np.asarray(
        booster.predict(
            matrix, raw_score=True, num_iteration=num_iteration, num_threads=num_threads
        ),
        dtype="float64",
    )


def predict_matrix(
    model: Any, matrix: np.ndarray | MatrixBlocks, *, num_threads: int | None = None
) -> np.ndarray:
    """Calibrated probabilities of a fitted ``WinbackClassifier`` for a :func:`model_matrix`."""
    threads = model.num_threads if num_threads is None else num_threads
    booster, num_iteration = model.trees()
    return model.calibrate(raw_scores(booster, matrix, num_iteration, num_threads=threads))


def predict_probability(
    model: Any, features: pd.DataFrame | FeatureColumns, *, num_threads: int | None = None
) -> np.ndarray:
    """Calibrated probability of the positive class for every row, by the fastest safe route.

    For a fitted ``WinbackClassifier`` the booster predicts on
    :func:`model_matrix` with ``num_threads`` LightGBM threads (the model's own
    setting when ``None``), then the fitted calibrator applies: exactly what
    ``model.predict_proba`` returns, without its pandas round trip. Any other
    model (a stand-in with only ``predict_proba``) is called as it is.
    """
    if not has_booster(model):
        frame = features.frame if isinstance(features, FeatureColumns) else features
        return np.asarray(model.predict_proba(frame[model.feature_set_.names]), dtype="float64")
    columns = features if isinstance(features, FeatureColumns) else FeatureColumns(features)
    return predict_matrix(model, model_input(model, columns), num_threads=num_threads)


def predict_scores(
    models: ServedModels,
    features: pd.DataFrame | FeatureColumns,
    targets: Sequence[str] | None = None,
    *,
    num_threads: int | None = None,
    pool: Executor | None = None,
    row_chunks: int = 1,
    min_chunk_rows: int = 256,
) -> pd.DataFrame:
    """Calibrated probabilities of each target for every row of ``features``.

    Each model sees exactly the columns of its own feature set, checked with
    ``FeatureSet.check`` (a missing or mistyped column raises, never NaN-fills).
    ``features`` is a frame or a :class:`FeatureColumns` (posted rows, typed by
    :func:`rows_to_columns`); every column is converted to NumPy once and models
    with the same columns share one matrix. ``num_threads`` caps LightGBM's
    threads per call. With a ``pool`` (the service's, one thread per core) the
    predictions run there as one task per model and row chunk (``row_chunks``
    chunks of at least ``min_chunk_rows`` rows): LightGBM releases the GIL, so
    one large request uses every core, while concurrent requests share the same
    few threads instead of oversubscribing the cores. The result has the frame's
    index (a ``RangeIndex`` for :class:`FeatureColumns`).
    """
    targets = models.targets if targets is None else tuple(targets)
    if isinstance(features, FeatureColumns):
        columns = features
        for target in targets:
            columns.check(models[target].feature_set)
        index = pd.RangeIndex(len(columns))
    else:
        for target in targets:
            models[target].feature_set.check(features)
        columns = FeatureColumns(features)
        index = features.index
    n = len(columns)
    chunk = max(min_chunk_rows, -(-n // max(row_chunks, 1)))
    if pool is None or (n <= chunk and len(targets) == 1):
        out = {
            SCORE_COLUMNS[t]: predict_probability(models[t].model, columns, num_threads=num_threads)
            for t in targets
        }
        return pd.DataFrame(out, index=index)
    jobs = {}
    for t in targets:
        model = models[t].model
        matrix = model_matrix(model, columns) if has_booster(model) else None
        for start in range(0, n, chunk):
            if matrix is None:
                job = pool.submit(
                    predict_probability,
                    model,
                    columns.frame.iloc[start : start + chunk],
                    num_threads=num_threads,
                )
            else:
                job = pool.submit(
                    predict_matrix, model, matrix[start : start + chunk], num_threads=num_threads
                )
            jobs[(t, start)] = job
    out = {
        SCORE_COLUMNS[t]: np.concatenate(
            [jobs[(t, start)].result() for start in range(0, n, chunk)]
        )
        for t in targets
    }
    return pd.DataFrame(out, index=index)
