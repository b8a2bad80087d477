"""How many customers of a ranked list to contact: top N, a budget, or the profit-optimal cut.

A list is ranked best first by the value it is built for (value at risk, expected
incremental margin, ...). Targeting keeps a prefix of it:

* ``top``: the first N rows;
* ``budget`` with ``contact_cost``: as many rows as the budget pays for;
* ``profit_optimal``: every row whose expected incremental margin exceeds the
  contact cost (on a list ranked by that margin, a prefix).

Several limits may be combined; the strictest wins. The random control group is
held out of the targeted rows afterwards (``serving.lists.control``), so the contacts
actually made (and paid) are the treatment rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TargetingConfig:
    """Which prefix of a ranked list to keep.

    Parameters
    ----------
    top
        Keep at most this many rows.
    budget
        Money available for contacts; with ``contact_cost`` it caps the rows at
        ``floor(budget / contact_cost)``.
    contact_cost
        Cost of one contact (same currency as margins).
    profit_optimal
        Keep only rows whose expected incremental margin exceeds ``contact_cost``.
    """

    top: int | None = None
    budget: float | None = None
    contact_cost: float = 0.0
    profit_optimal: bool = False

    def __post_init__(self) -> None:
        if self.top is not None and self.top < 0:
            raise ValueError(f"top must be >= 0, got {self.top}")
        if self.contact_cost < 0:
            raise ValueError(f"contact_cost must be >= 0, got {self.contact_cost}")
        if self.budget is not None:
            if self.budget < 0:
                raise ValueError(f"budget must be >= 0, got {self.budget}")
            if self.contact_cost <= 0:
                raise ValueError(
                    f"a budget ({self.budget}) needs a positive contact_cost: pass --contact-cost"
                )

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "budget": self.budget,
            "contact_cost": self.contact_cost,
            "profit_optimal": self.profit_optimal,
        }


def budget_count(budget: float, contact_cost: float) -> int:
    """How many contacts ``budget`` pays for at ``contact_cost`` each."""
    if contact_cost <= 0:
        raise ValueError(f"contact_cost must be positive to spend a budget, got {contact_cost}")
    # a tiny tolerance so that e.g. 0.3 / 0.1 pays for 3 contacts, not 2
    return max(int(math.floor(budget / contact_cost + 1e-9)), 0)


def profit_optimal_count(incremental_margin: np.ndarray | pd.Series, contact_cost: float) -> int:
    """Length of the prefix whose expected incremental margin exceeds ``contact_cost``.

    ``incremental_margin`` is in list order (best first). The cut is at the first
    row that is not worth its contact (missing counts as not worth it): on a list
    ranked by that margin this keeps exactly the rows worth contacting.
    """
    values = np.asarray(incremental_margin, dtype="float64")
    worth = np.nan_to_num(values, nan=-np.inf) > contact_cost
    not_worth = np.flatnonzero(~worth)
    return int(not_worth[0]) if len(not_worth) else len(values)


def target_count(
    n_rows: int,
    config: TargetingConfig,
    incremental_margin: np.ndarray | pd.Series | None = None,
) -> int:
    """How many rows of a ranked list of ``n_rows`` the targeting keeps (strictest limit)."""
    count = n_rows
    if config.top is not None:
        count = min(count, config.top)
    if config.budget is not None:
        count = min(count, budget_count(config.budget, config.contact_cost))
    if config.profit_optimal:
        if incremental_margin is None:
            raise ValueError("the profit-optimal cut needs each row's expected incremental margin")
        if len(incremental_margin) != n_rows:
            raise ValueError(
                f"incremental_margin has {len(incremental_margin)} values for {n_rows} rows"
            )
        count = min(count, profit_optimal_count(incremental_margin, config.contact_cost))
    return count


def apply_targeting(
    ranked: pd.DataFrame, config: TargetingConfig, *, value_column: str | None = None
) -> pd.DataFrame:
    """The targeted prefix of a list ranked best first.

    Parameters
    ----------
    ranked
        The list, best first.
    config
        Limits to apply.
    value_column
        Column with each row's expected incremental margin (needed for the
        profit-optimal cut).
    """
    values = None
    if config.profit_optimal:
        if value_column is None or value_column not in ranked.columns:
            raise ValueError(
                f"the profit-optimal cut needs the column {value_column!r} of expected "
                f"incremental margin; the list has {list(ranked.columns)}"
            )
        values = ranked[value_column].to_numpy(dtype="float64", na_value=np.nan)
    return ranked.iloc[: target_count(len(ranked), config, values)]
