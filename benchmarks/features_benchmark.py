"""Benchmark: the full feature set vs the RFM summaries of lifetimes and PyMC-Marketing.

Builds every registered feature for 1M customers / 10M order lines read from
Parquet, and in the same run the 4-column RFM summary of ``lifetimes``
(``summary_data_from_transaction_data``) and PyMC-Marketing
(``clv.utils.rfm_summary``) on the same file, each in its own process, and
prints wall time, CPU time (user + sys of the process, which the machine's
other load inflates less than wall time) and peak memory (max RSS) of each.
Times start after the imports (ours: before ``connect_parquet``; the peers:
before ``pd.read_parquet``, their summary function imported) and include reading the Parquet file.

lifetimes and PyMC-Marketing are never project dependencies: they live in a
separate virtual environment, made once with::

    uv venv /tmp/winback-bench-peers --python 3.11
    VIRTUAL_ENV=/tmp/winback-bench-peers uv pip install lifetimes pymc-marketing pyarrow

(or pass ``--install-peers`` and this script runs those two commands).

Run::

    uv run --frozen python benchmarks/features_benchmark.py            # 1M / 10M
    uv run --frozen python benchmarks/features_benchmark.py --customers 100000 --lines 1000000

The shop is written as winback writes validated tables: with integer customer and
order keys beside the string ids, the rows clustered by customer and time
(``features.inputs.keys``), which the build groups by, and the table of purchase
orders (``features.inputs.order_table``), which it reads instead of grouping the
lines into orders; done once, when written, and timed then. ``--with-ids`` also
writes the same shop without them (rows in the generator's order) and builds from
it, interleaved (the string-id path).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

PEERS_VENV = Path("/tmp/winback-bench-peers")
CUTOFF = date(2024, 12, 31)


def write_shop(
    directory: Path, customers: int, lines: int, seed: int = 0, *, keys: bool = True
) -> None:
    """Write a random shop (transactions, customers, tickets, referrals, reviews) as Parquet.

    With ``keys``, as winback writes validated tables (``winback data simulate``):
    with the integer ``customer_key``/``order_key`` columns and ``customer_keys.parquet``
    of ``features.inputs.keys``, the rows clustered by customer and time, and
    ``purchase_orders.parquet`` (``features.inputs.order_table``), done once here
    (the time each takes is printed).
    """
    import numpy as np
    import pyarrow as pa

    from features.inputs.keys import KEYS_TABLE, ORDERS_TABLE, clustered, with_keys
    from features.inputs.order_table import order_table
    from features.inputs.schema import SCHEMAS
    from features.inputs.table_files import table_file, write_parquet

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, pa.Table] = {}
    start = np.datetime64("2022-01-01T00:00:00", "us")
    span_us = np.int64(3 * 365 * 86_400 * 1_000_000)
    ids = np.array([f"C{i:07d}" for i in range(customers)], dtype=object)
    orders = lines // 3
    order_customer = rng.integers(0, customers, orders)
    order_time = start + rng.integers(0, span_us, orders).astype("timedelta64[us]")
    line_order = np.sort(rng.integers(0, orders, lines))
    amount = np.round(rng.gamma(2.0, 20.0, lines), 2)
    is_return = rng.random(lines) < 0.05
    category = rng.integers(0, 12, lines)
    margin = np.round(amount * (0.1 + 0.04 * category), 2)
    discount = np.where(rng.random(lines) < 0.3, np.round(amount * 0.2, 2), 0.0)
    tz = pa.timestamp("us", tz="UTC")
    tables["transactions"] = pa.table(
        {
            "customer_id": pa.array(ids[order_customer[line_order]], pa.string()),
            "order_id": pa.array(np.char.add("O", line_order.astype(str)), pa.string()),
            "ordered_at": pa.array(order_time[line_order]).cast(tz),
            "amount": amount,
            "is_return": is_return,
            "margin_amount": margin,
            "discount_amount": discount,
            "category": pa.array(np.char.add("cat", category.astype(str)), pa.string()),
        }
    )
    tables["customers"] = pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "region": pa.array(rng.choice(["north", "south", "east", "west"], customers)),
            "acquisition_channel": pa.array(rng.choice(["ads", "organic", "referral"], customers)),
        }
    )
    for name, column, extra in (
        ("support_tickets", "opened_at", "ticket_id"),
        ("referrals", "referred_at", None),
        ("reviews", "reviewed_at", "rating"),
    ):
        n = customers // 2
        cols = {
            "customer_id": pa.array(ids[rng.integers(0, customers, n)], pa.string()),
            column: pa.array(start + rng.integers(0, span_us, n).astype("timedelta64[us]")).cast(
                tz
            ),
        }
        if extra == "ticket_id":
            cols[extra] = pa.array(np.char.add("T", np.arange(n).astype(str)), pa.string())
        elif extra == "rating":
            cols[extra] = rng.integers(1, 6, n).astype(float)
        tables[name] = pa.table(cols)
    if keys:
        t0 = time.perf_counter()
        tables = {
            name: clustered(table, SCHEMAS[name].time_column if name in SCHEMAS else None)
            for name, table in with_keys(tables).items()
        }
        print(
            f"assigned the integer keys and clustered the rows in {time.perf_counter() - t0:.1f} s"
            " (once, when written)"
        )
        t0 = time.perf_counter()
        orders = order_table(tables["transactions"], tables[KEYS_TABLE].column("customer_id"))
        if orders is not None:  # before customer_keys, written last as winback writes it
            tables = {**tables, ORDERS_TABLE: orders, KEYS_TABLE: tables.pop(KEYS_TABLE)}
        print(f"made the purchase-order table in {time.perf_counter() - t0:.1f} s (once)")
    for name, table in tables.items():
        write_parquet(table, directory / table_file(name))


PEAK = """
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

