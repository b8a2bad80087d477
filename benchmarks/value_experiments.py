"""Which value-model choices generalise across shops: candidates judged over rolling origins.

Run from the project root::

    uv run --frozen --extra dev python benchmarks/value_experiments.py \\
        [--data ../shared/data/online_retail_I.csv.gz --mapping online-retail] \\
        [--customers 20000 --seed 0] [--candidates current small ...] [--cache /tmp/value_exp]

The value table and the BTYD summary
are built once per dataset (and kept in ``--cache`` when given), then every
candidate -- a feature set and regressor settings -- is fitted at each test
origin next to the baselines (``evaluate_value_models``). Prints per candidate
the mean normalized Gini over origins, its paired-bootstrap gain over trailing
value, over BG/NBD x Gamma-Gamma and over the ``current`` model, and what a
blend of each with a baseline would rank like at fixed weights (chosen on the
test rows, so an upper bound). Nothing is logged; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from value_quality import load  # noqa: E402  (this folder: run as a script)

from features.feature_sets import VALUE_FEATURES_V1, FeatureSet  # noqa: E402
from features.value_table import build_value_table, supported_value_horizon  # noqa: E402
from training.evaluation.value_baselines import value_summary_at_cutoffs  # noqa: E402
from training.evaluation.value_evaluation import evaluate_value_models, value_cutoffs  # noqa: E402
from training.evaluation.value_metrics import normalized_gini, paired_bootstrap_delta  # noqa: E402
from training.model.value_model import WinbackValueRegressor  # noqa: E402

#: Money features a customer's future value should not fall with, other things equal.
MONEY_FEATURES = ("spend_365d_amount", "margin_365d_amount", "spend_90d_amount")


@dataclass(frozen=True)
class Candidate:
    """A feature set and the regressor's keyword arguments."""

    feature_set: FeatureSet
    params: dict[str, Any] = field(default_factory=dict)
    monotone: tuple[str, ...] = ()
    #: False: fit all ``n_estimators`` trees, not stopping early on the hold-out.
    stop_early: bool = True


class _WithoutStopping(WinbackValueRegressor):
    """The regressor fitted for all its ``n_estimators``, the hold-out ignored."""

    def fit(self, X, y, *, eval_set=None):
        return super().fit(X, y)


_OFFSET = {"loss": "tweedie", "offset": "btyd_expected_value"}
#: The classifiers' regularised defaults (``training.config.LightGBMParams``).
_SMALL = {
    "num_leaves": 7,
    "min_child_samples": 200,
    "learning_rate": 0.02,
    "subsample": 0.7,
    "colsample_bytree": 0.5,
}
_V1 = VALUE_FEATURES_V1

CANDIDATES: dict[str, Candidate] = {
    "current": Candidate(_V1, _OFFSET),
    "patience200": Candidate(_V1, {**_OFFSET, "early_stopping_rounds": 200}),
    "power1.2": Candidate(_V1, {**_OFFSET, "lightgbm": {"tweedie_variance_power": 1.2}}),
    "power1.8": Candidate(_V1, {**_OFFSET, "lightgbm": {"tweedie_variance_power": 1.8}}),
    "small": Candidate(_V1, {**_OFFSET, "lightgbm": _SMALL}),
    "monotone": Candidate(_V1, _OFFSET, monotone=MONEY_FEATURES),
    "trees150": Candidate(_V1, {**_OFFSET, "lightgbm": {"n_estimators": 150}}, stop_early=False),
    "trees400": Candidate(_V1, {**_OFFSET, "lightgbm": {"n_estimators": 400}}, stop_early=False),
    "no_offset": Candidate(_V1, {"loss": "tweedie"}),
    "hurdle": Candidate(_V1, {"loss": "hurdle"}),
}


def _regressor(name: str, used: FeatureSet, threads: int) -> WinbackValueRegressor:
    candidate = CANDIDATES[name]
    fs = candidate.feature_set.subset(used.names)
    params = dict(candidate.params)
    if candidate.monotone:
        lightgbm = dict(params.get("lightgbm", {}))
        lightgbm["monotone_constraints"] = [int(n in candidate.monotone) for n in fs.names]
        lightgbm["monotone_constraints_method"] = "advanced"
        params["lightgbm"] = lightgbm
    kind = WinbackValueRegressor if candidate.stop_early else _WithoutStopping
    return kind(fs, num_threads=threads, **params)


