"""Helpers of the serving benchmark for large score tables: a synthetic table, worker memory.

A score table of millions of customers is not scored by the models here (three
models on 10M rows would take the benchmark's whole budget): it is *synthetic*.
:func:`write_synthetic_version` writes one published version folder the way
``winback score`` lays it out (``scores.parquet``, ``features.parquet``, the
lookup files and ``metadata.json``), in chunks of a million customers, with

* ids ``C00000000`` ... (fixed width, so already in id order);
* 60% active customers (churn risk and, for the 5% not VIP, VIP potential),
  the rest lapsed (reactivation probability), scores uniform in [0, 1);
  ``expected_value`` and ``trailing_margin`` gamma-distributed; no value model;
* three stored reasons for the 1,000 highest scores of each target, none for
  the others (so by-id requests with ``explain`` compute them from the features);
* every feature of the served models' feature sets: numbers gamma(2, 30) with
  5% missing, categories drawn from four values (what :func:`synthetic_features`
  of the benchmark draws), drawn for a million customers and rotated for each
  further million; the reasons' medians from the first million rows;
* the served models' versions and feature-set names.

The DuckDB catalogue is not written: the service does not read it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_ROWS = 1_000_000
REASONS = ["orders less often than before", "spends less per order", "fewer visits"]


def _ids(start: int, stop: int) -> pa.Array:
    numbers = np.char.zfill(np.arange(start, stop).astype(str), 8)
    return pa.array(np.char.add("C", numbers))


def _scores(customers: int, models, as_of: dt.date, seed: int) -> pa.Table:
    """The synthetic score table (see the module docstring), in id order."""
    from serving.scoring.lookup_files import dictionary_column

    rng = np.random.default_rng(seed)
    active = rng.uniform(size=customers) < 0.6
    vip = active & (rng.uniform(size=customers) < 0.05)
    populations = {"churn": active, "vip": active & ~vip, "reactivation": ~active}
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "customer_id": _ids(0, customers),
        "as_of": pa.array(np.full(customers, np.datetime64(as_of, "D"))),
    }
    scores = {}
    for target, column in (
        ("churn", "churn_risk"),
        ("vip", "vip_potential"),
        ("reactivation", "reactivation_probability"),
    ):
        values = np.where(populations[target], rng.uniform(size=customers), np.nan)
        scores[target] = values
        columns[column] = pa.array(values, from_pandas=True)
    columns["expected_value"] = pa.array(rng.gamma(2.0, 20.0, customers))
    columns["predicted_value"] = pa.nulls(customers, pa.float64())
    columns["value_horizon_days"] = pa.nulls(customers, pa.int64())
    tier = pa.array(np.where(vip, "gold", np.where(active, "standard", None)))
    columns["tier"] = dictionary_column(pa.chunked_array([tier]))
    columns["is_active"] = pa.array(active)
    columns["is_lapsed"] = pa.array(~active)
    columns["is_vip"] = pa.array(vip)
    columns["trailing_margin"] = pa.array(rng.gamma(2.0, 60.0, customers))
    for target, values in scores.items():
        top = np.argsort(-np.nan_to_num(values, nan=-1.0))[:1000]
        mask = np.zeros(customers, dtype=bool)
        mask[top] = True
        offsets = np.concatenate([[0], np.cumsum(np.where(mask, len(REASONS), 0))])
        texts = pa.array(REASONS * int(mask.sum()))
        reasons = pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()), texts, mask=pa.array(~mask)
        )
        columns[f"{target}_reasons"] = reasons
    for target in ("churn", "vip", "reactivation"):
        served = models.models.get(target)
        for suffix, value in (
            ("_model_version", served.version if served else None),
            ("_feature_set", served.feature_set.name if served else None),
        ):
            plain = pa.array([value] * customers, pa.string())
            columns[f"{target}{suffix}"] = dictionary_column(pa.chunked_array([plain]))
    stamp = np.datetime64(dt.datetime(as_of.year, as_of.month, as_of.day) + dt.timedelta(days=1))
    columns["scored_at"] = pa.array(np.full(customers, stamp.astype("datetime64[ns]"))).cast(
        pa.timestamp("ns", tz="UTC")
    )
    return pa.table(columns)


def _feature_chunks(feature_set, customers: int, seed: int) -> Iterator[pa.Table]:
    """One chunk of random features, then the same values rotated for every later chunk.

    Drawing 10M x 47 gamma values costs minutes on a busy machine; a lookup only
    needs each row to hold plausible values, not independent ones.
    """
    rng = np.random.default_rng(seed)
    n = min(CHUNK_ROWS, customers)
    pool = {}
    for name, dtype in feature_set.columns:
        if dtype == "category":
            pool[name] = pa.array(rng.choice(["north", "south", "web", "app"], n))
        else:
            values = rng.gamma(2.0, 30.0, n)
            values[rng.uniform(size=n) < 0.05] = np.nan
            pool[name] = pa.array(values, from_pandas=True)
    table = pa.table(pool)
    for k, start in enumerate(range(0, customers, CHUNK_ROWS)):
        rows = min(CHUNK_ROWS, customers - start)
        shift = (k * 7919) % n
        order = np.concatenate([np.arange(shift, n), np.arange(0, shift)])[:rows]
        yield table.take(pa.array(order))


def _plain_strings(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def write_synthetic_version(score_dir: Path, models, as_of: dt.date, customers: int) -> Path:
    """Publish a synthetic version folder of ``customers`` customers (module docstring)."""
    from features.publish import publish_folder
    from serving.scoring import lookup_files, store
    from serving.scoring.reasons import feature_reference
    from serving.scoring.record_file import write_record_file

    feature_set = models.feature_set()

    def fill(folder: Path) -> None:
        scores = _scores(customers, models, as_of, seed=1)
        pq.write_table(_plain_strings(scores), folder / store.SCORES_FILE)
        ids = scores.column("customer_id").to_numpy(zero_copy_only=False).astype("S")
        np.save(folder / lookup_files.IDS_FILE, ids)
        del ids
        lookup_files.write_score_file(folder, scores)
        write_record_file(folder, scores, as_of)
        del scores
        chunks = _feature_chunks(feature_set, customers, seed=2)
        first = next(chunks)
        reference = feature_reference(first.to_pandas())
        writer = pq.ParquetWriter(folder / store.FEATURES_FILE, first.schema, compression="none")

        def both() -> Iterator[pa.Table]:
            for chunk in (first, *chunks):
                writer.write_table(chunk)
                yield chunk

        try:
            lookup_files.write_feature_file(folder, both(), reference)
        finally:
            writer.close()
        metadata = {
            "as_of": as_of.isoformat(),
            "rows": customers,
            "written_at": dt.datetime.now(dt.UTC).isoformat(),
            "files": [store.SCORES_FILE, store.FEATURES_FILE, *lookup_files.LOOKUP_FILES],
            "synthetic": True,
        }
        (folder / store.METADATA_FILE).write_text(json.dumps(metadata, indent=2))

    score_dir.mkdir(parents=True, exist_ok=True)
    return publish_folder(score_dir / store._folder_name(as_of), fill)


# ------------------------------------------------------------------ memory


def _status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile (MiB) of ``pid`` from /proc, and its PSS."""
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) // 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return out


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def process_memory(root: int) -> list[tuple[int, str, dict[str, int]]]:
    """``(pid, command, memory)`` of ``root`` and every process under it."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            out.append((pid, command, _status(pid)))
        except OSError:
            continue
        todo.extend(_children(pid))
    return out


def is_worker(command: str) -> bool:
    """Whether a process of ``bentoml serve`` is a service worker (it loads the score table)."""
    return "_bentoml_impl.worker" in command or "worker.service" in command


def print_memory(root: int, when: str) -> dict[str, int]:
    """Print each process's memory under the server; return the largest worker's figures."""
    rows = process_memory(root)
    load = os.getloadavg()
    print(f"memory {when} (MiB; load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}):")
    worst: dict[str, int] = {}
    for pid, command, memory in rows:
        kind = "worker" if is_worker(command) else "other"
        print(
            f"  {kind:<6} pid {pid:<7} VmRSS {memory.get('VmRSS', 0):>6} VmHWM "
            f"{memory.get('VmHWM', 0):>6} RssAnon {memory.get('RssAnon', 0):>6} RssFile "
            f"{memory.get('RssFile', 0):>6} Pss {memory.get('Pss', 0):>6}  {command[:60]}"
        )
        if kind == "worker" and memory.get("VmHWM", 0) >= worst.get("VmHWM", 0):
            worst = memory
    return worst