OURS = (
    PEAK
    + """
import json, sys, time
from datetime import date
from features.build import build_feature_table_from
from features.engines.duckdb_engine import connect_parquet, has_customer_keys, has_order_table, table_columns
t0, c0 = time.perf_counter(), time.process_time()
con = connect_parquet(sys.argv[1], threads=int(sys.argv[3]), memory_limit=sys.argv[4])
con.execute("SET enable_progress_bar = false")
frame = build_feature_table_from(con, [date.fromisoformat(sys.argv[2])])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - c0, "rows": len(frame), "columns": frame.shape[1],
                  "peak_mib": peak_mib(), "keys": has_customer_keys(con, table_columns(con)),
                  "orders": has_order_table(con, table_columns(con))}))
"""
)

PEER = (
    PEAK
    + """
import json, sys, time
import pandas as pd
if sys.argv[3] == "lifetimes":
    from lifetimes.utils import summary_data_from_transaction_data as summary
    unit = {"freq": "D"}
else:
    from pymc_marketing.clv.utils import rfm_summary as summary
    unit = {"time_unit": "D"}
t0, c0 = time.perf_counter(), time.process_time()
frame = pd.read_parquet(sys.argv[1] + "/transactions.parquet",
                        columns=["customer_id", "ordered_at", "amount", "is_return"])
frame = frame[~frame["is_return"]]
frame["ordered_at"] = frame["ordered_at"].dt.tz_localize(None)
end = pd.Timestamp(sys.argv[2]) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
out = summary(frame, "customer_id", "ordered_at", monetary_value_col="amount",
              observation_period_end=end, **unit)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - c0, "rows": len(out), "columns": out.shape[1],
                  "peak_mib": peak_mib()}))
"""
)


