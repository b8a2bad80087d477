"""Campaign measurement: treated versus control, with confidence intervals.

After a list has been worked, ``winback measure LIST_ID --as-of DATE`` reads the
transactions after the list date and compares the two groups of the list:

* rates (reactivation, retention, conversion): Wilson score intervals per
  group and Newcombe's hybrid score interval for the difference;
* per-customer means (revenue, margin, spend): Welch's t interval for the
  difference of means (unequal variances; fine for the large groups of a
  campaign, and what the published A/B readouts use).

Because the control group was drawn at random from the same list, the
difference is the campaign's causal effect on the list. The Hillstrom e-mail
test (``../shared/data/hillstrom.csv.gz``, a real randomised campaign) is read
by :func:`load_hillstrom` and reproduced by :func:`hillstrom_arm_results`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from features.inputs.schema import ShopTables
from features.tiers import as_dates

#: Where the Hillstrom test lives, relative to the project root.
HILLSTROM_PATH = Path("../shared/data/hillstrom.csv.gz")
HILLSTROM_CONTROL = "No E-Mail"
HILLSTROM_ARMS = ("Mens E-Mail", "Womens E-Mail", HILLSTROM_CONTROL)

#: Columns of a comparison table (one row per metric).
COMPARISON_COLUMNS = (
    "metric",
    "kind",
    "treatment",
    "control",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "n_treatment",
    "n_control",
)


# ------------------------------------------------------------------ intervals


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaNs when ``n`` is 0)."""
    if successes < 0 or successes > n:
        raise ValueError(f"successes must be in [0, n]; got {successes} of {n}")
    if n == 0:
        return float("nan"), float("nan")
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def newcombe_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p_a - p_b`` (from the two Wilson intervals)."""
    if n_a == 0 or n_b == 0:
        return float("nan"), float("nan")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    low_a, high_a = wilson_interval(successes_a, n_a, confidence)
    low_b, high_b = wilson_interval(successes_b, n_b, confidence)
    d = p_a - p_b
    low = d - np.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = d + np.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return float(low), float(high)


def welch_interval(
    a: np.ndarray | pd.Series, b: np.ndarray | pd.Series, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Welch's t interval for ``mean(a) - mean(b)`` and its two-sided p-value."""
    x = np.asarray(a, dtype="float64")
    y = np.asarray(b, dtype="float64")
    if len(x) < 2 or len(y) < 2:
        return float("nan"), float("nan"), float("nan")
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = np.sqrt(va + vb)
    d = x.mean() - y.mean()
    if se == 0:
        return float(d), float(d), float("nan") if d == 0 else 0.0
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    t = float(stats.t.ppf(0.5 + confidence / 2.0, df))
    p = float(2 * stats.t.sf(abs(d / se), df))
    return float(d - t * se), float(d + t * se), p


