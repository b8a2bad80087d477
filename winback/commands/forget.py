"""``winback forget ID [ID ...]``: erase customers from every store winback wrote.

Exit codes: 0 — forgotten, and no file under the output folder (outside the
shop's input data) or the MLflow root mentions them any more; 1 — some file
still does (listed; nothing is hidden); 2 — bad arguments; 3 — another
``winback score`` or ``winback forget`` held a store's lock for longer than
``--wait`` seconds.
"""

from __future__ import annotations

from pathlib import Path

import typer

EXIT_REMAINING = 1
EXIT_LOCKED = 3


def _read_ids(ids: list[str] | None, ids_file: Path | None) -> list[str]:
    out = list(ids or [])
    if ids_file is not None:
        if not ids_file.is_file():
            raise typer.BadParameter(f"{ids_file} is not a file", param_hint="--ids")
        lines = ids_file.read_text(encoding="utf-8").splitlines()
        out += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not out:
        raise typer.BadParameter("give customer ids as arguments or in a file with --ids FILE")
    return out


def forget(
    customer_ids: list[str] | None = typer.Argument(None, help="Customer ids to forget."),
    ids_file: Path | None = typer.Option(
        None, "--ids", help="A file of customer ids, one a line ('#' starts a comment)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file (default: ./winback.toml if present)."
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="winback's output folder (default: [demo] output_dir)."
    ),
    wait: float = typer.Option(
        60.0, "--wait", min=0, help="Seconds to wait for a running `winback score`."
    ),
) -> None:
    """Remove customers from scores, features, lists, quarantine files and MLflow artifacts."""
    from features.config_file import ConfigError
    from features.erasure import ErasureRegistry
    from features.publish import LockHeld
    from serving.forget import ForgetStores, forget_customers
    from winback.config import load_config

    ids = _read_ids(customer_ids, ids_file)
    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    out = output_dir or Path(settings.demo.output_dir)
    data = settings.data.path
    tracking = settings.train.tracking
    artifacts = tracking.resolved_artifact_root()
    registry = ErasureRegistry.default()
    stores = ForgetStores(
        output_dir=out,
        score_dir=settings.serving.score_path,
        list_dir=out / "lists",
        tracking_root=tracking.root_path(),
        input_data=(Path(data),) if data and "://" not in data else (),
        erasure=registry,
        artifact_root=Path(artifacts.removeprefix("file://"))
        if artifacts.startswith("file://")
        else None,
        wait_seconds=wait,
        written=tuple(registry.written_files()),
    )
    if not artifacts.startswith("file://"):
        typer.echo(f"note: MLflow artifacts in {artifacts} are not local; erase them there")
    try:
        report = forget_customers(ids, stores)
    except LockHeld as exc:
        typer.secho(f"{exc}; try again when it has finished", fg="red", err=True)
        raise typer.Exit(EXIT_LOCKED) from None
    typer.echo(f"forgot {report.customers} customer(s); rows removed:")
    for name, rows in sorted(report.removed_rows.items()):
        typer.echo(f"  {name}: {rows:,}")
    if not report.removed_rows:
        typer.echo("  none (they were in no store winback wrote)")
    typer.echo(f"erasure log: {stores.erasure.log_path} (salted hashes, never the ids)")
    for problem in report.problems:
        typer.secho(f"not rewritten: {problem}", fg="red", err=True)
    for path in report.remaining:
        typer.secho(f"still mentions a forgotten customer: {path}", fg="red", err=True)
    if not report.clean:
        raise typer.Exit(EXIT_REMAINING)
    checked = ", ".join(
        [f"{root}/" for root in stores.roots()] + list(map(str, stores.written_files()))
    )
    typer.echo(
        f"checked every file under {checked} (outside the shop's input data): none mentions"
        " them. A running `winback serve` drops them on its next request."
    )
