"""Load test of the winback service on loopback: latency and throughput, with the in-process baseline.

Starts ``bentoml serve serving.service:WinbackService`` on a free 127.0.0.1 port,
then sends a fixed number of requests (bounded by a time limit) from an async
client and prints p50/p99 latency, throughput and errors for

* a by-id lookup (one customer id per request),
* 1,000 posted feature rows (column-wise and row-wise),

next to the in-process LightGBM predict time of the same 1,000 rows.

By default it builds a synthetic working directory in a temporary folder: three
champion models (the released feature sets, 300 trees) in a fresh MLflow
registry and a score table of ``--customers`` customers. ``--home DIR`` uses an
existing one instead (after ``winback train`` and ``winback score``).

Run: ``uv run --frozen python benchmarks/serving_benchmark.py [--requests 2000]``.
Figures depend on the machine's load: the script prints ``uptime`` with them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

API_KEY = "benchmark-key"
AS_OF = dt.date(2025, 12, 31)


def synthetic_features(feature_set, n: int, seed: int) -> pd.DataFrame:
    """Random values of the right kinds for every column of ``feature_set``."""
    rng = np.random.default_rng(seed)
    data = {}
    for name, dtype in feature_set.columns:
        if dtype == "category":
            data[name] = pd.array(rng.choice(["north", "south", "web", "app"], n), dtype="string")
        else:
            values = rng.gamma(2.0, 30.0, n)
            values[rng.uniform(size=n) < 0.05] = np.nan
            data[name] = values
    index = pd.Index([f"C{i:07d}" for i in range(n)], dtype="string", name="customer_id")
    return pd.DataFrame(data, index=index)


def build_home(home: Path, customers: int) -> None:
    """Three champion models in ``home/mlruns`` and a score table in ``home/winback_output``."""
    import mlflow

    from features.feature_sets import CHURN_FEATURES_V1, REACTIVATION_FEATURES_V1, VIP_FEATURES_V1
    from serving.config import ServingConfig
    from serving.scoring import load_served_models, score_table
    from serving.store import write_score_table
    from training import registry, tracking
    from training.model import WinbackClassifier

    sets = {
        "churn": CHURN_FEATURES_V1,
        "vip": VIP_FEATURES_V1,
        "reactivation": REACTIVATION_FEATURES_V1,
    }
    config = tracking.TrackingConfig(root=str(home / "mlruns"))
    for i, (target, fs) in enumerate(sets.items()):
        X = synthetic_features(fs, 20_000, i)
        driver = X[fs.names[0]].fillna(0).to_numpy()
        y = (np.random.default_rng(i).uniform(size=len(X)) < driver / driver.max()).astype(int)
        model = WinbackClassifier(fs, n_estimators=300, early_stopping_rounds=1000, num_threads=2)
        model.fit(X, y, eval_set=(X.iloc[:5000], y[:5000]))
        with tracking.start_training_run(target, config) as run:
            tracking.log_model(model, input_example=X)
            version = registry.register(
                run.info.run_id, target, test_cutoff=AS_OF, metrics={"roc_auc": 0.0}
            )
        registry.promote(target, version, reason="benchmark")
    mlflow.set_tracking_uri(None)
    serving_config = ServingConfig(home=home)
    models = load_served_models(serving_config, tracking_uri=config.resolved_tracking_uri())
    union = models.feature_set()
    frame = synthetic_features(union, customers, 99)
    rng = np.random.default_rng(1)
    frame["is_active"] = rng.uniform(size=customers) < 0.6
    frame["is_lapsed"] = ~frame["is_active"]
    frame["is_vip"] = frame["is_active"] & (rng.uniform(size=customers) < 0.05)
    frame["tier"] = np.where(frame["is_vip"], "gold", "standard")
    frame["trailing_margin"] = rng.gamma(2.0, 60.0, customers)
    table = score_table(frame, models, as_of=AS_OF, explain_top=1000)
    write_score_table(table, frame[union.names], serving_config.score_path, AS_OF)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(home: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "WINBACK_HOME": str(home),
        "WINBACK_API_KEYS": API_KEY,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    bentoml = Path(sys.executable).parent / "bentoml"
    command = [str(bentoml), "serve", "serving.service:WinbackService"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        command,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not ready after {timeout_s} s")


async def load(
    url: str, path: str, payloads: list, *, concurrency: int, time_limit_s: float
) -> dict:
    """Send every payload (``concurrency`` at a time, within ``time_limit_s``); time each."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(payloads))
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + time_limit_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while queue and time.perf_counter() < deadline:
                body = queue.pop()
                start = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                    status = response.status_code
                except httpx.HTTPError:
                    status = -1
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "req_per_s": len(latencies) / wall if wall else float("nan"),
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "statuses": statuses,
    }