def run(python: str, code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter and return its JSON report (or the error)."""
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    report = [line for line in proc.stdout.splitlines() if line.startswith('{"seconds"')]
    return json.loads(report[-1])


def install_peers() -> None:
    """Make the peers' virtual environment (see the module docstring)."""
    subprocess.run(["uv", "venv", str(PEERS_VENV), "--python", "3.11"], check=True)
    subprocess.run(
        ["uv", "pip", "install", "lifetimes", "pymc-marketing", "pyarrow"],
        check=True,
        env={**os.environ, "VIRTUAL_ENV": str(PEERS_VENV)},
    )


def write_shop_in_subprocess(directory: Path, customers: int, lines: int, keys: bool) -> None:
    """Run :func:`write_shop` in its own process, so no build inherits its memory."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from features_benchmark import write_shop;"
        " from pathlib import Path; write_shop(Path(sys.argv[2]), int(sys.argv[3]),"
        " int(sys.argv[4]), keys=sys.argv[5] == 'keys')"
    )
    here = str(Path(__file__).resolve().parent)
    arguments = [here, str(directory), str(customers), str(lines), "keys" if keys else "ids"]
    subprocess.run([sys.executable, "-c", code, *arguments], check=True)


def ids_folder(data: Path) -> Path:
    """The folder of the same shop written without integer keys (``--with-ids``)."""
    return data.with_name(data.name + "-ids")


def builds(args: argparse.Namespace, data: Path) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """The builds to run: name -> (python, code, arguments)."""
    settings = (str(CUTOFF), str(args.threads), args.memory_limit)
    out = {"winback (DuckDB, all features)": (sys.executable, OURS, (str(data), *settings))}
    if args.with_ids:
        out["winback, string ids (no keys)"] = (
            sys.executable,
            OURS,
            (str(ids_folder(data)), *settings),
        )
    if not args.skip_peers:
        peer_python = str(PEERS_VENV / "bin" / "python")
        for peer in ("lifetimes", "pymc-marketing"):
            out[f"{peer} RFM summary"] = (peer_python, PEER, (str(data), str(CUTOFF), peer))
    return out


def report(name: str, result: dict, load: float) -> None:
    """Print one row of the result table.

    ``keys``: whether our build grouped by integer keys; ``orders``: whether it read
    the purchase-order table instead of grouping the lines.
    """
    keys = {True: "yes", False: "no"}
    if "error" in result:
        print(f"{name:38} error: {result['error']}", flush=True)
        return
    print(
        f"{name:38} {result['seconds']:8.2f} {result['cpu_seconds']:7.2f}"
        f" {result['peak_mib']:9.0f} {result['rows']:10,} {result['columns']:5} {load:6.2f}"
        f" {keys.get(result.get('keys'), '-'):>4} {keys.get(result.get('orders'), '-'):>6}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=None, help="Parquet folder (made if absent)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit for ours")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every build this many times, interleaved"
    )
    parser.add_argument("--install-peers", action="store_true")
    parser.add_argument(
        "--with-ids",
        action="store_true",
        help="also build from the same shop written without integer keys (<data>-ids)",
    )
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    data = args.data or Path(f"/tmp/winback-bench-{args.customers}-{args.lines}-clustered")
    folders = {data: True, ids_folder(data): False} if args.with_ids else {data: True}
    for folder, keys in folders.items():
        if not (folder / "transactions.parquet").exists():
            t0 = time.perf_counter()
            write_shop_in_subprocess(folder, args.customers, args.lines, keys)
            print(f"wrote {folder} in {time.perf_counter() - t0:.1f} s")
    if not args.skip_peers and args.install_peers and not PEERS_VENV.exists():
        install_peers()
    print(
        f"{args.customers:,} customers, {args.lines:,} lines, cutoff {CUTOFF},"
        f" threads {args.threads}, DuckDB memory_limit {args.memory_limit}, cores {os.cpu_count()}"
    )
    print(
        f"{'what':38} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9} {'rows':>10} {'cols':>5}"
        f" {'load1':>6} {'keys':>4} {'orders':>6}"
    )
    todo = builds(args, data)
    for _ in range(args.rounds):
        for name, (python, code, arguments) in todo.items():
            if not Path(python).exists():
                report(name, {"error": f"no {python}: pass --install-peers"}, 0.0)
                continue
            load = os.getloadavg()[0]
            report(name, run(python, code, *arguments), load)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
