"""Metrics that fit money: how well a predicted customer value ranks and sizes realised value.

Customer value is skewed and zero-heavy (most customers spend nothing in a
horizon, a few spend a lot), so squared error alone says little. A value model
is judged on

* ranking: the normalized Gini (the Lorenz curve of realised value ordered by
  the prediction, relative to the perfect order), Spearman's rank correlation
  and the share of all realised value held by the top decile of predictions;
* size: MAE, RMSE and decile calibration (predicted vs realised total per
  predicted decile), the figure a team budgeting a campaign relies on.

Ties in a prediction (a rule that gives many customers 0) are scored as the
mean over random orders within the tie, so a coarse rule gains nothing from
the order rows happen to arrive in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

#: The fraction whose captured value is reported as ``top_decile_capture``.
TOP_FRACTION = 0.1
#: Metric names, in report order; higher is better for the first four.
VALUE_METRICS = (
    "normalized_gini",
    "spearman",
    "top_decile_capture",
    "calibration_ratio",
    "decile_calibration_error",
    "mae",
    "rmse",
)

Metric = Callable[[np.ndarray, np.ndarray], float]


def _check(y, prediction) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float)
    p = np.asarray(prediction, dtype=float)
    if y_arr.shape != p.shape or y_arr.ndim != 1:
        raise ValueError(
            f"y and prediction must be 1-d of equal length; got {y_arr.shape}, {p.shape}"
        )
    if y_arr.size == 0:
        raise ValueError("cannot evaluate 0 rows")
    for name, values in (("y", y_arr), ("prediction", p)):
        if np.isnan(values).any():
            raise ValueError(f"{name} has {int(np.isnan(values).sum())} NaN values; drop them")
    return y_arr, p


def lorenz_points(y, prediction) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of customers and of realised value, customers ranked by prediction.

    One point per block of tied predictions (highest first), starting at (0, 0);
    the curve is straight within a block, which is the mean over orders of its
    members. Returns ``(customer_share, value_share)``; ``value_share`` is NaN
    throughout when the total realised value is not positive.
    """
    y_arr, p = _check(y, prediction)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y_arr[order]
    block_end = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    cum_value = np.cumsum(y_sorted)[block_end]
    cum_count = np.flatnonzero(block_end) + 1.0
    total = y_arr.sum()
    share = cum_value / total if total > 0 else np.full(cum_value.shape, np.nan)
    return np.r_[0.0, cum_count / y_arr.size], np.r_[0.0, share]


def gini(y, prediction) -> float:
    """Twice the area between the Lorenz curve of ``y`` ranked by ``prediction`` and the diagonal."""
    x, v = lorenz_points(y, prediction)
    area = float(np.sum((x[1:] - x[:-1]) * (v[1:] + v[:-1]) / 2))
    return 2 * (area - 0.5)


def normalized_gini(y, prediction) -> float:
    """Gini of the prediction's order over the Gini of the perfect order (1 = perfect, 0 = random).

    NaN when the total realised value is not positive.
    """
    y_arr, p = _check(y, prediction)
    best = gini(y_arr, y_arr)
    if not np.isfinite(best) or best <= 0:
        return float("nan")
    return gini(y_arr, p) / best


def top_share(y, prediction, fraction: float = TOP_FRACTION) -> float:
    """Share of all realised value held by the top ``fraction`` of customers by prediction."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    x, v = lorenz_points(y, prediction)
    return float(np.interp(fraction, x, v))


def spearman(y, prediction) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for a constant input."""
    y_arr, p = _check(y, prediction)
    if np.ptp(y_arr) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.spearmanr(y_arr, p).statistic)


def decile_calibration(y, prediction, n_bins: int = 10) -> pd.DataFrame:
    """Predicted vs realised value per predicted decile (decile 1 = highest predictions).

    Customers are split into ``n_bins`` groups of (nearly) equal size by rank of
    prediction (ties broken by row order). Returns one row per decile:
    ``customers``, ``predicted_total``, ``realised_total``, ``predicted_mean``,
    ``realised_mean`` and ``ratio`` (predicted over realised total).
    """
    y_arr, p = _check(y, prediction)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    order = np.argsort(-p, kind="stable")
    decile = np.empty(p.size, dtype=int)
    decile[order] = np.arange(p.size) * n_bins // p.size + 1
    frame = pd.DataFrame({"decile": decile, "predicted": p, "realised": y_arr})
    out = frame.groupby("decile").agg(
        customers=("predicted", "size"),
        predicted_total=("predicted", "sum"),
        realised_total=("realised", "sum"),
    )
    out["predicted_mean"] = out["predicted_total"] / out["customers"]
    out["realised_mean"] = out["realised_total"] / out["customers"]
    out["ratio"] = out["predicted_total"] / out["realised_total"].where(out["realised_total"] != 0)
    return out


def decile_calibration_error(y, prediction, n_bins: int = 10) -> float:
    """Sum over deciles of |predicted - realised total|, over the total |realised| value.

    0 when every decile's predicted total matches what it realised; a value-weighted
    relative error, so empty bottom deciles do not dominate it.
    """
    table = decile_calibration(y, prediction, n_bins)
    scale = float(np.abs(table["realised_total"]).sum())
    if scale == 0:
        return float("nan")
    return float(np.abs(table["predicted_total"] - table["realised_total"]).sum() / scale)


def value_metrics(y, prediction) -> dict[str, float]:
    """Every value metric of :data:`VALUE_METRICS` for one prediction.

    ``calibration_ratio`` is the predicted over the realised total (1 = the
    right amount overall).
    """
    y_arr, p = _check(y, prediction)
    error = p - y_arr
    total = y_arr.sum()
    return {
        "normalized_gini": normalized_gini(y_arr, p),
        "spearman": spearman(y_arr, p),
        "top_decile_capture": top_share(y_arr, p, TOP_FRACTION),
        "calibration_ratio": float(p.sum() / total) if total != 0 else float("nan"),
        "decile_calibration_error": decile_calibration_error(y_arr, p),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
    }


def paired_bootstrap_delta(
    y,
    prediction,
    other,
    *,
    groups=None,
    metric: Metric = normalized_gini,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """``metric(prediction) - metric(other)`` with a paired-bootstrap 95% interval.

    Customers are resampled with replacement within each group (a test origin),
    the same draw for both predictions, and the statistic is the mean over
    groups of the per-group difference -- the same mean over origins the point
    estimate uses.

    Returns
    -------
    dict
        ``delta`` (on the data as is), ``ci_low`` and ``ci_high`` (2.5% and 97.5%
        quantiles of the bootstrap), ``n_boot``.
    """
    y_arr, a = _check(y, prediction)
    _, b = _check(y_arr, other)
    labels = (
        np.zeros(y_arr.size, dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    )
    if labels.size != y_arr.size:
        raise ValueError(f"groups has {labels.size} rows, y {y_arr.size}")
    members = [np.flatnonzero(labels == g) for g in np.unique(labels)]

    def statistic(samples: list[np.ndarray]) -> float:
        return float(np.mean([metric(y_arr[i], a[i]) - metric(y_arr[i], b[i]) for i in samples]))

    rng = np.random.default_rng(seed)
    draws = np.array([statistic([rng.choice(m, m.size) for m in members]) for _ in range(n_boot)])
    low, high = np.nanquantile(draws, [0.025, 0.975])
    return {
        "delta": statistic(members),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_boot": float(n_boot),
    }
