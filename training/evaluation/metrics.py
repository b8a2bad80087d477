"""Evaluation metrics for scores and calibrated probabilities.

Everything here takes ``y`` (0/1 or boolean outcomes) and a score where higher
means "more likely positive". Ranking metrics (AUCs, lift, capture, profit)
accept any score; calibration metrics (log loss, Brier, ECE) need
probabilities in [0, 1].

Ties: rule baselines (RFM scores, days since last order) tie heavily. Lift,
capture and profit at a contact fraction count a tie group straddling the
boundary *proportionally* -- the expected value under a random order within
ties -- so that a rule is neither flattered nor punished by the row order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

#: Top fractions reported as ``lift_at_<pct>`` and ``capture_at_<pct>``.
TOP_FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.20)


def _check(y, score, *, probabilities: bool) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y)
    s = np.asarray(score, dtype=float)
    if y_arr.shape != s.shape or y_arr.ndim != 1:
        raise ValueError(f"y and score must be 1-d of equal length; got {y_arr.shape}, {s.shape}")
    if y_arr.size == 0:
        raise ValueError("cannot evaluate 0 rows")
    if pd.isna(y_arr).any():
        raise ValueError(f"y has {int(pd.isna(y_arr).sum())} missing labels; drop them first")
    y_arr = y_arr.astype(float)
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError(f"y must be 0/1 or boolean; found values {np.unique(y_arr)[:5]}")
    if np.isnan(s).any():
        raise ValueError(f"score has {int(np.isnan(s).sum())} NaN values; impute or drop them")
    if probabilities and ((s < 0) | (s > 1)).any():
        raise ValueError(
            f"probabilities must lie in [0, 1]; {int(((s < 0) | (s > 1)).sum())} values do not "
            "(pass probabilities=False for a ranking score)"
        )
    return y_arr, s


def expected_positives_in_top(y, score, counts) -> np.ndarray:
    """Expected number of positives among the ``k`` highest scores, for each ``k`` in counts.

    A tie group cut by the boundary contributes its positive rate times the
    number of its members taken (the mean over random orders within ties).
    """
    y_arr, s = _check(y, score, probabilities=False)
    counts = np.asarray(counts, dtype=float)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y_arr[order]
    # Group boundaries: group g spans [starts[g], ends[g]).
    new_group = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], s.size]
    group_pos = np.add.reduceat(y_sorted, starts)
    cum_pos_before = np.r_[0.0, np.cumsum(group_pos)[:-1]]
    k = np.clip(counts, 0, s.size)
    g = np.searchsorted(ends, k, side="left")  # first group whose end >= k
    g = np.minimum(g, starts.size - 1)
    taken = k - starts[g]
    size = ends[g] - starts[g]
    return cum_pos_before[g] + group_pos[g] * taken / size


def _top_count(n: int, fraction: float) -> int:
    return max(1, math.ceil(round(fraction * n, 9)))


def capture_at(y, score, fraction: float) -> float:
    """Share of all positives found in the top ``fraction`` of scores (recall at k)."""
    y_arr, s = _check(y, score, probabilities=False)
    total = y_arr.sum()
    if total == 0:
        return float("nan")
    k = _top_count(s.size, fraction)
    return float(expected_positives_in_top(y_arr, s, [k])[0] / total)


def lift_at(y, score, fraction: float) -> float:
    """Positive rate in the top ``fraction`` of scores divided by the overall rate."""
    y_arr, s = _check(y, score, probabilities=False)
    base = y_arr.mean()
    if base == 0:
        return float("nan")
    k = _top_count(s.size, fraction)
    return float(expected_positives_in_top(y_arr, s, [k])[0] / k / base)


def reliability_table(y, p, n_bins: int = 10) -> pd.DataFrame:
    """Observed rate vs mean predicted probability in equal-width probability bins.

    Returns one row per non-empty bin: ``bin_lower``, ``bin_upper``, ``count``,
    ``mean_predicted``, ``observed_rate``. Bins are ``[i/n, (i+1)/n)``, the last
    one closed, so p = 1 falls in the top bin.
    """
    y_arr, p_arr = _check(y, p, probabilities=True)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    idx = np.minimum((p_arr * n_bins).astype(int), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p_arr, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y_arr, minlength=n_bins)
    keep = count > 0
    bins = np.arange(n_bins)[keep]
    return pd.DataFrame(
        {
            "bin_lower": bins / n_bins,
            "bin_upper": (bins + 1) / n_bins,
            "count": count[keep],
            "mean_predicted": sum_p[keep] / count[keep],
            "observed_rate": sum_y[keep] / count[keep],
        }
    )


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |observed − predicted| over bins.

    Uses :func:`reliability_table`'s equal-width bins. 0 for a perfectly
    calibrated model; a churn risk of 0.3 should mean 30 % churn.
    """
    table = reliability_table(y, p, n_bins)
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["observed_rate"] - table["mean_predicted"]).abs()).sum())


