"""A shop's validated tables as Parquet files that later commands read without validating again.

``winback data validate DATA --out DIR --write-tables`` writes each contract
table's accepted rows to ``DIR/<table>.parquet`` with the integer keys of
``features.inputs.keys`` (so every later feature build groups by integers) and
the purchase orders of ``features.inputs.order_table`` (so it groups no lines
into orders), then ``DIR/validated.json``, which names the source and marks the folder as
validated. ``winback train``, ``winback score`` and ``winback features build``
read such a folder as it is (``winback score`` in place, through DuckDB, with
no pandas copy of the rows); customers erased since are still left out.

The simulator writes its tables the same way (``features.simulation.files``).
Files are published by rename, the marker last, so a reader never takes a
half-written folder for a validated one.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.inputs.keys import (
    KEY_COLUMNS,
    KEYS_FILE,
    KEYS_TABLE,
    ORDERS_FILE,
    ORDERS_TABLE,
    clustered,
    with_keys,
)
from features.inputs.order_table import order_table
from features.inputs.schema import SCHEMAS, ShopTables
from features.publish import publish_file, publish_text

#: The file marking a folder of validated tables (written last).
VALIDATED_MARKER = "validated.json"
#: Rows per Parquet row group of the files written here. DuckDB and the category sums
#: (``features.engines.line_sums``) read a row group per task: with pyarrow's 1Mi rows
#: a million customers' purchase orders were 3 tasks and their customers 1, so one of two
#: cores sat idle at the end of each scan.
ROW_GROUP_ROWS = 262_144


def table_file(name: str) -> str:
    """The file name of contract table (or ``customer_keys``, ``purchase_orders``) ``name``."""
    return {KEYS_TABLE: KEYS_FILE, ORDERS_TABLE: ORDERS_FILE}.get(name, f"{name}.parquet")


def arrow_table(frame: pd.DataFrame, *, keep_index: bool = False) -> pa.Table:
    """``frame`` as an Arrow table with pandas metadata (dtypes survive a round trip)."""
    with warnings.catch_warnings():
        # pyarrow 25 reads Series.values of tz-aware columns, deprecated in pandas 3.1
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return pa.Table.from_pandas(frame, preserve_index=keep_index)


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Publish ``table`` as the Parquet file ``path`` (aside, fsynced, renamed), in row groups
    of :data:`ROW_GROUP_ROWS` rows."""
    return publish_file(path, lambda p: pq.write_table(table, p, row_group_size=ROW_GROUP_ROWS))


def write_tables(
    frames: Mapping[str, pd.DataFrame], out_dir: Path, *, customer_keys: bool = True
) -> dict[str, Path]:
    """Write contract tables as ``<table>.parquet`` (with the integer keys by default).

    Keyed, each table's rows are clustered by customer and time
    (``features.inputs.keys.clustered``), and the purchase orders go to
    ``purchase_orders.parquet`` (``features.inputs.order_table``) when every
    order's purchase lines fall on one day; an older one is removed first.
    Without keys the rows keep their order. ``customer_keys.parquet`` comes
    last: it is published after the tables it maps. Returns the path of each
    file by table name.
    """
    out_dir = Path(out_dir)
    (out_dir / ORDERS_FILE).unlink(missing_ok=True)  # never beside lines it was not made from
    tables = {name: arrow_table(frame) for name, frame in frames.items()}
    if not customer_keys:
        return {name: write_parquet(t, out_dir / table_file(name)) for name, t in tables.items()}
    keyed = with_keys(tables)
    del tables
    keys = keyed.pop(KEYS_TABLE)
    paths: dict[str, Path] = {}
    lines = None
    for name in list(keyed):  # each table is released once written, before the orders are made
        table = clustered(keyed.pop(name), SCHEMAS[name].time_column if name in SCHEMAS else None)
        paths[name] = write_parquet(table, out_dir / table_file(name))
        lines = table if name == "transactions" else lines
        del table
    orders = None if lines is None else order_table(lines, keys.column("customer_id"))
    del lines
    if orders is not None:
        paths[ORDERS_TABLE] = write_parquet(orders, out_dir / ORDERS_FILE)
    paths[KEYS_TABLE] = write_parquet(keys, out_dir / KEYS_FILE)
    return paths


def read_tables(directory: Path) -> dict[str, pd.DataFrame]:
    """The contract tables present in ``directory`` as written by :func:`write_tables`, keys dropped."""
    directory = Path(directory)
    frames = {
        name: pd.read_parquet(directory / table_file(name)).drop(
            columns=list(KEY_COLUMNS), errors="ignore"
        )
        for name in SCHEMAS
        if (directory / table_file(name)).exists()
    }
    if "transactions" not in frames:
        raise FileNotFoundError(f"{directory / table_file('transactions')} not found")
    return frames


def write_validated(tables: ShopTables, out_dir: Path, summary: Mapping[str, Any]) -> list[Path]:
    """Write a validated shop's tables and then its marker; returns the files written.

    Table files of an earlier run that this shop lacks are removed first (with
    the marker), so the folder never mixes two sources.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = tables.present()
    (out_dir / VALIDATED_MARKER).unlink(missing_ok=True)
    for name in SCHEMAS:
        if name not in frames:
            (out_dir / table_file(name)).unlink(missing_ok=True)
    paths = list(write_tables(frames, out_dir).values())
    marker = {"source": tables.source, "tables": sorted(frames), **summary}
    paths.append(publish_text(out_dir / VALIDATED_MARKER, json.dumps(marker, indent=2)))
    return paths


def is_validated_folder(path: Path | None) -> bool:
    """Whether ``path`` is a folder written by :func:`write_validated`."""
    return (
        path is not None
        and Path(path).is_dir()
        and (Path(path) / VALIDATED_MARKER).is_file()
        and (Path(path) / table_file("transactions")).is_file()
    )


def read_validated(directory: Path) -> ShopTables:
    """The tables of a folder written by :func:`write_validated` (not validated again)."""
    marker = json.loads((Path(directory) / VALIDATED_MARKER).read_text(encoding="utf-8"))
    return ShopTables(**read_tables(directory), source=str(marker.get("source", directory)))
