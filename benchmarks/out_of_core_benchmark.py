"""Benchmark: every feature for ~100M simulated transactions with DuckDB under a memory limit.

Generates the simulated shop in chunks (``--chunks`` x ``--customers``
customers, one seed per chunk, ~12 order lines per customer), each chunk's ids
prefixed with its number (``K3-C0000001``) so customers and orders never
collide, written as ``<data>/<table>/part-<k>.parquet``. Then, in a fresh
process, builds every registered feature as of the last data day straight from
the Parquet files (``features.engines.duckdb_engine.connect_parquet``) with DuckDB's
``memory_limit`` and a spill directory, writing the feature table to Parquet
with ``COPY`` so the result never has to fit in memory either. Prints wall
time, CPU time and the peak resident memory of that process (``VmHWM``),
plus the machine's load. The query is the one-cutoff form (events filtered
against the literal date, grouped by ``customer_id`` alone) that
``build_feature_table_from`` runs for one cutoff.

Unless ``--no-keys``, the parts then get the integer ``customer_key``/``order_key``
columns and ``customer_keys.parquet`` of ``features.inputs.keys`` (as ``winback data
simulate`` writes a shop; timed apart, once), and the build groups by them; then
the purchase-order table ``purchase_orders.parquet`` of ``features.inputs.order_table``
(made part by part: the parts' customers never overlap, and their keys are
consecutive ranges), which the build reads instead of grouping the lines.

Run (heavy: ~10 GB of disk, tens of minutes on 2 cores)::

    df -h /work
    uv run --frozen python benchmarks/out_of_core_benchmark.py --data /work/bench-data/winback-100m
    uv run --frozen python benchmarks/out_of_core_benchmark.py --chunks 1 --customers 100000  # quick

``--prepare-only --keep`` writes the data and stops, so the build can be timed
later on a quiet machine.

The data is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ID_COLUMNS = ("customer_id", "order_id", "ticket_id", "referred_customer_id")


def peak_rss_gib() -> float:
    """Peak resident memory of this process in GiB (``VmHWM``: unlike ``ru_maxrss`` it
    does not carry a parent's peak over ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def generate_chunk(data: Path, chunk: int, customers: int, seed: int) -> dict[str, int]:
    """Simulate one chunk and write each table to ``<data>/<table>/part-<chunk>.parquet``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.simulation import SimulationConfig, simulate_shop

    shop = simulate_shop(SimulationConfig(customers=customers, seed=seed))
    counts = {}
    prefix = f"K{chunk}-"
    for name, frame in shop.tables.present().items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for column in ID_COLUMNS:
            if column in table.column_names:
                i = table.column_names.index(column)
                ids = pc.binary_join_element_wise(prefix, table[column].cast(pa.string()), "")
                table = table.set_column(i, column, ids)
        folder = data / name
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".part-{chunk}.tmp"
        pq.write_table(table, tmp, row_group_size=1_000_000)
        os.replace(tmp, folder / f"part-{chunk}.parquet")
        counts[name] = table.num_rows
    return counts


def build_features_duckdb(
    data: Path, out: Path, memory_limit: str, threads: int, temp_dir: Path
) -> dict[str, object]:
    """Every feature as of the last data day, from Parquet to Parquet, under ``memory_limit``."""
    import datetime as dt

    from features.definitions import resolve
    from features.engines.duckdb_engine import (
        connect_parquet,
        has_customer_keys,
        has_order_table,
        table_columns,
    )
    from features.query import Sources, feature_query

    started, cpu = time.perf_counter(), time.process_time()
    con = connect_parquet(data, threads=threads, memory_limit=memory_limit)
    con.execute("SET temp_directory = ?", [str(temp_dir)])
    con.execute("SET preserve_insertion_order = false")
    lines, last = con.execute("SELECT count(*), max(ordered_at) FROM transactions").fetchall()[0]
    cutoff = last.date() if isinstance(last, dt.datetime) else last
    columns = table_columns(con)
    definitions, notes = resolve(None, columns)
    keyed = has_customer_keys(con, columns)
    orders = has_order_table(con, columns)  # read as the build reads it (features.build)
    sql = feature_query(
        definitions, columns, cutoff=cutoff, keyed=keyed, sources=Sources(order_table=orders)
    )
    quoted = str(out).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{quoted}' (FORMAT parquet)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{quoted}')").fetchall()[0][0]
    return {
        "engine": "duckdb",
        "lines": int(lines),
        "customers": int(rows),
        "features": len(definitions),
        "cutoff": str(cutoff),
        "memory_limit": memory_limit,
        "threads": threads,
        "keyed": keyed,
        "order_table": orders,
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "omitted": notes,
    }


def _parts(data: Path) -> dict[str, list[Path]]:
    """The part files of every table folder under ``data``, by table."""
    folders = sorted(p for p in data.iterdir() if p.is_dir() and p.name != "duckdb-spill")
    return {f.name: sorted(f.glob("part-*.parquet")) for f in folders}


def key_parts(data: Path) -> float:
    """Write the integer keys of ``features.inputs.keys`` into every part, as winback writes them.

    ``customer_key`` is the position among the sorted distinct ids of all parts
    (one pass reads the ids, a second rewrites each part with its keys and the key
    set's digest), ``order_key`` numbers each part's orders after the previous
    parts' (the chunks' ids never collide, so an order never spans two parts), and
    ``customer_keys.parquet`` maps the keys back. Returns the seconds it took.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.inputs.keys import (
        CUSTOMER_KEY,
        KEYS_FILE,
        ORDER_KEY,
        key_set_digest,
        with_digest,
    )

    started = time.perf_counter()
    parts = _parts(data)
    ids = []
    for files in parts.values():
        for part in files:
            if "customer_id" in pq.read_schema(part).names:
                column = pq.read_table(part, columns=["customer_id"]).column(0)
                ids.append(pc.unique(column.cast(pa.string())).drop_null())
    distinct = pc.unique(pa.chunked_array(ids, pa.string()))
    distinct = distinct.take(pc.sort_indices(distinct))
    digest = key_set_digest(distinct)
    orders = 0
    for files in parts.values():
        for part in files:
            table = _without_keys(pq.read_table(part))
            if "customer_id" in table.column_names:
                keys = pc.index_in(
                    table.column("customer_id").cast(pa.string()), value_set=distinct
                )
                table = table.append_column(CUSTOMER_KEY, keys.cast(pa.int64()))
            if part.parent.name == "transactions":
                order_ids = table.column("order_id").cast(pa.string())
                part_orders = pc.unique(order_ids).drop_null()
                keys = pc.add(
                    pc.index_in(order_ids, value_set=part_orders).cast(pa.int64()), orders
                )
                table = table.append_column(ORDER_KEY, keys)
                orders += len(part_orders)
            tmp = part.with_name(f".{part.name}.tmp")
            pq.write_table(with_digest(table, digest), tmp, row_group_size=1_000_000)
            os.replace(tmp, part)
    keys_table = pa.table(
        {CUSTOMER_KEY: pa.array(range(len(distinct)), pa.int64()), "customer_id": distinct}
    )
    tmp = data / f".{KEYS_FILE}.tmp"
    pq.write_table(with_digest(keys_table, digest), tmp)
    os.replace(tmp, data / KEYS_FILE)
    return time.perf_counter() - started


def order_parts(data: Path) -> float | None:
    """Write ``purchase_orders.parquet`` for the keyed parts, as ``write_tables`` writes it.

    Each part's orders are made on their own (``features.inputs.order_table.order_table``):
    the chunks' customers never overlap and ``customer_key`` numbers the sorted
    ids, so the parts hold consecutive key ranges and their order tables,
    appended in key order, are the whole shop's, sorted as one. The file
    carries the total line count. Returns the seconds it took, ``None`` when a
    part's orders span two days (no table is written).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.inputs.keys import CUSTOMER_KEY, KEYS_FILE, LINES_METADATA, ORDERS_FILE
    from features.inputs.order_table import order_table

    started = time.perf_counter()
    ids = pq.read_table(data / KEYS_FILE, columns=["customer_id"]).column(0)
    parts = sorted(
        _parts(data)["transactions"],
        key=lambda f: pc.min(pq.read_table(f, columns=[CUSTOMER_KEY]).column(0)).as_py(),
    )
    lines = sum(pq.ParquetFile(f).metadata.num_rows for f in parts)
    tmp = data / f".{ORDERS_FILE}.tmp"
    writer = None
    try:
        for part in parts:
            orders = order_table(pq.read_table(part), ids)
            if orders is None:
                return None
            metadata = {**orders.schema.metadata, LINES_METADATA: str(lines).encode()}
            orders = orders.replace_schema_metadata(metadata)
            if writer is None:
                writer = pq.ParquetWriter(tmp, orders.schema)
            writer.write_table(orders, row_group_size=1_000_000)
    finally:
        if writer is not None:
            writer.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, data / ORDERS_FILE)
    return time.perf_counter() - started


def _child(args: list[str]) -> dict:
    """Run this script's worker in a fresh process (its own peak RSS) and read its JSON line."""
    result = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _without_keys(table):
    """``table`` without the integer keys and their digest (a copy gets keys of its own)."""
    from features.inputs.keys import DIGEST_METADATA, KEY_COLUMNS

    table = table.drop_columns([c for c in KEY_COLUMNS if c in table.column_names])
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != DIGEST_METADATA}
    return table.replace_schema_metadata(metadata)


