"""Load test of the winback service on loopback: latency and throughput, with the in-process baseline.

Starts ``bentoml serve serving.api.service:WinbackService`` on a free 127.0.0.1 port,
then sends a fixed number of requests (bounded by a time limit) from
``--concurrency`` clients and prints p50/p99 latency, throughput and errors for

* a by-id lookup (one customer id per request),
* 1,000 posted feature rows (column-wise at 1 and at ``--row-concurrency``
  clients, row-wise, as an Arrow IPC stream, and column-wise for the churn
  model alone),

next to the in-process predict time of the same 1,000 rows (the models' own
``predict_proba`` and the service's path).

Every request is timed, slow or failed: a non-200 answer (a 503 included; real
clients retry it) counts as an error. The client runs on the same cores as the
server, so it is kept light: ``--client threads`` (default) is one
``http.client`` keep-alive connection per thread; ``--client httpx`` is the
heavier async httpx client the first version used. The load average is printed
with every scenario, because on a shared machine it moves the figures a lot.

By default it builds a synthetic working directory in a temporary folder: three
champion models (the released feature sets, 300 trees) in a fresh MLflow
registry and a score table of ``--customers`` customers. ``--home DIR`` uses an
existing one instead (after ``winback train`` and ``winback score``).

Run: ``uv run --frozen python benchmarks/serving_benchmark.py [--requests 2000]``.
Figures depend on the machine's load: the script prints ``uptime`` with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from serving_clients import API_KEY, run_scenario
from serving_scale import print_memory, write_synthetic_version

ARROW_STREAM = "application/vnd.apache.arrow.stream"
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


def build_home(home: Path, customers: int, scored_up_to: int = 1_000_000, trees: int = 300) -> None:
    """Three champion models in ``home/mlruns`` and a score table in ``home/winback_output``.

    Up to ``scored_up_to`` customers the table is scored by the models from
    synthetic features; above, it is synthetic (``serving_scale.write_synthetic_version``).
    """
    import mlflow

    from features.feature_sets import CHURN_FEATURES_V1, REACTIVATION_FEATURES_V1, VIP_FEATURES_V1
    from serving.config import ServingConfig
    from serving.scoring.models import load_served_models
    from serving.scoring.store import write_score_table
    from serving.scoring.table import score_table
    from training.model.classifier import WinbackClassifier
    from training.tracking import model_io, model_registry, runs

    sets = {
        "churn": CHURN_FEATURES_V1,
        "vip": VIP_FEATURES_V1,
        "reactivation": REACTIVATION_FEATURES_V1,
    }
    config = runs.TrackingConfig(root=str(home / "mlruns"))
    for i, (target, fs) in enumerate(sets.items()):
        X = synthetic_features(fs, 20_000, i)
        driver = X[fs.names[0]].fillna(0).to_numpy()
        y = (np.random.default_rng(i).uniform(size=len(X)) < driver / driver.max()).astype(int)
        model = WinbackClassifier(fs, n_estimators=trees, early_stopping_rounds=1000, num_threads=2)
        model.fit(X, y, eval_set=(X.iloc[:5000], y[:5000]))
        with runs.start_training_run(target, config) as run:
            model_io.log_model(model, input_example=X)
            version = model_registry.register(
                run.info.run_id, target, test_cutoff=AS_OF, metrics={"roc_auc": 0.0}
            )
        model_registry.promote(target, version, reason="benchmark")
    mlflow.set_tracking_uri(None)
    serving_config = ServingConfig(home=home)
    models = load_served_models(serving_config, tracking_uri=config.resolved_tracking_uri())
    if customers > scored_up_to:
        write_synthetic_version(serving_config.score_path, models, AS_OF, customers)
        return
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


def synthetic_home_unless_given(
    home: Path | None,
    customers: int,
    prefix: str,
    scored_up_to: int = 1_000_000,
    trees: int = 300,
) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """``home``, or a synthetic one built in a temporary folder (returned to clean up later)."""
    if home is not None:
        return home, None
    from winback.terminal import log_file, third_party_to_file

    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    started = time.perf_counter()
    log = log_file(tmp.name, "serving_benchmark")  # MLflow's notices while the models are logged
    with third_party_to_file(log):
        build_home(Path(tmp.name), customers, scored_up_to, trees)
    print(f"built synthetic home in {time.perf_counter() - started:.0f} s: {tmp.name} (log: {log})")
    return Path(tmp.name), tmp


def ids_and_rows(score_dir: Path, as_of: dt.date) -> tuple[np.ndarray, pd.DataFrame]:
    """Every customer id of the version and its first 1,000 feature rows (read column-wise)."""
    import pyarrow.parquet as pq

    from serving.scoring import store

    path = store.scores_path(score_dir, as_of)
    ids = pq.read_table(path, columns=["customer_id"]).column(0).to_numpy(zero_copy_only=False)
    batch = next(pq.ParquetFile(path.parent / store.FEATURES_FILE).iter_batches(batch_size=1000))
    rows = batch.to_pandas().reset_index(drop=True)
    return ids.astype(str), rows.drop(columns=["customer_id"], errors="ignore")


def models_columns(home: Path, target: str) -> list[str]:
    """The feature columns of ``target``'s served model (read from the registry)."""
    from serving.config import ServingConfig
    from serving.scoring.models import load_served_models
    from training.tracking.runs import TrackingConfig

    uri = TrackingConfig(root=str(home / "mlruns")).resolved_tracking_uri()
    models = load_served_models(ServingConfig(home=home), targets=[target], tracking_uri=uri)
    return models[target].feature_set.names


