"""``winback features build`` and ``winback features table``: features and training tables to Parquet.

``winback/cli.py`` mounts :data:`app` as ``winback features``. Both
commands load a shop with ``features.inputs.sources.load_shop`` (file, folder or
database, optional column mapping), show progress on stderr, write Parquet
atomically (a temp file in the same folder, then a rename) and print a summary.
Heavy imports happen inside the commands so ``winback --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.publish import publish_file

app = typer.Typer(
    help="Point-in-time features and training tables (features + labels) to Parquet.",
    no_args_is_help=True,
)

DataOption = Annotated[
    Path,
    typer.Option("--data", help="Shop data: CSV/Parquet file, folder of tables, DuckDB/SQLite."),
]
MappingOption = Annotated[
    str | None,
    typer.Option("--mapping", help="Built-in column mapping (online-retail) or a TOML file."),
]
OutOption = Annotated[Path, typer.Option("--out", help="Parquet file to write.")]
FeatureSetOption = Annotated[
    str | None,
    typer.Option(
        "--feature-set",
        help="A released feature set, e.g. churn_features_v1; default: every registered feature.",
    ),
]


EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="duckdb (one machine, default) or spark (the same SQL on a Spark session).",
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        envvar="WINBACK_SPARK_MASTER",
        help="Spark master for --engine spark (default local[2]; e.g. spark://host:7077, yarn).",
    ),
]


def check_engine(engine: str) -> str:
    """``--engine`` in lower case, or a clear error naming the choices."""
    chosen = engine.lower()
    if chosen not in ("duckdb", "spark"):
        raise typer.BadParameter(f"{engine!r}: choose duckdb or spark", param_hint="--engine")
    return chosen


def spark_connection(data: Path, mapping: str | None, master: str | None, err: Console):
    """A ``SparkConnection`` with the shop's tables registered.

    A folder of canonical Parquet tables (``transactions.parquet`` or
    ``transactions/*.parquet``) without a mapping is read by Spark in place;
    anything else is loaded and validated as for DuckDB, then handed to Spark.
    """
    from features.engines.spark_engine import SparkConfig, SparkConnection, spark_session

    try:
        connection = SparkConnection(spark_session(SparkConfig.from_env(master)))
    except RuntimeError as exc:  # no PySpark or no Java: the message says what to install
        raise _fail(err, exc) from exc
    canonical = (data / "transactions.parquet").is_file() or (data / "transactions").is_dir()
    if data.is_dir() and canonical and mapping is None:
        connection.register_parquet(data)
    else:
        connection.register_shop(_load(data, mapping, err))
    return connection


def resolve_feature_set(name: str | None):
    """The released feature set called ``name`` (``None`` for every registered feature)."""
    if name is None:
        return None
    from features.feature_sets import get_feature_set

    try:
        return get_feature_set(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--feature-set") from exc


def parse_cutoffs(spec: str) -> dict[str, object]:
    """``--cutoffs`` as keyword arguments: ``every:30``, ``count:12``, both, or dates.

    ``"every:30,count:12"`` -> ``{"every_days": 30, "count": 12}``;
    ``"2024-01-31,2024-02-29"`` -> ``{"dates": [date(2024, 1, 31), date(2024, 2, 29)]}``.
    """
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise typer.BadParameter("--cutoffs is empty: give every:30, count:12 or dates")
    if all(":" in p for p in parts):
        out: dict[str, object] = {}
        keys = {"every": "every_days", "count": "count"}
        for part in parts:
            key, _, value = part.partition(":")
            if key not in keys or not value.isdigit() or int(value) < 1:
                raise typer.BadParameter(
                    f"--cutoffs part {part!r}: expected every:N or count:N with N >= 1"
                )
            out[keys[key]] = int(value)
        return out
    try:
        return {"dates": sorted({dt.date.fromisoformat(p) for p in parts})}
    except ValueError as exc:
        raise typer.BadParameter(
            f"--cutoffs {spec!r}: expected every:N, count:N or dates like 2024-01-31 ({exc})"
        ) from exc


def write_parquet_atomic(frame, out: Path) -> None:
    """Write ``frame`` to ``out`` via a temp file in the same folder and a rename.

    The file holds customer rows, so it is noted for ``winback forget``
    (``features.erasure.ErasureRegistry.record_written``).
    """
    from features.erasure import ErasureRegistry

    ErasureRegistry.default().record_written([out])
    publish_file(out, lambda p: frame.to_parquet(p, index=False))


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _load(path: Path, mapping: str | None, err: Console):
    """The shop's contract tables, with a note when rows were quarantined."""
    from features.inputs.sources import load_shop

    validation = load_shop(path, mapping)
    summary = validation.summary()
    quarantined = int(summary.drop_duplicates("table")["rows_quarantined"].sum())
    if quarantined:
        err.print(
            f"[yellow]{quarantined:,} row(s) quarantined[/]; "
            f"see them with `winback data validate {path}`"
        )
    _note_margin(validation.tables, err)
    return validation.tables


def _note_margin(tables, err: Console) -> None:
    """A note when the transactions have no margin (tiers and future_margin then use revenue)."""
    if "margin_amount" not in tables.transactions.columns:
        err.print(
            "[yellow]no margin_amount column[/]: tiers and future_margin use revenue "
            "(amount) instead; map a margin column to rank customers by margin"
        )


def _load_duckdb(path: Path, mapping: str | None, err: Console):
    """``(tables, connection)``: a canonical folder read in place (its outline and a
    connection, ``winback.shop.in_place_connection``), else the loaded tables and None."""
    from features.engines.duckdb_engine import outline
    from winback.shop import in_place_connection

    connection = in_place_connection(path, mapping)
    if connection is None:
        return _load(path, mapping, err), None
    tables = outline(connection, source=str(path))
    _note_margin(tables, err)
    return tables, connection


def _summary(title: str, rows: dict[str, str]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def _fail(err: Console, exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(code=1)


def pd_date(day: dt.date):
    """A cutoff as the ``datetime64[s]`` midnight features and labels use."""
    import pandas as pd

    return pd.Timestamp(day).as_unit("s")


def with_custom_features(command):
    """``command`` run with the ``[[features.custom]]`` entries of its config in force.

    The config is the command's ``--config`` file when it has one, else
    ``./winback.toml``; an invalid entry stops the command (exit 2) naming its key.
    ``winback/cli.py`` wraps every command that builds features for a new model.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        from features.custom.active import use_custom_features
        from winback.commands.features_check import configured_custom_features

        custom = configured_custom_features(kwargs.get("config"), Console(stderr=True))
        with use_custom_features(custom):
            return command(*args, **kwargs)

    return run


@app.command("build")
@with_custom_features
def build(
    data: DataOption,
    out: OutOption,
    mapping: MappingOption = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Cutoff date (UTC), e.g. 2024-01-31; default: last data date."
        ),
    ] = None,
    feature_set: FeatureSetOption = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = None,
) -> None:
    """Features of every known customer as of a date, with status and tier, to Parquet."""
    from features.engines.duckdb_engine import outline
    from features.inputs.contracts import ContractError
    from features.labels import STATUS_COLUMNS
    from features.training_table import build_scoring_frame, data_dates

    console, err = Console(), Console(stderr=True)
    chosen = resolve_feature_set(feature_set)
    engine = check_engine(engine)
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        raise typer.BadParameter(
            f"{as_of!r} is not a date like 2024-01-31", param_hint="--as-of"
        ) from exc
    try:
        with _progress(err) as progress:
            step = progress.add_task(f"Loading {data}", total=None)
            if engine == "spark":
                connection = spark_connection(data, mapping, spark_master, err)
                tables, on = outline(connection, source="spark"), " on Spark"
            else:
                (tables, connection), on = _load_duckdb(data, mapping, err), ""
            cutoff = day if day is not None else data_dates(tables)[1]
            progress.update(step, description=f"Building features as of {cutoff}{on}")
            frame = build_scoring_frame(tables, cutoff, chosen, con=connection)
            progress.update(step, description=f"Writing {out}")
            frame = frame.reset_index()
            frame.insert(0, "cutoff", pd_date(cutoff))
            write_parquet_atomic(frame, out)
            progress.update(step, description="Done")
    except (ContractError, ValueError, OSError) as exc:
        raise _fail(err, exc) from exc
    console.print(
        _summary(
            f"Features as of {cutoff} -> {out}",
            {
                "rows": f"{len(frame):,}",
                "customers": f"{frame['customer_id'].nunique():,}",
                "feature columns": f"{frame.shape[1] - len(STATUS_COLUMNS) - 2}",
                "active": f"{frame['is_active'].mean():.1%}",
                "lapsed": f"{frame['is_lapsed'].mean():.1%}",
                "VIP": f"{frame['is_vip'].mean():.1%}",
            },
        )
    )


@app.command("table")
@with_custom_features
def table(
    data: DataOption,
    out: OutOption,
    target: Annotated[str, typer.Option("--target", help="churn, vip or reactivation.")] = "churn",
    cutoffs: Annotated[
        str,
        typer.Option(
            "--cutoffs",
            help="every:30 (all observed cutoffs 30 days apart), count:12, both "
            "(every:30,count:12), or dates 2024-01-31,2024-02-29.",
        ),
    ] = "every:30",
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, help="Label horizon after each cutoff.")
    ] = 90,
    mapping: MappingOption = None,
    feature_set: FeatureSetOption = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = None,
) -> None:
    """A training table for one target over many cutoffs (features + label) to Parquet."""
    from features.engines.duckdb_engine import outline
    from features.inputs.contracts import ContractError
    from features.labels import LabelConfig
    from features.training_table import TARGETS, build_training_table, monthly_cutoffs

    console, err = Console(), Console(stderr=True)
    if target not in TARGETS:
        raise typer.BadParameter(f"--target {target!r}: choose one of {sorted(TARGETS)}")
    spec = parse_cutoffs(cutoffs)
    chosen = resolve_feature_set(feature_set)
    engine = check_engine(engine)
    try:
        label_config = LabelConfig(horizon_days=horizon_days)
        with _progress(err) as progress:
            step = progress.add_task(f"Loading {data}", total=None)
            if engine == "spark":
                connection = spark_connection(data, mapping, spark_master, err)
                tables = outline(connection, source="spark")
            else:
                tables, connection = _load_duckdb(data, mapping, err)
            if "dates" in spec:
                dates = spec["dates"]
            else:
                dates = monthly_cutoffs(tables, horizon_days, **spec)
            progress.update(
                step,
                description=f"Building {target} table over {len(dates)} cutoff(s) "
                f"({dates[0]} to {dates[-1]})",
            )
            frame = build_training_table(
                tables,
                target,
                dates,
                feature_set=chosen,
                label_config=label_config,
                con=connection,
            )
            label = frame.attrs["label"]
            progress.update(step, description=f"Writing {out}")
            flat = frame.reset_index()
            write_parquet_atomic(flat, out)
            progress.update(step, description="Done")
    except (ContractError, ValueError, OSError) as exc:
        raise _fail(err, exc) from exc
    console.print(
        _summary(
            f"{target} training table -> {out}",
            {
                "rows": f"{len(flat):,}",
                "customers": f"{flat['customer_id'].nunique():,}",
                "cutoffs": f"{len(dates)} ({dates[0]} to {dates[-1]})",
                "horizon": f"{horizon_days} days",
                f"{label} rate": f"{frame[label].mean():.1%}" if len(frame) else "n/a",
            },
        )
    )
