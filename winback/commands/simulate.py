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
) -> None:
    """Simulate a shop (tables + ground truth) and write one Parquet file per table."""
    from rich.console import Console
    from rich.table import Table

    from features.simulate import SimulationConfig, simulate_shop, write_shop

    console = Console()
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
