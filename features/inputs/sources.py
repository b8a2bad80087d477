"""Loaders: read a shop from files or databases, apply a column mapping, validate.

Supported sources (:func:`load_shop`):

* a CSV file (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``) or a Parquet file
  (``.parquet``, ``.pq``): the ``transactions`` table, or every mapped table;
* a folder with one file per contract table (``transactions.parquet``,
  ``customers.csv``, ...), as the simulator writes it; a mapping's ``source``
  names a file or pattern in the folder instead;
* a DuckDB database file (``.duckdb``, ``.ddb``, or a ``.db`` with DuckDB's
  header): tables named after the contract tables, or the mapping's ``source``
  table or ``query``;
* a SQLite file (``.sqlite``, ``.sqlite3``, ``.db``) or a SQLAlchemy URL
  (``postgresql://...``; the driver must be installed): the same.

Files are read with DuckDB. CSV columns are sniffed as booleans, integers,
doubles or text only: timestamps stay text so that validation can parse them
and report the ones without a time zone. Every raw row keeps its 0-based
``source_row`` so the validation report accounts for each input row, including
rows a mapping excludes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd

from features.erasure import ErasureRegistry
from features.inputs.contracts import (
    SOURCE_ROW_COLUMN,
    ContractError,
    ContractOptions,
    ShopValidation,
    validate_shop,
)
from features.inputs.mappings import ColumnMapping, TableMapping, load_mapping, quote_identifier
from features.inputs.schema import SCHEMAS
from features.redaction import redact_credentials

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
DUCKDB_SUFFIXES = (".duckdb", ".ddb")
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
_CSV_TYPES = ["BOOLEAN", "BIGINT", "DOUBLE", "VARCHAR"]
_TEXT_KINDS = ("id", "timestamp", "category")


def source_kind(path: str | Path) -> str:
    """``"csv"``, ``"parquet"``, ``"directory"``, ``"duckdb"``, ``"sqlite"`` or ``"url"``."""
    text = str(path)
    if "://" in text and not Path(text).exists():
        return "url"
    p = Path(path)
    if p.is_dir():
        return "directory"
    if not p.exists():
        raise ContractError(f"no such file or folder: {redact_credentials(text)}")
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    with p.open("rb") as handle:
        header = handle.read(16)
    if header.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if header[8:12] == b"DUCK" or name.endswith(DUCKDB_SUFFIXES):
        return "duckdb"
    raise ContractError(
        f"cannot tell how to read {redact_credentials(text)}: use a .csv(.gz), .parquet, .duckdb or .sqlite file,"
        " a folder of such files, or a database URL"
    )


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def sandbox(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Lock ``con`` down for a mapping's SQL: no files, extensions or settings from then on.

    A mapping file is code: its expressions, exclusions and query run in DuckDB.
    With external access disabled and the configuration locked they can read the
    tables already registered on ``con`` and nothing else (no ``read_csv`` of
    other files, no ``COPY ... TO``, no ``ATTACH``, no extension loading).
    """
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _refused(exc: duckdb.Error) -> ContractError | None:
    """A clear error when the sandbox refused a mapping's SQL, else ``None``."""
    text = str(exc)
    if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in text:
        return ContractError(
            f"the column mapping's SQL was refused: {text}. Mapping SQL may only read the"
            " source's columns; it cannot read or write files, attach databases, load"
            " extensions or change settings"
        )
    return None


def _text_columns(table: str, mapping: TableMapping | None) -> set[str]:
    """Source columns to read as text: those feeding id, timestamp or category columns."""
    schema = SCHEMAS[table]
    if mapping is None:
        return {c.name for c in schema.columns if c.kind in _TEXT_KINDS}
    return {src for dst, src in mapping.columns.items() if schema.column(dst).kind in _TEXT_KINDS}


def _with_source_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if SOURCE_ROW_COLUMN not in frame.columns:
        frame[SOURCE_ROW_COLUMN] = range(len(frame))
    return frame


def read_file(path: Path, text_columns: set[str] | None = None) -> pd.DataFrame:
    """One CSV or Parquet file as a raw frame, in file order.

    CSV columns in ``text_columns`` are read as text (ids keep leading zeros,
    timestamps are parsed by validation); a CSV whose values do not fit the
    sniffed types is re-read as all text.
    """
    con = _connect()
    name = path.name.lower().removesuffix(".gz")
    literal = "'" + str(path).replace("'", "''") + "'"
    if name.endswith(PARQUET_SUFFIXES):
        return con.sql(f"SELECT * FROM read_parquet({literal})").to_arrow_table().to_pandas()
    candidates = "[" + ", ".join(f"'{t}'" for t in _CSV_TYPES) + "]"
    header = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM read_csv({literal})").fetchall()]
    forced = sorted(set(text_columns or ()) & set(header))
    types = (
        ", types = {"
        + ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in forced)
        + "}"
        if forced
        else ""
    )
    try:
        return (
            con.sql(
                f"SELECT * FROM read_csv({literal}, auto_type_candidates = {candidates}{types})"
            )
            .to_arrow_table()
            .to_pandas()
        )
    except duckdb.Error:
        return (
            con.sql(f"SELECT * FROM read_csv({literal}, all_varchar = true)")
            .to_arrow_table()
            .to_pandas()
        )


