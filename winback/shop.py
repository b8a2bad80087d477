"""Where a command's shop data comes from, decided in one place.

``--data PATH`` wins; otherwise the ``[data]`` section of ``winback.toml``;
otherwise the simulated shop of the ``[simulation]`` section — so ``winback
train``, ``winback score`` and ``winback demo`` all see the same default shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.inputs.schema import ShopTables


def without_erased(tables: ShopTables) -> ShopTables:
    """A shop's tables without the customers ``winback forget`` erased.

    Loaded data is validated, which quarantines their rows as ``erased``; a
    simulated shop, or tables validated before the erasure, are read as they
    were written, so they are removed here.
    """
    from features.erasure import ErasureRegistry, drop_erased

    return drop_erased(tables, ErasureRegistry.default())[0]


def is_canonical_folder(data: Path | None, mapping: str | None) -> bool:
    """A folder of canonical Parquet tables, valid as written (``winback data simulate``,
    ``winback data validate --write-tables``): commands read it in place."""
    from features.inputs.table_files import is_validated_folder, table_file

    if data is None or mapping is not None:
        return False
    data = Path(data)
    simulated = (data / "simulation.json").is_file() and (
        data / table_file("transactions")
    ).is_file()
    return simulated or is_validated_folder(data)


def erased_ids(con: Any) -> list[str]:
    """The ids on ``con``'s contract views (owners and references) that ``winback forget`` erased."""
    from features.engines.duckdb_engine import table_columns
    from features.erasure import REFERENCE_COLUMNS, ErasureRegistry

    registry = ErasureRegistry.default()
    if not registry.has_erasures():
        return []
    selects = [
        f'SELECT "{column}" AS customer_id FROM {name}'
        for name, columns in table_columns(con).items()
        for column in ("customer_id", *REFERENCE_COLUMNS.get(name, ()))
        if column in columns
    ]
    ids = con.sql(
        f"SELECT DISTINCT customer_id FROM ({' UNION ALL '.join(selects)})"
        " WHERE customer_id IS NOT NULL"
    ).fetchnumpy()["customer_id"]
    return registry.erased_among([str(i) for i in ids])


def connect_folder(data: str | Path, *, memory_limit: str | None = None) -> Any:
    """A DuckDB connection reading a canonical folder's tables in place, erased customers left out.

    The counterpart of :func:`load_tables` for such a folder (:func:`is_canonical_folder`):
    the same rows, with the integer keys and the order table the files carry, and no
    pandas copy of them (``features.engines.duckdb_engine.connect_parquet``).
    """
    return _connect(data, memory_limit)[0]


