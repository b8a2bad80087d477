"""``winback monitor drift|backtest`` and ``winback retrain``.

``app`` holds the monitor commands (the CLI mounts it as ``winback monitor``);
:func:`retrain` is a plain command function (mounted as ``winback retrain``).
Heavy imports happen inside the commands.

``winback retrain`` is made for cron: it exits 0 (promoted, kept or already up
to date), 2 (bad input or config), 3 (another retrain holds the lock) or 4
(training failed); see ``training.retrain``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from features.publish import publish_file, publish_text
from features.targets import TARGET_NAMES
from serving.config import ServingConfig

TARGETS = TARGET_NAMES
_DEFAULT = ServingConfig()

app = typer.Typer(help="Drift of scoring runs and live performance of served scores.")


def _tables(data: Path | None, mapping: str | None):
    """``(tables, truth)`` from ``--data`` (the demo's simulated shop when omitted)."""
    from winback.shop import load_tables

    return load_tables(data, mapping)


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option} {value!r} is not a date: use YYYY-MM-DD") from None


def _check_targets(targets: list[str] | None) -> tuple[str, ...]:
    chosen = tuple(targets or TARGETS)
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        raise typer.BadParameter(f"unknown targets {unknown}: use {', '.join(TARGETS)}")
    return chosen


@app.command("drift")
def drift(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Score table date (YYYY-MM-DD); default: the newest."
    ),
    score_dir: Path = typer.Option(_DEFAULT.score_dir, "--score-dir"),
    target: list[str] | None = typer.Option(None, "--target", "-t", help="Repeat for several."),
    warn_psi: float = typer.Option(0.1, "--warn-psi", help="PSI that flags a warning."),
    alert_psi: float = typer.Option(0.25, "--alert-psi", help="PSI that flags an alert."),
    report: Path | None = typer.Option(
        None, "--report", help="Write the report here (.html or .md)."
    ),
    log: bool = typer.Option(True, "--log/--no-log", help="Log to MLflow (winback-monitoring)."),
    tracking_root: str = typer.Option("mlruns", "--tracking-root"),
) -> None:
    """PSI of each feature and score of a scoring run against the champion's training data.

    Exits 1 when any column is at or above the alert threshold (for schedulers).
    """
    from serving.monitoring.drift import DriftConfig, drift_report, log_drift_report
    from training.tracking.runs import TrackingConfig, configure_tracking

    try:
        config = DriftConfig(warn_psi=warn_psi, alert_psi=alert_psi)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    configure_tracking(TrackingConfig(root=tracking_root))
    try:
        result = drift_report(
            score_dir, _date(as_of, "--as-of"), targets=_check_targets(target), config=config
        )
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(result.to_markdown())
    if report is not None:
        text = (
            result.to_html() if report.suffix.lower() in (".html", ".htm") else result.to_markdown()
        )
        publish_text(report, text)
        typer.echo(f"report written to {report}")
    if log:
        typer.echo(f"logged to MLflow run {log_drift_report(result)} ({config.experiment})")
    if result.flagged:
        raise typer.Exit(1)


