"""Writing and reading a simulated shop: one Parquet file per table, the truth, the config.

Files are published by rename (a reader never sees half a file) and the same
shop always gives the same bytes, so a written shop can be pinned by digest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from features.inputs.schema import ShopTables
from features.inputs.table_files import arrow_table, read_tables, write_parquet, write_tables
from features.publish import publish_text
from features.simulation.config import SimulatedShop, SimulationConfig


def write_shop(
    shop: SimulatedShop, out_dir: Path, *, customer_keys: bool = True
) -> dict[str, Path]:
    """Write every table, the truth and the config to ``out_dir`` (atomically).

    One Parquet file per contract table (``transactions.parquet``, ...), plus
    ``truth.parquet``, ``contact_truth.parquet`` and ``simulation.json``. The
    same shop always gives the same bytes.

    With ``customer_keys`` the tables carry the integer ``customer_key`` (and
    ``order_key``) columns of ``features.inputs.keys`` and ``customer_keys.parquet``
    maps them back, so a feature build reading the files in place
    (``connect_parquet``) groups by integers; :func:`read_shop` drops them again.

    Returns
    -------
    dict[str, Path]
        Path of each written file by name (table name, ``customer_keys``,
        ``truth``, ``contact_truth``, ``simulation``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_tables(shop.tables.present(), out_dir, customer_keys=customer_keys)
    truth = shop.truth.copy(deep=False)
    truth.attrs = {}
    for name, frame, keep_index in (
        ("truth", truth, True),
        ("contact_truth", shop.contact_truth, False),
    ):
        path = out_dir / f"{name}.parquet"
        write_parquet(arrow_table(frame, keep_index=keep_index), path)
        paths[name] = path
    path = out_dir / "simulation.json"
    payload = {"config": shop.config.to_dict(), "source": shop.tables.source}
    publish_text(path, json.dumps(payload, indent=2, sort_keys=True))
    paths["simulation"] = path
    return paths


def read_config(directory: Path) -> SimulationConfig:
    """The :class:`SimulationConfig` saved in ``directory/simulation.json``."""
    path = Path(directory) / "simulation.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: write the shop with write_shop first")
    return SimulationConfig.from_dict(json.loads(path.read_text())["config"])


def read_truth(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(truth, contact_truth)`` written by :func:`write_shop`.

    ``truth.attrs["simulation_config"]`` holds the config, so the truth frame
    can be passed to :func:`oracle_churn_probability` directly.
    """
    directory = Path(directory)
    config = read_config(directory)
    truth = pd.read_parquet(directory / "truth.parquet")
    truth.index = truth.index.astype("string")
    contact_truth = pd.read_parquet(directory / "contact_truth.parquet")
    truth.attrs["simulation_config"] = config
    return truth, contact_truth


def read_shop(directory: Path) -> SimulatedShop:
    """The whole :class:`SimulatedShop` written by :func:`write_shop`."""
    directory = Path(directory)
    truth, contact_truth = read_truth(directory)
    config = truth.attrs["simulation_config"]
    source = json.loads((directory / "simulation.json").read_text()).get("source", "")
    return SimulatedShop(
        tables=ShopTables(**read_tables(directory), source=source),
        truth=truth,
        contact_truth=contact_truth,
        config=config,
    )