def prepare(args: argparse.Namespace) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The dataset's name, value table and BTYD summary (from the cache when it has them)."""
    key = Path(args.data).name if args.data else f"sim_{args.customers}_{args.seed}"
    path = (
        Path(args.cache) / f"{key}_{VALUE_FEATURES_V1.name}_{args.horizon_days}_{args.origins}.pkl"
        if args.cache
        else None
    )
    if path is not None and path.exists():
        with path.open("rb") as handle:
            return pickle.load(handle)
    tables, name = load(args)
    horizon = supported_value_horizon(tables, args.horizon_days, origins=args.origins)
    cutoffs = value_cutoffs(tables, horizon, test_origins=args.origins)
    table = build_value_table(tables, cutoffs, horizon_days=horizon, feature_set=VALUE_FEATURES_V1)
    prepared = (name, table, value_summary_at_cutoffs(tables, cutoffs))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            pickle.dump(prepared, handle)
    return prepared


def summarise(predictions: pd.DataFrame, candidates: list[str], boot: int) -> pd.DataFrame:
    """Mean Gini per candidate and its paired gain over the baselines and ``current``."""
    rows = []
    for name in candidates:
        row: dict[str, Any] = {"candidate": name}
        for other in ("trailing", "btyd", "current"):
            if other == name or other not in predictions:
                continue
            d = paired_bootstrap_delta(
                predictions["y"], predictions[name], predictions[other],
                groups=predictions["origin"], n_boot=boot,
            )  # fmt: skip
            row[f"vs {other}"] = f"{d['delta']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
        rows.append(row)
    return pd.DataFrame(rows).set_index("candidate")


def blend_upper_bounds(predictions: pd.DataFrame, candidates: list[str]) -> pd.DataFrame:
    """Mean Gini of ``(1 - w) x candidate + w x baseline`` (scaled to the candidate's total).

    The weight is not chosen here, every one is shown on the test rows: an upper
    bound of what a blend chosen on validation could give, to decide whether to build one.
    """
    rows = []
    for name in candidates:
        for reference in ("btyd", "trailing"):
            for w in (0.0, 0.25, 0.5, 0.75):
                ginis = []
                for _, rows_at in predictions.groupby("origin"):
                    model = rows_at[name].to_numpy()
                    other = rows_at[reference].clip(lower=0).to_numpy()
                    mix = (1 - w) * model + w * other * model.sum() / max(other.sum(), 1e-9)
                    ginis.append(normalized_gini(rows_at["y"].to_numpy(), mix))
                rows.append({"candidate": name, "with": reference, "w": w,
                             "gini": sum(ginis) / len(ginis)})  # fmt: skip
    table = pd.DataFrame(rows)
    return table.pivot_table(index=["candidate", "with"], columns="w", values="gini")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data")
    parser.add_argument("--mapping")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon-days", type=int, default=365)
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", help="folder keeping prepared tables between runs")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--predictions", help="write the per-row predictions to this pickle")
    args = parser.parse_args(argv)
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name, table, summary = prepare(args)
        print(f"{name}: {len(table):,} rows, horizon {table.attrs['horizon_days']} days, "
              f"prepared in {time.process_time() - cpu:.0f} CPU s", flush=True)  # fmt: skip
        result = evaluate_value_models(
            table,
            VALUE_FEATURES_V1,
            summary=summary,
            variants=args.candidates,
            test_origins=args.origins,
            factory=lambda variant, used: _regressor(variant, used, args.threads),
            n_boot=2,  # the intervals that matter are computed below
        )
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 20)
    gini = result.per_origin.pivot(index="scorer", columns="origin", values="normalized_gini")
    gini["mean"] = gini.mean(axis=1)
    other = result.mean[["top_decile_capture", "decile_calibration_error", "spearman"]]
    print(gini.join(other).round(4).to_string())
    print(summarise(result.predictions, args.candidates, args.boot).to_string())
    print(blend_upper_bounds(result.predictions, args.candidates).round(4).to_string())
    trees = {name: model.best_iteration_ for name, model in result.models.items()}
    print(f"trees at the last origin: {trees}")
    if args.predictions:
        result.predictions.to_pickle(args.predictions)
    print(
        f"wall {time.perf_counter() - wall:.0f} s, CPU {time.process_time() - cpu:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
