"""``winback score`` and ``winback serve``: batch scoring and the HTTP service.

Plain Typer command functions; ``winback/cli.py`` mounts them. Heavy imports
(MLflow, BentoML, LightGBM) happen inside the commands.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from serving.config import (
    ENV_API_KEY_FILE,
    ENV_API_KEYS,
    ENV_EXPLAIN_ON_REQUEST,
    ENV_HOME,
    ENV_MODEL_VERSIONS,
    ENV_SCORE_DIR,
    ServingConfig,
    format_model_versions,
    parse_model_versions,
)

_DEFAULT = ServingConfig()
#: Exit code of `winback score` when another run holds the score folder's lock.
EXIT_LOCKED = 3


def _load_tables(data: Path | None, mapping: str | None):
    """The shop's validated tables: ``--data``, else winback.toml's [data], else its simulated shop."""
    from winback.shop import load_tables

    if data is None:
        typer.echo("no --data given: scoring the shop of winback.toml ([data] or [simulation])")
    return load_tables(data, mapping)[0]


def _parse_date(value: str | None, tables) -> dt.date:
    if value is None:
        return tables.last_event_at().date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--as-of {value!r} is not a date: use YYYY-MM-DD") from None


def score(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Score as of this date (YYYY-MM-DD); default: last transaction day."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Shop data (file, folder or DuckDB); default: the demo simulated shop."
    ),
    mapping: str | None = typer.Option(
        None, "--mapping", help="Column mapping: a built-in name (online-retail) or a TOML file."
    ),
    score_dir: Path = typer.Option(
        _DEFAULT.score_dir, "--score-dir", help="Where the versioned score tables go."
    ),
    explain_top: int = typer.Option(
        _DEFAULT.explain_top,
        "--explain-top",
        help="Customers per target given reasons (highest scores first; ~2 ms each).",
    ),
    horizon_days: int = typer.Option(_DEFAULT.horizon_days, "--horizon-days"),
    model_versions: str | None = typer.Option(
        None, "--model-versions", help="Pin registry versions, e.g. 'churn=3,vip=2'."
    ),
    engine: str = typer.Option(
        "duckdb",
        "--engine",
        help="duckdb (in process, default) or spark (features and model scoring on Spark).",
    ),
    spark_master: str | None = typer.Option(
        None,
        "--spark-master",
        envvar="WINBACK_SPARK_MASTER",
        help="Spark master for --engine spark (default local[2]).",
    ),
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0,
        help="Seconds to wait for another run writing the same score folder (default: exit 3).",
    ),
) -> None:
    """Score every customer as of a date with the champion models and write the score table.

    One run per score folder at a time: a second one exits with code 3 (or
    waits up to ``--wait`` seconds). Each run is published as a new version
    folder by one rename, so a killed run leaves the previous version intact.
    """
    from features.publish import LockHeld
    from serving.scoring.store import score_lock

    if engine.lower() not in ("duckdb", "spark"):
        raise typer.BadParameter(f"{engine!r}: choose duckdb or spark", param_hint="--engine")
    try:
        config = ServingConfig(
            score_dir=score_dir,
            explain_top=explain_top,
            horizon_days=horizon_days,
            model_versions=parse_model_versions(model_versions or ""),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        with score_lock(score_dir, wait_seconds=wait):
            _score_locked(config, data, mapping, as_of, engine.lower(), spark_master)
    except LockHeld as exc:
        typer.secho(
            f"another `winback score` is writing {score_dir}: {exc}. Wait for it, or pass "
            f"--wait SECONDS",
            fg="red",
            err=True,
        )
        raise typer.Exit(EXIT_LOCKED) from None


def _score_locked(config, data, mapping, as_of, engine, spark_master) -> None:
    """Load the champions, score and write the store (the caller holds the score lock).

    The models load on a thread (MLflow's imports and registry reads: seconds of
    Python) while the feature query of a folder read in place runs (DuckDB, which
    releases the GIL); the other routes wait for them first.
    """
    import functools
    from concurrent.futures import ThreadPoolExecutor

    from serving.scoring.models import load_served_models
    from serving.scoring.table import score_customers
    from winback.shop import is_canonical_folder

    started = time.perf_counter()
    with ThreadPoolExecutor(1, thread_name_prefix="winback-models") as pool:
        load = functools.partial(pool.submit, load_served_models, config)
        if engine != "spark" and is_canonical_folder(data, mapping):
            version, date, models = _score_in_place(data, as_of, load, config)
        elif engine == "spark":
            models = _loaded(load())
            version, date = _score_on_spark(data, mapping, as_of, models, config, spark_master)
        else:
            models = _loaded(load())
            tables = _load_tables(data, mapping)
            date = _parse_date(as_of, tables)
            version = score_customers(tables, date, models, config)
    versions = ", ".join(f"{t} v{v}" for t, v in models.versions().items())
    typer.echo(
        f"scored {version.rows:,} customers as of {date} with {versions} "
        f"in {time.perf_counter() - started:.1f} s -> {version.folder}"
    )


def _loaded(loading):
    """The served models a thread loads; a missing one ends the command with its message."""
    from serving.scoring.models import ServingSetupError

    try:
        return loading.result()
    except ServingSetupError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


#: DuckDB's memory limit when scoring tables read in place. The feature query of a
#: million simulated customers (12M lines, 11M engagement events) stopped with
#: "Out of Memory" at 1 GB in most runs (a part of it does not spill). With money
#: summed in 8-byte integers it completes at 1280MB, keyed or not; the command then
#: peaks at 1.8-2.0 GiB keyed (2.2-2.4 GiB at 1536MB, with the models loaded first).
IN_PLACE_MEMORY_LIMIT = "1280MB"


def _score_in_place(data: Path, as_of: str | None, load, config):
    """Score a folder of canonical Parquet tables read in place by DuckDB (no pandas copy of the rows).

    ``load()`` starts loading the served models on a thread (their future): the
    scoring frame of every feature the tables give, with the customers' status
    and purchase summary (``features.training_table.scoring_frame_ahead``), is built
    while they load, and the models take their features from it. They start
    after ``outline``, whose small queries waited for the GIL the imports held
    (0.6 -> 1.9 s). Returns the version, the date and the models.
    """
    from features.engines.duckdb_engine import outline
    from features.training_table import scoring_frame_ahead
    from serving.scoring.table import score_customers
    from winback.shop import connect_folder

    # customers erased since the folder was written are left out of every view, so they
    # weigh in no other customer's shop-relative feature either
    con = connect_folder(data, memory_limit=IN_PLACE_MEMORY_LIMIT)
    loading = None
    try:
        tables = outline(con, source=str(data))
        date = _parse_date(as_of, tables)
        loading = load()
        # In a list handed over by pop(): score_customers then holds the only reference, and
        # the features no model reads (~8 MB each at a million customers) go with it.
        ahead = [scoring_frame_ahead(con, date, tables=tables, summary=True)]
    except BaseException:
        _loaded(loading or load())  # a missing model is reported first, as before
        raise
    models = _loaded(loading)
    version = score_customers(tables, date, models, config, con=con, ahead=ahead.pop())
    return version, date, models


def _score_on_spark(data, mapping, as_of, models, config, master):
    """``winback score --engine spark``: register the data on Spark, score there, write the store.

    A folder of canonical Parquet tables (no mapping) is read by Spark in place;
    anything else is loaded and validated as for DuckDB, then sent to Spark.
    """
    from features.engines.duckdb_engine import outline
    from features.engines.spark_engine import SparkConfig, SparkConnection, spark_session
    from serving.scoring.spark import score_customers_spark

    try:
        connection = SparkConnection(spark_session(SparkConfig.from_env(master)))
    except RuntimeError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    canonical = (
        data is not None
        and data.is_dir()
        and mapping is None
        and ((data / "transactions.parquet").is_file() or (data / "transactions").is_dir())
    )
    if canonical:
        connection.register_parquet(data)
        tables = outline(connection, source="spark")  # columns and date range, no values
        dnc = data / "suppressions.parquet"
        suppressions = _read_parquet(dnc) if dnc.is_file() else None
    else:
        tables = _load_tables(data, mapping)
        connection.register_shop(tables)
        suppressions = tables.suppressions
    date = _parse_date(as_of, tables)
    version = score_customers_spark(connection, date, models, config, suppressions=suppressions)
    return version, date


def _read_parquet(path: Path):
    import pandas as pd

    return pd.read_parquet(path)


#: BentoML's own settings as ``key=value`` pairs separated by spaces (how the worker count
#: reaches ``bentoml serve``).
BENTOML_CONFIG_OPTIONS = "BENTOML_CONFIG_OPTIONS"


def serving_environment(
    config: ServingConfig, *, api_keys: str | None = None, base: dict | None = None
) -> dict[str, str]:
    """The environment of a served process (what :meth:`ServingConfig.from_env` reads)."""
    env = dict(os.environ if base is None else base)
    for key in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "BENTOML_DO_NOT_TRACK"):
        env.setdefault(key, "true")
    env[ENV_HOME] = str(config.home.resolve())
    env[ENV_SCORE_DIR] = str(config.score_dir)
    env[ENV_EXPLAIN_ON_REQUEST] = "1" if config.explain_on_request else "0"
    if config.api_key_file is not None:
        env[ENV_API_KEY_FILE] = str(config.api_key_file.resolve())
    if api_keys:
        env[ENV_API_KEYS] = api_keys
    if config.model_versions:
        env[ENV_MODEL_VERSIONS] = format_model_versions(config.model_versions)
    options = env.get(BENTOML_CONFIG_OPTIONS, "").strip()
    env[BENTOML_CONFIG_OPTIONS] = f"{options} services.winback.workers={config.workers}".strip()
    return env


def serve_command(config: ServingConfig) -> list[str]:
    """The ``bentoml serve`` command line for ``config``."""
    bentoml = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    return [
        bentoml,
        "serve",
        "serving.api.service:WinbackService",
        "--host",
        config.host,
        "--port",
        str(config.port),
    ]


def run_forwarding_signals(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``command`` to its end, passing SIGTERM and SIGHUP on to it; its exit status.

    The status is the command's exit code, or 128 + N when signal N ended it
    (as a shell reports it).

    A supervisor (systemd, Docker, ``kill``) stops ``winback serve`` by signalling
    this process: without forwarding, it would exit and leave the BentoML server
    running and holding the port. SIGINT (Ctrl+C) already reaches the server
    from the terminal, so here it is ignored rather than sent twice (a second
    interrupt forces BentoML to quit without a graceful shutdown).
    """
    process = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def serve(
    host: str = typer.Option(_DEFAULT.host, "--host", help="Interface to listen on (loopback)."),
    port: int = typer.Option(_DEFAULT.port, "--port"),
    score_dir: Path = typer.Option(_DEFAULT.score_dir, "--score-dir"),
    api_key_file: Path | None = typer.Option(
        None, "--api-key-file", help=f"File with one API key per line (or set {ENV_API_KEYS})."
    ),
    model_versions: str | None = typer.Option(
        None, "--model-versions", help="Serve pinned versions, e.g. 'churn=3'."
    ),
    no_explain: bool = typer.Option(
        False, "--no-explain", help="Never compute reasons at request time."
    ),
    workers: int = typer.Option(
        _DEFAULT.workers,
        "--workers",
        help="Worker processes (one per core; each loads the models).",
    ),
) -> None:
    """Start the BentoML service (scores by id, scores of posted rows, models) on HOST:PORT."""
    try:
        config = ServingConfig(
            host=host,
            port=port,
            score_dir=score_dir,
            api_key_file=api_key_file,
            model_versions=parse_model_versions(model_versions or ""),
            explain_on_request=not no_explain,
            workers=workers,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from serving.api.auth import ApiKeysMissing, load_api_keys

    try:
        load_api_keys(config)
    except ApiKeysMissing as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    env = serving_environment(config)
    typer.echo(f"starting winback service on http://{host}:{port} (Ctrl+C stops it)")
    raise typer.Exit(run_forwarding_signals(serve_command(config), env=env))
