"""``winback data simulate``: write the simulated shop to a directory of Parquet files."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer


def simulate(
    customers: int = typer.Option(20_000, "--customers", min=1, help="Number of customers."),
    out: Path = typer.Option(Path("data/simulated"), "--out", help="Directory to write into."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same bytes)."),
    start: datetime = typer.Option(
        "2023-01-01", "--start", formats=["%Y-%m-%d"], help="First day of the period."
    ),
    end: datetime = typer.Option(
        "2025-12-31", "--end", formats=["%Y-%m-%d"], help="Last day of the period."
    ),
    process: str = typer.Option(
        "shop",
        "--process",
        help="shop (the rich simulated shop) or bgnbd (a pure BG/NBD world whose "
        "Bayes-optimal churn probability is known: `winback train` logs it as oracle_<metric>).",
    ),
) -> None:
    """Simulate a shop (tables + ground truth) and write one Parquet file per table."""
    from rich.console import Console
    from rich.table import Table

    from features.simulation import SimulationConfig, simulate_shop, write_shop

    console = Console()
    if process not in ("shop", "bgnbd"):
        raise typer.BadParameter(f"--process {process!r}: choose shop or bgnbd")
    if process == "bgnbd":
        simulate_bgnbd_command(console, customers, out, seed, start, end)
        return
    defaults = SimulationConfig()
    campaigns = tuple(d for d in defaults.campaign_dates if start.date() < d <= end.date())
    try:
        config = SimulationConfig(
            customers=customers,
            seed=seed,
            start=start.date(),
            end=end.date(),
            campaign_dates=campaigns,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    began = time.perf_counter()
    shop = simulate_shop(config)
    paths = write_shop(shop, out)
    took = time.perf_counter() - began

    tx = shop.tables.transactions
    purchases = tx[~tx["is_return"]]
    orders = purchases.groupby("customer_id")["order_id"].nunique()
    summary = Table(title=f"Simulated shop -> {out}", show_header=False)
    summary.add_row("customers", f"{len(shop.tables.customers):,}")
    summary.add_row("transactions (lines)", f"{len(tx):,}")
    summary.add_row("orders", f"{purchases['order_id'].nunique():,}")
    summary.add_row(
        "date range", f"{tx['ordered_at'].min():%Y-%m-%d} .. {tx['ordered_at'].max():%Y-%m-%d}"
    )
    summary.add_row("one-time-buyer share", f"{(orders == 1).mean():.1%}")
    for name, frame in shop.tables.present().items():
        summary.add_row(f"rows: {name}", f"{len(frame):,}")
    summary.add_row("files", f"{len(paths)} in {out}")
    summary.add_row("wall time", f"{took:.1f} s")
    console.print(summary)


def simulate_bgnbd_command(console, customers: int, out: Path, seed: int, start, end) -> None:
    """``--process bgnbd``: write a pure BG/NBD world (transactions + its parameters)."""
    from rich.table import Table

    from features.simulation import BgNbdWorldConfig, simulate_bgnbd_world, write_bgnbd_world

    days = (end.date() - start.date()).days + 1
    try:
        config = BgNbdWorldConfig(
            customers=customers,
            seed=seed,
            start=start.date(),
            days=days,
            acquisition_days=max(1, min(days, round(days * 2 / 3))),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    began = time.perf_counter()
    world = simulate_bgnbd_world(config)
    paths = write_bgnbd_world(world, out)
    tx = world.tables.transactions
    summary = Table(title=f"BG/NBD world -> {out}", show_header=False)
    summary.add_row("customers", f"{tx['customer_id'].nunique():,}")
    summary.add_row("orders", f"{len(tx):,}")
    summary.add_row(
        "parameters", f"r={config.r}, alpha={config.alpha} days, a={config.a}, b={config.b}"
    )
    summary.add_row(
        "date range", f"{tx['ordered_at'].min():%Y-%m-%d} .. {tx['ordered_at'].max():%Y-%m-%d}"
    )
    summary.add_row("files", f"{len(paths)} in {out}")
    summary.add_row("wall time", f"{time.perf_counter() - began:.1f} s")
    console.print(summary)
