"""The simulators' output is pinned byte for byte: same seed, same files, same oracle.

Why: refactoring the simulator must not move a single draw. Every case below
simulates a small shop, writes it, and compares the SHA-256 of each written file
(the contract tables, ``truth.parquet``, ``contact_truth.parquet``,
``simulation.json``; for the BG/NBD world its transactions and parameters) and of
the oracle's probabilities against digests recorded before the simulator was
split into a package.

How the expected digests were produced: on the single-module simulator (commit
9aeb7e2, ``features/simulate.py`` and ``features/simulate_bgnbd.py``), with the
locked dependencies of ``uv.lock`` (pyarrow and pandas write their versions into
the Parquet metadata, so a dependency upgrade changes the digests, not only a
change of draws), by running this file as a script::

    uv run --frozen --extra dev python tests/features/test_simulation_bytes.py

which prints the ``EXPECTED`` dictionary, kept in ``simulation_pins.json`` (the
file's first version, which imported those two modules, is the one that was run;
the package reproduces the same digests). Should a dependency upgrade change them, regenerate them on the parent commit of the upgrade (before any
simulator change) and say so in the commit message.

The draws are pinned byte for byte; the floats computed from them with NumPy's
and SciPy's exp, log and gamma functions (the oracle's probabilities, the contact
truth's rates) are pinned by a fingerprint to a relative 1e-9 instead, because
NumPy picks its SIMD kernels for the CPU at run time (AVX-512 where there is
one, AVX2 elsewhere) and those differ in the last bits. The fingerprints were
recorded on a machine without AVX-512 whose float digests came out different
from the recorded ones while every other digest matched, on the same code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.simulation import (
    BgNbdWorldConfig,
    SimulationConfig,
    engagement,
    oracle_churn_probability,
    read_truth,
    simulate_bgnbd_world,
    simulate_shop,
    write_bgnbd_world,
    write_shop,
)

#: Module holding the engagement block size (customers per thinning block).
ENGAGEMENT_MODULE = engagement

CUTOFF = date(2024, 12, 31)
HORIZON_DAYS = 90


@dataclass(frozen=True)
class Case:
    """One pinned shop: its config and, optionally, a smaller engagement block."""

    config: SimulationConfig
    engagement_block: int | None = None


SHOP_CASES = {
    "defaults_300_seed0": Case(SimulationConfig(customers=300, seed=0)),
    "defaults_2000_seed7": Case(SimulationConfig(customers=2_000, seed=7)),
    "no_engagement_1500_seed3": Case(SimulationConfig(customers=1_500, seed=3, engagement=False)),
    "shift_1200_seed5": Case(
        SimulationConfig(
            customers=1_200,
            seed=5,
            shift_date=date(2024, 6, 1),
            shift_purchase_rate_factor=0.7,
            shift_dropout_factor=1.5,
            shift_discount_sensitive_dropout_factor=2.5,
        )
    ),
    "no_campaigns_800_seed9": Case(SimulationConfig(customers=800, seed=9, campaign_dates=())),
    "short_year_one_campaign_600_seed2": Case(
        SimulationConfig(
            customers=600,
            seed=2,
            start=date(2024, 1, 1),
            end=date(2025, 2, 28),
            campaign_dates=(date(2024, 10, 1),),
            campaign_offers=("free_shipping",),
        )
    ),
    # several engagement blocks (the 1M-customer path) on a small shop
    "engagement_blocks_2500_seed1": Case(
        SimulationConfig(customers=2_500, seed=1), engagement_block=700
    ),
}

BGNBD_CASES = {
    "bgnbd_500_seed0": BgNbdWorldConfig(customers=500, seed=0),
    "bgnbd_3000_seed4": BgNbdWorldConfig(customers=3_000, seed=4, days=900, acquisition_days=600),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Relative tolerance of the float fingerprints: a few ulps of a SIMD kernel move
#: them by about 1e-16 (1e-13 if a cancellation amplified them a thousandfold); a
#: moved draw, by more than 1e-9.
FLOAT_RTOL = 1e-9

#: Files whose float columns are pinned by fingerprints rather than by their bytes.
FLOAT_FILES = ("contact_truth",)


def _fingerprint(values: np.ndarray) -> list[float]:
    """Count, NaN count, sum, sum of squares and position-weighted sum of float values."""
    x = np.asarray(values, dtype="float64")
    finite = np.nan_to_num(x, nan=0.0)
    weights = np.arange(1, len(x) + 1) / max(len(x), 1)
    return [
        float(len(x)),
        float(np.isnan(x).sum()),
        float(finite.sum()),
        float((finite * finite).sum()),
        float((finite * weights).sum()),
    ]


def _series_pin(series: pd.Series) -> dict:
    """A probability series: the digest of its index and name, the fingerprint of its values."""
    index = "\n".join(series.index.astype(str)).encode()
    return {
        "labels": _sha(index + b"|" + str(series.name).encode()),
        "values": _fingerprint(series.to_numpy()),
    }


def _table_pin(path: Path) -> dict:
    """A Parquet table: the digest of its other columns (Arrow IPC bytes), fingerprints of its floats."""
    table = pq.read_table(path)
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    exact = table.drop_columns(floats).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, exact.schema) as writer:
        writer.write_table(exact)
    pins: dict = {"exact": _sha(sink.getvalue().to_pybytes())}
    for name in floats:
        pins[name] = _fingerprint(table.column(name).to_numpy())
    return pins


def _files_pins(paths: dict[str, Path]) -> dict[str, object]:
    return {
        name: _table_pin(Path(path)) if name in FLOAT_FILES else _sha(Path(path).read_bytes())
        for name, path in sorted(paths.items())
    }


def pinned(got: object, expected: object) -> bool:
    """Digests equal; fingerprints within :data:`FLOAT_RTOL`; dictionaries key by key."""
    if isinstance(expected, str):
        return got == expected
    if isinstance(expected, list):
        return got == pytest.approx(expected, rel=FLOAT_RTOL, abs=0.0)
    return (
        isinstance(got, dict)
        and got.keys() == expected.keys()
        and all(pinned(got[k], expected[k]) for k in expected)
    )


def unpinned(got: dict, expected: dict) -> list[str]:
    """The keys of ``got`` that do not match ``expected`` (every key of either)."""
    keys = sorted(set(got) | set(expected))
    return [k for k in keys if k not in got or k not in expected or not pinned(got[k], expected[k])]


def shop_digests(case: Case, out: Path, monkeypatch=None) -> dict[str, object]:
    """Digests of every file ``write_shop`` writes and of two oracle calls."""
    if case.engagement_block is not None:
        monkeypatch.setattr(ENGAGEMENT_MODULE, "_ENGAGEMENT_BLOCK", case.engagement_block)
    shop = simulate_shop(case.config)
    # the contract tables as simulated; the keyed files add key columns to them
    # (tests/features/test_customer_keys.py)
    digests = _files_pins(write_shop(shop, out, customer_keys=False))
    digests["oracle_shop"] = _series_pin(oracle_churn_probability(shop, CUTOFF, HORIZON_DAYS))
    truth, contact_truth = read_truth(out)
    read_back = oracle_churn_probability(truth, CUTOFF, HORIZON_DAYS, contact_truth=contact_truth)
    digests["oracle_read_truth"] = _series_pin(read_back)
    return digests


def bgnbd_digests(config: BgNbdWorldConfig, out: Path) -> dict[str, object]:
    """Digests of the BG/NBD world's files and of its closed-form oracle."""
    world = simulate_bgnbd_world(config)
    digests = _files_pins(write_bgnbd_world(world, out))
    digests["oracle"] = _series_pin(world.oracle_churn_probability(CUTOFF, HORIZON_DAYS))
    return digests


