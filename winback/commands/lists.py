"""``winback lists ...`` and ``winback measure``: retention lists and campaign measurement.

``winback lists at-risk|winback|vip-potential|near-vip`` builds a list from the
newest (or ``--as-of``) score table, holds out a random control group, saves it
under a new list id (Parquet + CSV + manifest, logged to MLflow) and prints or
writes it. ``winback measure LIST_ID --as-of DATE`` compares the list's treated
and control customers on what they did after the list date.

Plain Typer functions; ``winback/cli.py`` mounts ``app`` as ``winback lists`` and
:func:`measure` as ``winback measure``. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import typer

from features.publish import publish_file, publish_text
from serving.config import ServingConfig

DEFAULT_LIST_DIR = Path("winback_output/lists")
_DEFAULT = ServingConfig()

app = typer.Typer(
    help="Retention and win-back lists with reasons, actions and control groups.",
    no_args_is_help=True,
)


def _score_version(score_dir: Path, as_of: str | None) -> dt.date:
    from serving.scoring import store

    if as_of is not None:
        try:
            date = dt.date.fromisoformat(as_of)
        except ValueError:
            raise typer.BadParameter(f"--as-of {as_of!r} is not a date: use YYYY-MM-DD") from None
        if date not in store.score_versions(score_dir):
            raise typer.BadParameter(
                f"no score table of {date} in {score_dir}: run `winback score --as-of {date}` "
                f"(available: {[str(d) for d in store.score_versions(score_dir)]})"
            )
        return date
    latest = store.latest_version(score_dir)
    if latest is None:
        typer.secho(
            f"no score table in {score_dir}: run `winback score --as-of YYYY-MM-DD` first",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    return latest


@dataclass(frozen=True)
class ListRequest:
    """What one ``winback lists`` command asked for.

    ``mlflow_log`` is ``none``, ``summary`` (manifest and aggregates) or ``rows``
    (the rows too, ``--log-rows``).
    """

    kind: str
    score_dir: Path
    list_dir: Path
    as_of: str | None = None
    top: int | None = None
    budget: float | None = None
    contact_cost: float | None = None
    profit_optimal: bool = False
    control_share: float | None = None
    uplift_model: str | None = None
    output_format: str = "csv"
    out: Path | None = None
    mlflow_log: str = "summary"
    config_file: Path | None = None


def run_list(request: ListRequest) -> None:
    """Build, save and emit one list (what every ``winback lists`` command runs).

    Rules, control share and contact cost come from ``[lists]`` of the config
    file (``--config``, else ``./winback.toml``, else defaults), tiers and
    horizon from ``[train]``; ``--control-share`` and ``--contact-cost`` override.
    """
    from serving.lists.store import ListOptions, create_list_from_score_table

    if request.output_format not in ("csv", "json", "parquet"):
        raise typer.BadParameter(f"--format {request.output_format!r}: use csv, json or parquet")
    if request.output_format == "parquet" and request.out is None:
        raise typer.BadParameter("--format parquet needs --out FILE")
    config, targeting = _list_settings(request)
    date = _score_version(request.score_dir, request.as_of)
    try:
        frame, manifest = create_list_from_score_table(
            request.kind,
            request.score_dir,
            request.list_dir,
            date,
            ListOptions(
                config=config,
                targeting=targeting,
                log_to_mlflow=request.mlflow_log != "none",
                log_rows=request.mlflow_log == "rows",
            ),
            uplift_model=request.uplift_model,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    _say_what_was_made(manifest, date, request.list_dir)
    _emit(frame, manifest, request)


def _list_settings(request: ListRequest):
    """The list rules and the targeting, from the config file and the options."""
    import dataclasses

    from features.config_file import ConfigError
    from serving.lists.targeting import TargetingConfig
    from winback.config import list_config, load_config

    try:
        effective = load_config(request.config_file)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    settings = effective.lists
    contact_cost = request.contact_cost
    try:
        targeting = TargetingConfig(
            top=request.top,
            budget=request.budget,
            contact_cost=settings.contact_cost if contact_cost is None else contact_cost,
            profit_optimal=request.profit_optimal,
        )
        config = list_config(effective)
        if request.control_share is not None:
            config = dataclasses.replace(config, control_share=request.control_share)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return config, targeting


def _say_what_was_made(manifest, date, list_dir: Path) -> None:
    """The list's id, size, groups and notes, on stderr (stdout carries the list)."""
    typer.echo(
        f"list {manifest.list_id}: {manifest.rows:,} customers "
        f"({manifest.treatment_rows:,} treatment, {manifest.control_rows:,} control) "
        f"from scores as of {date} -> {list_dir / manifest.list_id}",
        err=True,
    )
    if manifest.suppressed_rows:
        left_out = ", ".join(f"{n:,} {reason}" for reason, n in manifest.suppressed_rows.items())
        typer.echo(f"left out as do-not-contact: {left_out}", err=True)
    if "uplift" in manifest.model_versions:
        typer.echo(f"ranked by uplift from {manifest.model_versions['uplift']}", err=True)
    elif manifest.parameters.get("uplift_note"):
        typer.echo(manifest.parameters["uplift_note"], err=True)


def _emit(frame, manifest, request: ListRequest) -> None:
    """Write the list to ``--out`` (noted for ``winback forget``) or stdout in the chosen format."""
    from features.erasure import ErasureRegistry
    from serving.lists.export import list_csv, list_records

    if request.out is not None:
        ErasureRegistry.default().record_written([request.out])
    if request.output_format == "parquet":
        publish_file(request.out, lambda p: frame.to_parquet(p, index=False))
        return
    text = (
        list_csv(frame)
        if request.output_format == "csv"
        else json.dumps(
            {"list_id": manifest.list_id, "rows": list_records(frame)}, default=str, indent=1
        )
    )
    if request.out is None:
        typer.echo(text)
    else:
        publish_text(request.out, text)


