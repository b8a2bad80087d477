"""``winback config show``: print the effective configuration."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file (default: ./winback.toml if present)."
    ),
) -> None:
    """Print the effective configuration as TOML: defaults, overridden by the file."""
    from features.config_file import ConfigError
    from winback.config import config_as_toml, find_config_file, load_config

    try:
        effective = load_config(config)
        source = find_config_file(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"# effective configuration ({source or 'defaults, no file found'})")
    typer.echo(config_as_toml(effective))
