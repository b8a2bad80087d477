"""The ``winback`` command line: thin wiring over features, training and serving.

Each command group lives in ``winback/commands/<group>.py``; this module only
assembles them. Heavy imports (MLflow, BentoML, LightGBM) happen inside the
commands that need them, so ``winback --help`` stays fast.
"""

from __future__ import annotations

import typer

from winback import __version__, disable_telemetry
from winback.commands import (
    config,
    data,
    demo,
    features,
    features_check,
    forget,
    lists,
    models,
    monitor,
    serving,
    simulate,
    train,
)

disable_telemetry()

app = typer.Typer(
    name="winback",
    help="Churn, VIP-potential and win-back models from a shop's transaction log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"winback {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """winback: point-in-time features, LightGBM models, retention lists."""


data_app = typer.Typer(help="Simulate, load and validate shop data.", no_args_is_help=True)
data_app.command("simulate")(simulate.simulate)
data_app.command("validate")(data.validate)
app.command("demo")(features.with_custom_features(demo.demo))
app.add_typer(data_app, name="data")
features.app.command("check")(features_check.check)
app.add_typer(features.app, name="features")
app.command("train")(features.with_custom_features(train.train))
app.add_typer(models.app, name="models")
app.command("score")(serving.score)
app.command("serve")(serving.serve)
app.add_typer(lists.app, name="lists")
app.command("measure")(lists.measure)
app.add_typer(monitor.app, name="monitor")
app.command("retrain")(features.with_custom_features(monitor.retrain))
app.add_typer(config.app, name="config")
app.command("forget")(forget.forget)


if __name__ == "__main__":  # pragma: no cover
    app()
