"""Typed, frozen configuration of a training run, loaded from one TOML file.

Every key has a default that works out of the box, so ``winback train`` needs no
file at all; a file only overrides what it names. Unknown keys and bad values are
rejected with a message naming the key, so a typo never silently trains the
default model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.config_file import ConfigError, read_config_file
from features.targets import TargetName
from training.tracking.runs import TrackingConfig

#: Cutoffs a target's training table spans when ``cutoff_count`` is not set (12 otherwise).
#: Reactivation's population, the customers lapsed at a cutoff, is a small share of each
#: cutoff: twice the cutoffs lifted its ROC-AUC over three origins on two simulated shops
#: (0.760 -> 0.763 and 0.770 -> 0.778), and its lead over logistic regression with them.
#: VIP's lead narrowed with them (benchmarks/model_experiments.py), so VIP keeps 12.
TARGET_CUTOFF_COUNTS: dict[str, int] = {"reactivation": 24}

#: Metrics the promotion gate may compare, with whether higher is better.
GATE_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "lift_at_10": True,
    "capture_at_10": True,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LightGBMParams(_Frozen):
    """LightGBM hyper-parameters (scikit-learn API names) used when not tuning.

    ``n_estimators`` is an upper bound: early stopping on the validation period
    picks the number of trees actually kept. The defaults are deliberately
    small and regularised (few leaves, many customers per leaf, a low learning
    rate, row and column subsampling): churn signals are weak and noisy, and
    these settings beat a logistic regression across the simulated shop and
    real logs where larger trees overfit one period (see
    ``benchmarks/model_experiments.py``).
    """

    n_estimators: int = Field(3000, gt=0)
    learning_rate: float = Field(0.02, gt=0, le=1)
    num_leaves: int = Field(7, ge=2)
    max_depth: int = Field(-1, ge=-1)
    min_child_samples: int = Field(200, ge=1)
    subsample: float = Field(0.7, gt=0, le=1)
    subsample_freq: int = Field(1, ge=0)
    colsample_bytree: float = Field(0.5, gt=0, le=1)
    reg_alpha: float = Field(0.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    min_split_gain: float = Field(0.0, ge=0)


class TrainConfig(_Frozen):
    """Everything that decides what a training run does.

    Time layout: cutoffs every ``cutoff_every_days`` (``cutoff_count`` of them when
    set, else the target's default in :data:`TARGET_CUTOFF_COUNTS`, or as many as the
    data allows when ``None``), each labelled over the
    following ``horizon_days``. The latest ``test_cutoffs`` test, the
    ``validation_cutoffs`` before them validate (early stopping, calibration),
    the rest train — with a gap of ``horizon_days`` between the groups so no
    training label is observed after the validation cutoff (see
    ``training.split``).
    """

    target: TargetName = "churn"
    feature_set: str | None = Field(
        None, description="Feature set name; the target's default set when None."
    )
    horizon_days: int = Field(90, gt=0, le=3650)
    cutoff_every_days: int = Field(30, gt=0)
    cutoff_count: int | None = Field(12, ge=3)
    validation_cutoffs: int = Field(1, ge=1)
    test_cutoffs: int = Field(1, ge=1)
    test_origins: int = Field(
        3, ge=1, description="Rolling test origins (fewer, with a note, when history is short)."
    )
    bootstrap_resamples: int = Field(400, ge=50, description="Paired bootstrap resamples.")
    refit_on_validation: bool = Field(
        False,
        description="Refit on train + validation with the early-stopped tree count (off: "
        "measured, it left ROC-AUC unchanged and worsened calibration, the calibrator being "
        "fitted on the first fit's validation scores).",
    )
    seed: int = 42
    num_threads: int = Field(
        1,
        ge=1,
        description="LightGBM threads. One by default: the training tables are small (tens of "
        "thousands of rows), where a second OpenMP thread gains little on a quiet machine and "
        "costs up to 9x the CPU on a busy one (threads spinning at every barrier).",
    )
    lightgbm: LightGBMParams = LightGBMParams()
    early_stopping_rounds: int = Field(
        100,
        ge=1,
        description="Stop when validation ROC-AUC has not improved for this many trees. 100 at "
        "the default learning rate of 0.02: with 50, one demo-shop reactivation origin stopped "
        "at 2 trees on a noisy early AUC peak (test ROC-AUC 0.750 against 0.760 with 100).",
    )
    eval_metric: Literal["auc", "binary_logloss"] = "auc"
    tune_trials: int = Field(0, ge=0)
    tune_timeout_seconds: float | None = Field(None, gt=0)
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    gate_metric: str = "roc_auc"
    gate_min_improvement: float = Field(0.0, ge=0)
    contact_cost: float = Field(1.0, ge=0)
    offer_value: float = Field(10.0, ge=0)
    bgnbd_feature_experiment: bool = Field(
        False,
        description="Also fit with BG/NBD expected purchases as a feature and log both test "
        "ROC-AUCs (one more fit; measured +0.0015 AUC, so off by default).",
    )
    report: bool = Field(True, description="Make the plots and the HTML model report.")
    label: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of features.labels.LabelConfig."
    )
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("gate_metric")
    @classmethod
    def _known_gate_metric(cls, value: str) -> str:
        if value not in GATE_METRICS:
            raise ValueError(f"unknown gate metric {value!r}; choose one of {sorted(GATE_METRICS)}")
        return value

    @model_validator(mode="after")
    def _label_config_valid(self) -> TrainConfig:
        if "horizon_days" in self.label and self.label["horizon_days"] != self.horizon_days:
            raise ValueError(
                f"label.horizon_days ({self.label['horizon_days']}) differs from horizon_days "
                f"({self.horizon_days}); set horizon_days only"
            )
        try:
            label_config(self)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"label: {exc}") from None
        return self

    @property
    def target_cutoff_count(self) -> int | None:
        """The cutoffs this run's table spans: ``cutoff_count`` when set, else the target's default.

        The defaults are :data:`TARGET_CUTOFF_COUNTS` (12 for a target not listed).
        """
        if "cutoff_count" in self.model_fields_set:
            return self.cutoff_count
        return TARGET_CUTOFF_COUNTS.get(self.target, self.cutoff_count)

    @property
    def gate_higher_is_better(self) -> bool:
        """Whether a larger ``gate_metric`` means a better model."""
        return GATE_METRICS[self.gate_metric]


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid training config {source}:"]
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"])
        if not key:
            lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
        elif err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; see TrainConfig)")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def train_config_from_dict(data: dict[str, Any], *, source: str = "") -> TrainConfig:
    """Validate a mapping into a :class:`TrainConfig`, raising :class:`ConfigError`.

    Accepts either the keys at the top level or under a ``[train]`` table, so the
    same file can later hold other sections.
    """
    if "train" in data and isinstance(data["train"], dict):
        data = data["train"]
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source or "(dict)")) from None


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """The training config from a TOML file (defaults when ``path`` is None).

    ``overrides`` (e.g. ``target="vip"``, ``tune_trials=20``) win over the file;
    ``None`` values are ignored so CLI options left unset keep the file's value.
    """
    data: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        source = str(path)
        data = read_config_file(path, "training config file")
        if "train" in data and isinstance(data["train"], dict):
            data = data["train"]
        elif isinstance(data.get("features"), dict):  # a winback.toml with no [train] section
            data = {k: v for k, v in data.items() if k != "features"}
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return train_config_from_dict(data, source=source)


def label_column(target: str) -> str:
    """The training table's label column of a target (``churn`` → ``churned`` ...)."""
    from features.training_table import TARGETS

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[target]


def label_config(config: TrainConfig):
    """The ``features.labels.LabelConfig`` of a training config (horizon from ``horizon_days``)."""
    from features.labels import LabelConfig
    from features.tiers import TierConfig

    options = {k: v for k, v in config.label.items() if k != "horizon_days"}
    tiers = options.pop("tiers", None)
    if isinstance(tiers, dict):
        tiers = dict(tiers)
        if "bands" in tiers:
            tiers["bands"] = tuple((str(n), float(f)) for n, f in tiers["bands"])
        if "vip_tiers" in tiers:
            tiers["vip_tiers"] = tuple(tiers["vip_tiers"])
        options["tiers"] = TierConfig(**tiers)
    elif tiers is not None:
        options["tiers"] = tiers
    return LabelConfig(horizon_days=config.horizon_days, **options)
