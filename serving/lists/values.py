"""What a listed customer is worth over the list's horizon, if retained or if they come back.

The value champion's ``predicted_value`` where the score table has it, else
rules on the customer's own margin history (trailing margin, margin rate over
tenure) or the typical active customer's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def value_if_retained(pool: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Margin an active customer brings over the horizon if they stay.

    The value champion's ``predicted_value`` at the list horizon's rate where
    the score table has it; else (no champion, or a customer it did not score)
    their trailing 12-month margin at the same daily rate.
    """
    trailing = np.maximum(pool["trailing_margin"].astype("float64"), 0.0) * horizon_days / 365.0
    if "predicted_value" not in pool.columns:
        return trailing
    days = pool["value_horizon_days"].astype("Float64").astype("float64")
    predicted = pool["predicted_value"].astype("float64") * horizon_days / days
    return np.maximum(predicted.where(predicted.notna(), trailing), 0.0)


def value_note(scores: pd.DataFrame) -> str:
    """What a list's values rest on, for its manifest."""
    if "predicted_value" in scores.columns and scores["predicted_value"].notna().any():
        horizon = scores["value_horizon_days"].dropna()
        days = int(horizon.iloc[0]) if len(horizon) else "?"
        return f"predicted_value of the value champion ({days}-day horizon)"
    return "trailing 12-month margin rule: no value champion (train one with --target value)"


#: The smallest reactivation probability a predicted value is divided by (a cap on the ratio).
MIN_RETURN_PROBABILITY = 0.02


def predicted_value_if_returning(pool: pd.DataFrame, horizon_days: int) -> pd.Series:
    """The value champion's value of a lapsed customer who comes back, over the horizon.

    ``predicted_value`` already weighs the value by the chance of coming back,
    so the value *if* they return is it (at the horizon's rate) over their
    ``reactivation_probability`` (floored at :data:`MIN_RETURN_PROBABILITY`).
    Missing where the champion gave no value (the caller keeps today's rule).
    """
    if "predicted_value" not in pool.columns:
        return pd.Series(np.nan, index=pool.index, dtype="float64")
    days = pool["value_horizon_days"].astype("Float64").astype("float64")
    at_rate = pool["predicted_value"].astype("float64") * horizon_days / days
    chance = np.maximum(pool["reactivation_probability"].astype("float64"), MIN_RETURN_PROBABILITY)
    return np.maximum(at_rate / chance, 0.0)


def value_if_reactivated(
    scores: pd.DataFrame, features: pd.DataFrame | None, horizon_days: int
) -> pd.Series:
    """Margin a lapsed customer brings over the horizon if they come back.

    Their own historical margin rate (``total_margin_amount`` over their tenure,
    at least a year) when the features have it, else the median trailing margin
    of active customers (what scoring's ``expected_value`` uses).
    """
    s = scores
    share = horizon_days / 365.0
    active_margin = s.loc[s["is_active"].astype(bool), "trailing_margin"].dropna()
    typical = float(active_margin.median()) if len(active_margin) else 0.0
    value = pd.Series(typical * share, index=s.index, dtype="float64")
    if features is not None and {"total_margin_amount", "tenure_days"} <= set(features.columns):
        f = features.reindex(s.index)
        years = np.maximum(f["tenure_days"].astype("float64"), 365.0) / 365.0
        own = f["total_margin_amount"].astype("float64") / years * share
        value = own.where(own.notna(), value)
    return np.maximum(value, 0.0)