def _directory_files(folder: Path, pattern: str) -> list[Path]:
    suffixes = CSV_SUFFIXES + PARQUET_SUFFIXES
    found = sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.name.lower().removesuffix(".gz").endswith(suffixes)
    )
    return found


def _read_directory_table(folder: Path, table: str, mapping: TableMapping | None):
    pattern = mapping.source if mapping is not None and mapping.source else f"{table}.*"
    files = _directory_files(folder, pattern)
    if not files:
        return None
    text = _text_columns(table, mapping)
    frames = [read_file(f, text) for f in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _database_tables(kind: str, location: str) -> list[str]:
    if kind == "duckdb":
        with duckdb.connect(location, read_only=True) as con:
            return [
                r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()
            ]
    if kind == "sqlite":
        with contextlib.closing(_sqlite_read_only(location)) as con:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            return [r[0] for r in rows.fetchall()]
    import sqlalchemy

    engine = read_only_engine(location)
    try:
        inspector = sqlalchemy.inspect(engine)
        return list(inspector.get_table_names()) + list(inspector.get_view_names())
    finally:
        engine.dispose()


def read_database(kind: str, location: str, sql: str) -> pd.DataFrame:
    """The result of ``sql`` run in a DuckDB file, a SQLite file or a SQLAlchemy URL."""
    if kind == "duckdb":
        with duckdb.connect(location, read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            sandbox(con)
            try:
                return con.sql(sql).to_arrow_table().to_pandas()
            except duckdb.Error as exc:
                raise (_refused(exc) or exc) from exc
    if kind == "sqlite":
        with contextlib.closing(_sqlite_read_only(location)) as con:
            return pd.read_sql_query(sql, con)
    engine = read_only_engine(location)
    try:
        with engine.connect() as con:
            return pd.read_sql_query(sqlalchemy_text(sql), con)
    finally:
        engine.dispose()


def _sqlite_read_only(location: str) -> sqlite3.Connection:
    """A SQLite file opened read-only, with ``ATTACH`` of other files refused."""
    con = sqlite3.connect(f"file:{location}?mode=ro", uri=True)
    con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    return con


def sqlalchemy_text(sql: str):
    """``sqlalchemy.text(sql)`` (SQLAlchemy imported only when a URL is read)."""
    import sqlalchemy

    return sqlalchemy.text(sql)


def read_only_engine(location: str):
    """A SQLAlchemy engine whose sessions are read-only where the driver allows it.

    PostgreSQL: ``default_transaction_read_only``; MySQL/MariaDB: a read-only
    session; SQLite: the file opened with ``mode=ro``. Other databases get a
    plain engine: give winback a database user that can only read.
    """
    import sqlalchemy

    url = sqlalchemy.engine.make_url(location)
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=f"file:{url.database}?mode=ro", query={**url.query, "uri": "true"})
        engine = sqlalchemy.create_engine(url)

        @sqlalchemy.event.listens_for(engine, "connect")
        def _no_attach(dbapi_connection, _record) -> None:
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)

        return engine
    engine = sqlalchemy.create_engine(url)
    statement = {
        "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "mysql": "SET SESSION TRANSACTION READ ONLY",
        "mariadb": "SET SESSION TRANSACTION READ ONLY",
    }.get(backend)
    if statement is not None:

        @sqlalchemy.event.listens_for(engine, "connect")
        def _read_only(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()

    return engine


def _read_database_table(kind: str, location: str, table: str, mapping: TableMapping | None):
    if mapping is not None and mapping.query:
        return read_database(kind, location, mapping.query)
    name = mapping.source if mapping is not None and mapping.source else table
    if name not in _database_tables(kind, location):
        return None
    return read_database(kind, location, f"SELECT * FROM {quote_identifier(name)}")


def _read_database_table_safely(
    kind: str, location: str, table: str, mapping: TableMapping | None
) -> pd.DataFrame | None:
    """:func:`_read_database_table` with driver errors as a :class:`ContractError`.

    The message and the error carry the location with its credentials masked,
    and the driver's own exception is not chained (its text may hold the URL).
    """
    try:
        return _read_database_table(kind, location, table, mapping)
    except ContractError:
        raise
    except Exception as exc:  # noqa: BLE001 - any driver's error, reported without secrets
        raise ContractError(
            f"could not read table {table!r} from {redact_credentials(location)}:"
            f" {redact_credentials(exc)}"
        ) from None


def apply_mapping(
    raw: pd.DataFrame, mapping: TableMapping, *, query_done: bool = False, table: str = ""
):
    """The raw frame with the mapping's query, renames, expressions and exclusions applied.

    Runs in DuckDB with the raw frame as ``raw``; rows keep their ``source_row``
    (a query that aggregates numbers its output rows instead).
    """
    con = _connect()
    con.register("raw_input", _with_source_row(raw))
    sandbox(con)
    base = "raw_input"
    try:
        if mapping.query and not query_done:
            con.execute("CREATE TEMP VIEW raw AS SELECT * FROM raw_input")
            queried = _with_source_row(con.sql(mapping.query).to_arrow_table().to_pandas())
            con.register("raw_queried", queried)
            base = "raw_queried"
        columns = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {base}").fetchall()]
        visible = [c for c in columns if c != SOURCE_ROW_COLUMN]
        names = SCHEMAS[table].names if table in SCHEMAS else ()
        sql = mapping.select_sql(visible, relation=base, contract_names=names)
        sql = sql.replace(
            f" FROM {base}", f", {quote_identifier(SOURCE_ROW_COLUMN)} FROM {base}", 1
        )
        return (
            con.sql(f"{sql} ORDER BY {quote_identifier(SOURCE_ROW_COLUMN)}")
            .to_arrow_table()
            .to_pandas()
        )
    except duckdb.Error as exc:
        refused = _refused(exc)
        if refused is not None:
            raise refused from exc
        raise ContractError(
            f"the column mapping could not be applied: {exc}. Check its expressions,"
            " exclusions and query (DuckDB SQL over the source columns)"
        ) from exc
    finally:
        con.close()


def read_shop(
    path: str | Path, mapping: str | Path | ColumnMapping | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, ContractOptions]]:
    """Raw tables (mapping applied, not yet validated) and their validation options."""
    resolved = load_mapping(mapping) if mapping is not None else None
    kind = source_kind(path)
    location = str(path)
    tables = list(resolved.tables) if resolved is not None else list(SCHEMAS)
    raw: dict[str, pd.DataFrame] = {}
    single: pd.DataFrame | None = None
    if kind in ("csv", "parquet"):
        text: set[str] = set()
        for table in tables if resolved is not None else ["transactions"]:
            m = resolved.tables[table] if resolved is not None else None
            text |= _text_columns(table, m)
        single = _with_source_row(read_file(Path(path), text))
    for table in tables:
        m = resolved.tables[table] if resolved is not None else None
        query_done = False
        if kind in ("csv", "parquet"):
            if resolved is None and table != "transactions":
                continue
            frame = single
        elif kind == "directory":
            frame = _read_directory_table(Path(path), table, m)
        else:
            frame = _read_database_table_safely(kind, location, table, m)
            query_done = True
        if frame is None:
            if resolved is not None and table == "transactions":
                raise ContractError(
                    f"no transactions found in {redact_credentials(location)} for mapping {resolved.name!r}:"
                    f" set tables.transactions.source"
                )
            continue
        frame = _with_source_row(frame)
        raw[table] = (
            apply_mapping(frame, m, query_done=query_done, table=table) if m is not None else frame
        )
    if "transactions" not in raw:
        raise ContractError(
            f"no transactions table in {redact_credentials(location)}: expected a file or table named"
            " 'transactions' (e.g. transactions.parquet) or a column mapping (--mapping)"
        )
    options = resolved.options() if resolved is not None else {}
    return raw, options


