"""Reason codes: a customer's top SHAP contributions in plain language.

LightGBM's ``pred_contrib`` splits each customer's raw score into one
contribution per feature (plus a ``bias``). The features pushing hardest toward
the positive class (churn, VIP, coming back) become the reasons shown next to
a score in lists and the API: "no order for 140 days, 3.0x the usual gap",
"support tickets up (3 in the last 90 days)", "spend falling vs last year (-45%)"
(the sentences: ``training.model.reason_templates``).

Independent of MLflow and of the model class: serving imports it as is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.model.reason_templates import (
    REASON_TEMPLATES,
    Template,
    _missing,
    _num,
    generic_reason,
)


@dataclass(frozen=True)
class Reason:
    """One reason: the feature (``code``), its sentence and its contribution (raw-score units)."""

    code: str
    text: str
    contribution: float
    value: object


class _Row(Mapping):
    """One customer's values, read lazily from column arrays (cheap for millions of rows)."""

    def __init__(self, columns: Mapping[str, np.ndarray], i: int):
        self._columns = columns
        self._i = i

    def __getitem__(self, key: str) -> object:
        return self._columns[key][self._i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def _reference(features: pd.DataFrame, reference: Mapping[str, float] | None) -> dict:
    out = {}
    dtypes = features.dtypes
    for column in features.columns:
        if reference is not None and column in reference:
            out[column] = reference[column]
        elif pd.api.types.is_numeric_dtype(dtypes[column]) and not isinstance(
            dtypes[column], pd.CategoricalDtype
        ):
            out[column] = float(features[column].astype(float).median())  # NaN when all missing
            if math.isnan(out[column]):
                out[column] = 0.0
    return out


def array_reference(
    names: Sequence[str], values: Mapping[str, np.ndarray], reference: Mapping[str, float] | None
) -> dict[str, float]:
    """What each feature is "high" against: ``reference``, else the median of a float column.

    :func:`customer_reasons`' reference for feature values held as NumPy
    columns (float64, or objects for categories, which have none).
    """
    out: dict[str, float] = {}
    for name in names:
        if reference is not None and name in reference:
            out[name] = reference[name]
        elif values[name].dtype.kind == "f":
            known = values[name][~np.isnan(values[name])]
            out[name] = float(np.median(known)) if len(known) else 0.0
    return out


def _sentence(
    name: str, value: object, row: Mapping[str, object], ref: float | None, templates: Mapping
) -> str:
    """The sentence of feature ``name`` for one customer (its template, else the generic one)."""
    high = (
        ref is not None and not _missing(value) and not isinstance(value, str) and _num(value) > ref
    )
    template = templates.get(name)
    text = template(row, high) if template is not None else None
    return generic_reason(name, value, high) if text is None else text


def top_reasons(
    contributions: np.ndarray,
    names: Sequence[str],
    values: Mapping[str, np.ndarray],
    refs: Mapping[str, float],
    *,
    top: int = 3,
    direction: int = 1,
    templates: Mapping[str, Template] | None = None,
) -> list[list[Reason]]:
    """The top reasons per row of ``contributions`` (rows x ``names``), from NumPy columns.

    The work of :func:`customer_reasons` without pandas: ``values`` holds each
    feature's values (one array per name, rows aligned), ``refs`` what a value
    is "high" against (:func:`array_reference`). For one customer this is a few
    dozen microseconds, where building frames cost milliseconds.
    """
    templates = REASON_TEMPLATES if templates is None else templates
    push = np.asarray(contributions, dtype=float) * direction
    push = np.where(np.isnan(push), 0.0, push)
    order = np.argsort(-push, axis=1, kind="stable")
    out: list[list[Reason]] = []
    for i in range(push.shape[0]):
        row = _Row(values, i)
        reasons: list[Reason] = []
        seen: set[str] = set()
        # A score no feature pushes up (below the base rate) is explained by what holds it down.
        ranked, sign = (
            (order[i], 1.0)
            if push[i, order[i][0]] > 0
            else (np.argsort(push[i], kind="stable"), -1.0)
        )
        for j in ranked:
            if sign * push[i, j] <= 0 or len(reasons) == top:
                break
            name = names[j]
            value = values[name][i]
            text = _sentence(name, value, row, refs.get(name), templates)
            if text not in seen:
                seen.add(text)
                reasons.append(Reason(name, text, float(push[i, j] * direction), value))
        out.append(reasons)
    return out


def customer_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    top: int = 3,
    direction: int = 1,
    reference: Mapping[str, float] | None = None,
    templates: Mapping[str, Template] | None = None,
) -> list[list[Reason]]:
    """The top reasons per customer, from SHAP contributions and feature values.

    Parameters
    ----------
    contributions
        One column per feature (raw-score units, e.g. ``WinbackClassifier.contributions``);
        a ``bias`` column is ignored. Rows align with ``features`` by position.
    features
        The feature values the contributions were computed from.
    top
        Reasons per customer (fewer when fewer features push toward the class; a
        customer no feature pushes toward it gets the features holding the score down).
    direction
        ``+1``: reasons for a high score (contributions > 0); ``-1``: reasons for
        a low score (contributions < 0).
    reference
        Values a feature is "high" or "low" against; the medians of ``features``
        by default (pass training medians to make reasons independent of the batch).
    templates
        Sentences per feature; :data:`REASON_TEMPLATES` by default.

    Returns
    -------
    list of list of Reason
        Ordered by contribution (largest push first); ties go to the feature
        listed first in ``contributions``. Repeated sentences are skipped.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    names = [c for c in contributions.columns if c != "bias"]
    if len(contributions) != len(features):
        raise ValueError(
            f"contributions has {len(contributions)} rows but features {len(features)}; "
            "pass the frame the contributions were computed from"
        )
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise ValueError(f"features lack the contribution columns {missing}")
    # one conversion of the whole frame: per-column access costs ~0.1 ms a column
    values = dict(zip(features.columns, features.to_numpy(dtype=object).T, strict=True))
    return top_reasons(
        contributions[names].to_numpy(dtype=float),
        names,
        values,
        _reference(features[names], reference),
        top=top,
        direction=direction,
        templates=templates,
    )


def reason_codes(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    top: int = 3,
    direction: int = 1,
    reference: Mapping[str, float] | None = None,
    templates: Mapping[str, Template] | None = None,
) -> pd.DataFrame:
    """:func:`customer_reasons` as a table: ``reason_1..top`` (sentences) and
    ``reason_code_1..top`` (feature names), indexed like ``contributions``;
    ``None`` where a customer has fewer reasons."""
    lists = customer_reasons(
        contributions,
        features,
        top=top,
        direction=direction,
        reference=reference,
        templates=templates,
    )
    data: dict[str, list] = {}
    for k in range(top):
        data[f"reason_{k + 1}"] = [r[k].text if len(r) > k else None for r in lists]
    for k in range(top):
        data[f"reason_code_{k + 1}"] = [r[k].code if len(r) > k else None for r in lists]
    return pd.DataFrame(data, index=contributions.index, dtype=object)


def reason_frequencies(codes: pd.DataFrame, *, column: str = "reason_code_1") -> pd.DataFrame:
    """How often each feature is a customer's first reason: ``customers`` and ``share``."""
    counts = codes[column].dropna().value_counts()
    out = pd.DataFrame({"customers": counts, "share": counts / max(len(codes), 1)})
    out.index.name = "reason_code"
    return out
