"""Reason codes for predicted customer value: why the model expects this customer to be worth a lot.

The same contribution machinery as ``training.model.reasons`` (LightGBM's SHAP values,
here in log-value units), with sentences that speak of money against the shop's
own yardsticks: "spends 2.4x the median per order", "margin rate above the
shop's (41% vs 28%)". The yardsticks (medians, the shop's margin rate) come
from the training rows, so a customer's reasons do not depend on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from training.model.reason_templates import REASON_TEMPLATES, Template, _num, when_known
from training.model.reasons import reason_codes

#: The reference key holding the shop's margin rate (margin over spend of all customers).
SHOP_MARGIN_RATE = "margin_rate"


def value_reference(features: pd.DataFrame) -> dict[str, float]:
    """Yardsticks from training rows: each numeric feature's median, and the shop's margin rate.

    ``margin_rate`` is the shop-wide rate (total margin over total spend), not
    the median customer's, so "above the shop's" means what it says.
    """
    out: dict[str, float] = {}
    for column in features.columns:
        values = features[column]
        if pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(
            values.dtype, pd.CategoricalDtype
        ):
            median = float(np.nanmedian(values.to_numpy(dtype=float))) if len(values) else math.nan
            out[column] = 0.0 if math.isnan(median) else median
    if {"total_margin_amount", "spend_amount"} <= set(features.columns):
        spend = float(features["spend_amount"].sum())
        if spend > 0:
            out[SHOP_MARGIN_RATE] = float(features["total_margin_amount"].sum()) / spend
    return out


def _times(value: float, reference: float) -> str | None:
    if math.isnan(value) or not reference or reference <= 0:
        return None
    return f"{value / reference:.1f}x"


def value_templates(reference: Mapping[str, float], horizon_days: int) -> dict[str, Template]:
    """Value sentences per feature, bound to the shop's yardsticks; others fall back to churn's."""

    def per_order(row, high):
        ratio = _times(
            _num(row.get("order_value_mean_amount")), reference.get("order_value_mean_amount", 0)
        )
        return None if ratio is None else f"spends {ratio} the median per order"

    def spend_365d(row, high):
        value = _num(row.get("spend_365d_amount"))
        ratio = _times(value, reference.get("spend_365d_amount", 0))
        if ratio is None:
            return None
        return f"spent {value:,.0f} in the last 365 days, {ratio} the median"

    def margin_rate(row, high):
        rate, shop = _num(row.get("margin_rate")), reference.get(SHOP_MARGIN_RATE)
        if math.isnan(rate) or shop is None:
            return None
        side = "above" if rate > shop else "below"
        return f"margin rate {side} the shop's ({rate:.0%} vs {shop:.0%})"

    return {
        **REASON_TEMPLATES,
        "order_value_mean_amount": per_order,
        "spend_365d_amount": spend_365d,
        "margin_rate": margin_rate,
        "high_margin_spend_share": when_known(
            "high_margin_spend_share",
            lambda share, high: f"{share:.0%} of spend in high-margin categories",
        ),
        "btyd_expected_purchases": when_known(
            "btyd_expected_purchases",
            lambda n, high: f"buying pattern suggests {n:.1f} orders in {horizon_days} days",
        ),
        "btyd_p_alive": when_known(
            "btyd_p_alive", lambda p, high: f"{p:.0%} likely still an active buyer"
        ),
        "btyd_expected_spend": when_known(
            "btyd_expected_spend",
            lambda value, high: f"a typical order of theirs is worth {value:,.0f}",
        ),
    }


def value_reason_codes(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    reference: Mapping[str, float],
    horizon_days: int,
    top: int = 3,
) -> pd.DataFrame:
    """The top reasons for each customer's predicted value (``reason_1..top``, ``reason_code_1..top``).

    ``contributions`` are a value model's (``WinbackValueRegressor.contributions``);
    ``reference`` comes from :func:`value_reference` on the training rows.
    """
    return reason_codes(
        contributions,
        features,
        top=top,
        direction=1,
        reference=reference,
        templates=value_templates(reference, horizon_days),
    )
