"""``winback demo``: the whole job on the built-in simulated shop (or your data)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import typer


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def demo(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file (default: ./winback.toml if present)."
    ),
    data: str | None = typer.Option(
        None, "--data", help="Your shop's data instead of the simulated shop."
    ),
    mapping: str | None = typer.Option(
        None, "--mapping", help="Column mapping for --data: a built-in name or a TOML file."
    ),
    customers: int | None = typer.Option(
        None, "--customers", min=100, help="Size of the simulated shop (default: the config's)."
    ),
    tune: int | None = typer.Option(
        None, "--tune", min=0, help="Optuna trials per model (default: the config's)."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show third-party warnings and logs on the terminal."
    ),
) -> None:
    """Simulate a shop, validate it, train the three models, score everyone, write the lists."""
    from rich.console import Console

    from features.config_file import ConfigError
    from winback.config import load_config

    console = Console()
    try:
        effective = load_config(config)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    updates = {}
    if data is not None:
        updates["data"] = effective.data.model_copy(update={"path": data, "mapping": mapping})
    if customers is not None:
        from dataclasses import replace

        updates["simulation"] = replace(effective.simulation, customers=customers)
    if tune is not None:
        updates["demo"] = effective.demo.model_copy(update={"tune_trials": tune})
    effective = effective.model_copy(update=updates)
    started = time.perf_counter()
    result = _run_with_progress(console, effective, verbose=verbose)
    _print_summary(console, result, time.perf_counter() - started)


def _run_with_progress(console, effective, *, verbose: bool):
    """Run the demo under a progress bar, third-party messages kept in the log file."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from winback.demo import run_demo
    from winback.terminal import log_file, third_party_to_file

    steps = [
        "data", *(f"train {t}" for t in effective.demo.targets), "train value", "score", "lists"
    ]  # fmt: skip
    quiet = third_party_to_file(log_file(effective.demo.output_dir, "demo"), verbose=verbose)
    with (
        quiet as log_path,
        Progress(
            TextColumn("[bold]{task.fields[step]:<20}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        ) as bar,
    ):
        if not verbose:
            console.print(f"third-party messages are kept in {log_path}")
        task = bar.add_task("", total=len(steps), step="starting")
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(name)
            bar.update(task, step=name, description="")

        def progress(message: str) -> None:
            bar.update(task, description=message[:70])

        try:
            result = run_demo(effective, progress=progress, step=step)
        except (ValueError, FileNotFoundError) as exc:
            console.print(f"[red]demo failed: {exc}[/red]")
            raise typer.Exit(2) from None
        bar.update(task, completed=len(steps), step="done", description="")
    return result


def _summary_cells(trained) -> list[str]:
    """Model, best baseline, its interval, oracle and registry cells of one trained target."""
    comparison = trained.comparison
    model = comparison.loc["model"]
    references = [i for i in ("oracle", "ceiling") if i in comparison.index]
    baselines = comparison.drop(index=["model", *references])
    best = baselines["roc_auc"].idxmax() if len(baselines) else None
    oracle = None
    if references:
        oracle = f"{references[0]} {_fmt(comparison.loc[references[0], 'roc_auc'])}"
    delta = ""
    deltas = trained.evaluation.deltas
    if best is not None and best in deltas.index:
        row = deltas.loc[best]
        delta = f"{row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
        delta = f"[green]{delta}[/green]" if row["ci_low"] > 0 else f"[red]{delta}[/red]"
    if trained.gate_promoted and not trained.loses_to:
        registry = f"v{trained.model_version} champion"
    elif trained.gate_promoted:
        registry = (
            f"[red]v{trained.model_version} champion, loses_to={','.join(trained.loses_to)}[/red]"
        )
    else:
        registry = f"[red]v{trained.model_version} challenger[/red]"
    return [
        f"{_fmt(model['roc_auc'])} / {_fmt(model['pr_auc'])}",
        f"{best}: {_fmt(baselines.loc[best, 'roc_auc'])}" if best else "–",
        delta,
        oracle or "–",
        registry,
    ]


def _print_summary(console, result, wall: float) -> None:
    from rich.table import Table

    table = Table(
        title="Models: mean over their test origins (ROC-AUC / PR-AUC)",
        caption="Δ = ROC-AUC model − best baseline with its paired bootstrap 95% interval",
        caption_justify="left",
    )
    table.add_column("target")
    table.add_column("model", justify="right")
    table.add_column("best baseline", justify="right")
    table.add_column("Δ [95% CI]", justify="right")
    table.add_column("oracle / ceiling", justify="right")
    table.add_column("registry")
    for target, trained in result.training.items():
        table.add_row(target, *_summary_cells(trained))
    for target in result.skipped:
        table.add_row(target, "skipped", "", "", "", "", style="yellow")
    console.print(table)
    for target, reason in result.skipped.items():
        console.print(f"[yellow]{target} skipped: {reason}[/yellow]")
    for target, trained in result.training.items():
        colour = "green" if not trained.evaluation.not_beaten else "red"
        console.print(f"[{colour}]{target}: {trained.verdict}[/{colour}]")
    if result.value is not None:
        console.print(f"value: {result.value.summary()}")
    where = Table(title=f"winback demo finished in {wall:.0f} s", show_header=False)
    where.add_column("what")
    where.add_column("where")
    if result.data_dir is not None:
        where.add_row("simulated shop", str(result.data_dir))
    per_table = result.validation.drop_duplicates("table")
    where.add_row(
        "rows validated",
        f"{int(per_table['rows_in'].sum()):,} in = {int(per_table['rows_accepted'].sum()):,} "
        f"accepted + {int(per_table['rows_quarantined'].sum()):,} quarantined "
        f"(report: {result.output_dir / 'validation'})",
    )
    for target, trained in result.training.items():
        if trained.report_path:
            where.add_row(f"{target} model report", str(trained.report_path))
    if result.score_version is not None:
        where.add_row("score table", str(result.score_version.scores_path))
    for kind, manifest in result.lists.items():
        where.add_row(
            f"list {kind}",
            f"{manifest.list_id}: {manifest.rows:,} customers "
            f"({manifest.control_rows:,} control) in {result.output_dir / 'lists'}",
        )
    if result.uplift_qini is not None:
        where.add_row("uplift model", f"held-out Qini {result.uplift_qini:.4f}")
    where.add_row("MLflow runs", result.tracking_uri)
    where.add_row(
        "open the MLflow UI",
        f"uv run --frozen mlflow ui --backend-store-uri {result.tracking_uri}",
    )
    where.add_row(
        "start the service",
        "WINBACK_API_KEYS=change-me-to-a-long-secret uv run --frozen winback serve",
    )
    where.add_row(
        "open the retention console",
        "http://127.0.0.1:3000/console/ (enter the key: change-me-to-a-long-secret)",
    )
    console.print(where)
