"""Model quality on the simulated shop (issues #4 and #6): prints figures, asserts nothing.

Run from the project root::

    uv run --frozen python benchmarks/model_quality.py [--seeds 0 1] [--targets churn ...]

For each seed, on the demo-size simulated shop with the default training
config: test ROC-AUC of the model, each baseline and the oracle for ``churn``,
``vip`` and ``reactivation`` (the same runs as ``winback train``, logged to a
throw-away MLflow store), and the win-back list's top-decile reactivation rate
over the lapsed base rate (``benchmarks/lists_evaluation.py``'s measurement).

The churn oracle is the pipeline's (true no-purchase probability from the
latent state, on the model's test rows); the reactivation oracle is one minus
it (with the win-back bursts already started) on the reactivation test rows.
VIP has no oracle. CPU time is printed next to wall time because the machine
may be shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features.labels import build_labels  # noqa: E402
from features.simulate import (  # noqa: E402
    SimulationConfig,
    oracle_churn_probability,
    simulate_shop,
)
from training.config import TrainConfig, label_config  # noqa: E402
from training.pipeline import train_target  # noqa: E402

TARGETS = ("churn", "vip", "reactivation")


def reactivation_oracle_auc(shop, test_cutoff: dt.date, config: TrainConfig) -> float:
    """ROC-AUC of the true reactivation probability on the lapsed customers at ``test_cutoff``."""
    labels = build_labels(shop.tables, [test_cutoff], label_config(config)).droplevel("cutoff")
    lapsed = labels[labels["is_lapsed"].astype(bool)]
    y = lapsed["reactivated"].astype(bool).to_numpy()
    churn = oracle_churn_probability(
        shop, test_cutoff, config.horizon_days, contact_truth=shop.contact_truth
    )
    return float(roc_auc_score(y, 1.0 - churn.reindex(lapsed.index).to_numpy(dtype=float)))


def seed_figures(
    seed: int, customers: int, store: Path, targets: tuple[str, ...] = TARGETS
) -> pd.DataFrame:
    """Test ROC-AUC per target and scorer, plus the win-back top-decile ratio, for one seed."""
    from lists_evaluation import train_reactivation, winback_top_decile

    shop = simulate_shop(SimulationConfig(customers=customers, seed=seed))
    rows = []
    for target in targets:
        config = TrainConfig(
            target=target,
            report=False,
            bgnbd_feature_experiment=False,
            tracking={"root": str(store / f"seed{seed}"), "register_model": False},
        )
        cpu, wall = time.process_time(), time.perf_counter()
        result = train_target(shop.tables, config, truth=shop)
        auc = result.comparison["roc_auc"].to_dict()
        if target == "reactivation":
            test_cutoff = pd.Timestamp(result.split["test_cutoffs"][-1]).date()
            auc["oracle"] = reactivation_oracle_auc(shop, test_cutoff, config)
        for scorer, value in auc.items():
            rows.append({"seed": seed, "target": target, "scorer": scorer, "roc_auc": value})
        print(
            f"seed {seed} {target}: model {auc['model']:.4f}, oracle {auc.get('oracle', np.nan):.4f}"
            f" ({time.process_time() - cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall)",
            flush=True,
        )
    last_day = shop.tables.last_event_at().date()
    model = train_reactivation(shop.tables, dt.date(2025, 5, 31))
    decile = winback_top_decile(shop.tables, model, last_day - dt.timedelta(days=90))
    for name in ("value-weighted", "by probability"):
        rows.append(
            {
                "seed": seed,
                "target": "winback top decile / base",
                "scorer": name,
                "roc_auc": decile[name] / decile["base_rate"],
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument(
        "--targets", nargs="*", default=list(TARGETS), help="targets to train (none: lists only)"
    )
    args = parser.parse_args()
    pd.set_option("display.width", 160)
    cpu, wall = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as store:
        frames = [
            seed_figures(seed, args.customers, Path(store), tuple(args.targets))
            for seed in args.seeds
        ]
    figures = pd.concat(frames)
    table = figures.pivot_table(
        index=["target", "scorer"], columns="seed", values="roc_auc", sort=False
    )
    print("\ntest ROC-AUC by target and scorer (win-back rows: top-decile rate / lapsed base rate)")
    print(table.round(4).to_string())
    print(f"\n{time.process_time() - cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall")


if __name__ == "__main__":
    main()
