"""Customer-value model quality: every model variant and baseline over rolling origins.

Run from the project root::

    uv run --frozen python benchmarks/value_quality.py                       # demo-size simulated shop
    uv run --frozen python benchmarks/value_quality.py --customers 2000
    uv run --frozen python benchmarks/value_quality.py \\
        --data ../shared/data/online_retail_I.csv.gz --mapping online-retail

Builds the value table (margin, or revenue without a margin column, over the
longest horizon up to 365 days the history can evaluate), fits each model
variant (Tweedie, Tweedie from a BG/NBD x Gamma-Gamma offset, hurdle) and each
baseline (trailing value carried forward, BG/NBD x Gamma-Gamma) at each test
origin, and prints the mean over origins of every value metric, the per-origin
Gini and the paired-bootstrap Gini gain of each variant over each baseline.
Prints figures and asserts nothing; CPU time is printed next to wall time
because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.feature_sets import VALUE_FEATURES_V1  # noqa: E402
from features.inputs.sources import load_shop  # noqa: E402
from features.simulation import SimulationConfig, simulate_shop  # noqa: E402
from features.value_table import build_value_table, supported_value_horizon  # noqa: E402
from training.evaluation.value_baselines import value_summary_at_cutoffs  # noqa: E402
from training.evaluation.value_evaluation import evaluate_value_models, value_cutoffs  # noqa: E402
from training.model.value_model import VALUE_MODEL_VARIANTS, WinbackValueRegressor  # noqa: E402


def load(args: argparse.Namespace):
    if args.data:
        return load_shop(Path(args.data), args.mapping).tables, Path(args.data).name
    config = SimulationConfig(customers=args.customers, seed=args.seed)
    return simulate_shop(config).tables, f"simulated shop ({args.customers} customers)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a transaction file or folder (default: simulated shop)")
    parser.add_argument("--mapping", help="column mapping of --data, e.g. online-retail")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon-days", type=int, default=365)
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads per fit")
    parser.add_argument("--variants", nargs="+", default=list(VALUE_MODEL_VARIANTS))
    args = parser.parse_args(argv)
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables, name = load(args)
        horizon = supported_value_horizon(tables, args.horizon_days, origins=args.origins)
        cutoffs = value_cutoffs(tables, horizon, test_origins=args.origins)
        table = build_value_table(
            tables, cutoffs, horizon_days=horizon, feature_set=VALUE_FEATURES_V1
        )
        summary = value_summary_at_cutoffs(tables, cutoffs)
        print(
            f"{name}: {table.attrs['value_basis']} over {horizon} days "
            f"(asked {args.horizon_days}); {len(table):,} rows at {len(cutoffs)} cutoffs "
            f"{cutoffs[0]} .. {cutoffs[-1]}",
            flush=True,
        )
        result = evaluate_value_models(
            table,
            VALUE_FEATURES_V1,
            summary=summary,
            variants=args.variants,
            test_origins=args.origins,
            factory=lambda variant, used: WinbackValueRegressor(
                used, num_threads=args.threads, **VALUE_MODEL_VARIANTS[variant]
            ),
            n_boot=args.boot,
        )
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    origins = sorted(result.per_origin["origin"].unique())
    print(f"\nmean over {len(origins)} origins {[str(o.date()) for o in origins]}:")
    print(result.mean.round(3).to_string())
    print("\nnormalized Gini per origin:")
    print(result.per_origin.pivot(index="scorer", columns="origin", values="normalized_gini")
          .round(3).to_string())  # fmt: skip
    print("\nGini gain over each baseline (paired bootstrap, customers resampled within origins):")
    print(result.deltas.round(4).to_string(index=False))
    load_average = os.getloadavg()[0]
    print(
        f"\nwall {time.perf_counter() - wall:.0f} s, CPU {time.process_time() - cpu:.0f} s, "
        f"load average {load_average:.1f}"
    )


if __name__ == "__main__":
    main()
