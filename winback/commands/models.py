"""``winback models list|promote|rollback``: look at and move the registered champions.

``winback/cli.py`` mounts :data:`app` as ``winback models``. MLflow
is imported inside the commands (it takes seconds), so ``winback --help`` stays
fast. Every command reads the same store as ``winback train``: ``./mlruns`` of
the working directory, ``MLFLOW_TRACKING_URI``, ``--tracking-uri`` or the
``[tracking]`` table of a training config file, in increasing priority.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="List registered models, promote a version to champion, roll back.",
    no_args_is_help=True,
)

#: Metrics shown by ``winback models list`` (those a version has).
LIST_METRICS = (
    "roc_auc", "pr_auc", "log_loss", "brier", "ece", "normalized_gini", "top_decile_capture",
    "qini_test",
)  # fmt: skip

TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: sqlite:///./mlruns/mlflow.db or MLFLOW_TRACKING_URI).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Training config TOML whose [tracking] settings to use."),
]


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=max(console.width, 140))
    return console


def _fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr and return the exit (code 2) to raise."""
    _console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _connect(tracking_uri: str | None, config: Path | None) -> str:
    """Configure MLflow from the options (then the config file, then defaults); return the URI."""
    from training.tracking.runs import TrackingConfig, configure_tracking

    settings: dict[str, str] = {}
    if config is not None:
        from features.config_file import ConfigError
        from training.config import load_train_config

        try:
            train_config = load_train_config(config)
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        tracking = train_config.tracking
        for key in ("root", "tracking_uri", "registry_uri", "artifact_root"):
            value = getattr(tracking, key, None)
            if value:
                settings[key] = value
    if tracking_uri:
        settings["tracking_uri"] = tracking_uri
    tracking_config = TrackingConfig(**settings)
    uri = tracking_config.resolved_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        # a read-and-move command should not create an empty store in a random folder
        raise _fail(
            f"no MLflow store at {uri}; run this from the folder where `winback train` ran "
            "(it holds mlruns/), or pass --tracking-uri"
        )
    return configure_tracking(tracking_config)


def _check_target(target: str) -> str:
    from training.tracking.model_registry import REGISTERED_KINDS

    if target not in REGISTERED_KINDS:
        raise _fail(f"unknown target {target!r}; choose one of {', '.join(REGISTERED_KINDS)}")
    return target


def models_table(rows, uri: str) -> Table:
    """A rich table with one row per registered version (newest first per target)."""
    table = Table(title=f"Registered models in {uri}", title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("version", justify="right")
    table.add_column("role", no_wrap=True)
    table.add_column("test cutoff", no_wrap=True)
    shown = [m for m in LIST_METRICS if any(m in r.metrics for r in rows)]
    for metric in shown:
        table.add_column(metric, justify="right")
    table.add_column("registered", no_wrap=True)
    table.add_column("gate reason")
    for row in rows:
        role = f"[bold green]{row.role}[/]" if row.is_champion else row.role
        if getattr(row, "loses_to", ""):
            role = f"[red]{row.role} (loses_to={row.loses_to})[/]"
        table.add_row(
            row.name,
            row.version,
            role,
            row.test_cutoff or "-",
            *(f"{row.metrics[m]:.4f}" if m in row.metrics else "-" for m in shown),
            row.created_at.replace("T", " ").removesuffix("+00:00"),
            row.gate_reason or "-",
        )
    return table


@app.command("list")
def list_command(
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="Only this target (churn, vip, reactivation, value, uplift)."
        ),
    ] = None,
    tracking_uri: TrackingUriOption = None,
    config: ConfigOption = None,
) -> None:
    """Show every registered version: role (champion/challenger), test cutoff, metrics, reason."""
    if target is not None:
        _check_target(target)
    uri = _connect(tracking_uri, config)
    from training.tracking.model_list import list_models

    rows = list_models(target)
    console = _console()
    if not rows:
        which = f"winback-{target}" if target else "winback"
        console.print(
            f"No registered {which} models in {uri}. "
            f"Train one with `winback train --target {target or 'churn'}`."
        )
        return
    console.print(models_table(rows, uri))


@app.command("promote")
def promote_command(
    target: Annotated[str, typer.Argument(help="churn, vip, reactivation, value or uplift.")],
    version: Annotated[str, typer.Argument(help="Registered version number to make champion.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (recorded with your user name).")
    ] = "manual promotion",
    tracking_uri: TrackingUriOption = None,
    config: ConfigOption = None,
) -> None:
    """Make VERSION the champion of TARGET by hand, bypassing the gate (recorded)."""
    _check_target(target)
    if not version.isdigit():
        raise _fail(f"version {version!r} is not a version number; see `winback models list`")
    _connect(tracking_uri, config)
    from training.tracking.model_registry import RegistryError, champion, promote

    before = champion(target)
    try:
        promoted = promote(target, version, reason=reason)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    previous = f" (was version {before.version})" if before is not None else ""
    _console().print(
        f"[bold green]winback-{target} version {promoted.version} is now champion[/]{previous}.",
        highlight=False,
    )


@app.command("rollback")
def rollback_command(
    target: Annotated[str, typer.Argument(help="churn, vip, reactivation, value or uplift.")],
    tracking_uri: TrackingUriOption = None,
    config: ConfigOption = None,
) -> None:
    """Move TARGET's champion back to the version that held it before."""
    _check_target(target)
    _connect(tracking_uri, config)
    from training.tracking.model_registry import RegistryError, champion, rollback

    before = champion(target)
    try:
        restored = rollback(target)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    _console().print(
        f"[bold green]winback-{target} champion rolled back from version {before.version} "
        f"to version {restored.version}[/].",
        highlight=False,
    )