def _connect(data: str | Path, memory_limit: str | None = None) -> tuple[Any, list[str]]:
    """:func:`connect_folder`'s connection and the erased ids it leaves out."""
    from features.engines.duckdb_engine import connect_parquet

    con = connect_parquet(data, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    erased = erased_ids(con)
    return (connect_parquet(data, con, exclude=erased) if erased else con), erased


@dataclass(frozen=True)
class InPlaceShop:
    """A canonical folder read in place: what ``winback train`` needs, with no copy of the rows.

    ``con`` (:func:`connect_folder`) holds the tables; ``tables`` is their outline
    (columns, first and last line: ``features.engines.duckdb_engine.outline``), for
    the cutoffs and the SQL generators, never for values; ``truth`` the simulator's
    ground truth (with the outline as its ``tables``: the oracle reads the truth
    only), ``None`` for validated data; ``fingerprinted`` the folder as the data
    fingerprint hashes it (``training.tracking.fingerprint.ParquetFolder``).
    """

    con: Any
    tables: ShopTables
    truth: Any
    fingerprinted: Any


def open_in_place(
    data: str | Path | None = None, mapping: str | None = None, *, config: Any = None
) -> InPlaceShop | None:
    """The shop :func:`load_tables` reads, read in place when a canonical folder; else None."""
    import json

    from features.engines.duckdb_engine import outline
    from features.inputs.table_files import VALIDATED_MARKER
    from training.tracking.fingerprint import ParquetFolder

    data = _canonical_folder(data, mapping, config)
    if data is None:
        return None
    con, erased = _connect(data)
    simulated = (data / "simulation.json").is_file()
    marker = json.loads((data / ("simulation.json" if simulated else VALIDATED_MARKER)).read_text())
    # as read_shop and read_validated name the source
    source = marker.get("source", "") if simulated else str(marker.get("source", data))
    tables = outline(con, source=source)
    truth = _simulated_truth(data, tables) if simulated else None
    return InPlaceShop(con, tables, truth, ParquetFolder(data, tuple(erased)))


def _simulated_truth(data: Path, tables: ShopTables) -> Any:
    """The :class:`features.simulation.SimulatedShop` of a folder, ``tables`` standing for its tables."""
    from features.simulation import SimulatedShop
    from features.simulation.files import read_truth

    truth, contact_truth = read_truth(data)
    config = truth.attrs["simulation_config"]
    return SimulatedShop(tables=tables, truth=truth, contact_truth=contact_truth, config=config)


def _resolved(data: str | Path | None, mapping: str | None, config: Any) -> tuple:
    """``(data, mapping, config)``: ``--data`` and ``--mapping``, else winback.toml's [data]."""
    if data is not None:
        return data, mapping, config
    if config is None:
        from winback.config import load_config

        config = load_config()
    if config.data.path is not None:
        data, mapping = config.data.path, mapping or config.data.mapping
    return data, mapping, config


def _canonical_folder(data: str | Path | None, mapping: str | None, config: Any) -> Path | None:
    """The folder :func:`load_tables` would read (``--data``, else winback.toml's), if canonical."""
    data, mapping, _ = _resolved(data, mapping, config)
    return Path(data) if data is not None and is_canonical_folder(Path(data), mapping) else None


def in_place_connection(
    data: str | Path | None = None, mapping: str | None = None, *, config: Any = None
) -> Any:
    """:func:`connect_folder` on the data :func:`load_tables` reads, when a canonical folder; else None.

    Commands build their training tables and features on it: the same rows as
    the loaded tables, read in place with the files' integer keys and order table.
    """
    data = _canonical_folder(data, mapping, config)
    return None if data is None else connect_folder(data)


def load_tables(
    data: str | Path | None = None,
    mapping: str | None = None,
    *,
    config: Any = None,
) -> tuple[ShopTables, Any]:
    """``(tables, truth)``: validated tables, and the simulator's ground truth when simulated.

    Customers erased by ``winback forget`` are left out either way.

    ``truth`` is the :class:`features.simulation.SimulatedShop` for a simulated shop
    (generated now, or a folder written by ``winback data simulate``), the
    :class:`features.simulation.BgNbdWorld` for a folder written by
    ``winback data simulate --process bgnbd``, and ``None`` for a user's data. A
    folder written by ``winback data validate --write-tables`` is read as it is.
    """
    data, mapping, config = _resolved(data, mapping, config)
    if data is None:
        from features.simulation import simulate_shop

        shop = simulate_shop(config.simulation)
        return without_erased(shop.tables), shop
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"--data {data} does not exist: pass a file, folder or database")
    if data.is_dir() and (data / "simulation.json").exists() and mapping is None:
        from features.simulation import read_shop

        shop = read_shop(data)
        return without_erased(shop.tables), shop
    from features.inputs.sources import load_shop
    from features.inputs.table_files import is_validated_folder, read_validated
    from features.simulation.bgnbd import CONFIG_FILE, read_bgnbd_world

    if is_validated_folder(data) and mapping is None:
        return without_erased(read_validated(data)), None

    if data.is_dir() and (data / CONFIG_FILE).exists() and mapping is None:
        tables = load_shop(data).tables
        return tables, read_bgnbd_world(data, tables)

    return load_shop(data, mapping).tables, None
