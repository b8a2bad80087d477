"""Training the value model end to end, short of tracking: prepare -> evaluate -> fit.

The steps ``winback train --target value`` wires to MLflow and the registry:
the value table over the longest horizon the history supports (365 days by
default, said in a note when shorter), the rolling-origin evaluation of the
chosen variant against both baselines, and the deployable model fitted on the
latest cutoffs. Metric names follow the classifiers': ``test_<metric>`` is the
model's mean over origins, ``baseline_<name>_<metric>`` a baseline's,
``origin_<k>_<metric>`` the model at origin ``k`` and
``delta_normalized_gini_<baseline>[_ci_low|_ci_high]`` the paired-bootstrap gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from features.feature_sets import VALUE_FEATURES_V1, FeatureSet
from features.inputs.schema import ShopTables
from features.labels import LabelConfig
from features.value_table import VALUE_HORIZON_DAYS, build_value_table, supported_value_horizon
from training.evaluation.value_baselines import value_summary_at_cutoffs
from training.evaluation.value_evaluation import (
    ValueEvaluation,
    evaluate_value_models,
    value_cutoffs,
)
from training.evaluation.value_metrics import VALUE_METRICS
from training.evaluation.value_plots import plot_value_deciles
from training.model.value_model import VALUE_MODEL_VARIANTS, WinbackValueRegressor
from training.value_fit import DEFAULT_VARIANT, FittedValueModel, fit_value_model


@dataclass(frozen=True)
class ValueSettings:
    """What a value training run is asked for (``[value]`` in winback.toml)."""

    horizon_days: int = VALUE_HORIZON_DAYS
    test_origins: int = 3
    train_cutoffs: int = 12
    variant: str = DEFAULT_VARIANT
    num_threads: int = 2
    n_boot: int = 200
    label: LabelConfig = field(default_factory=LabelConfig)


@dataclass
class PreparedValueData:
    """The value table, the BTYD summary at its cutoffs and notes for the report."""

    table: pd.DataFrame
    summary: pd.DataFrame
    horizon_days: int
    notes: list[str]


@dataclass
class ValueTrainingResult:
    """The evaluated and fitted value model, with what to log about it."""

    model: FittedValueModel
    evaluation: ValueEvaluation
    notes: list[str]

    def metrics(self) -> dict[str, float]:
        """Flat metrics: ``test_*``, ``baseline_<name>_*``, ``origin_<k>_*``, ``delta_*``."""
        variant = self.model.variant
        mean = self.evaluation.mean
        out: dict[str, float] = {}
        for scorer, row in mean.iterrows():
            prefix = "test" if scorer == variant else f"baseline_{scorer}"
            if scorer != variant and scorer in VALUE_MODEL_VARIANTS:
                prefix = f"variant_{scorer}"
            out.update({f"{prefix}_{m}": float(row[m]) for m in VALUE_METRICS})
        per_origin = self.evaluation.per_origin
        model_rows = per_origin[per_origin["scorer"] == variant].sort_values("origin")
        for k, (_, row) in enumerate(model_rows.iterrows(), start=1):
            out.update({f"origin_{k}_{m}": float(row[m]) for m in VALUE_METRICS})
        for _, row in self.evaluation.deltas.iterrows():
            if row["model"] == variant:
                key = f"delta_normalized_gini_{row['baseline']}"
                out.update({key: row["delta"], f"{key}_ci_low": row["ci_low"],
                            f"{key}_ci_high": row["ci_high"]})  # fmt: skip
        return {k: float(v) for k, v in out.items() if not math.isnan(float(v))}

    def verdict(self) -> str:
        """Either "beats every baseline", or which it does not beat and by how much (with the CI)."""
        rows = self.evaluation.deltas[self.evaluation.deltas["model"] == self.model.variant]
        short = [
            f"{r.baseline} (Δ Gini {r.delta:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}])"
            for r in rows.itertuples()
            if r.ci_low <= 0
        ]
        return "beats every baseline" if not short else "does not beat " + ", ".join(short)

    def loses_to(self) -> list[str]:
        """Baselines the model loses to: the whole interval of the Gini gain below zero."""
        rows = self.evaluation.deltas[self.evaluation.deltas["model"] == self.model.variant]
        return [r.baseline for r in rows.itertuples() if r.ci_high < 0]

    def figures(self) -> dict[str, Figure]:
        """The decile plot of the model and the baselines over every origin."""
        predictions = self.evaluation.predictions
        scorers = [self.model.variant, *[s for s in ("btyd", "trailing") if s in predictions]]
        ax = plot_value_deciles(predictions["y"], {s: predictions[s].to_numpy() for s in scorers})
        return {"value_deciles.png": ax.figure}


def prepare_value_data(
    tables: ShopTables, settings: ValueSettings, feature_set: FeatureSet = VALUE_FEATURES_V1
) -> PreparedValueData:
    """The value table and BTYD summary over the cutoffs the evaluation and the final fit need."""
    horizon = supported_value_horizon(tables, settings.horizon_days, origins=settings.test_origins)
    notes = []
    if horizon != settings.horizon_days:
        notes.append(
            f"value horizon {horizon} days instead of {settings.horizon_days}: the history is too "
            f"short to train and test {settings.test_origins} origins a full horizon apart"
        )
    cutoffs = value_cutoffs(
        tables, horizon, test_origins=settings.test_origins, train_cutoffs=settings.train_cutoffs
    )
    table = build_value_table(
        tables, cutoffs, horizon_days=horizon, feature_set=feature_set, label_config=settings.label
    )
    if table.attrs["value_basis"] == "revenue":
        notes.append("value is revenue: the data has no margin column (map one to learn margin)")
    return PreparedValueData(table, value_summary_at_cutoffs(tables, cutoffs), horizon, notes)


def train_value(
    tables: ShopTables,
    settings: ValueSettings = ValueSettings(),
    feature_set: FeatureSet = VALUE_FEATURES_V1,
) -> ValueTrainingResult:
    """Prepare, evaluate over rolling origins, then fit the deployable model on the latest cutoffs."""
    data = prepare_value_data(tables, settings, feature_set)

    def factory(variant: str, used: FeatureSet) -> WinbackValueRegressor:
        return WinbackValueRegressor(
            used, num_threads=settings.num_threads, **VALUE_MODEL_VARIANTS[variant]
        )

    evaluation = evaluate_value_models(
        data.table,
        feature_set,
        summary=data.summary,
        variants=(settings.variant,),
        test_origins=settings.test_origins,
        factory=factory,
        n_boot=settings.n_boot,
    )
    origins = evaluation.per_origin["origin"].nunique()
    notes = list(data.notes)
    if origins < settings.test_origins:
        notes.append(f"{origins} test origin(s) instead of {settings.test_origins}: short history")
    model = fit_value_model(
        data.table,
        data.summary,
        feature_set,
        variant=settings.variant,
        train_cutoffs=settings.train_cutoffs,
        num_threads=settings.num_threads,
    )
    return ValueTrainingResult(model, evaluation, notes)
