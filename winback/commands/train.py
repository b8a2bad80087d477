"""``winback train``: train, evaluate and gate one model from the command line.

Mounted by ``winback/cli.py`` as ``app.command("train")(train)``. Heavy imports
(LightGBM, MLflow) happen inside the command, so ``winback --help`` stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from features.targets import OTHER_TARGET_NAMES, TARGET_NAMES

TARGETS = (*TARGET_NAMES, *OTHER_TARGET_NAMES)

#: Short column headers so the comparison fits an 80-column terminal.
HEADERS = {
    "roc_auc": "AUC",
    "pr_auc": "PR-AUC",
    "log_loss": "logloss",
    "brier": "Brier",
    "ece": "ECE",
    "lift_at_10": "lift@10",
    "capture_at_10": "capt@10",
    "expected_maximum_profit": "EMP",
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def comparison_rich_table(result: Any):
    """A rich table of the model, baselines and oracle: means over the test origins."""
    from rich.table import Table

    comparison = result.comparison
    origins = ", ".join(result.origins) or result.split["test_cutoffs"][-1]
    table = Table(title=f"{result.target}: mean over test origins {origins}")
    table.add_column("scorer")
    for column in comparison.columns:
        table.add_column(HEADERS.get(column, column), justify="right")
    for name, row in comparison.iterrows():
        style = "bold" if name == "model" else ("dim" if name in ("oracle", "ceiling") else None)
        table.add_row(str(name), *(_fmt(v) for v in row.tolist()), style=style)
    return table


def deltas_rich_table(result: Any):
    """ROC-AUC model − baseline with its paired bootstrap 95% interval; the verdict as caption."""
    from rich.table import Table

    deltas = result.evaluation.deltas
    table = Table(
        title="ROC-AUC model − baseline (paired bootstrap 95% interval)",
        caption=f"verdict: {result.verdict}",
        caption_justify="left",
    )
    table.add_column("baseline")
    table.add_column("Δ AUC [95% CI]", justify="right")
    for name in deltas.index:
        table.add_row(str(name), _delta_cell(deltas, name))
    return table


def _delta_cell(deltas, name) -> str:
    """``+0.012 [+0.004, +0.020]``, red when the interval is below zero ("" for model/oracle)."""
    if name not in deltas.index:
        return ""
    row = deltas.loc[name]
    text = f"{row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
    if row["ci_high"] < 0:
        return f"[red]{text}[/red]"
    return f"[green]{text}[/green]" if row["ci_low"] > 0 else text


def gate_line(result: Any) -> str:
    """The registry outcome: green champion, red challenger or red "loses to" tag."""
    if result.model_version is None:
        return ""
    if result.gate_promoted and not result.loses_to:
        word = "[green]champion[/green]"
    elif result.gate_promoted:
        word = f"[red]champion (loses_to={','.join(result.loses_to)})[/red]"
    else:
        word = "[red]challenger[/red]"
    return f"winback-{result.target} version {result.model_version} is {word}: {result.gate_reason}"


def train(
    target: str = typer.Option(
        "churn",
        "--target",
        "-t",
        help="churn, vip, reactivation, uplift (the win-back uplift model, fitted on "
        "campaign_contacts and gated on held-out Qini), or value (each customer's margin over "
        "the next 365 days, gated on normalized Gini).",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Shop data: a file, folder or database (default: a simulated demo shop).",
    ),
    mapping: str | None = typer.Option(
        None, "--mapping", "-m", help="Column mapping: a built-in name or a TOML file."
    ),
    tune: int | None = typer.Option(
        None, "--tune", min=0, help="Optuna trials (default: the config's tune_trials, 0)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Training config TOML (defaults when omitted)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: the config's)."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show third-party warnings and logs on the terminal."
    ),
) -> None:
    """Train a model, compare it with the baselines and gate it into the registry."""
    from rich.console import Console

    from features.config_file import ConfigError
    from training.config import load_train_config

    console = Console()
    if target not in TARGETS:
        console.print(f"[red]--target {target!r} is not one of {', '.join(TARGETS)}[/red]")
        raise typer.Exit(2)
    from winback.config import find_config_file, load_sections

    try:
        path = find_config_file(config)
        if target in ("uplift", "value"):
            train_config = load_train_config(path)
        else:
            train_config = load_train_config(path, target=target, tune_trials=tune, seed=seed)
        sections = load_sections(path)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    from winback.terminal import log_file, third_party_to_file

    log_path = log_file(sections.demo.output_dir, "train")
    with third_party_to_file(log_path, verbose=verbose):
        if not verbose:
            console.print(f"third-party messages are kept in {log_path}")
        request = TrainRequest(target, data, mapping, seed, verbose)
        _train(console, request, train_config, sections)


@dataclass(frozen=True)
class TrainRequest:
    """What the user asked ``winback train`` for, beside the configuration."""

    target: str
    data: Path | None
    mapping: str | None
    seed: int | None
    verbose: bool


def _train(console, request: TrainRequest, train_config, sections) -> None:
    """The body of ``winback train`` once the configuration is read."""
    target, data, mapping = request.target, request.data, request.mapping
    seed, verbose = request.seed, request.verbose
    if target == "uplift":
        train_uplift_command(console, data, mapping, train_config, sections, seed)
        return
    if target == "value":
        from winback.commands.train_value import train_value_command

        train_value_command(console, data, mapping, train_config, sections)
        return

    from training.pipeline import train_target
    from winback.shop import load_tables, open_in_place

    def progress(message: str) -> None:
        console.print(f"[cyan]›[/cyan] {message}")

    from training.pipeline import UnsupportedTargetError

    try:
        progress("loading data" if data else "simulating the demo shop")
        shop = open_in_place(data, mapping, config=sections)
        if shop is None:
            tables, truth = load_tables(data, mapping, config=sections)
            in_place = {}
        else:  # no pandas copy of the rows
            tables, truth = shop.tables, shop.truth
            in_place = {"con": shop.con, "fingerprinted": shop.fingerprinted}
        print_unavailable_features(console, tables, verbose=verbose)
        result = train_target(tables, train_config, truth=truth, progress=progress, **in_place)
    except UnsupportedTargetError as exc:
        reason = str(exc).splitlines()[0]
        console.print(f"[red]the data cannot support the {target} target: {reason}[/red]")
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]training failed: {exc}[/red]")
        raise typer.Exit(2) from None

    console.print(comparison_rich_table(result))
    if result.evaluation is not None:
        console.print(deltas_rich_table(result))
    print_outcome(console, result)


def train_uplift_command(console, data, mapping, train_config, sections, seed: int | None) -> None:
    """``winback train --target uplift``: fit on past campaigns, register, gate on Qini."""
    from training.uplift.fit import UpliftConfig
    from training.uplift.record import train_uplift
    from winback.shop import load_tables

    tracking = train_config.tracking
    config = UpliftConfig() if seed is None else UpliftConfig(random_state=seed)
    try:
        console.print(f"[cyan]›[/cyan] {'loading data' if data else 'simulating the demo shop'}")
        tables, _ = load_tables(data, mapping, config=sections)
        console.print("[cyan]›[/cyan] fitting the uplift model on campaign_contacts")
        trained = train_uplift(
            tables,
            config,
            tracking=tracking,
            min_improvement=train_config.gate_min_improvement,
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]training failed: {exc}[/red]")
        raise typer.Exit(2) from None
    result = trained.result
    console.print(
        f"uplift ({config.learner}-learner): held-out Qini {result.qini_test:.4f} on "
        f"{result.test_rows:,} contacts ({result.train_rows:,} to fit); MLflow run {trained.run_id}"
    )
    word = "[green]champion[/green]" if trained.promoted else "[yellow]challenger[/yellow]"
    console.print(f"winback-uplift version {trained.version} is {word}: {trained.reason}")


def print_unavailable_features(console, tables, *, verbose: bool) -> None:
    """One line on the features this data cannot support (each one under ``--verbose``)."""
    from features.build import available_features
    from features.inputs.schema import SCHEMAS

    names, notes = available_features(tables)
    if not notes:
        return
    absent = [name for name in SCHEMAS if name not in tables.present()]
    because = f"no {', '.join(absent)}" if absent else "missing columns"
    console.print(
        f"{len(notes)} of {len(names) + len(notes)} features unavailable for this data: "
        f"{because}; see the model report"
    )
    if verbose:
        for note in notes:
            console.print(f"  {note}")


def print_outcome(console, result: Any) -> None:
    """BG/NBD feature experiment, calibration, notes and the registry outcome."""
    if result.bgnbd_feature is not None:
        b = result.bgnbd_feature
        verdict = "helps" if b["helps"] else "does not help"
        console.print(
            f"BG/NBD expected purchases as a feature {verdict}: newest-origin ROC-AUC "
            f"{b['roc_auc_without']:.4f} → {b['roc_auc_with']:.4f}"
        )
    console.print(f"calibration: {result.calibration_method}; MLflow run {result.run_id}")
    for note in result.notes:
        if "instead of" in note or note.startswith("calibration:"):
            console.print(f"[yellow]note: {note}[/yellow]")
    if result.model_version is not None:
        console.print(gate_line(result))