def copy_chunk(data: Path, source: int, chunk: int) -> int:
    """Write chunk ``chunk`` as a copy of chunk ``source`` with its own id prefix; return its lines.

    The copy's customers and orders are new ids (``K<chunk>-...``) with the same
    behaviour as the source's, so the feature build does the same work as for
    freshly simulated customers, at a fraction of the simulator's cost.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lines = 0
    for folder in sorted(p for p in data.iterdir() if p.is_dir() and p.name != "duckdb-spill"):
        part = folder / f"part-{source}.parquet"
        if not part.exists():
            continue
        table = _without_keys(pq.read_table(part))
        for column in ID_COLUMNS:
            if column in table.column_names:
                i = table.column_names.index(column)
                ids = pc.replace_substring_regex(table[column], f"^K{source}-", f"K{chunk}-")
                table = table.set_column(i, column, ids)
        tmp = folder / f".part-{chunk}.tmp"
        pq.write_table(table, tmp, row_group_size=1_000_000)
        os.replace(tmp, folder / f"part-{chunk}.parquet")
        if folder.name == "transactions":
            lines = table.num_rows
    return lines


def generate(data: Path, chunks: int, customers: int, seeds: int | None = None) -> int:
    """Generate the chunks not already on disk; return the number of order lines.

    The first ``seeds`` chunks are simulated (one seed each); later ones copy
    them with new ids (see :func:`copy_chunk`).
    """
    seeds = chunks if seeds is None else max(1, min(seeds, chunks))
    lines = 0
    for chunk in range(chunks):
        if (data / "transactions" / f"part-{chunk}.parquet").exists():
            import pyarrow.parquet as pq

            lines += pq.ParquetFile(
                data / "transactions" / f"part-{chunk}.parquet"
            ).metadata.num_rows
            continue
        started = time.perf_counter()
        if chunk >= seeds:
            copied = copy_chunk(data, chunk % seeds, chunk)
            lines += copied
            print(
                f"chunk {chunk}: {copied:,} lines copied from chunk {chunk % seeds} with new ids "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            continue
        info = _child(["_chunk", str(data), str(chunk), str(customers)])
        lines += info["transactions"]
        print(
            f"chunk {chunk}: {info['transactions']:,} lines, {customers:,} customers "
            f"in {time.perf_counter() - started:.0f} s (peak {info['peak_rss_gib']:.1f} GiB)",
            flush=True,
        )
    return lines


def _with_order_table(data: Path) -> None:
    """Write the purchase-order table unless the one on disk belongs to these parts."""
    import duckdb

    from features.engines.duckdb_engine import connect_parquet, has_order_table, table_columns

    con = connect_parquet(data, duckdb.connect())
    try:
        present = has_order_table(con, table_columns(con))
    finally:
        con.close()
    if present:
        print("the purchase-order table belongs to these parts already", flush=True)
        return
    seconds = order_parts(data)
    if seconds is None:
        print("no purchase-order table: an order's lines span two days", flush=True)
    else:
        print(f"wrote the purchase-order table in {seconds:.0f} s (once)", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_chunk":
        data, chunk, customers = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        counts = generate_chunk(data, chunk, customers, seed=1000 + chunk)
        print(json.dumps({**counts, "peak_rss_gib": peak_rss_gib()}))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_duckdb":
        data, out, limit, threads, tmp = sys.argv[2:7]
        print(
            json.dumps(build_features_duckdb(Path(data), Path(out), limit, int(threads), Path(tmp)))
        )
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data/winback-100m"))
    parser.add_argument("--chunks", type=int, default=9)
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers per chunk")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="simulate only this many chunks and fill the rest with re-id'd copies "
        "(the simulator takes minutes per 1M customers on a loaded machine)",
    )
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument(
        "--no-keys",
        action="store_true",
        help="leave out the integer keys (features.inputs.keys): the build groups by string ids",
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="write the data (and keys) and stop"
    )
    args = parser.parse_args()

    print(
        f"load before: {os.getloadavg()[0]:.1f} (1 min), disk free: "
        f"{shutil.disk_usage(args.data.parent if args.data.parent.exists() else '/').free / 1e9:.0f} GB"
    )
    args.data.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    lines = generate(args.data, args.chunks, args.customers, args.seeds)
    print(f"generated {lines:,} order lines in {time.perf_counter() - started:.0f} s", flush=True)
    if not args.no_keys:
        from features.inputs.keys import KEYS_FILE, shared_digest

        files = [f for part in _parts(args.data).values() for f in part]
        keys_file = args.data / KEYS_FILE
        if keys_file.exists() and shared_digest([keys_file, *files]) is not None:
            print("the parts carry one key set already", flush=True)
        else:
            print(f"assigned the integer keys in {key_parts(args.data):.0f} s (once)", flush=True)
        _with_order_table(args.data)
    if args.prepare_only:
        print(f"prepared {args.data}; not built (--prepare-only)")
        return
    on_disk = sum(f.stat().st_size for f in args.data.rglob("*.parquet")) / 1e9
    spill = args.data / "duckdb-spill"
    spill.mkdir(exist_ok=True)
    out = args.data / "features.parquet"
    load = os.getloadavg()[0]
    result = _child(
        ["_duckdb", str(args.data), str(out), args.memory_limit, str(args.threads), str(spill)]
    )
    result["load_1min_before"] = round(load, 1)
    result["load_1min_after"] = round(os.getloadavg()[0], 1)
    result["parquet_gb"] = round(on_disk, 2)
    print(json.dumps(result, indent=2))
    print(
        f"\nDuckDB, {result['lines']:,} lines -> {result['customers']:,} customers x "
        f"{result['features']} features: {result['seconds']} s wall, {result['cpu_seconds']} s CPU "
        f"(all threads), peak RSS {result['peak_rss_gib']} GiB under memory_limit={args.memory_limit}, "
        f"{args.threads} threads; load {load:.1f} -> {result['load_1min_after']}"
    )
    if not args.keep:
        shutil.rmtree(args.data)
        print(f"deleted {args.data}")


if __name__ == "__main__":
    main()
