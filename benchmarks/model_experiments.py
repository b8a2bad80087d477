"""Which LightGBM settings generalise across shops: candidates judged over rolling origins.

Run from the project root::

    uv run --frozen python benchmarks/model_experiments.py [--customers 5000] \
        [--data ../shared/data/online_retail_I.csv.gz --mapping online-retail] \
        [--targets churn vip] [--candidates current regularised]

For each dataset and target the training table and test origins are prepared
once (the pipeline's ``prepare``), then every candidate is fitted per origin
(``fit_origin``) and scored with the baselines (``score_origin``,
``evaluate``): mean ROC-AUC, log loss and ECE over origins, and the smallest
ROC-AUC difference to a baseline with its paired bootstrap interval. Nothing is
logged to MLflow. Prints one line per candidate as it finishes and the table at
the end; the library's notes (features omitted for an absent column, revenue
standing in for margin) once each, not once per candidate. Asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import LightGBMParams, TrainConfig  # noqa: E402
from training.pipeline import evaluate, fit_origin, prepare, score_origin  # noqa: E402

#: Candidate settings: TrainConfig updates (LightGBM parameters under "lightgbm").
CANDIDATES: dict[str, dict] = {
    "previous": {
        "lightgbm": LightGBMParams(
            n_estimators=1000, learning_rate=0.05, num_leaves=31, min_child_samples=50
        ),
        "early_stopping_rounds": 50,
        "refit_on_validation": False,
    },
    "previous+refit": {
        "lightgbm": LightGBMParams(
            n_estimators=1000, learning_rate=0.05, num_leaves=31, min_child_samples=50
        ),
        "early_stopping_rounds": 50,
        "refit_on_validation": True,
    },
    "regularised": {"refit_on_validation": False},
    "regularised+refit": {"refit_on_validation": True},
    "regularised+3 validation cutoffs": {"validation_cutoffs": 3},
    # more training cutoffs where the history has them (a short log keeps all it has)
    "regularised+24 cutoffs": {"cutoff_count": 24},
    "regularised+18 cutoffs": {"cutoff_count": 18},
    # every target on 12 cutoffs, reactivation too (cutoff_count set)
    "regularised+12 cutoffs": {"cutoff_count": 12},
    "regularised+logloss stopping": {"eval_metric": "binary_logloss"},
    # VIP only: the feature set before the net value features (vip_features_v4).
    "vip_features_v3": {"feature_set": "vip_features_v3"},
}


class _Once(logging.Filter):
    """Pass each message once: every candidate prepares the same tables and notes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def print_notes_once() -> None:
    """Route the libraries' warnings and log notes to stderr, each message once."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    handler.addFilter(_Once())
    warnings.formatwarning = lambda message, *_args, **_kw: str(message)
    logging.captureWarnings(True)
    for name in ("features", "training", "py.warnings"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False


def _progress(row: dict) -> str:
    return (
        f"{row['data']} {row['target']} {row['candidate']}: ROC-AUC {row['roc_auc']:.4f}, "
        f"vs {row['weakest_vs']} {row['delta']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], "
        f"{row['cpu_s']:.1f} CPU s"
    )


def datasets(args) -> dict[str, tuple]:
    """Name → (tables, truth) of the shops to compare on."""
    out = {}
    if args.customers:
        from features.simulation import SimulationConfig, simulate_shop

        shop = simulate_shop(SimulationConfig(customers=args.customers, seed=args.seed))
        out[f"simulated {args.customers}"] = (shop.tables, shop)
    if args.data:
        from winback.shop import load_tables

        tables, truth = load_tables(Path(args.data), args.mapping, config=None)
        out[Path(args.data).name] = (tables, truth)
    return out


def run(args) -> pd.DataFrame:
    rows = []
    for data_name, (tables, truth) in datasets(args).items():
        for target in args.targets:
            base = TrainConfig(target=target, num_threads=args.threads)
            prepared_by_split = {}
            for name in args.candidates:
                config = base.model_copy(update=CANDIDATES[name])
                key = (config.validation_cutoffs, config.feature_set, config.target_cutoff_count)
                try:
                    if key not in prepared_by_split:
                        prepared_by_split[key] = prepare(tables, config)
                except ValueError as exc:
                    print(f"{data_name} {target} {name}: skipped — {exc}")
                    continue
                prepared = prepared_by_split[key]
                started = time.process_time()
                models = [
                    fit_origin(s, prepared.feature_set, prepared.label, config, {})
                    for s in prepared.origins.splits
                ]
                scores = [
                    score_origin(s, m, prepared, config, truth)
                    for s, m in zip(prepared.origins.splits, models, strict=True)
                ]
                evaluation = evaluate(scores, config)
                deltas = evaluation.deltas
                worst = deltas["ci_low"].idxmin()
                metrics = evaluation.metrics
                rows.append(
                    {
                        "data": data_name,
                        "target": target,
                        "candidate": name,
                        "origins": len(scores),
                        "roc_auc": metrics["roc_auc"],
                        "log_loss": metrics["log_loss"],
                        "ece": metrics["ece"],
                        "best_baseline_auc": evaluation.baselines["roc_auc"].max(),
                        "weakest_vs": worst,
                        "delta": deltas.loc[worst, "delta"],
                        "ci_low": deltas.loc[worst, "ci_low"],
                        "ci_high": deltas.loc[worst, "ci_high"],
                        "trees": models[0].best_iteration_,
                        "cpu_s": time.process_time() - started,
                    }
                )
                print(_progress(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data")
    parser.add_argument("--mapping")
    parser.add_argument("--targets", nargs="+", default=["churn", "vip"])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print_notes_once()
    frame = run(args)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