@app.command("backtest")
def backtest(
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Shop data (default: the demo's simulated shop)."
    ),
    mapping: str | None = typer.Option(None, "--mapping", "-m"),
    score_dir: Path = typer.Option(_DEFAULT.score_dir, "--score-dir"),
    list_dir: Path | None = typer.Option(
        None, "--list-dir", help="Also measure the saved lists whose horizon has passed."
    ),
    horizon_days: int = typer.Option(_DEFAULT.horizon_days, "--horizon-days", min=1),
    target: list[str] | None = typer.Option(None, "--target", "-t"),
    plot: Path | None = typer.Option(None, "--plot", help="Save the over-time plot (PNG)."),
    warn_auc_drop: float = typer.Option(
        0.02, "--warn-auc-drop", help="ROC-AUC fall below the trained one that flags a warning."
    ),
    alert_auc_drop: float = typer.Option(
        0.05, "--alert-auc-drop", help="ROC-AUC fall below the trained one that flags an alert."
    ),
    log: bool = typer.Option(True, "--log/--no-log", help="Log to MLflow (winback-monitoring)."),
    tracking_root: str = typer.Option("mlruns", "--tracking-root"),
) -> None:
    """Realised AUC, calibration and lift of every score table whose horizon has passed.

    Each table's ROC-AUC is compared with the test ROC-AUC its model version had
    at training; exits 1 when a fall is at or above the alert threshold and
    beyond sampling noise (for schedulers).
    """
    from serving.monitoring.backtest import (
        BacktestConfig,
        list_backtest,
        log_backtest,
        plot_backtest,
    )
    from serving.monitoring.backtest import backtest as run_backtest
    from serving.monitoring.decay import DecayConfig

    try:
        decay = DecayConfig(warn_auc_drop=warn_auc_drop, alert_auc_drop=alert_auc_drop)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    config = BacktestConfig(horizon_days=horizon_days, targets=_check_targets(target))
    try:
        tables, _ = _tables(data, mapping)
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    frame = run_backtest(tables, score_dir, config)
    if frame.empty:
        typer.echo(f"no score table in {score_dir} has a full {horizon_days}-day horizon yet")
        return
    frame = _with_decay(frame, decay, tracking_root)
    columns = ["as_of", "target", "model_version", "n", "base_rate", "mean_predicted"]
    columns += ["roc_auc", "trained_roc_auc", "ece", "lift_at_10", "status"]
    typer.echo(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if list_dir is not None:
        lists = list_backtest(tables, list_dir, horizon_days)
        if len(lists):
            typer.echo(lists.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if plot is not None:
        _save_plot(plot_backtest(frame), plot)
    if log:
        typer.echo(f"logged to MLflow run {log_backtest(frame)}")
    if (frame["status"] == "alert").any():
        typer.secho(
            "realised ROC-AUC fell below the trained one (status alert): check the shop for a"
            " behaviour shift and retrain (winback retrain)",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)


def _with_decay(frame, decay, tracking_root: str):
    """The backtest ``frame`` with each row's trained ROC-AUC, drop and decay status."""
    from serving.monitoring.decay import decay_table, trained_roc_auc
    from training.tracking.runs import TrackingConfig, configure_tracking

    configure_tracking(TrackingConfig(root=tracking_root))
    versions = frame.dropna(subset=["model_version"])
    pairs = zip(versions["target"].astype(str), versions["model_version"].astype(str), strict=True)
    return decay_table(frame, trained_roc_auc(pairs), decay)


def _save_plot(ax, plot: Path) -> None:
    fmt = plot.suffix.lstrip(".") or "png"
    publish_file(plot, lambda p: ax.figure.savefig(p, dpi=120, bbox_inches="tight", format=fmt))
    typer.echo(f"plot written to {plot}")


def retrain(
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Shop data (default: the demo's simulated shop)."
    ),
    mapping: str | None = typer.Option(None, "--mapping", "-m"),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training config TOML."),
    target: list[str] | None = typer.Option(
        None, "--target", "-t", help="Targets to retrain (repeat); default: all three."
    ),
    force: bool = typer.Option(False, "--force", help="Retrain even if up to date."),
) -> None:
    """Retrain on the newest cutoffs and promote only models that beat the champion.

    Exit codes: 0 ok (promoted, kept or up to date), 2 bad input/config,
    3 another retrain is running, 4 training failed.
    """
    from training.config import load_train_config
    from training.retrain import RetrainConfig, describe, run_retrain

    def build() -> RetrainConfig:
        return RetrainConfig(
            train=load_train_config(config), targets=tuple(target or TARGETS), force=force
        )

    def load():
        return _tables(data, mapping)

    def connect():
        from winback.shop import in_place_connection

        return in_place_connection(data, mapping)

    code, report, message = run_retrain(
        load, build, progress=lambda m: typer.echo(f"› {m}", err=True), connect=connect
    )
    if report is not None:
        for line in describe(report.outcomes):
            typer.echo(line)
    typer.secho(message, fg="red" if code else "green", err=bool(code))
    raise typer.Exit(code)