#: The pins (:func:`shop_digests`, :func:`bgnbd_digests`) by case, as the script prints them.
EXPECTED: dict[str, dict[str, object]] = json.loads(
    Path(__file__).with_name("simulation_pins.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("name", sorted(SHOP_CASES))
def test_simulated_shop_bytes_are_unchanged(name, tmp_path, monkeypatch):
    assert unpinned(shop_digests(SHOP_CASES[name], tmp_path, monkeypatch), EXPECTED[name]) == []


@pytest.mark.parametrize("name", sorted(BGNBD_CASES))
def test_bgnbd_world_bytes_are_unchanged(name, tmp_path):
    assert unpinned(bgnbd_digests(BGNBD_CASES[name], tmp_path), EXPECTED[name]) == []


def test_a_changed_draw_changes_the_digests(tmp_path):
    """The pin can fail: one seed more gives other bytes for every table."""
    case = SHOP_CASES["defaults_300_seed0"]
    other = Case(SimulationConfig(customers=300, seed=1))
    changed = shop_digests(other, tmp_path)
    expected = EXPECTED["defaults_300_seed0"]
    assert case.config.seed != other.config.seed
    unchanged = [k for k in expected if k != "simulation" and pinned(changed[k], expected[k])]
    assert unchanged == []


if __name__ == "__main__":
    import tempfile

    class _Patch:
        """Just enough of pytest's monkeypatch for a script run."""

        def setattr(self, target, name, value):
            setattr(target, name, value)

    results = {}
    for name, case in sorted(SHOP_CASES.items()):
        saved = ENGAGEMENT_MODULE._ENGAGEMENT_BLOCK
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = shop_digests(case, Path(tmp), _Patch())
        ENGAGEMENT_MODULE._ENGAGEMENT_BLOCK = saved
    for name, config in sorted(BGNBD_CASES.items()):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = bgnbd_digests(config, Path(tmp))
    print(json.dumps(results, indent=1, sort_keys=True))
