"""Baselines for customer value: what a team gets without our model.

* ``trailing``: trailing 12-month margin carried forward over the horizon
  (``trailing_margin * horizon_days / 365``), the rule serving's
  ``expected_value`` uses today;
* ``btyd``: BG/NBD x Gamma-Gamma -- expected purchase days in the horizon times
  the expected value of a purchase day -- fitted on the training cutoffs only,
  what lifetimes or PyMC-Marketing's ``clv`` module would report.

Both follow the same small interface as the model: ``fit(table)`` on the
training rows, ``predict(table)`` the expected value of each row.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np
import pandas as pd

from features.engines.duckdb_engine import connect
from features.inputs.schema import ShopTables
from features.value_table import SUMMARY_COLUMNS, value_summary_from
from training.evaluation.bgnbd import BetaGeoFitter, cutoff_days
from training.evaluation.gamma_gamma import GammaGammaFitter

#: Columns :meth:`BtydValueBaseline.features` adds for the value model.
BTYD_FEATURES = (
    "btyd_expected_purchases",
    "btyd_p_alive",
    "btyd_expected_spend",
    "btyd_expected_value",
)


def value_summary_at_cutoffs(
    tables: ShopTables, cutoffs: Iterable, *, con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """Point-in-time BG/NBD and Gamma-Gamma summary of each customer at each cutoff.

    ``frequency``, ``recency``, ``T`` (purchase days on or before the cutoff
    day, as ``training.evaluation.bgnbd.rfm_summary_at_cutoffs``) and ``monetary_value``,
    the mean value of those purchase days: ``features.value_table.value_summary_from``
    over ``tables`` registered on ``con``.
    """
    return value_summary_from(connect(tables, con), cutoffs)


def _keys(index: pd.MultiIndex) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays(
        [
            cutoff_days(index.get_level_values("cutoff")),
            index.get_level_values("customer_id").astype(str),
        ],
        names=["cutoff", "customer_id"],
    )


class TrailingValueBaseline:
    """Trailing 12-month margin carried forward: ``trailing_margin * horizon_days / 365``."""

    name = "trailing"

    def __init__(self, horizon_days: int):
        self.horizon_days = horizon_days

    def fit(self, table: pd.DataFrame) -> TrailingValueBaseline:
        """Nothing to learn; checks the table carries ``trailing_margin``."""
        if "trailing_margin" not in table.columns:
            raise ValueError(
                "TrailingValueBaseline needs a trailing_margin column; build the table with "
                "features.value_table.build_value_table"
            )
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return table["trailing_margin"].to_numpy(dtype=float) * self.horizon_days / 365.0


class BtydValueBaseline:
    """BG/NBD x Gamma-Gamma expected value over the horizon, fitted on the training cutoffs.

    Parameters
    ----------
    horizon_days
        Length of the value horizon.
    summary
        :func:`value_summary_at_cutoffs` at least at the training and scored cutoffs.
    penalizer_coef
        L2 penalty of both fits (a small one keeps them stable on real data).
    """

    name = "btyd"

    def __init__(self, horizon_days: int, summary: pd.DataFrame, *, penalizer_coef: float = 1e-3):
        self.horizon_days = horizon_days
        self.summary = summary
        self.penalizer_coef = penalizer_coef

    def fit(self, table: pd.DataFrame) -> BtydValueBaseline:
        """Fit BG/NBD on every summary row at the table's cutoffs, Gamma-Gamma on positive spend."""
        missing = [c for c in SUMMARY_COLUMNS if c not in self.summary.columns]
        if missing:
            raise ValueError(
                f"BtydValueBaseline: summary lacks {missing}; build it with value_summary_at_cutoffs"
            )
        summary = self.summary.copy()
        summary.index = _keys(summary.index)
        cutoffs = _keys(table.index).get_level_values("cutoff").unique()
        train = summary[summary.index.get_level_values("cutoff").isin(cutoffs)]
        if train.empty:
            raise ValueError(
                f"BtydValueBaseline: the summary has no rows at the train cutoffs "
                f"{[str(c.date()) for c in cutoffs]}"
            )
        self.bgnbd_ = BetaGeoFitter(penalizer_coef=self.penalizer_coef).fit(
            train["frequency"], train["recency"], train["T"]
        )
        spenders = train[train["monetary_value"] > 0]
        self.gamma_gamma_ = GammaGammaFitter(penalizer_coef=self.penalizer_coef).fit(
            spenders["frequency"] + 1, spenders["monetary_value"]
        )
        if self.gamma_gamma_.params_.q <= 1:  # heavy tail: no finite mean without shrinkage
            self.gamma_gamma_ = GammaGammaFitter(penalizer_coef=0.1).fit(
                spenders["frequency"] + 1, spenders["monetary_value"]
            )
        self.summary_ = summary
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Expected value of each row (0 for a row without a purchase by its cutoff)."""
        return self.features(table)["btyd_expected_value"].to_numpy()

    def features(self, table: pd.DataFrame) -> pd.DataFrame:
        """The fitted models' view of each row of ``table``, from its summary (:func:`btyd_features`)."""
        return btyd_features(
            self.bgnbd_,
            self.gamma_gamma_,
            self.horizon_days,
            self.summary_.reindex(_keys(table.index)).set_axis(table.index),
        )


def btyd_features(
    bgnbd: BetaGeoFitter, gamma_gamma: GammaGammaFitter, horizon_days: int, summary: pd.DataFrame
) -> pd.DataFrame:
    """Fitted BG/NBD and Gamma-Gamma models' view of each summary row (:data:`BTYD_FEATURES`).

    Expected purchase days in the horizon, P(alive), expected value of a
    purchase day and their product. With parameters from training cutoffs only
    and each row's summary stopping at its own cutoff, the columns are as
    point-in-time as the summary; rows without a summary (no purchase) get zeros.
    """
    known = summary["frequency"].notna().to_numpy()
    out = pd.DataFrame(0.0, index=summary.index, columns=list(BTYD_FEATURES))
    if known.any():
        r = summary[known]
        # as arrays: NumPy would probe a Series for attributes, making pandas hash its index
        rfm = [r[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]
        purchases = bgnbd.expected_purchases(horizon_days, *rfm)
        m = r["monetary_value"].to_numpy(dtype=float)
        spend = gamma_gamma.expected_spend(np.where(m > 0, r["frequency"].to_numpy() + 1, 0.0), m)
        out.loc[known, "btyd_expected_purchases"] = purchases
        out.loc[known, "btyd_p_alive"] = bgnbd.p_alive(*rfm)
        out.loc[known, "btyd_expected_spend"] = spend
        out.loc[known, "btyd_expected_value"] = purchases * spend
    return out


def value_baselines(horizon_days: int, summary: pd.DataFrame | None) -> dict[str, object]:
    """The unfitted value baselines; ``btyd`` only when a summary is given."""
    out: dict[str, object] = {"trailing": TrailingValueBaseline(horizon_days)}
    if summary is not None:
        out["btyd"] = BtydValueBaseline(horizon_days, summary)
    return out