def _command(kind: str, summary: str):
    def command(
        top: int | None = typer.Option(None, "--top", help="Keep the best N customers."),
        budget: float | None = typer.Option(
            None, "--budget", help="Money for contacts (needs --contact-cost)."
        ),
        contact_cost: float | None = typer.Option(
            None, "--contact-cost", help="Cost of one contact (default: [lists] contact_cost)."
        ),
        profit_optimal: bool = typer.Option(
            False,
            "--profit-optimal",
            help="Contact while expected incremental margin exceeds the contact cost.",
        ),
        control_share: float | None = typer.Option(
            None,
            "--control-share",
            help="Share held out as a random control group (default: [lists] control_share).",
        ),
        output_format: str = typer.Option("csv", "--format", help="csv, json or parquet."),
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
        as_of: str | None = typer.Option(
            None, "--as-of", help="Score table date (YYYY-MM-DD); default: the newest."
        ),
        score_dir: Path = typer.Option(_DEFAULT.score_dir, "--score-dir"),
        list_dir: Path = typer.Option(DEFAULT_LIST_DIR, "--list-dir", help="Where lists go."),
        uplift_model: str | None = typer.Option(
            None,
            "--uplift-model",
            help="Uplift model for the winback list (file, runs:/<run_id> or "
            "models:/winback-uplift/<version>); default: WINBACK_UPLIFT_MODEL, else the "
            "winback-uplift champion.",
        ),
        mlflow: bool = typer.Option(
            True,
            "--mlflow/--no-mlflow",
            help="Log the list's manifest and aggregates as a run of 'winback-lists'.",
        ),
        log_rows: bool = typer.Option(
            False, "--log-rows", help="Also log the rows (ids, scores, reasons) to MLflow."
        ),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="Config file (default: ./winback.toml if present)."
        ),
    ) -> None:
        run_list(
            ListRequest(
                kind,
                score_dir=score_dir,
                list_dir=list_dir,
                as_of=as_of,
                top=top,
                budget=budget,
                contact_cost=contact_cost,
                profit_optimal=profit_optimal,
                control_share=control_share,
                uplift_model=uplift_model,
                output_format=output_format,
                out=out,
                mlflow_log=("rows" if log_rows else "summary") if mlflow else "none",
                config_file=config,
            )
        )

    command.__doc__ = summary
    command.__name__ = kind.replace("-", "_")
    return command


app.command("at-risk")(
    _command("at-risk", "Active customers ranked by value at risk (churn risk x value).")
)
app.command("winback")(
    _command(
        "winback",
        "Lapsed customers ranked by expected incremental margin (uplift x value when an "
        "uplift model is given).",
    )
)
app.command("vip-potential")(
    _command("vip-potential", "Active non-VIPs most likely to become VIP.")
)
app.command("near-vip")(
    _command("near-vip", "Customers just under the next tier, with the margin that reaches it.")
)


def measure(
    list_id: str = typer.Argument(..., help="The list id printed when the list was made."),
    as_of: str = typer.Option(..., "--as-of", help="Measure up to this date (YYYY-MM-DD)."),
    data: Path | None = typer.Option(
        None, "--data", help="Shop data (file, folder or DuckDB); default: the demo simulated shop."
    ),
    mapping: str | None = typer.Option(
        None, "--mapping", help="Column mapping: a built-in name (online-retail) or a TOML file."
    ),
    list_dir: Path = typer.Option(DEFAULT_LIST_DIR, "--list-dir"),
    output_format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Treated vs control of a saved list: rates, revenue and margin per customer, with 95% CIs."""
    from serving.lists.store import list_folder, read_list
    from serving.measurement.campaign import measure_list, plot_measurement

    try:
        frame, manifest = read_list(list_dir, list_id)
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    if data is None:
        from features.simulation import SimulationConfig, simulate_shop

        typer.echo("no --data given: measuring on the demo's simulated shop", err=True)
        tables = simulate_shop(SimulationConfig()).tables
    else:
        from features.inputs.sources import load_shop

        tables = load_shop(data, mapping=mapping).tables
    try:
        report = measure_list(
            tables,
            frame,
            list_id=manifest.list_id,
            kind=manifest.kind,
            list_date=manifest.list_date,
            as_of=as_of,
        )
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    folder = list_folder(list_dir, manifest.list_id)
    stem = f"measurement_{report.as_of.isoformat()}"
    publish_text(folder / f"{stem}.json", json.dumps(report.to_dict(), indent=2))
    figure = plot_measurement(report.groups, title=f"{manifest.list_id} as of {report.as_of}")
    publish_file(folder / f"{stem}.png", lambda p: figure.savefig(p, dpi=110, format="png"))
    if output_format == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(
        f"{manifest.list_id} ({manifest.kind}), list date {manifest.list_date}, "
        f"measured to {report.as_of}"
    )
    for row in report.comparison.itertuples():
        scale, unit = (100.0, "%") if row.kind == "rate" else (1.0, "")
        typer.echo(
            f"  {row.metric:<22} treatment {row.treatment * scale:9.2f}{unit}  "
            f"control {row.control * scale:9.2f}{unit}  difference "
            f"{row.difference * scale:+8.2f}{unit} [{row.ci_low * scale:+.2f}, "
            f"{row.ci_high * scale:+.2f}]  (n = {row.n_treatment:,} / {row.n_control:,})"
        )
    typer.echo(f"plot: {folder / (stem + '.png')}")
