"""The monitoring scenario of issue #9: a behaviour shift, drift, decay and recovery.

A simulated shop whose customers change on ``--shift-date`` (natural purchase
rates fall, discount-sensitive customers drop out several times faster — a
competitor's discount war). The script

1. trains the churn champion on the data as it stood before the shift;
2. scores every customer monthly with that champion (score tables in a
   temporary folder), before and after the shift;
3. checks drift of each scoring run against the champion's training data (PSI);
4. backtests the score tables whose horizon has passed (realised AUC, ECE) and
   flags decay against the champion's test ROC-AUC (``serving.monitoring.decay``);
5. runs ``winback retrain``'s job on all the data and prints the champion's and
   the retrained model's metric on the same newest test cutoff.

Run: ``uv run --frozen python benchmarks/drift_scenario.py [--customers N]``.
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pandas as pd


def tables_until(tables, last_day: dt.date):
    """The shop as it stood at the end of ``last_day``: every event after it dropped."""
    from dataclasses import replace

    from features.inputs.schema import SCHEMAS

    end = pd.Timestamp(last_day, tz="UTC") + pd.Timedelta(days=1)
    changes = {}
    for name, frame in tables.present().items():
        column = SCHEMAS[name].time_column
        if column is not None and column in frame.columns:
            changes[name] = frame[frame[column] < end].reset_index(drop=True)
    return replace(tables, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--shift-date", default="2025-01-01")
    parser.add_argument("--purchase-factor", type=float, default=0.8)
    parser.add_argument("--discount-dropout-factor", type=float, default=4.0)
    parser.add_argument("--workdir", default=None, help="Keep mlruns/ and scores here.")
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="winback-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)

    from features.simulation import SimulationConfig, simulate_shop
    from serving.config import ServingConfig
    from serving.monitoring.backtest import BacktestConfig, backtest, plot_backtest
    from serving.monitoring.decay import decay_table
    from serving.monitoring.drift import drift_report, log_drift_report
    from serving.scoring.models import load_served_models
    from serving.scoring.table import score_customers
    from training.config import LightGBMParams, TrainConfig
    from training.pipeline import train_target
    from training.retrain import RetrainConfig, describe, run_retrain
    from training.tracking.runs import TrackingConfig

    shift = dt.date.fromisoformat(args.shift_date)
    started = time.perf_counter()
    shop = simulate_shop(
        SimulationConfig(
            customers=args.customers,
            seed=args.seed,
            shift_date=shift,
            shift_purchase_rate_factor=args.purchase_factor,
            shift_discount_sensitive_dropout_factor=args.discount_dropout_factor,
        )
    )
    print(f"simulated {args.customers:,} customers, shift on {shift} "
          f"({time.perf_counter() - started:.0f} s); work dir {work}")  # fmt: skip

    train = TrainConfig(
        target="churn",
        horizon_days=90,
        cutoff_count=8,
        lightgbm=LightGBMParams(n_estimators=300, learning_rate=0.05),
        early_stopping_rounds=30,
        bgnbd_feature_experiment=False,
        report=False,
        tracking=TrackingConfig(root=str(work / "mlruns")),
    )

    # 1. the champion, trained on the data as it stood the day before the shift
    past = tables_until(shop.tables, shift - dt.timedelta(days=1))
    first = train_target(past, train)
    print(f"\nchampion v{first.model_version}: trained on data up to {shift - dt.timedelta(days=1)}, "
          f"test cutoff {first.split['test_cutoffs'][-1]}, test ROC-AUC {first.metrics['roc_auc']:.4f}, "
          f"ECE {first.metrics['ece']:.4f}")  # fmt: skip

    # 2. monthly scoring runs with that champion
    serving = ServingConfig(home=work, score_dir=work / "scores", explain_top=0)
    models = load_served_models(serving, targets=("churn",))
    last_day = shop.tables.last_event_at().date()
    dates = []
    day = shift - dt.timedelta(days=90)
    while day + dt.timedelta(days=90) <= last_day:
        dates.append(day)
        day += dt.timedelta(days=30)
    for as_of in dates:
        score_customers(shop.tables, as_of, models, serving)

    # 3. drift of each scoring run, 4. backtest of the matured ones
    rows = []
    for as_of in dates:
        report = drift_report(serving.score_path, as_of, targets=("churn",))
        log_drift_report(report)
        summary = report.summary.iloc[0]
        rows.append(
            {
                "as_of": as_of,
                "after_shift": as_of >= shift,
                "score_psi": summary["score_psi"],
                "max_feature_psi": summary["max_feature_psi"],
                "max_feature": summary["max_feature"],
                "features_alert": summary["features_alert"],
                "drift_flagged": report.flagged,
            }
        )
    drift = pd.DataFrame(rows)
    live = backtest(shop.tables, serving.score_path, BacktestConfig(targets=("churn",)))
    live = decay_table(live, {("churn", str(first.model_version)): first.metrics["roc_auc"]})
    table = drift.merge(
        live[["as_of", "n", "base_rate", "mean_predicted", "roc_auc", "ece", "auc_drop", "status"]],
        on="as_of",
    )
    table["decay_flagged"] = table["status"] == "alert"
    print("\nmonthly scoring runs of the champion: drift and realised performance")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    before, after = table[~table["after_shift"]], table[table["after_shift"]]
    print(f"\nmean before / after the shift: score PSI {before.score_psi.mean():.3f} / "
          f"{after.score_psi.mean():.3f}; realised ROC-AUC {before.roc_auc.mean():.4f} / "
          f"{after.roc_auc.mean():.4f}; ECE {before.ece.mean():.4f} / {after.ece.mean():.4f}; "
          f"drift flagged {int(before.drift_flagged.sum())}/{len(before)} before, "
          f"{int(after.drift_flagged.sum())}/{len(after)} after; decay alert "
          f"{int(before.decay_flagged.sum())}/{len(before)} before, "
          f"{int(after.decay_flagged.sum())}/{len(after)} after")  # fmt: skip
    plot = work / "live_performance.png"
    plot_backtest(live, reference={"roc_auc": first.metrics["roc_auc"]}).figure.savefig(plot)
    print(f"plot: {plot}")

    # 5. retrain on all the data; the gate compares on the same newest test cutoff
    code, report, message = run_retrain(
        lambda: (shop.tables, None), RetrainConfig(train=train, targets=("churn",))
    )
    print(f"\nwinback retrain: exit {code} ({message})")
    for line in describe(report.outcomes if report else ()):
        print("  " + line)
    again, report, message = run_retrain(
        lambda: (shop.tables, None), RetrainConfig(train=train, targets=("churn",))
    )
    print(f"second retrain on the same data: exit {again} ({message})")
    for line in describe(report.outcomes if report else ()):
        print("  " + line)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
