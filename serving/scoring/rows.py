"""Posted feature rows (JSON rows or columns, or an Arrow IPC stream) typed and checked against a feature set."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FeatureSet
from serving.scoring.predict import FeatureColumns


class RowsInvalid(ValueError):
    """Posted feature rows do not match the feature set; names every offending column.

    Attributes
    ----------
    missing, unexpected
        Columns absent from / not part of the feature set.
    wrong_dtypes
        Column → (expected, what was sent).
    incomplete_rows
        Column → positions of the rows that lack it (first few), for row-wise input
        where some rows have a column and others do not.
    """

    def __init__(
        self,
        feature_set: str,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        wrong_dtypes: Mapping[str, tuple[str, str]] | None = None,
        incomplete_rows: Mapping[str, list[int]] | None = None,
        detail: str = "",
    ) -> None:
        self.feature_set = feature_set
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.wrong_dtypes = dict(wrong_dtypes or {})
        self.incomplete_rows = dict(incomplete_rows or {})
        parts = [detail] if detail else []
        if self.missing:
            parts.append(f"missing columns {self.missing}")
        if self.unexpected:
            parts.append(f"unexpected columns {self.unexpected}")
        if self.wrong_dtypes:
            parts.append(
                "wrong types "
                + ", ".join(
                    f"{c}: expected {e}, got {g}" for c, (e, g) in sorted(self.wrong_dtypes.items())
                )
            )
        if self.incomplete_rows:
            parts.append(
                "columns missing from some rows "
                + ", ".join(f"{c} (rows {r})" for c, r in sorted(self.incomplete_rows.items()))
            )
        super().__init__(f"feature set {feature_set!r}: " + "; ".join(parts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "feature_set": self.feature_set,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "wrong_dtypes": {
                c: {"expected": e, "got": g} for c, (e, g) in self.wrong_dtypes.items()
            },
            "incomplete_rows": self.incomplete_rows,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: The exact Python types JSON decoding yields for a number or a string (or null);
#: a column of only these is checked with one C-level pass over its value types.
_NUMBER_TYPES = frozenset({int, float, type(None)})


_STRING_TYPES = frozenset({str, type(None)})


def _typed_column(values: Sequence[Any], expected: str) -> tuple[Any, str | None]:
    """``values`` converted to the feature dtype, or the name of the offending type.

    Numbers (or null) for numeric features, as float64 (null NaN); strings (or
    null) for categoricals, as an object array of str/None. Nothing is coerced:
    ``"12"`` for a numeric feature is an error, not 12.
    """
    kinds = set(map(type, values))
    if expected == "category":
        if not kinds <= _STRING_TYPES:
            bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
            if bad is not None:
                return None, type(bad).__name__
            values = [None if v is None else str(v) for v in values]  # str subclasses
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array, None
    if kinds <= _NUMBER_TYPES:
        return np.array(values, dtype="float64"), None  # None becomes NaN
    bad = next((v for v in values if v is not None and not _is_number(v)), None)
    if bad is not None:
        return None, type(bad).__name__
    return np.array([np.nan if v is None else v for v in values], dtype="float64"), None


def rows_to_columns(
    feature_set: FeatureSet,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> FeatureColumns:
    """Posted feature values as typed arrays, checked against ``feature_set``.

    Give either ``rows`` (a list of ``{feature: value}``) or ``columns``
    (``{feature: [values]}``). Every feature of the set must be present in every
    row, nothing else may be; ``null`` is a legitimate missing value (LightGBM
    handles it), an absent key is not. Raises :class:`RowsInvalid` naming the
    columns. The arrays go to the models as they are (no DataFrame in between).
    """
    if (rows is None) == (columns is None):
        raise RowsInvalid(feature_set.name, detail="send exactly one of 'rows' or 'columns'")
    expected = feature_set.dtypes
    if rows is not None:
        if len(rows) == 0:
            raise RowsInvalid(feature_set.name, detail="no rows sent")
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        present = set(keys)
        incomplete: dict[str, list[int]] = {}
        width = len(keys)
        for i, row in enumerate(rows):
            if len(row) != width:
                for col in keys:
                    if col not in row and col in expected:
                        lacking = incomplete.setdefault(col, [])
                        if len(lacking) < 5:
                            lacking.append(i)
        wanted = [col for col in expected if col in present]
        if incomplete or not wanted:
            data = {col: [row.get(col) for row in rows] for col in wanted}
        else:  # every row has every key: one C-level pass per row, then transpose
            pick = operator.itemgetter(*wanted)
            picked = map(pick, rows) if len(wanted) > 1 else ((pick(r),) for r in rows)
            data = dict(zip(wanted, zip(*picked, strict=True), strict=True))
    else:
        present = set(columns)
        lengths = {c: len(v) for c, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise RowsInvalid(feature_set.name, detail=f"columns have different lengths {lengths}")
        if not lengths or next(iter(lengths.values())) == 0:
            raise RowsInvalid(feature_set.name, detail="no rows sent")
        incomplete = {}
        data = {col: columns[col] for col in expected if col in present}
    missing = [c for c in expected if c not in present]
    unexpected = [c for c in present if c not in expected]
    wrong: dict[str, tuple[str, str]] = {}
    typed: dict[str, np.ndarray] = {}
    for col, values in data.items():
        converted, bad_type = _typed_column(values, expected[col])
        if bad_type is not None:
            wrong[col] = (expected[col], bad_type)
        else:
            typed[col] = converted
    if missing or unexpected or wrong or incomplete:
        raise RowsInvalid(
            feature_set.name,
            missing=missing,
            unexpected=unexpected,
            wrong_dtypes=wrong,
            incomplete_rows=incomplete,
        )
    return FeatureColumns.from_arrays(feature_set, {name: typed[name] for name in expected})


def rows_to_frame(
    feature_set: FeatureSet,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """Posted feature values as a typed frame (float64, categoricals ``string``).

    The same checks and errors as :func:`rows_to_columns` (which the service
    uses), for callers that want a frame.
    """
    frame = rows_to_columns(feature_set, rows=rows, columns=columns).frame
    feature_set.check(frame, allow_extra=False)
    return frame


#: Media type of an Arrow IPC stream, the binary alternative to a JSON body of rows.
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _arrow_kind_fits(arrow_type: Any, expected: str) -> bool:
    import pyarrow as pa

    if pa.types.is_null(arrow_type):  # a column of nulls only: missing values, any kind
        return True
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if expected == "category":
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def arrow_to_columns(
    feature_set: FeatureSet, body: bytes, *, max_rows: int | None = None
) -> FeatureColumns:
    """Feature columns from an Arrow IPC stream (``ARROW_STREAM``), checked like JSON rows.

    The binary alternative to posting JSON: numbers arrive as typed buffers, so
    there is no per-value parsing and type check. Numeric features take Arrow
    integers or floats (never booleans or strings), categoricals take strings
    (or a dictionary of strings); nulls are missing values. Raises
    :class:`RowsInvalid` naming missing, unexpected and mistyped columns, or
    saying why the body cannot be read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise RowsInvalid(
            feature_set.name,
            detail=f"the body is not an Arrow IPC stream ({exc}); send one table written with "
            f"pyarrow.ipc.new_stream, or JSON with Content-Type application/json",
        ) from None
    expected = feature_set.dtypes
    names = table.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RowsInvalid(feature_set.name, detail=f"columns sent twice {duplicated}")
    if table.num_rows == 0:
        raise RowsInvalid(feature_set.name, detail="no rows sent")
    if max_rows is not None and table.num_rows > max_rows:
        raise RowsInvalid(
            feature_set.name,
            detail=f"{table.num_rows} rows sent, at most {max_rows} per request: split them",
        )
    missing = [c for c in expected if c not in names]
    unexpected = [c for c in names if c not in expected]
    wrong = {
        c: (expected[c], str(table.schema.field(c).type))
        for c in expected
        if c in names and not _arrow_kind_fits(table.schema.field(c).type, expected[c])
    }
    if missing or unexpected or wrong:
        raise RowsInvalid(
            feature_set.name, missing=missing, unexpected=unexpected, wrong_dtypes=wrong
        )
    arrays: dict[str, np.ndarray] = {}
    for name, kind in feature_set.columns:
        column = table.column(name)
        if kind == "category":
            array = np.empty(len(column), dtype=object)
            array[:] = pc.cast(column, pa.string()).to_pylist()
        else:
            # unsafe: an integer beyond 2**53 is rounded, as JSON's numbers are, not an error
            array = pc.cast(column, pa.float64(), safe=False).to_numpy()  # nulls become NaN
            array = np.array(array, dtype="float64")  # writable and owned, like JSON's
        arrays[name] = array
    return FeatureColumns.from_arrays(feature_set, arrays)