def lift_table(y, score, n_bins: int = 10) -> pd.DataFrame:
    """Lift and cumulative capture by score quantile (bin 1 = highest scores).

    Bin ``i`` holds the customers ranked ``round(n*(i-1)/n_bins)`` up to
    ``round(n*i/n_bins)``; positives are expected counts under random order
    within ties (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        ``bin``, ``customers``, ``positives``, ``positive_rate``, ``lift``,
        ``cumulative_customers``, ``cumulative_fraction``, ``cumulative_capture``,
        ``cumulative_lift``.
    """
    y_arr, s = _check(y, score, probabilities=False)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    n = s.size
    bounds = np.round(np.linspace(0, n, n_bins + 1)).astype(int)
    cum = expected_positives_in_top(y_arr, s, bounds)
    customers = np.diff(bounds)
    positives = np.diff(cum)
    base = y_arr.mean()
    total = y_arr.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(customers > 0, positives / np.maximum(customers, 1), np.nan)
        lift = rate / base if base > 0 else np.full(n_bins, np.nan)
        cum_capture = cum[1:] / total if total > 0 else np.full(n_bins, np.nan)
        cum_lift = (cum[1:] / np.maximum(bounds[1:], 1)) / base if base > 0 else cum_capture
    return pd.DataFrame(
        {
            "bin": np.arange(1, n_bins + 1),
            "customers": customers,
            "positives": positives,
            "positive_rate": rate,
            "lift": lift,
            "cumulative_customers": bounds[1:],
            "cumulative_fraction": bounds[1:] / n,
            "cumulative_capture": cum_capture,
            "cumulative_lift": cum_lift,
        }
    )


def classification_metrics(y_true, p, *, probabilities: bool = True) -> dict[str, float]:
    """The standard metric set for one model (or baseline) on one test cutoff.

    Parameters
    ----------
    y_true
        0/1 outcomes.
    p
        Calibrated probabilities, or any ranking score with ``probabilities=False``.
    probabilities
        When False, ``log_loss``, ``brier`` and ``ece`` are NaN: a rule's score
        is not a probability, so only ranking metrics are comparable.

    Returns
    -------
    dict
        ``n``, ``base_rate``, ``roc_auc``, ``pr_auc`` (average precision),
        ``log_loss``, ``brier``, ``ece``, ``lift_at_5/10/20``, ``capture_at_5/10/20``.
        AUCs are NaN when only one class is present.
    """
    y_arr, s = _check(y_true, p, probabilities=probabilities)
    both = 0 < y_arr.sum() < y_arr.size
    out: dict[str, float] = {
        "n": float(y_arr.size),
        "base_rate": float(y_arr.mean()),
        "roc_auc": float(skm.roc_auc_score(y_arr, s)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_arr, s)) if both else float("nan"),
    }
    if probabilities:
        clipped = np.clip(s, 1e-15, 1 - 1e-15)
        out["log_loss"] = float(skm.log_loss(y_arr, clipped, labels=[0.0, 1.0]))
        out["brier"] = float(np.mean((s - y_arr) ** 2))
        out["ece"] = expected_calibration_error(y_arr, s)
    else:
        out["log_loss"] = out["brier"] = out["ece"] = float("nan")
    for fraction in TOP_FRACTIONS:
        pct = round(fraction * 100)
        out[f"lift_at_{pct}"] = lift_at(y_arr, s, fraction)
        out[f"capture_at_{pct}"] = capture_at(y_arr, s, fraction)
    return out


# --------------------------------------------------------------------- profit


