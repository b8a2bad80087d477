"""``winback data validate``: load a shop, validate it, show and keep the quarantine.

``winback/cli.py`` registers :func:`validate` on the ``data`` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def _parse_now(now: str | None):
    """``--now`` as a UTC timestamp (naive text is read as UTC); ``None`` for the current time."""
    if now is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(now)
    except ValueError as exc:
        raise typer.BadParameter(f"--now {now!r} is not a timestamp (e.g. 2024-01-31)") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def validation_table(summary, source: str) -> Table:
    """A rich table with one row per contract table and quarantine reason."""
    table = Table(title=f"Validation of {source}", title_justify="left")
    for name, justify in (
        ("table", "left"),
        ("rows in", "right"),
        ("accepted", "right"),
        ("quarantined", "right"),
        ("reason", "left"),
        ("rows", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)
    last = None
    for row in summary.itertuples(index=False):
        first = row.table != last
        table.add_row(
            row.table if first else "",
            f"{row.rows_in:,}" if first else "",
            f"{row.rows_accepted:,}" if first else "",
            f"{row.rows_quarantined:,}" if first else "",
            row.reason or "-",
            f"{row.rows:,}" if row.reason else "",
        )
        last = row.table
    return table


def validate(
    path: Annotated[Path, typer.Argument(help="CSV/Parquet file, folder, DuckDB/SQLite file.")],
    mapping: Annotated[
        str | None,
        typer.Option("--mapping", help="Built-in mapping name (online-retail) or a TOML file."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for <table>.quarantine.parquet + validation_report.json."
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Quarantine timestamps after this time (default: now)."),
    ] = None,
    write_tables: Annotated[
        bool,
        typer.Option(
            "--write-tables",
            help="Also write the accepted rows to --out as <table>.parquet with integer keys:"
            " `winback train/score --data <out>` then reads them without validating again.",
        ),
    ] = False,
) -> None:
    """Load and validate a shop's data; print rows in / accepted / quarantined per reason."""
    from features.inputs.contracts import ContractError, write_quarantine
    from features.inputs.sources import load_shop

    if write_tables and out is None:
        raise typer.BadParameter("--write-tables needs --out FOLDER", param_hint="--write-tables")

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 120))
    try:
        validation = load_shop(path, mapping, now=_parse_now(now))
    except ContractError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    console.print(validation_table(validation.summary(), validation.tables.source))
    for name, result in validation.results.items():
        r = result.report
        console.print(
            f"{name}: {r.rows_in:,} rows in = {r.rows_accepted:,} accepted"
            f" + {r.rows_quarantined:,} quarantined",
            markup=False,
        )
        for note in result.report.notes:
            console.print(f"{name}: {note}", style="dim", markup=False, soft_wrap=True)
    if out is not None:
        from features.erasure import ErasureRegistry

        written = list(write_quarantine(validation, out).values())
        if write_tables:
            written += _write_validated(validation, mapping, out)
        # they hold customer rows: `winback forget` must reach them wherever they are
        ErasureRegistry.default().record_written(written)
        console.print(f"wrote {len(written)} files to {out}")


def _write_validated(validation, mapping: str | None, out: Path) -> list[Path]:
    """The accepted rows as keyed Parquet tables plus the marker naming their source."""
    import datetime as dt

    from features.inputs.table_files import write_validated

    summary = {
        "mapping": mapping,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows_accepted": {n: r.report.rows_accepted for n, r in validation.results.items()},
    }
    return write_validated(validation.tables, out, summary)
