"""Time the simulated shop: transactions generated, wall time, rows/s, peak memory.

CPU time (``time.process_time``) is printed next to wall time because a shared
machine inflates wall time. Peak memory is the process's maximum resident set size from
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (includes the interpreter and
imported libraries). Run with::

    uv run --frozen python benchmarks/simulate_benchmark.py --customers 1000000 [--out DIR]

``--no-engagement`` simulates without the ``engagement_events`` table, to see its cost.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from features.simulation import SimulationConfig, simulate_shop, write_shop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="also time write_shop (Parquet)")
    parser.add_argument("--out", type=Path, default=None, help="directory for --write")
    parser.add_argument(
        "--no-engagement", action="store_true", help="leave out the engagement_events table"
    )
    args = parser.parse_args()

    started, cpu_started = time.perf_counter(), time.process_time()
    config = SimulationConfig(
        customers=args.customers, seed=args.seed, engagement=not args.no_engagement
    )
    shop = simulate_shop(config)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rows = len(shop.tables.transactions)
    print(f"customers            {args.customers:>14,}")
    print(f"transactions         {rows:>14,}")
    for name, frame in shop.tables.present().items():
        if name != "transactions":
            print(f"{name:<20} {len(frame):>14,}")
    print(f"simulate wall time   {elapsed:>14.2f} s")
    print(f"simulate CPU time    {cpu:>14.2f} s (user+sys; wall/CPU shows sharing of the cores)")
    print(f"transactions / s     {rows / elapsed:>14,.0f}")
    if args.write:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            started = time.perf_counter()
            paths = write_shop(shop, out)
            took = time.perf_counter() - started
            size = sum(p.stat().st_size for p in paths.values())
            print(f"write_shop wall time {took:>14.2f} s ({size / 2**20:,.0f} MiB)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak memory (max RSS){peak:>14.2f} GiB")
    print(f"load average         {os.getloadavg()[0]:>14.2f} (1 min, {os.cpu_count()} cpus)")


if __name__ == "__main__":
    main()