def arrow_stream(frame: pd.DataFrame) -> bytes:
    """``frame`` as an Arrow IPC stream: the binary body ``/score_rows`` also takes."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(home: Path, port: int, log_path: Path, workers: int) -> subprocess.Popen:
    """``winback serve``'s command line and environment (``workers`` worker processes)."""
    from serving.config import ServingConfig
    from winback.commands.serving import serve_command, serving_environment

    config = ServingConfig(home=home, port=port, workers=workers)
    env = serving_environment(config, api_keys=API_KEY)
    env.pop("MLFLOW_TRACKING_URI", None)
    command = serve_command(config)
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


def in_process_baseline(home: Path, frame: pd.DataFrame, repeats: int) -> dict[str, float]:
    """In-process predict time of the same rows, in ms (p50/p99 over ``repeats``).

    ``three_*``/``one_*``: the models' own ``predict_proba`` (three models / churn
    alone); ``service_three_*``/``service_one_*``: the service's path
    (``serving.scoring.predict.predict_scores`` on its thread pool, one LightGBM thread
    per task), when the served code has it.
    """
    import inspect

    from serving.config import ServingConfig
    from serving.scoring.models import load_served_models
    from serving.scoring.predict import predict_scores
    from training.tracking.runs import TrackingConfig

    uri = TrackingConfig(root=str(home / "mlruns")).resolved_tracking_uri()
    models = load_served_models(ServingConfig(home=home), tracking_uri=uri)
    churn = models["churn"].model
    calls = {
        "three": lambda: [
            models[t].model.predict_proba(frame[models[t].feature_set.names])
            for t in models.targets
        ],
        "one": lambda: churn.predict_proba(frame[churn.feature_set_.names]),
    }
    if "pool" in inspect.signature(predict_scores).parameters:
        from concurrent.futures import ThreadPoolExecutor

        config = ServingConfig()
        pool = ThreadPoolExecutor(max_workers=config.max_parallel_predictions)
        options = {
            "num_threads": config.predict_threads,
            "pool": pool,
            "row_chunks": config.max_parallel_predictions,
        }
        calls["service_three"] = lambda: predict_scores(models, frame, **options)
        calls["service_one"] = lambda: predict_scores(models, frame, ["churn"], **options)
        try:
            from serving.api.schemas import ScoreRowsRequest
            from serving.scoring.rows import rows_to_columns
        except ImportError:  # served code before typed columns
            rows_to_columns = None
        if rows_to_columns is not None:
            import json

            plain = frame.astype(object).where(frame.notna(), None)
            body = json.dumps({"columns": plain.to_dict("list")}).encode()
            union = models.feature_set()

            def posted() -> object:
                request = ScoreRowsRequest.model_validate_json(body)
                columns = rows_to_columns(union, columns=request.columns)
                return predict_scores(models, columns, **options)

            calls["service_posted"] = posted
    out = {}
    for name, call in calls.items():
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        out[f"{name}_p50_ms"] = float(np.percentile(times, 50))
        out[f"{name}_p99_ms"] = float(np.percentile(times, 99))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="existing working dir (mlruns + scores)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000, help="by-id requests")
    parser.add_argument("--row-requests", type=int, default=200, help="1,000-row requests")
    parser.add_argument("--concurrency", type=int, default=8, help="clients for by-id")
    parser.add_argument(
        "--row-concurrency", type=int, default=4, help="clients for 1,000-row requests"
    )
    parser.add_argument("--client", choices=["threads", "httpx"], default="threads")
    parser.add_argument(
        "--workers", type=int, default=2, help="service worker processes (winback serve's default)"
    )
    parser.add_argument(
        "--scored-up-to",
        type=int,
        default=1_000_000,
        help="larger synthetic score tables are written directly, not scored (serving_scale)",
    )
    parser.add_argument(
        "--trees", type=int, default=300, help="trees of each synthetic champion model"
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario")
    args = parser.parse_args()
    for key in ("BENTOML_DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        os.environ.setdefault(key, "true")

    import json

    from serving.config import ServingConfig
    from serving.scoring import store

    home, tmp = synthetic_home_unless_given(
        args.home, args.customers, "winback-bench-", args.scored_up_to, args.trees
    )
    score_dir = ServingConfig(home=home).score_path
    as_of = store.latest_version(score_dir)
    ids, rows = ids_and_rows(score_dir, as_of)
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

    arrow_body = arrow_stream(rows)
    churn_columns = models_columns(home, "churn")
    churn_body = json.dumps(
        {"columns": {c: plain[c].tolist() for c in churn_columns}, "targets": ["churn"]}
    )

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home / f"bench-serve-{port}.log"
    started = time.perf_counter()
    process = start_server(home, port, log_path, args.workers)
    limit = args.time_limit
    memory = {}
    try:
        wait_ready(url, process, 240)
        startup_s = time.perf_counter() - started
        print(f"service ready in {startup_s:.1f} s ({args.workers} worker(s))")
        memory["start-up"] = print_memory(process.pid, "after start-up")
        run_scenario(args.client, url, "/scores", id_bodies[:50], concurrency=2, time_limit_s=30)
        run_scenario(
            args.client, url, "/score_rows", [columns_body] * 5, concurrency=1, time_limit_s=30
        )  # warm up
        rc = args.row_concurrency
        rr = args.row_requests
        by_id = run_scenario(
            args.client, url, "/scores", id_bodies, concurrency=args.concurrency, time_limit_s=limit
        )
        memory["by-id"] = print_memory(process.pid, "after by-id")
        results = {
            "by-id lookup": by_id,
            "by-id + reasons on demand": run_scenario(
                args.client,
                url,
                "/scores",
                explain_bodies,
                concurrency=args.concurrency,
                time_limit_s=limit,
            ),
            "1,000 rows (columns)": run_scenario(
                args.client,
                url,
                "/score_rows",
                [columns_body] * rr,
                concurrency=1,
                time_limit_s=limit,
            ),
            f"1,000 rows (columns) x{rc}": run_scenario(
                args.client,
                url,
                "/score_rows",
                [columns_body] * rr,
                concurrency=rc,
                time_limit_s=limit,
            ),
            f"1,000 rows (rows) x{rc}": run_scenario(
                args.client,
                url,
                "/score_rows",
                [rows_body] * rr,
                concurrency=rc,
                time_limit_s=limit,
            ),
            "1,000 rows (arrow)": run_scenario(
                args.client,
                url,
                "/score_rows",
                [arrow_body] * rr,
                concurrency=1,
                time_limit_s=limit,
                content_type=ARROW_STREAM,
            ),
            "1,000 rows churn only": run_scenario(
                args.client,
                url,
                "/score_rows",
                [churn_body] * rr,
                concurrency=1,
                time_limit_s=limit,
            ),
        }
        memory["end"] = print_memory(process.pid, "at the end")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    baseline = in_process_baseline(home, rows, repeats=50)
    baseline_load = os.getloadavg()[0]

    print(
        f"\nwinback service on {url}, score table {as_of} ({len(ids):,} customers), "
        f"client {args.client}, {args.workers} worker(s)"
    )
    print(
        f"{'scenario':<30}{'clients':>8}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'req/s':>8}{'errors':>7}{'load':>6}"
    )
    for name, r in results.items():
        print(
            f"{name:<30}{r['concurrency']:>8}{r['requests']:>9}{r['p50_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['req_per_s']:>8.0f}{r['errors']:>7}{r['load_1m']:>6.1f}"
            f"  {r['statuses']}"
        )
    print(
        f"in-process, same 1,000 rows, models' predict_proba: 3 models p50 "
        f"{baseline['three_p50_ms']:.1f} / p99 {baseline['three_p99_ms']:.1f} ms; churn alone "
        f"p50 {baseline['one_p50_ms']:.1f} / p99 {baseline['one_p99_ms']:.1f} ms "
        f"(load {baseline_load:.1f})"
    )
    if "service_three_p50_ms" in baseline:
        print(
            f"in-process, same 1,000 rows, service path (2-thread pool): 3 models p50 "
            f"{baseline['service_three_p50_ms']:.1f} / p99 {baseline['service_three_p99_ms']:.1f}"
            f" ms; churn alone p50 {baseline['service_one_p50_ms']:.1f} / p99 "
            f"{baseline['service_one_p99_ms']:.1f} ms (load {baseline_load:.1f})"
        )
    if "service_posted_p50_ms" in baseline:
        print(
            f"in-process, same 1,000 rows from the JSON body (parse, type, 3 models): p50 "
            f"{baseline['service_posted_p50_ms']:.1f} / p99 {baseline['service_posted_p99_ms']:.1f}"
            f" ms (load {baseline_load:.1f})"
        )
    print(
        f"service start-up {startup_s:.1f} s; largest worker (MiB): "
        + "; ".join(
            f"{when} VmRSS {m.get('VmRSS', 0)} / VmHWM {m.get('VmHWM', 0)} "
            f"(RssAnon {m.get('RssAnon', 0)}, RssFile {m.get('RssFile', 0)}, Pss {m.get('Pss', 0)})"
            for when, m in memory.items()
        )
    )
    print("targets (2 cores): by-id p99 <= 10 ms, 1,000 rows p99 <= 50 ms, >= 500 req/s, 0 errors")
    print("10M customers: <= 1 GiB RSS per worker, by-id p99 <= 10 ms, >= 1,000 req/s at 4 clients")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