def in_process_baseline(home: Path, frame: pd.DataFrame, repeats: int) -> dict[str, float]:
    """In-process predict time of the same rows: three models, and the churn model alone."""
    from serving.config import ServingConfig
    from serving.scoring import load_served_models, predict_scores
    from training.tracking import TrackingConfig

    uri = TrackingConfig(root=str(home / "mlruns")).resolved_tracking_uri()
    models = load_served_models(ServingConfig(home=home), tracking_uri=uri)
    churn = models["churn"].model
    three, one = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_scores(models, frame)
        three.append(time.perf_counter() - start)
        start = time.perf_counter()
        churn.predict_proba(frame)
        one.append(time.perf_counter() - start)
    three_ms, one_ms = np.array(three) * 1000, np.array(one) * 1000
    return {
        "three_p50_ms": float(np.percentile(three_ms, 50)),
        "three_p99_ms": float(np.percentile(three_ms, 99)),
        "one_p50_ms": float(np.percentile(one_ms, 50)),
        "one_p99_ms": float(np.percentile(one_ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="existing working dir (mlruns + scores)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000, help="by-id requests")
    parser.add_argument("--row-requests", type=int, default=200, help="1,000-row requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario")
    args = parser.parse_args()
    for key in ("BENTOML_DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        os.environ.setdefault(key, "true")

    import json

    from serving import store
    from serving.config import ServingConfig

    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="winback-bench-")
        home = Path(tmp.name)
        started = time.perf_counter()
        build_home(home, args.customers)
        print(f"built synthetic home in {time.perf_counter() - started:.0f} s: {home}")
    score_dir = ServingConfig(home=home).score_path
    as_of = store.latest_version(score_dir)
    ids = store.read_scores(score_dir, as_of)["customer_id"].astype(str).to_numpy()
    features = store.read_features(score_dir, as_of)
    rows = features.iloc[:1000].reset_index(drop=True)
    plain = rows.astype(object).where(rows.notna(), None)
    columns_body = json.dumps({"columns": plain.to_dict("list")})
    rows_body = json.dumps({"rows": plain.to_dict("records")})
    rng = np.random.default_rng(0)
    id_bodies = [
        json.dumps({"customer_ids": [str(c)], "explain": False})
        for c in rng.choice(ids, args.requests)
    ]
    explain_bodies = [
        json.dumps({"customer_ids": [str(c)], "explain": True})
        for c in rng.choice(ids, max(args.requests // 10, 50))
    ]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home / f"bench-serve-{port}.log"
    process = start_server(home, port, log_path)
    try:
        wait_ready(url, process, 240)
        asyncio.run(load(url, "/scores", id_bodies[:50], concurrency=2, time_limit_s=30))  # warm up
        results = {
            "by-id lookup": asyncio.run(
                load(
                    url,
                    "/scores",
                    id_bodies,
                    concurrency=args.concurrency,
                    time_limit_s=args.time_limit,
                )
            ),
            "by-id + reasons on demand": asyncio.run(
                load(
                    url,
                    "/scores",
                    explain_bodies,
                    concurrency=args.concurrency,
                    time_limit_s=args.time_limit,
                )
            ),
            "1,000 rows (columns)": asyncio.run(
                load(
                    url,
                    "/score_rows",
                    [columns_body] * args.row_requests,
                    concurrency=max(args.concurrency // 2, 1),
                    time_limit_s=args.time_limit,
                )
            ),
            "1,000 rows (rows)": asyncio.run(
                load(
                    url,
                    "/score_rows",
                    [rows_body] * args.row_requests,
                    concurrency=max(args.concurrency // 2, 1),
                    time_limit_s=args.time_limit,
                )
            ),
        }
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    baseline = in_process_baseline(home, rows, repeats=50)

    print(
        f"\nwinback service on {url}, score table {as_of} ({len(ids):,} customers), "
        f"concurrency {args.concurrency}"
    )
    print(f"{'scenario':<28}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'errors':>8}")
    for name, r in results.items():
        print(
            f"{name:<28}{r['requests']:>9}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['req_per_s']:>9.0f}{r['errors']:>8}  {r['statuses']}"
        )
    print(
        f"in-process predict, same 1,000 rows: 3 models p50 {baseline['three_p50_ms']:.1f} / "
        f"p99 {baseline['three_p99_ms']:.1f} ms; churn model alone p50 "
        f"{baseline['one_p50_ms']:.1f} / p99 {baseline['one_p99_ms']:.1f} ms"
    )
    print("targets (2 cores): by-id p99 <= 10 ms, 1,000 rows p99 <= 50 ms, >= 500 req/s, 0 errors")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
