"""Does predicted value make a better at-risk list? The simulator knows what each customer brought.

Run from the project root::

    uv run --frozen python benchmarks/value_lists.py [--customers 20000]

At the last cutoff whose 365-day horizon is observed, a churn model (trained
on earlier cutoffs, a 90-day horizon apart) scores the active customers; the
value model is fitted on cutoffs a full value horizon earlier. The at-risk list
ranks by value at risk: today's rule ``churn_risk x trailing 12-month margin``
against ``churn_risk x predicted_value``. Printed: the realised margin of the top
10% of each list over the next 90 and 365 days (what the simulated customers
actually brought), and the same for ranking by value alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.feature_sets import CHURN_FEATURES_V2, VALUE_FEATURES_V1  # noqa: E402
from features.labels import LabelConfig, build_labels  # noqa: E402
from features.simulation import SimulationConfig, simulate_shop  # noqa: E402
from features.training_table import build_training_table, monthly_cutoffs  # noqa: E402
from features.value_table import build_value_table  # noqa: E402
from training.evaluation.value_baselines import value_summary_at_cutoffs  # noqa: E402
from training.evaluation.value_evaluation import value_cutoffs  # noqa: E402
from training.model.classifier import WinbackClassifier  # noqa: E402
from training.split import time_split  # noqa: E402
from training.value_fit import fit_value_model  # noqa: E402

HORIZON = 365
CHURN_HORIZON = 90


def churn_risk(tables, test_cutoff) -> pd.Series:
    """A churn model trained on cutoffs before ``test_cutoff``, scored at it (active customers)."""
    cutoffs = [c for c in monthly_cutoffs(tables, CHURN_HORIZON) if c <= test_cutoff][-16:]
    table = build_training_table(tables, "churn", cutoffs, feature_set=CHURN_FEATURES_V2)
    split = time_split(table, gap_days=CHURN_HORIZON)
    features = CHURN_FEATURES_V2.subset(table.columns)
    names = list(features.names)
    model = WinbackClassifier(features, num_threads=1).fit(
        split.train[names],
        split.train["churned"],
        eval_set=(split.validation[names], split.validation["churned"]),
    )
    test = split.test.droplevel("cutoff")
    return pd.Series(model.predict_proba(test[names]), index=test.index, name="churn_risk")


def predicted_value(tables, test_cutoff) -> pd.Series:
    """The value model fitted a full horizon before ``test_cutoff``, predicting at it."""
    cutoffs = [c for c in value_cutoffs(tables, HORIZON, test_origins=1) if c <= test_cutoff]
    table = build_value_table(tables, cutoffs, horizon_days=HORIZON, feature_set=VALUE_FEATURES_V1)
    summary = value_summary_at_cutoffs(tables, cutoffs)
    train = table[
        table.index.get_level_values("cutoff")
        <= pd.Timestamp(cutoffs[-1]) - pd.Timedelta(days=HORIZON)
    ]
    train.attrs = table.attrs
    model = fit_value_model(train, summary, VALUE_FEATURES_V1, num_threads=1)
    at = table.xs(pd.Timestamp(test_cutoff), level="cutoff")
    rows = summary.xs(pd.Timestamp(test_cutoff), level="cutoff")
    return pd.Series(model.predict(at, rows), index=at.index, name="predicted_value")


def top_share(score: pd.Series, realised: pd.Series, fraction: float = 0.1) -> float:
    """Realised total of the top ``fraction`` by score (ties by customer id)."""
    order = np.lexsort((score.index.to_numpy().astype(str), -score.to_numpy()))
    k = int(np.ceil(fraction * len(score)))
    return float(realised.iloc[order[:k]].sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = simulate_shop(SimulationConfig(customers=args.customers, seed=args.seed)).tables
        test_cutoff = monthly_cutoffs(tables, HORIZON, count=1)[-1]
        risk = churn_risk(tables, test_cutoff)
        value = predicted_value(tables, test_cutoff)
        outcomes = {
            days: build_labels(tables, [test_cutoff], LabelConfig(horizon_days=days)).droplevel(
                "cutoff"
            )["future_margin"]
            for days in (CHURN_HORIZON, HORIZON)
        }
        status = build_labels(tables, [test_cutoff], LabelConfig()).droplevel("cutoff")
    active = risk.index
    trailing = np.maximum(status.loc[active, "trailing_margin"], 0.0)
    rankings = {
        "old rule: churn_risk x trailing margin": risk * trailing,
        "new: churn_risk x predicted_value": risk * value.reindex(active),
        "trailing margin alone": trailing,
        "predicted_value alone": value.reindex(active),
    }
    print(f"at-risk list at {test_cutoff}: {len(active):,} active customers, top 10% listed")
    for days, realised in outcomes.items():
        r = realised.reindex(active).fillna(0.0)
        print(
            f"\nrealised margin of the top 10% over the next {days} days (all active: {r.sum():,.0f}):"
        )
        for name, score in rankings.items():
            print(f"  {name:<42} {top_share(score, r):>12,.0f}")
    print(f"\nwall {time.perf_counter() - wall:.0f} s, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