def load_shop(
    path: str | Path,
    mapping: str | Path | ColumnMapping | None = None,
    *,
    now: pd.Timestamp | None = None,
    erasures: ErasureRegistry | None = None,
) -> ShopValidation:
    """Load a shop from a file, folder or database, apply a mapping, and validate it.

    Parameters
    ----------
    path
        A CSV/Parquet file, a folder of per-table files, a DuckDB or SQLite
        file, or a SQLAlchemy URL (see the module docstring).
    mapping
        A built-in mapping name (``"online-retail"``), a TOML file, a
        :class:`~features.inputs.mappings.ColumnMapping`, or ``None`` when the source
        already uses contract names.
    now
        Timestamps after it are quarantined; the current time by default.
    erasures
        The customers forgotten by ``winback forget``, whose rows are quarantined
        as ``erased`` (counted, not kept); ``ErasureRegistry.default()`` when None.

    Returns
    -------
    ShopValidation
        The contract tables and, per table, the quarantine and the report.
    """
    raw, options = read_shop(path, mapping)
    registry = erasures if erasures is not None else ErasureRegistry.default()
    return validate_shop(
        raw,
        now=now,
        options=options,
        source=redact_credentials(path),
        erased=registry.mask if registry.has_erasures() else None,
    )


__all__ = [
    "apply_mapping",
    "load_shop",
    "read_database",
    "read_file",
    "read_shop",
    "source_kind",
]
