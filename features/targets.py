"""The targets winback models: one table every package reads.

A target is what a model predicts for each customer at a cutoff. Its label
(``features.labels``), the customers it is defined for, the score column in
score tables and the API, and its registered model in MLflow are named here
once; features, training, serving and the command line look them up instead of
spelling them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Target:
    """One classification target.

    ``label`` is the column of ``features.labels.build_labels`` (``<NA>``
    outside ``population``); ``score_column`` the probability's name in score
    tables, lists and the API; ``model_name`` the MLflow registered model.
    """

    name: str
    label: str
    population: str
    score_column: str

    @property
    def model_name(self) -> str:
        """The MLflow registered model: ``winback-<name>``."""
        return f"winback-{self.name}"


#: The classification targets, in the order commands and reports show them.
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "churn",
            label="churned",
            population="customers active at the cutoff (is_active)",
            score_column="churn_risk",
        ),
        Target(
            "vip",
            label="became_vip",
            population="customers active and not VIP at the cutoff (is_active & ~is_vip)",
            score_column="vip_potential",
        ),
        Target(
            "reactivation",
            label="reactivated",
            population="customers lapsed at the cutoff (is_lapsed)",
            score_column="reactivation_probability",
        ),
    )
}

#: Names of the classification targets.
TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)

#: Targets with pipelines of their own (regression of value; campaign uplift).
OTHER_TARGET_NAMES: tuple[str, ...] = ("value", "uplift")

#: A classification target's name as a type, for pydantic settings and request models.
TargetName = Literal[TARGET_NAMES]  # type: ignore[valid-type]


def target(name: str) -> Target:
    """The classification target called ``name``; a clear error for any other name."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(
            f"unknown target {name!r}: expected one of {', '.join(TARGET_NAMES)}"
        ) from None


def score_columns() -> dict[str, str]:
    """Target name -> score column, for every classification target."""
    return {name: t.score_column for name, t in TARGETS.items()}
