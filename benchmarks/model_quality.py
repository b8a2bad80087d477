"""Model quality: every dataset × target × scorer over rolling test origins, with intervals.

Run from the project root (a throw-away MLflow store; nothing is registered)::

    uv run --frozen python benchmarks/model_quality.py [--customers 20000] [--seeds 0] \
        [--data ../shared/data/online_retail_I.csv.gz --mapping online-retail] \
        [--targets churn vip reactivation]

For each dataset (the simulated shop per seed, and each ``--data`` file) and
target, ``winback train``'s pipeline runs with the default config: the table
has one row per scorer (the model, each baseline, the oracle on simulated
churn) with the mean over the test origins of ROC-AUC, PR-AUC, log loss, Brier
and ECE, and for each baseline the ROC-AUC difference model − baseline with
its paired bootstrap 95% interval. A target the data cannot support is listed
as skipped with the reason. CPU time is printed next to wall time because the
machine may be shared. Prints figures, asserts nothing; warnings and log
records (MLflow's, the omitted features') go to ``model_quality.log`` in the
working directory, as a ``winback`` command keeps them. (The win-back list's
top-decile measurement is ``benchmarks/lists_evaluation.py``.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import TrainConfig  # noqa: E402
from training.pipeline import UnsupportedTargetError, train_target  # noqa: E402
from winback.terminal import third_party_to_file  # noqa: E402

TARGETS = ("churn", "vip", "reactivation")
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")


def datasets(args):
    """(name, tables, truth) of every dataset asked for, loaded lazily."""
    from features.simulation import SimulationConfig, simulate_shop

    for seed in args.seeds:
        shop = simulate_shop(SimulationConfig(customers=args.customers, seed=seed))
        yield f"simulated {args.customers:,} seed {seed}", shop.tables, shop
    for path in args.data or []:
        from winback.shop import load_tables

        tables, truth = load_tables(Path(path), args.mapping, config=None)
        yield Path(path).name, tables, truth


def dataset_rows(name: str, tables, truth, targets, store: Path) -> list[dict]:
    """One row per target and scorer (or one "skipped" row per unsupported target)."""
    rows = []
    for target in targets:
        config = TrainConfig(
            target=target,
            report=False,
            bgnbd_feature_experiment=False,
            tracking={"root": str(store / name.replace(" ", "_")), "register_model": False},
        )
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            result = train_target(tables, config, truth=truth)
        except UnsupportedTargetError as exc:
            rows.append({"data": name, "target": target, "scorer": "skipped"})
            print(f"{name} {target}: skipped — {str(exc).splitlines()[0]}", flush=True)
            continue
        deltas = result.evaluation.deltas
        for scorer, metrics in result.comparison.iterrows():
            row = {"data": name, "target": target, "scorer": scorer}
            row.update({m: metrics.get(m) for m in METRICS})
            if scorer in deltas.index:
                d = deltas.loc[scorer]
                row["model − it: ΔAUC [95% CI]"] = (
                    f"{d['delta']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
                )
            rows.append(row)
        print(
            f"{name} {target}: {result.verdict} ({len(result.origins)} origins; "
            f"{time.process_time() - cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall)",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--data", nargs="*", help="real data files (loaded with --mapping)")
    parser.add_argument("--mapping")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    args = parser.parse_args()
    cpu, wall = time.process_time(), time.perf_counter()
    rows = []
    log = Path("model_quality.log").resolve()
    with tempfile.TemporaryDirectory() as store, third_party_to_file(log):
        for name, tables, truth in datasets(args):
            rows += dataset_rows(name, tables, truth, args.targets, Path(store))
    print(f"warnings and log records: {log}")
    table = pd.DataFrame(rows).set_index(["data", "target", "scorer"])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\nmean over test origins; ΔAUC = model − baseline, paired bootstrap 95% interval")
        print(table.round(4).astype(object).fillna("").to_string())
    print(f"\n{time.process_time() - cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall")


if __name__ == "__main__":
    main()
