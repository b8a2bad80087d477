"""Plain-language reasons for a score, from the model's SHAP values against population medians.

Reasons cost about 2 ms a row (SHAP), so only the ``explain_top`` highest-scored
customers of each target get them in batch; the service explains other
customers on request.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from serving.scoring.predict import FeatureColumns, has_booster, model_matrix

#: What a list row says when no feature pushes its score up (every SHAP value is <= 0):
#: the score is what a typical customer gets, and saying nothing would read as missing data.
NO_STANDOUT_REASON = "no single behaviour stands out: the score is close to a typical customer's"


def feature_reference(features: pd.DataFrame, *, threads: int | None = None) -> dict[str, float]:
    """Median of every numeric feature: what a reason calls "high" or "low" against.

    Computed over the whole scored population, so a customer's reasons do not
    depend on which other customers are explained in the same call. The
    medians of ``float64`` columns are NumPy's over the known values (what
    pandas' ``median`` computes, bit for bit), on ``threads`` threads (default:
    the cores this process may use, at most two): the selection releases the
    GIL, and a million customers' 60 features took over a second on one.
    """
    from serving.scoring.forest import default_threads

    numeric = [
        c
        for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c].dtype)
        and not pd.api.types.is_bool_dtype(features[c].dtype)
    ]

    def median(column: str) -> float:
        values = features[column]
        if values.dtype != np.float64:
            return values.median()
        array = values.to_numpy()
        known = array[~np.isnan(array)]  # a copy: the median may reorder it in place
        return np.median(known, overwrite_input=True) if len(known) else np.nan

    workers = min(default_threads() if threads is None else threads, max(len(numeric), 1))
    if workers <= 1 or len(features) < _PARALLEL_ROWS:
        medians = [median(c) for c in numeric]
    else:
        with ThreadPoolExecutor(workers) as pool:
            medians = list(pool.map(median, numeric))
    return {c: float(m) for c, m in zip(numeric, medians, strict=True) if not pd.isna(m)}


#: Rows from which :func:`feature_reference` spreads its columns over threads.
_PARALLEL_ROWS = 100_000


def reason_texts(
    model: Any,
    features: pd.DataFrame | FeatureColumns,
    *,
    top: int = 3,
    reference: Mapping[str, float] | None = None,
    num_threads: int = 1,
) -> list[list[str]]:
    """Plain-language reasons (strongest first) for each row, from the model's SHAP values.

    The texts of ``training.model.reasons.customer_reasons``. For a fitted
    ``WinbackClassifier`` the SHAP values come from LightGBM's ``pred_contrib``
    on :func:`~serving.scoring.predict.model_matrix` (one NumPy matrix;
    ``num_threads`` LightGBM threads: one for the service's requests, the cores
    for a batch's thousands of rows), and the sentences from the same NumPy columns
    (``training.model.reasons.top_reasons``): no frame is built, which for one
    customer was most of the time (pandas indexing and conversions cost
    milliseconds; LightGBM's SHAP ~1-3 ms). Other models (stand-ins) go
    through ``contributions`` and ``reason_codes`` as they are.
    """
    from training.model.reasons import array_reference, reason_codes, top_reasons

    if len(features) == 0:
        return []
    names = model.feature_set_.names
    if not has_booster(model):
        frame = features.frame if isinstance(features, FeatureColumns) else features
        X = frame[names]
        result = reason_codes(model.contributions(X), X, top=top, reference=reference)
        return _as_texts(result, len(X))
    columns = features if isinstance(features, FeatureColumns) else FeatureColumns(features)
    booster, num_iteration = model.trees()
    values = booster.predict(
        model_matrix(model, columns),
        pred_contrib=True,
        num_iteration=num_iteration,
        num_threads=num_threads,
    )
    arrays = {
        name: columns.strings(name) if kind == "category" else columns.floats(name)
        for name, kind in model.feature_set_.columns
    }
    contributions = np.asarray(values, dtype="float64")[:, : len(names)]  # the last is the bias
    refs = array_reference(names, arrays, reference)
    reasons = top_reasons(contributions, names, arrays, refs, top=top)
    return [[reason.text for reason in row] for row in reasons]


def _as_texts(result: Any, n: int) -> list[list[str]]:
    """Normalise what ``reason_codes`` returns (a frame or lists of reasons) to text lists."""
    if isinstance(result, pd.DataFrame):
        cols = [c for c in result.columns if str(c).startswith("reason_") and str(c)[7:].isdigit()]
        cols.sort(key=lambda c: int(str(c)[7:]))
        values = result[cols].to_numpy(dtype=object)
        return [
            [str(v) for v in row if v is not None and not pd.isna(v) and v != ""] for row in values
        ]
    texts = []
    for reasons in result:
        row = []
        for reason in reasons:
            text = getattr(reason, "text", None)
            row.append(str(text if text is not None else reason))
        texts.append(row)
    if len(texts) != n:
        raise ValueError(f"reason_codes returned {len(texts)} rows for {n} customers")
    return texts


def reason_column(target: str) -> str:
    return f"{target}_reasons"


def top_scored(scores: pd.Series, n: int) -> pd.Index:
    """The index of the ``n`` highest non-missing scores (ties broken by index order).

    Only the candidates (scores at least the ``n``-th highest) are sorted: the
    same rows in the same order as sorting every score, for a fraction of the time.
    """
    valid = scores.dropna()
    if n <= 0 or valid.empty:
        return valid.index[:0]
    values = valid.to_numpy()
    if n < len(values):
        cut = np.partition(values, len(values) - n)[len(values) - n]  # the n-th highest
        above = np.flatnonzero(values > cut)
        tied = np.flatnonzero(values == cut)[: n - len(above)]  # the first of those equal to it
        rows = np.concatenate([above, tied])
    else:
        rows = np.arange(len(values))
    order = rows[np.lexsort((rows, -values[rows]))]
    return valid.index[order[:n]]
