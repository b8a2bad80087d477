"""``winback train --target value``: the customer-value model, evaluated, recorded and gated."""

from __future__ import annotations

import math
from typing import Any

import typer

#: The metrics the summary table shows, with short headers.
VALUE_HEADERS = {
    "normalized_gini": "Gini",
    "spearman": "Spearman",
    "top_decile_capture": "top10%",
    "calibration_ratio": "ratio",
    "decile_calibration_error": "dec.err",
    "mae": "MAE",
    "rmse": "RMSE",
}


def _cell(metric: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.0f}" if metric in ("mae", "rmse") else f"{value:.3f}"


def value_rich_table(result: Any):
    """A rich table of the value model and its baselines, means over the test origins."""
    from rich.table import Table

    mean = result.evaluation.mean
    origins = sorted(result.evaluation.per_origin["origin"].unique())
    table = Table(
        title=f"value ({result.model.value_basis} over {result.model.horizon_days} days): mean over "
        f"{len(origins)} origins {', '.join(str(o.date()) for o in origins)}"
    )
    table.add_column("scorer")
    for header in VALUE_HEADERS.values():
        table.add_column(header, justify="right")
    for name, row in mean.iterrows():
        label = "model" if name == result.model.variant else str(name)
        label = {"btyd": "BG/NBD+GG"}.get(label, label)
        values = [_cell(m, row[m]) for m in VALUE_HEADERS]
        table.add_row(label, *values, style="bold" if label == "model" else None)
    return table


def train_value_command(console, data, mapping, train_config, sections) -> None:
    """Prepare, evaluate over rolling origins, fit, record in MLflow and gate ``winback-value``."""
    from training.tracking.value_record import record_value_run
    from training.value_training import train_value
    from winback.shop import load_tables

    settings = sections.value.settings(train_config.num_threads)
    try:
        console.print(f"[cyan]›[/cyan] {'loading data' if data else 'simulating the demo shop'}")
        tables, _ = load_tables(data, mapping, config=sections)
        console.print("[cyan]›[/cyan] evaluating the value model over rolling origins")
        result = train_value(tables, settings)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]training failed: {exc}[/red]")
        raise typer.Exit(2) from None
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(value_rich_table(result))
    colour = "green" if result.verdict() == "beats every baseline" else "red"
    console.print(f"[{colour}]{result.verdict()}[/{colour}]")
    record = record_value_run(result, train_config.tracking)
    word = "[green]champion[/green]" if record.promoted else "[red]challenger[/red]"
    console.print(f"winback-value version {record.version} is {word}: {record.reason}")
    console.print(f"MLflow run {record.run_id}")
