"""``winback features check``: the user-defined features of a config, checked on real data.

Mounted by ``winback/cli.py`` on the ``features`` group. The entries of
``[[features.custom]]`` are validated when the file loads (a bad one stops here
with the key and the reason); this command then builds them on the shop's data
at a few cutoffs and runs the leakage check of ``features.custom.leakage``: the
value at a cutoff must not change when the rows after it are removed or scrambled.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from winback.commands.features import DataOption, MappingOption, _fail, _load

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="winback.toml with [[features.custom]] (default: ./)."),
]


def configured_custom_features(config: Path | None, err: Console) -> tuple:
    """The definitions of ``[[features.custom]]`` in the config file (exit 2 when invalid)."""
    from features.config_file import ConfigError
    from winback.config import find_config_file, load_sections

    try:
        return load_sections(find_config_file(config)).features.definitions()
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def spread_cutoffs(first: dt.date, last: dt.date, count: int) -> list[dt.date]:
    """``count`` cutoffs evenly inside ``(first, last)``: each has rows before and after it."""
    span = (last - first).days
    if span < count + 1:
        raise ValueError(f"the data spans {span} day(s): too short for {count} cutoffs")
    return sorted({first + dt.timedelta(days=span * i // (count + 1)) for i in range(1, count + 1)})


def _results_table(results, definitions) -> Table:
    by_name = {d.name: d for d in definitions}
    table = Table(title="Leakage check: rows after each cutoff removed, then scrambled")
    for column in ("feature", "table", "window", "cutoff", "customers", "result"):
        table.add_column(column, justify="right" if column == "customers" else "left")
    for r in results:
        d = by_name[r.feature]
        window = "all" if d.window_days is None else f"{d.window_days} days"
        verdict = "[green]ok[/green]" if r.ok else f"[red]LEAKS: {r.changed} value(s) moved[/red]"
        table.add_row(r.feature, d.table, window, str(r.cutoff), f"{r.customers:,}", verdict)
    return table


def check(
    data: DataOption,
    mapping: MappingOption = None,
    config: ConfigOption = None,
    cutoffs: Annotated[
        int, typer.Option("--cutoffs", min=1, max=12, help="How many cutoffs to check at.")
    ] = 3,
) -> None:
    """Check user-defined features for leakage on your data."""
    from features.custom.leakage import check_leakage
    from features.inputs.contracts import ContractError
    from features.training_table import data_dates

    console, err = Console(), Console(stderr=True)
    definitions = list(configured_custom_features(config, err))
    console.print(f"{len(definitions)} user-defined feature(s) valid; checking them")
    try:
        tables = _load(data, mapping, err)
        dates = spread_cutoffs(*data_dates(tables), cutoffs)
        console.print(f"cutoffs: {', '.join(str(d) for d in dates)}")
        results = check_leakage(tables, definitions, dates)
    except (ContractError, ValueError, OSError) as exc:
        raise _fail(err, exc) from exc
    console.print(_results_table(results, definitions))
    computed = {r.feature for r in results}
    for d in definitions:
        if d.name not in computed:
            console.print(f"[yellow]{d.name}: not computed, the data lacks {list(d.columns)}[/]")
    leaking = sorted({r.feature for r in results if not r.ok})
    if leaking:
        console.print(f"[red]leaking: {', '.join(leaking)}[/red]")
        raise typer.Exit(1)
    console.print("[green]no feature moved when data after the cutoff changed[/green]")
