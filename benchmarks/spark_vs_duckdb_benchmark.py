"""Benchmark: the same feature SQL on Spark local mode and on DuckDB, ~10M transactions.

Both engines read the same Parquet folder (by default one simulated chunk of
850,000 customers, about 10M order lines, made with
``benchmarks/out_of_core_benchmark.py``'s generator), build every registered
feature as of the last data day and write the feature table to Parquet. Each
runs in its own process; the script prints wall time, the Python process's
peak RSS and, for Spark, the JVM's peak RSS (``VmHWM``), then checks that the
two feature tables agree (largest difference over every numeric value,
relative above 1 and absolute below).

Run::

    uv run --frozen python benchmarks/spark_vs_duckdb_benchmark.py
    uv run --frozen python benchmarks/spark_vs_duckdb_benchmark.py --data /work/bench-data/part0
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from out_of_core_benchmark import build_features_duckdb, generate_chunk, peak_rss_gib  # noqa: E402


def _children_hwm_gib(pid: int) -> float:
    """Largest peak RSS (VmHWM) among the live descendants of ``pid`` (the JVM), in GiB."""
    best = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                stack += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        if current == pid:
            continue
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) / 1024**2)
        except OSError:
            continue
    return best


def build_features_spark(data: Path, out: Path, driver_memory: str) -> dict[str, object]:
    """Every feature as of the last data day on Spark local[2], from Parquet to Parquet."""
    from features.definitions import resolve
    from features.engines.duckdb_engine import table_columns
    from features.engines.spark_engine import (
        SparkConfig,
        SparkConnection,
        spark_session,
        to_spark_sql,
    )
    from features.query import feature_query

    started = time.perf_counter()
    spark = spark_session(SparkConfig(shuffle_partitions=8, driver_memory=driver_memory))
    session_seconds = time.perf_counter() - started
    connection = SparkConnection(spark)
    connection.register_parquet(data)
    row = spark.sql("SELECT count(*) AS n, max(ordered_at) AS last FROM transactions").collect()[0]
    cutoff = row["last"].date()
    connection.register_cutoffs([cutoff])
    columns = table_columns(connection)
    definitions, _ = resolve(None, columns)
    query = to_spark_sql(feature_query(definitions, columns))
    spark.sql(query).write.mode("overwrite").parquet(str(out))
    customers = spark.read.parquet(str(out)).count()
    result = {
        "engine": "spark local[2]",
        "lines": int(row["n"]),
        "customers": int(customers),
        "cutoff": str(cutoff),
        "seconds": round(time.perf_counter() - started, 1),
        "session_start_seconds": round(session_seconds, 1),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "jvm_peak_rss_gib": round(_children_hwm_gib(os.getpid()), 2),
        "driver_memory": driver_memory,
    }
    spark.stop()
    return result


def compare(duckdb_out: Path, spark_out: Path) -> dict[str, float]:
    """Row counts and the largest difference (relative, absolute below 1) between the outputs."""
    import duckdb
    import numpy as np

    con = duckdb.connect()
    a = con.execute(f"SELECT * FROM read_parquet('{duckdb_out}') ORDER BY customer_id").df()
    b = con.execute(
        f"SELECT * FROM read_parquet('{spark_out}/*.parquet') ORDER BY customer_id"
    ).df()
    worst = 0.0
    for column in a.columns:
        if column in ("cutoff", "customer_id") or a[column].dtype == object:
            continue
        if str(a[column].dtype) in ("str", "string"):
            if not (a[column].fillna("") == b[column].fillna("")).all():
                worst = float("inf")
            continue
        x = a[column].to_numpy("float64", na_value=np.nan)
        y = b[column].astype("float64").to_numpy(na_value=np.nan)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return {"rows": len(a), "max_difference": float("inf"), "column": column}
        both = ~np.isnan(x)
        # Relative above 1, absolute below: sums that cancel to ~1e-15 differ in the last bits.
        diff = np.abs(x[both] - y[both]) / np.maximum(np.abs(x[both]), 1.0)
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return {"rows_duckdb": len(a), "rows_spark": len(b), "max_difference": worst}


def _child(args: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_duckdb":
        data, out, limit, tmp = sys.argv[2:6]
        print(json.dumps(build_features_duckdb(Path(data), Path(out), limit, 2, Path(tmp))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_spark":
        data, out, memory = sys.argv[2:5]
        print(json.dumps(build_features_spark(Path(data), Path(out), memory)))
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="Parquet folder (default: generate)"
    )
    parser.add_argument("--customers", type=int, default=850_000)
    parser.add_argument("--work", type=Path, default=Path("/work/bench-data/spark-vs-duckdb"))
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit")
    parser.add_argument("--driver-memory", default="4g", help="Spark driver (local JVM) heap")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = args.work / "data"
        if not (data / "transactions").exists():
            started = time.perf_counter()
            counts = generate_chunk(data, 0, args.customers, seed=1000)
            print(
                f"generated {counts['transactions']:,} lines in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    spill = args.work / "duckdb-spill"
    spill.mkdir(exist_ok=True)
    results = []
    load = os.getloadavg()[0]
    results.append(
        _child(
            ["_duckdb", str(data), str(args.work / "duckdb.parquet"), args.memory_limit, str(spill)]
        )
    )
    results.append(
        _child(["_spark", str(data), str(args.work / "spark.parquet"), args.driver_memory])
    )
    check = compare(args.work / "duckdb.parquet", args.work / "spark.parquet")
    print(json.dumps({"results": results, "parity": check}, indent=2, default=str))
    for r in results:
        extra = f", JVM peak {r['jvm_peak_rss_gib']} GiB" if "jvm_peak_rss_gib" in r else ""
        print(
            f"{r['engine']:<15} {r['lines']:>12,} lines -> {r['customers']:>9,} customers: "
            f"{r['seconds']:>7} s, Python peak {r['peak_rss_gib']} GiB{extra}"
        )
    print(f"load (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after; parity {check}")
    if args.data is None:
        shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
