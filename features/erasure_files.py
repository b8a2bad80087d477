"""Remove customers from the files winback wrote, and check that no file mentions them.

:func:`erase_from_file` rewrites one table file (Parquet, CSV, an MLflow table
JSON) without the rows of the given customers, published by rename; a file it
cannot rewrite but that mentions a customer is reported, never silently left.
:func:`mentions` looks for ids in a file's bytes *and* inside Parquet, DuckDB
and SQLite files (whose compressed or paged contents a byte search misses).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.publish import is_temporary, publish_file, publish_text

#: Columns naming the customer a row is about (the row goes) or another customer (blanked).
OWNER_COLUMNS = ("customer_id",)
REFERENCE_COLUMNS = ("referred_customer_id",)
TABLE_SUFFIXES = (".parquet", ".csv", ".json")
_SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class FileErasure:
    """What erasing did to one file: rows removed, or why it could not be rewritten."""

    path: Path
    rows_removed: int = 0
    problem: str | None = None


def erase_rows(frame: pd.DataFrame, ids: Collection[str]) -> tuple[pd.DataFrame, int]:
    """``frame`` without rows about ``ids`` (a ``customer_id`` column or index level).

    References to them in other rows (``referred_customer_id``) are blanked.
    Returns the new frame and the number of rows removed.
    """
    ids = set(map(str, ids))
    keep = pd.Series(True, index=frame.index)
    for name in OWNER_COLUMNS:
        if name in frame.columns:
            keep &= ~frame[name].astype("string").isin(ids).fillna(False)
        if name in (frame.index.names or []):
            level = frame.index.get_level_values(name).astype("string")
            keep &= ~pd.Series(level.isin(ids), index=frame.index).fillna(False)
    out = frame.loc[keep.to_numpy()]
    for name in REFERENCE_COLUMNS:
        if name in out.columns:
            hit = out[name].astype("string").isin(ids).fillna(False).to_numpy()
            if hit.any():
                out = out.copy()
                out.loc[hit, name] = pd.NA
    return out, int((~keep).sum())


def _has_id_column(frame: pd.DataFrame) -> bool:
    names = set(frame.columns) | set(frame.index.names or [])
    return bool(names & set(OWNER_COLUMNS + REFERENCE_COLUMNS))


def _erase_parquet(path: Path, ids: Collection[str]) -> FileErasure:
    table = pq.read_table(path)
    frame = table.to_pandas()
    if not _has_id_column(frame):
        return FileErasure(path, problem=None if not mentions(path, ids) else "no id column")
    out, removed = erase_rows(frame, ids)
    if removed or len(out) != len(frame) or not out.equals(frame):
        stored = (table.schema.pandas_metadata or {}).get("index_columns", [])
        keep_index = any(isinstance(c, str) for c in stored)
        publish_file(path, lambda p: out.to_parquet(p, index=keep_index))
    return FileErasure(path, removed)


def _erase_csv(path: Path, ids: Collection[str]) -> FileErasure:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not _has_id_column(frame):
        return FileErasure(path, problem=None if not mentions(path, ids) else "no id column")
    out, removed = erase_rows(frame, ids)
    if removed or not out.equals(frame):
        publish_file(path, lambda p: out.to_csv(p, index=False))
    return FileErasure(path, removed)


def _erase_json(path: Path, ids: Collection[str]) -> FileErasure:
    """Tables in JSON lose their rows: MLflow table artifacts (``{"columns": [...],
    "data": [[...]]}``) and exported lists (``{"list_id": ..., "rows": [{...}, ...]}``)."""
    if not mentions(path, ids):
        return FileErasure(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(payload, dict) and isinstance(payload.get("rows"), list):
            return _erase_json_records(path, payload, ids)
        frame = pd.DataFrame(payload["data"], columns=payload["columns"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return FileErasure(path, problem="mentions the customer and is not a table")
    out, removed = erase_rows(frame, ids)
    payload["data"] = json.loads(out.to_json(orient="values", date_format="iso"))
    publish_text(path, json.dumps(payload))
    return FileErasure(path, removed)


def _erase_json_records(path: Path, payload: dict, ids: Collection[str]) -> FileErasure:
    """An exported list's ``rows`` (one object per customer) without the customers' rows."""
    ids = set(map(str, ids))
    rows = payload["rows"]
    kept = [r for r in rows if not any(str(r.get(c)) in ids for c in OWNER_COLUMNS)]
    for row in kept:
        for column in REFERENCE_COLUMNS:
            if str(row.get(column)) in ids:
                row[column] = None
    publish_text(path, json.dumps({**payload, "rows": kept}, default=str, indent=1))
    return FileErasure(path, len(rows) - len(kept))


def erase_from_file(path: str | Path, ids: Collection[str]) -> FileErasure:
    """Rewrite one file without the rows of ``ids`` (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _erase_parquet(path, ids)
        if suffix == ".csv":
            return _erase_csv(path, ids)
        if suffix == ".json":
            return _erase_json(path, ids)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return FileErasure(path, problem=f"could not be read: {exc}")
    if mentions(path, ids):
        return FileErasure(path, problem="mentions the customer; winback cannot rewrite it")
    return FileErasure(path)


def files_under(root: str | Path, skip: Callable[[Path], bool] = lambda p: False) -> list[Path]:
    """Every regular file under ``root`` (temporary ones excluded), in path order."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and not is_temporary(p) and not skip(p)
    )


def erase_from_tree(
    root: str | Path, ids: Collection[str], skip: Callable[[Path], bool] = lambda p: False
) -> list[FileErasure]:
    """:func:`erase_from_file` on every file under ``root``; the files touched or in doubt."""
    results = [erase_from_file(p, ids) for p in files_under(root, skip)]
    return [r for r in results if r.rows_removed or r.problem]


# ------------------------------------------------------------------ checking


def _strings_in_parquet(path: Path) -> Iterable[str]:
    table = pq.read_table(path)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield from (v for v in column.to_pylist() if v is not None)
        elif pa.types.is_dictionary(column.type):
            yield from (str(v) for v in column.to_pylist() if v is not None)


def _database_mentions(path: Path, ids: Collection[str], header: bytes) -> bool:
    """Whether any text cell of a SQLite or DuckDB file equals or contains one of ``ids``."""
    if header.startswith(_SQLITE_HEADER):
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            tables = [
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                quoted = '"' + table.replace('"', '""') + '"'
                for row in con.execute(f"SELECT * FROM {quoted}"):
                    if any(isinstance(v, str) and any(i in v for i in ids) for v in row):
                        return True
        return False
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for table, column in columns:
            quoted = '"' + column.replace('"', '""') + '"'
            where = " OR ".join(f"contains({quoted}, ?)" for _ in ids)
            found = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE {where}', list(ids)
            ).fetchall()[0][0]
            if found:
                return True
    return False


def mentions(path: str | Path, ids: Collection[str]) -> bool:
    """Whether the file holds one of ``ids``: in its bytes, or inside Parquet/DuckDB/SQLite."""
    path = Path(path)
    ids = [str(i) for i in ids]
    data = path.read_bytes()
    if any(i.encode("utf-8") in data for i in ids):
        return True
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return any(i in v for v in _strings_in_parquet(path) for i in ids)
        if data.startswith(_SQLITE_HEADER) or data[8:12] == b"DUCK":
            return _database_mentions(path, ids, data[:16])
    except Exception:  # noqa: BLE001 - an unreadable file is reported by its bytes alone
        return False
    return False


__all__ = [
    "FileErasure",
    "erase_from_file",
    "erase_from_tree",
    "erase_rows",
    "files_under",
    "mentions",
]