def two_proportion_p_value(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled z test of equal proportions."""
    if n_a == 0 or n_b == 0:
        return float("nan")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return float("nan")
    z = (successes_a / n_a - successes_b / n_b) / se
    return float(2 * stats.norm.sf(abs(z)))


# ----------------------------------------------------------------- comparison


def compare_groups(
    outcomes: pd.DataFrame,
    *,
    rates: Sequence[str] = (),
    means: Sequence[str] = (),
    group_column: str = "group",
    treatment: str = "treatment",
    control: str = "control",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Treatment versus control on each rate and per-customer mean.

    Parameters
    ----------
    outcomes
        One row per customer: ``group_column`` plus the outcome columns.
    rates
        Boolean columns (share of customers with the outcome).
    means
        Numeric columns (mean per customer, zeros included).

    Returns
    -------
    pandas.DataFrame
        One row per metric with :data:`COMPARISON_COLUMNS`: the treatment and control
        values, their difference and its ``confidence`` interval (Newcombe for rates,
        Welch for means) and p-value.
    """
    needed = [group_column, *rates, *means]
    missing = [c for c in needed if c not in outcomes.columns]
    if missing:
        raise ValueError(f"the outcome table lacks the columns {missing}")
    groups = outcomes[group_column].astype("string")
    is_t = (groups == treatment).to_numpy(dtype=bool, na_value=False)
    is_c = (groups == control).to_numpy(dtype=bool, na_value=False)
    if not is_t.any() or not is_c.any():
        raise ValueError(
            f"need customers in both groups to compare: {int(is_t.sum())} {treatment!r} and "
            f"{int(is_c.sum())} {control!r} in column {group_column!r}"
        )
    n_t, n_c = int(is_t.sum()), int(is_c.sum())
    rows = []
    for name in rates:
        values = outcomes[name].fillna(False).to_numpy(dtype=bool)
        k_t, k_c = int(values[is_t].sum()), int(values[is_c].sum())
        low, high = newcombe_interval(k_t, n_t, k_c, n_c, confidence)
        rows.append(
            (name, "rate", k_t / n_t, k_c / n_c, k_t / n_t - k_c / n_c, low, high,
             two_proportion_p_value(k_t, n_t, k_c, n_c), n_t, n_c)
        )  # fmt: skip
    for name in means:
        values = outcomes[name].astype("float64").fillna(0.0).to_numpy()
        low, high, p = welch_interval(values[is_t], values[is_c], confidence)
        m_t, m_c = float(values[is_t].mean()), float(values[is_c].mean())
        rows.append((name, "mean", m_t, m_c, m_t - m_c, low, high, p, n_t, n_c))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def group_intervals(
    outcomes: pd.DataFrame,
    *,
    rates: Sequence[str] = (),
    means: Sequence[str] = (),
    group_column: str = "group",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Each group's value of each metric with its own interval (Wilson / t), long format.

    Columns ``group, metric, kind, value, ci_low, ci_high, n``.
    """
    rows = []
    for group, part in outcomes.groupby(group_column, sort=True, observed=True):
        n = len(part)
        for name in rates:
            k = int(part[name].fillna(False).astype(bool).sum())
            low, high = wilson_interval(k, n, confidence)
            rows.append((str(group), name, "rate", k / n, low, high, n))
        for name in means:
            values = part[name].astype("float64").fillna(0.0).to_numpy()
            mean = float(values.mean())
            if n > 1:
                half = float(
                    stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
                )
            else:
                half = float("nan")
            rows.append((str(group), name, "mean", mean, mean - half, mean + half, n))
    return pd.DataFrame(
        rows, columns=["group", "metric", "kind", "value", "ci_low", "ci_high", "n"]
    )


# ---------------------------------------------------------- measuring a list


def list_outcomes(
    tables: ShopTables,
    customers: pd.DataFrame,
    list_date: dt.date | str,
    as_of: dt.date | str,
) -> pd.DataFrame:
    """What each listed customer did after the list date, up to and including ``as_of``.

    Reads transactions with ``list_date + 1 day <= ordered_at < as_of + 1 day``
    (the cutoff convention: the list was built from data up to its date).

    Parameters
    ----------
    customers
        The list: ``customer_id`` and ``group`` columns.

    Returns
    -------
    pandas.DataFrame
        The list's ``customer_id`` and ``group`` with ``ordered`` (bool: at least one
        purchase), ``orders``, ``revenue`` (purchases minus returns) and ``margin``
        (summed signed ``margin_amount``; revenue when the shop has no margin column).
    """
    for column in ("customer_id", "group"):
        if column not in customers.columns:
            raise ValueError(f"the list lacks the column {column!r}")
    start_date, end_date = as_dates(list_date)[0], as_dates(as_of)[0]
    if end_date <= start_date:
        raise ValueError(
            f"as_of {end_date} must be after the list date {start_date}: nothing to measure yet"
        )
    tx = tables.transactions
    start = pd.Timestamp(start_date, tz="UTC") + pd.Timedelta(days=1)
    end = pd.Timestamp(end_date, tz="UTC") + pd.Timedelta(days=1)
    ids = customers["customer_id"].astype("string")
    window = tx[(tx["ordered_at"] >= start) & (tx["ordered_at"] < end)]
    window = window[window["customer_id"].astype("string").isin(ids)]
    is_return = (
        window["is_return"].fillna(False).astype(bool)
        if "is_return" in window.columns
        else pd.Series(False, index=window.index)
    )
    amount = window["amount"].astype("float64")
    revenue = amount.where(~is_return, -amount)
    margin = (
        window["margin_amount"].astype("float64").fillna(0.0)
        if "margin_amount" in window.columns
        else revenue
    )
    per_line = pd.DataFrame(
        {
            "customer_id": window["customer_id"].astype("string"),
            "order_id": window["order_id"].astype("string").where(~is_return),
            "revenue": revenue,
            "margin": margin,
        }
    )
    per_customer = per_line.groupby("customer_id").agg(
        orders=("order_id", "nunique"), revenue=("revenue", "sum"), margin=("margin", "sum")
    )
    out = pd.DataFrame({"customer_id": ids.to_numpy(), "group": customers["group"].to_numpy()})
    joined = per_customer.reindex(pd.Index(out["customer_id"]))
    out["orders"] = joined["orders"].fillna(0).astype("int64").to_numpy()
    out["ordered"] = out["orders"] > 0
    out["revenue"] = joined["revenue"].fillna(0.0).to_numpy(dtype="float64")
    out["margin"] = joined["margin"].fillna(0.0).to_numpy(dtype="float64")
    return out


#: The rate each list kind is judged on (its name in the report).
OUTCOME_RATE = {
    "winback": "reactivation_rate",
    "at-risk": "retention_rate",
    "vip-potential": "purchase_rate",
    "near-vip": "purchase_rate",
}


@dataclass(frozen=True)
class MeasurementReport:
    """The result of measuring one list at one date."""

    list_id: str
    kind: str
    list_date: dt.date
    as_of: dt.date
    comparison: pd.DataFrame
    groups: pd.DataFrame
    outcomes: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ids, dates and one record per metric."""
        records = [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in self.comparison.to_dict(orient="records")
        ]
        return {
            "list_id": self.list_id,
            "kind": self.kind,
            "list_date": self.list_date.isoformat(),
            "as_of": self.as_of.isoformat(),
            "metrics": records,
        }


def measure_list(
    tables: ShopTables,
    list_frame: pd.DataFrame,
    *,
    list_id: str,
    kind: str,
    list_date: dt.date | str,
    as_of: dt.date | str,
    confidence: float = 0.95,
) -> MeasurementReport:
    """Treated versus control of a saved list: purchase rate, revenue and margin per customer.

    For a win-back list the rate is the reactivation rate, for an at-risk list
    the retention rate (the share still buying), otherwise the purchase rate.
    """
    outcomes = list_outcomes(tables, list_frame, list_date, as_of)
    rate = OUTCOME_RATE.get(kind, "purchase_rate")
    outcomes = outcomes.rename(
        columns={
            "ordered": rate,
            "revenue": "revenue_per_customer",
            "margin": "margin_per_customer",
        }
    )
    spec = {"rates": (rate,), "means": ("revenue_per_customer", "margin_per_customer")}
    return MeasurementReport(
        list_id=list_id,
        kind=kind,
        list_date=as_dates(list_date)[0],
        as_of=as_dates(as_of)[0],
        comparison=compare_groups(outcomes, confidence=confidence, **spec),
        groups=group_intervals(outcomes, confidence=confidence, **spec),
        outcomes=outcomes,
    )


def plot_measurement(groups: pd.DataFrame, *, title: str = "", fig: Any = None) -> Any:
    """Bars of each metric by group with their confidence intervals; returns the figure.

    ``groups`` is a :func:`group_intervals` table (``MeasurementReport.groups``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(groups["metric"]))
    if fig is None:
        fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4 * max(len(metrics), 1), 3.5))
    else:
        axes = fig.subplots(1, max(len(metrics), 1))
    axes = np.atleast_1d(axes)
    palette = {"treatment": "#1f77b4", "control": "#9e9e9e"}
    for ax, metric in zip(axes, metrics, strict=False):
        part = groups[groups["metric"] == metric]
        values = part["value"].to_numpy(dtype="float64")
        errors = np.vstack(
            [values - part["ci_low"].to_numpy(dtype="float64"),
             part["ci_high"].to_numpy(dtype="float64") - values]
        )  # fmt: skip
        labels = part["group"].astype(str).tolist()
        ax.bar(
            labels,
            values,
            yerr=np.nan_to_num(errors),
            capsize=6,
            color=[palette.get(g, "#ff7f0e") for g in labels],
        )
        ax.set_title(metric.replace("_", " "))
        if part["kind"].iloc[0] == "rate":
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ Hillstrom


def load_hillstrom(path: str | Path = HILLSTROM_PATH) -> pd.DataFrame:
    """Kevin Hillstrom's MineThatData e-mail test (64,000 customers, three arms).

    Raises ``FileNotFoundError`` naming the path when the file is absent (it is
    not part of the repository: see ``../shared/data/README.md``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Hillstrom data not found at {str(path)!r}: run from the project root with "
            f"../shared/data present, or pass the path to hillstrom.csv.gz"
        )
    frame = pd.read_csv(path)
    expected = {"segment", "visit", "conversion", "spend", "recency", "history", "channel"}
    missing = sorted(expected - set(frame.columns))
    if missing:
        raise ValueError(f"{path} is not the Hillstrom file: it lacks the columns {missing}")
    frame["visit"] = frame["visit"].astype(bool)
    frame["conversion"] = frame["conversion"].astype(bool)
    frame["spend"] = frame["spend"].astype("float64")
    return frame


def hillstrom_arm_results(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Visit and conversion rates and spend per customer of each arm, with intervals.

    Returns one row per arm (men's, women's, no e-mail) with ``customers``,
    ``visit_rate``, ``conversion_rate``, ``spend_per_customer`` and a
    ``*_ci_low`` / ``*_ci_high`` pair for each (Wilson for rates, t for spend).
    """
    outcomes = frame.rename(
        columns={
            "segment": "group",
            "visit": "visit_rate",
            "conversion": "conversion_rate",
            "spend": "spend_per_customer",
        }
    )
    long = group_intervals(
        outcomes,
        rates=("visit_rate", "conversion_rate"),
        means=("spend_per_customer",),
        confidence=confidence,
    )
    rows = {}
    for arm in HILLSTROM_ARMS:
        part = long[long["group"] == arm].set_index("metric")
        if part.empty:
            continue
        row: dict[str, Any] = {"arm": arm, "customers": int(part["n"].iloc[0])}
        for metric in ("visit_rate", "conversion_rate", "spend_per_customer"):
            row[metric] = float(part.at[metric, "value"])
            row[f"{metric}_ci_low"] = float(part.at[metric, "ci_low"])
            row[f"{metric}_ci_high"] = float(part.at[metric, "ci_high"])
        rows[arm] = row
    return pd.DataFrame(list(rows.values()))


def hillstrom_effects(
    frame: pd.DataFrame, arm: str = "Mens E-Mail", confidence: float = 0.95
) -> pd.DataFrame:
    """One e-mail arm versus no e-mail: differences in visit, conversion and spend with CIs."""
    if arm not in HILLSTROM_ARMS[:2]:
        raise ValueError(f"arm must be one of {list(HILLSTROM_ARMS[:2])}, got {arm!r}")
    part = frame[frame["segment"].isin([arm, HILLSTROM_CONTROL])]
    outcomes = pd.DataFrame(
        {
            "group": np.where(part["segment"] == arm, "treatment", "control"),
            "visit_rate": part["visit"].to_numpy(dtype=bool),
            "conversion_rate": part["conversion"].to_numpy(dtype=bool),
            "spend_per_customer": part["spend"].to_numpy(dtype="float64"),
        }
    )
    return compare_groups(
        outcomes,
        rates=("visit_rate", "conversion_rate"),
        means=("spend_per_customer",),
        confidence=confidence,
    )