@dataclass(frozen=True)
class ProfitModel:
    """What a retention contact costs and earns, for profit curves and EMP.

    Every contacted customer costs ``contact_cost``; a contacted *positive*
    (e.g. a would-be churner) accepts with probability ``acceptance_rate``
    (gamma) and is then worth ``offer_value`` -- the margin kept by retaining
    her -- minus the incentive ``offer_cost`` she redeems; a contacted
    *negative* (would have stayed anyway) redeems the incentive. With
    ``acceptance_beta=(alpha, beta)`` gamma is uncertain, ``gamma ~ Beta(alpha,
    beta)`` (Verbraken et al. use (6, 14)), integrated on ``points`` quantiles.
    """

    contact_cost: float
    offer_value: float
    acceptance_rate: float = 1.0
    offer_cost: float = 0.0
    acceptance_beta: tuple[float, float] | None = None
    points: int = 200

    def __post_init__(self) -> None:
        if self.contact_cost < 0 or self.offer_value < 0 or self.offer_cost < 0:
            raise ValueError(
                "contact_cost, offer_value and offer_cost must be >= 0; got "
                f"{self.contact_cost}, {self.offer_value}, {self.offer_cost}"
            )
        if not 0 <= self.acceptance_rate <= 1:
            raise ValueError(f"acceptance_rate must lie in [0, 1], got {self.acceptance_rate}")
        if self.acceptance_beta is not None and min(self.acceptance_beta) <= 0:
            raise ValueError(f"acceptance_beta parameters must be > 0, got {self.acceptance_beta}")

    def gammas(self) -> np.ndarray:
        """The acceptance rates integrated over: one fixed rate, or Beta quantiles."""
        if self.acceptance_beta is None:
            return np.array([float(self.acceptance_rate)])
        alpha, beta = self.acceptance_beta
        return stats.beta.ppf((np.arange(self.points) + 0.5) / self.points, alpha, beta)


def _profit_components(y, score) -> tuple[int, np.ndarray, np.ndarray]:
    y_arr, s = _check(y, score, probabilities=False)
    n = s.size
    k = np.arange(n + 1)
    return n, k, expected_positives_in_top(y_arr, s, k)


def profit_curve(y, score, profit: ProfitModel) -> pd.DataFrame:
    """Campaign profit when contacting the top-k customers by score, for every k.

    Deterministic, at ``profit.acceptance_rate`` (Verbraken et al. 2013's EMPC
    with a fixed acceptance rate): a contacted positive earns
    ``gamma * (offer_value - offer_cost) - contact_cost``, a contacted negative
    costs ``contact_cost + offer_cost``. With the defaults (gamma = 1, no
    incentive cost) ``offer_value`` is simply the expected value of contacting
    a positive.

    Returns
    -------
    pandas.DataFrame
        One row per k = 0..n: ``customers_contacted``, ``fraction_contacted``,
        ``positives_contacted`` (expected, ties shared), ``profit`` (total) and
        ``profit_per_customer`` (profit / n, the EMP convention).
    """
    n, k, positives = _profit_components(y, score)
    negatives = k - positives
    total = positives * (
        profit.acceptance_rate * (profit.offer_value - profit.offer_cost) - profit.contact_cost
    ) - negatives * (profit.contact_cost + profit.offer_cost)
    return pd.DataFrame(
        {
            "customers_contacted": k,
            "fraction_contacted": k / n,
            "positives_contacted": positives,
            "profit": total,
            "profit_per_customer": total / n,
        }
    )


def _profit_matrix(y, score, profit: ProfitModel) -> tuple[int, np.ndarray, np.ndarray]:
    n, k, positives = _profit_components(y, score)
    negatives = k - positives
    # rows: gamma, columns: k
    matrix = (
        np.outer(profit.gammas(), positives * (profit.offer_value - profit.offer_cost))
        - positives * profit.contact_cost
        - negatives * (profit.contact_cost + profit.offer_cost)
    )
    return n, k, matrix


def expected_maximum_profit(y, score, profit: ProfitModel) -> float:
    """Expected maximum profit per customer (EMP) of a score.

    With a fixed acceptance rate this is the maximum of :func:`profit_curve`'s
    ``profit_per_customer`` over the contact fraction (contacting nobody gives
    0, so EMP >= 0); with ``acceptance_beta`` it is the expectation over gamma
    of the best profit for that gamma.
    """
    n, _k, matrix = _profit_matrix(y, score, profit)
    return float(matrix.max(axis=1).mean() / n)


def profit_maximizing_fraction(y, score, profit: ProfitModel) -> float:
    """The share of customers to contact that achieves :func:`expected_maximum_profit`.

    Under an uncertain acceptance rate, the expected optimal fraction over gamma.
    The smallest optimal fraction is taken when several tie.
    """
    n, k, matrix = _profit_matrix(y, score, profit)
    return float((k[matrix.argmax(axis=1)] / n).mean())
