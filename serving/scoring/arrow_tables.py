"""Each frame of a score version converted to Arrow once, for both files that hold it.

``scores.parquet`` and ``features.parquet`` hold what ``DataFrame.to_parquet(index=True)``
writes; ``scores.arrow`` and ``features.arrow`` (:mod:`serving.scoring.lookup_files`) the
same columns without the index, the features' categories as plain strings. A frame is
converted once, with its index (:func:`frame_table`), and the lookup table is derived
from it (:func:`without_index`): the index column dropped, categorical columns cast to
strings and the pandas metadata rewritten as pyarrow writes it for the frame without
its index. At a million customers each second conversion cost about half a second.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_PANDAS_KEY = b"pandas"


def frame_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` with its index as Arrow, as ``frame.to_parquet(index=True)`` converts it.

    Without the ``PANDAS_ATTRS`` key pandas adds to the file (see :func:`parquet_writer`).
    """
    with warnings.catch_warnings():
        # pyarrow 25 reads Series.values of tz-aware columns, deprecated in pandas 3.1
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return pa.Table.from_pandas(frame, preserve_index=True)


def parquet_writer(
    frame: pd.DataFrame, path: Path, table: pa.Table | None = None
) -> Callable[[], None]:
    """``frame.to_parquet(path, index=True)`` split in two: the Arrow table now, the file later.

    The conversion runs in the calling thread (pandas silences a pyarrow warning
    around it by changing the process's warning filters, which is not safe
    from two threads at once), unless ``table`` (:func:`frame_table` of ``frame``)
    is given; the returned step encodes and writes the same file, with the GIL
    released, wherever it is called.
    """
    table = frame_table(frame) if table is None else table
    if frame.attrs:  # as pandas keeps them
        attrs = {"PANDAS_ATTRS": json.dumps(frame.attrs)}
        table = table.replace_schema_metadata({**table.schema.metadata, **attrs})
    return functools.partial(pq.write_table, table, str(path), compression="snappy")


def without_index(table: pa.Table, frame: pd.DataFrame) -> pa.Table:
    """:func:`frame_table` of ``frame`` as ``from_pandas(preserve_index=False)`` converts
    ``frame.reset_index(drop=True)`` with its categorical columns as ``string``.

    The same columns and schema metadata as that conversion, byte for byte in
    an Arrow file, without converting the frame again.
    """
    metadata = dict(table.schema.metadata)
    pandas = json.loads(metadata[_PANDAS_KEY])
    index = [c for c in pandas["index_columns"] if isinstance(c, str)]
    table = table.drop_columns(index)
    entries = [e for e in pandas["columns"] if e["field_name"] not in index]
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, table.column(at).cast(pa.large_string()))
            entries[at] = {**_string_entry(), "name": name, "field_name": name}
    pandas = {**pandas, "index_columns": [], "column_indexes": [], "columns": entries}
    metadata[_PANDAS_KEY] = json.dumps(pandas).encode("utf8")
    return table.replace_schema_metadata(metadata)


@functools.cache
def _string_entry() -> dict:
    """The pandas metadata pyarrow writes for a column of pandas' ``string`` dtype."""
    empty = pd.DataFrame({"x": pd.Series([], dtype="string")})
    return json.loads(pa.Table.from_pandas(empty, preserve_index=False).schema.metadata[b"pandas"])[
        "columns"
    ][0]
