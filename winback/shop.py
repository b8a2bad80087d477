"""Where a command's shop data comes from, decided in one place.

``--data PATH`` wins; otherwise the ``[data]`` section of ``winback.toml``;
otherwise the simulated shop of the ``[simulation]`` section — so ``winback
train``, ``winback score`` and ``winback demo`` all see the same default shop.
"""

from __future__ import annotations

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
    if config is None:
        from winback.config import load_config

        config = load_config()
    if data is None and config.data.path is not None:
        data, mapping = config.data.path, mapping or config.data.mapping
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
