"""Retention and win-back lists: who to contact, why, how, and who to hold out.

Four lists, each a pure function of the score table (``serving.scoring.table``) and
the feature values behind it:

* ``at-risk`` — active customers ranked by **value at risk**:
  ``churn_risk x value_if_retained`` (the value champion's predicted value over
  the horizon, or without one their trailing margin over the horizon);
* ``winback`` — lapsed customers ranked by **expected incremental margin**:
  ``uplift x value_if_reactivated`` when an uplift model trained on past
  campaigns is given (customers who come back *because* of the contact first),
  else ``reactivation_probability x value_if_reactivated``; the value of a
  returning customer comes from the value champion when there is one;
* ``vip-potential`` — active non-VIPs most likely to reach VIP (``vip_potential``);
* ``near-vip`` — customers just under the next tier's margin threshold, with how
  much more margin (and spend, at their margin rate) reaches it.

Each row carries the customer's tier (margin bands, :class:`features.tiers.TierConfig`),
the scores, the value the list is ranked by, the top reasons from the score
table, a suggested action with the rule that chose it (``serving.lists.actions``),
and ``group`` (``treatment``/``control``: a random hold-out stratified by score
decile and seeded by the list id, ``serving.lists.control``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from features.tiers import TierConfig, margin_to_next_tier, tier_thresholds
from serving.lists.actions import (
    suggest_actions,
)
from serving.lists.control import assign_groups
from serving.lists.settings import ListConfig
from serving.lists.targeting import TargetingConfig, apply_targeting
from serving.lists.values import (
    predicted_value_if_returning,
    value_if_reactivated,
    value_if_retained,
)

#: The list kinds, as named on the command line and in the API.
LIST_KINDS = ("at-risk", "winback", "vip-potential", "near-vip")

#: The score table's reason column each list shows.
REASON_COLUMN = {
    "at-risk": "churn_reasons",
    "winback": "reactivation_reasons",
    "vip-potential": "vip_reasons",
    "near-vip": "vip_reasons",
}


def ranking_target(kind: str) -> str:
    """The target whose model scores (and explains) a ``kind`` list."""
    return REASON_COLUMN[kind].removesuffix("_reasons")


#: Columns every list has, in order (kind-specific value columns follow ``expected_value``).
BASE_COLUMNS = (
    "list_id",
    "rank",
    "customer_id",
    "tier",
    "churn_risk",
    "vip_potential",
    "reactivation_probability",
    "expected_value",
    "predicted_value",
)
TAIL_COLUMNS = ("expected_incremental_margin", "reasons", "action", "action_rule", "group")

KIND_COLUMNS = {
    "at-risk": ("value_if_retained", "value_at_risk"),
    "winback": ("uplift", "value_if_reactivated"),
    "vip-potential": ("next_tier", "margin_to_next_tier"),
    "near-vip": (
        "next_tier",
        "next_tier_threshold_margin",
        "margin_to_next_tier",
        "spend_to_next_tier",
    ),
}


# ------------------------------------------------------------------- inputs

#: Score-table column with a customer's do-not-contact reason (see :func:`mark_suppressed`).
DO_NOT_CONTACT = "do_not_contact"
#: ``attrs`` key of a built list: do-not-contact customers left out, by reason.
SUPPRESSED_ROWS = "suppressed_rows"

SCORE_TABLE_COLUMNS = (
    "customer_id",
    "churn_risk",
    "vip_potential",
    "reactivation_probability",
    "expected_value",
    "tier",
    "is_active",
    "is_lapsed",
    "is_vip",
    "trailing_margin",
)


#: Feature columns the list values read (``winback``'s value, ``near-vip``'s spend).
VALUE_FEATURES = ("total_margin_amount", "tenure_days", "margin_rate")


def list_columns_needed(
    kind: str, config: ListConfig
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The score-table and feature columns a list of ``kind`` reads (None: every feature).

    A ``winback`` list reads every feature: its uplift model picks its own.
    """
    scores = (*SCORE_TABLE_COLUMNS, "predicted_value", "value_horizon_days", REASON_COLUMN[kind])
    if kind == "winback":
        return scores, None
    rules = {c for rule in config.actions.rules for c in rule.columns if c != "tier"}
    return scores, (*VALUE_FEATURES, *sorted(rules))


def score_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The score table indexed by ``customer_id`` (string), checked for the columns lists need."""
    frame = scores if "customer_id" in scores.columns else scores.reset_index()
    missing = [c for c in SCORE_TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the score table lacks the columns {missing}; write it with "
            f"`winback score --as-of YYYY-MM-DD`"
        )
    frame = frame.copy()
    frame["customer_id"] = frame["customer_id"].astype("string")
    if frame["customer_id"].duplicated().any():
        dupes = frame.loc[frame["customer_id"].duplicated(), "customer_id"].head(3).tolist()
        raise ValueError(f"the score table has duplicate customer ids, e.g. {dupes}")
    return frame.set_index("customer_id")


def list_tiers(scores: pd.DataFrame, tiers: TierConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Tiers of the ranked customers under ``tiers``, the next tier up, and the band thresholds.

    The ranked population is the score table's customers with a tier (active in
    the trailing window), valued by ``trailing_margin``, as at scoring time; with
    ``tiers.basis == "predicted"`` and a value champion's scores, every customer
    it scored, valued by ``predicted_value``.
    Returns ``(frame, thresholds)``: the frame (index of ``scores``) has ``tier``,
    ``next_tier``, ``next_tier_threshold_margin`` and ``margin_to_next_tier``
    (``features.tiers.margin_to_next_tier``; NA when unranked or in the best band).
    """
    ranked = scores["tier"].notna().to_numpy(dtype=bool)
    margin = scores.loc[ranked, "trailing_margin"].astype("float64").fillna(0.0)
    predicted = scores.get("predicted_value")
    if tiers.basis == "predicted" and predicted is not None and predicted.notna().any():
        ranked = predicted.notna().to_numpy(dtype=bool)
        margin = predicted[ranked].astype("float64")
    thresholds = tier_thresholds(margin, tiers)
    out = pd.DataFrame(index=scores.index)
    out["tier"] = pd.Series(pd.NA, index=scores.index, dtype="string")
    out["next_tier"] = pd.Series(pd.NA, index=scores.index, dtype="string")
    out["margin_to_next_tier"] = np.nan
    if len(margin):
        gap = margin_to_next_tier(margin, tiers)
        out.loc[ranked, "tier"] = gap["tier"]
        out.loc[ranked, "next_tier"] = gap["next_tier"]
        out.loc[ranked, "margin_to_next_tier"] = gap["margin_to_next_tier"].to_numpy()
    out["next_tier_threshold_margin"] = out["next_tier"].map(thresholds.to_dict()).astype("float64")
    return out, thresholds


def _reasons_text(values: pd.Series) -> pd.Series:
    """Reason lists as one ``"; "``-joined string per row (empty when none)."""

    def join(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, (list, tuple, np.ndarray)):
            return "; ".join(str(v) for v in value if v is not None and str(v))
        if isinstance(value, float) and np.isnan(value):
            return ""
        return str(value)

    return pd.Series([join(v) for v in values], index=values.index, dtype="string")


def _ranked(frame: pd.DataFrame, by: str, *, ascending: bool = False) -> pd.DataFrame:
    """``frame`` sorted by ``by`` (missing last), ties by ``customer_id`` for a stable order."""
    key = frame[by].astype("float64")
    key = key.fillna(np.inf if ascending else -np.inf)
    order = np.lexsort(
        (frame.index.to_numpy().astype(str), key.to_numpy() if ascending else -key.to_numpy())
    )
    return frame.iloc[order]


# ------------------------------------------------------------------ builders


def at_risk_candidates(scores: pd.DataFrame, config: ListConfig) -> pd.DataFrame:
    """Active customers with a churn risk, ranked by value at risk (best first)."""
    s = score_frame(scores)
    pool = s[s["is_active"].astype(bool) & s["churn_risk"].notna()].copy()
    pool["value_if_retained"] = value_if_retained(pool, config.horizon_days)
    pool["value_at_risk"] = pool["churn_risk"] * pool["value_if_retained"]
    pool["expected_incremental_margin"] = pool["value_at_risk"] * config.assumed_effect_share
    return _ranked(pool, "value_at_risk")


def winback_candidates(
    scores: pd.DataFrame,
    config: ListConfig,
    *,
    features: pd.DataFrame | None = None,
    uplift: pd.Series | None = None,
) -> pd.DataFrame:
    """Lapsed customers ranked by expected incremental margin (best first).

    With ``uplift`` (estimated uplift of a contact by customer id, from
    ``training.uplift.model``): ``uplift x value_if_reactivated``, so customers who
    would come back anyway, or not at all, sink. Without it:
    ``reactivation_probability x value_if_reactivated`` ranks, and the
    incremental margin is that times ``assumed_effect_share``.
    """
    s = score_frame(scores)
    pool = s[s["is_lapsed"].astype(bool) & s["reactivation_probability"].notna()].copy()
    pool["value_if_reactivated"] = value_if_reactivated(s, features, config.horizon_days).reindex(
        pool.index
    )
    returning = predicted_value_if_returning(pool, config.horizon_days)
    pool["value_if_reactivated"] = returning.where(returning.notna(), pool["value_if_reactivated"])
    expected = pool["reactivation_probability"] * pool["value_if_reactivated"]
    if uplift is not None:
        lift = pd.Series(uplift, dtype="float64")
        lift.index = lift.index.astype("string")
        pool["uplift"] = lift.reindex(pool.index)
        pool["expected_incremental_margin"] = pool["uplift"] * pool["value_if_reactivated"]
        # a customer without an uplift estimate falls back to the assumed effect
        fallback = expected * config.assumed_effect_share
        pool["expected_incremental_margin"] = pool["expected_incremental_margin"].fillna(fallback)
        key = "expected_incremental_margin"
    else:
        pool["uplift"] = np.nan
        pool["expected_incremental_margin"] = expected * config.assumed_effect_share
        pool["_expected"] = expected
        key = "_expected"
    ranked = _ranked(pool, key)
    return ranked.drop(columns=["_expected"], errors="ignore")


def vip_potential_candidates(scores: pd.DataFrame, config: ListConfig) -> pd.DataFrame:
    """Active customers not VIP yet, ranked by VIP potential (best first)."""
    s = score_frame(scores)
    gap, thresholds = list_tiers(s, config.tiers)
    s["tier"] = gap["tier"]
    vip = s["tier"].isin(list(config.tiers.vip_tiers)).to_numpy(dtype=bool)
    pool = s[s["is_active"].astype(bool).to_numpy() & ~vip & s["vip_potential"].notna().to_numpy()]
    pool = pool.copy()
    pool["next_tier"] = gap["next_tier"].reindex(pool.index)
    pool["margin_to_next_tier"] = gap["margin_to_next_tier"].reindex(pool.index)
    lowest_vip = config.tiers.vip_tiers[-1] if config.tiers.vip_tiers else None
    to_vip = (
        np.maximum(float(thresholds[lowest_vip]) - pool["trailing_margin"].astype("float64"), 0.0)
        if lowest_vip is not None
        else 0.0
    )
    pool["expected_incremental_margin"] = (
        pool["vip_potential"] * to_vip * config.assumed_effect_share
    )
    return _ranked(pool, "vip_potential")


def near_vip_candidates(
    scores: pd.DataFrame, config: ListConfig, *, features: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Customers within ``near_vip_max_gap_share`` below the next tier, closest first.

    ``spend_to_next_tier`` converts the margin gap to spend at the customer's
    ``margin_rate`` (missing when the features lack it or it is not positive).
    """
    s = score_frame(scores)
    gap, _ = list_tiers(s, config.tiers)
    ranked = s.drop(columns=["tier"]).join(gap)
    ranked = ranked[ranked["tier"].notna().to_numpy(dtype=bool)]
    share = ranked["margin_to_next_tier"] / ranked["next_tier_threshold_margin"].abs()
    near = ranked["next_tier"].notna() & (share <= config.near_vip_max_gap_share)
    pool = ranked[near.to_numpy(dtype=bool)].copy()
    pool["_gap_share"] = share[near.to_numpy(dtype=bool)]
    if features is not None and "margin_rate" in features.columns:
        rate = features["margin_rate"].astype("float64").reindex(pool.index)
        pool["spend_to_next_tier"] = (pool["margin_to_next_tier"] / rate).where(rate > 0)
    else:
        pool["spend_to_next_tier"] = np.nan
    pool["expected_incremental_margin"] = pool["margin_to_next_tier"] * config.assumed_effect_share
    return _ranked(pool, "_gap_share", ascending=True).drop(columns=["_gap_share"])


def candidates(
    kind: str,
    scores: pd.DataFrame,
    config: ListConfig = ListConfig(),
    *,
    features: pd.DataFrame | None = None,
    uplift: pd.Series | None = None,
) -> pd.DataFrame:
    """The ranked population of a list kind (before targeting, actions and control)."""
    if kind == "at-risk":
        return at_risk_candidates(scores, config)
    if kind == "winback":
        return winback_candidates(scores, config, features=features, uplift=uplift)
    if kind == "vip-potential":
        return vip_potential_candidates(scores, config)
    if kind == "near-vip":
        return near_vip_candidates(scores, config, features=features)
    raise ValueError(f"unknown list kind {kind!r}: choose one of {list(LIST_KINDS)}")


#: The column each kind is ranked by (strata of its control group are its deciles).
RANK_VALUE = {
    "at-risk": "value_at_risk",
    "winback": "expected_incremental_margin",
    "vip-potential": "vip_potential",
    "near-vip": "margin_to_next_tier",
}


def build_list(
    kind: str,
    scores: pd.DataFrame,
    *,
    list_id: str,
    features: pd.DataFrame | None = None,
    uplift: pd.Series | None = None,
    config: ListConfig = ListConfig(),
    targeting: TargetingConfig = TargetingConfig(),
) -> pd.DataFrame:
    """One retention list: ranked, targeted, with stored reasons, actions and a control group.

    Parameters
    ----------
    kind
        ``at-risk``, ``winback``, ``vip-potential`` or ``near-vip``.
    scores
        The score table (``serving.scoring.table.score_table``).
    list_id
        The list's id (seeds its control group: the same id gives the same groups).
    features
        Feature values by ``customer_id`` (the score table's feature file): the
        suggested actions, ``winback``'s value and ``near-vip``'s spend need them.
    uplift
        Estimated uplift of a contact by ``customer_id`` (``winback`` only).
    config, targeting
        List settings and how many to keep (top N, budget, profit-optimal cut).

    Returns
    -------
    pandas.DataFrame
        One row per targeted customer, best first: :data:`BASE_COLUMNS`, the kind's
        value columns (:data:`KIND_COLUMNS`), then :data:`TAIL_COLUMNS`. Reasons
        are the score table's (empty where it has none: :func:`explain_list`
        computes them).
    """
    ranked = candidates(kind, scores, config, features=features, uplift=uplift)
    ranked, suppressed = without_suppressed(ranked, scores)  # before targeting and control
    out = apply_targeting(ranked, targeting, value_column="expected_incremental_margin").copy()
    tiers, _ = list_tiers(score_frame(scores), config.tiers)
    out["tier"] = tiers["tier"].reindex(out.index)
    reason_column = REASON_COLUMN[kind]
    out["reasons"] = _reasons_text(
        out[reason_column]
        if reason_column in out.columns
        else pd.Series([None] * len(out), index=out.index, dtype="object")
    )
    actions = suggest_actions(_behaviour(out, features), config.actions)
    out["action"] = actions["action"]
    out["action_rule"] = actions["action_rule"]
    out["group"] = assign_groups(
        out.index,
        out[RANK_VALUE[kind]].to_numpy(dtype="float64", na_value=np.nan),
        list_id,
        share=config.control_share,
        n_strata=config.n_strata,
    ).to_numpy()
    out = _list_columns(out, kind, list_id)
    out.attrs[SUPPRESSED_ROWS] = suppressed
    return out


def _behaviour(out: pd.DataFrame, features: pd.DataFrame | None) -> pd.DataFrame:
    """The listed customers' tier and feature values: what the action rules test."""
    behaviour = out[["tier"]].copy()
    if features is not None:
        extra = features.reindex(out.index)
        for column in extra.columns:
            if column != "tier":
                behaviour[column] = extra[column]
    return behaviour


def _list_columns(out: pd.DataFrame, kind: str, list_id: str) -> pd.DataFrame:
    """The list's columns in order (missing ones empty), ``customer_id`` a column, ranks from 1."""
    out["list_id"] = list_id
    out["rank"] = np.arange(1, len(out) + 1, dtype=np.int64)
    out.index.name = "customer_id"
    out = out.reset_index()
    columns = [*BASE_COLUMNS, *KIND_COLUMNS[kind], *TAIL_COLUMNS]
    for column in columns:
        if column not in out.columns:
            out[column] = np.nan
    out = out[columns]
    out["group"] = out["group"].astype("string")
    out["tier"] = out["tier"].astype("string")
    return out


def explain_list(
    frame: pd.DataFrame, explain: Callable[[pd.Index], list[list[str]]], *, limit: int
) -> pd.DataFrame:
    """A built list with reasons computed for its rows that have none stored, best ranks first.

    ``explain`` maps customer ids to lists of reason texts (e.g. the service's
    on-demand SHAP explanations, ~1 ms a row). Only rows within the first
    ``limit`` ranks are explained, so a list of the whole base costs at most
    ``limit`` explanations; rows further down keep the score table's reasons.
    """
    reasons = frame["reasons"].fillna("")
    head = np.arange(len(frame)) < limit
    need = np.flatnonzero(head & (reasons == "").to_numpy(dtype=bool))
    if not len(need):
        return frame
    out = frame.copy()
    ids = pd.Index(out["customer_id"].iloc[need])
    texts = _reasons_text(pd.Series(list(explain(ids)), index=ids, dtype="object"))
    column = out.columns.get_loc("reasons")
    out.iloc[need, column] = texts.to_numpy()
    out.attrs = dict(frame.attrs)
    return out


def mark_suppressed(scores: pd.DataFrame, suppressions: pd.DataFrame | None) -> pd.DataFrame:
    """``scores`` with a ``do_not_contact`` column: each suppressed customer's reason, else NA.

    ``suppressions`` is the contract table (``customer_id``, optional ``reason``);
    a missing reason reads ``unspecified``. :func:`build_list` leaves marked
    customers out of every list.
    """
    if suppressions is None or len(suppressions) == 0:
        return scores
    reason = (
        suppressions["reason"].astype("string").fillna("unspecified")
        if "reason" in suppressions.columns
        else pd.Series("unspecified", index=suppressions.index, dtype="string")
    )
    reasons = pd.Series(
        reason.to_numpy(), index=suppressions["customer_id"].astype("string").to_numpy()
    )
    reasons = reasons[~reasons.index.duplicated()]
    ids = scores["customer_id"] if "customer_id" in scores.columns else scores.index.to_series()
    out = scores.copy()
    out[DO_NOT_CONTACT] = pd.array(ids.astype("string").map(reasons).to_numpy(), dtype="string")
    return out


def without_suppressed(
    ranked: pd.DataFrame, scores: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ranked candidates without do-not-contact customers, and how many went per reason."""
    if DO_NOT_CONTACT not in scores.columns:
        return ranked, {}
    ids = scores["customer_id"] if "customer_id" in scores.columns else scores.index.to_series()
    reason = pd.Series(scores[DO_NOT_CONTACT].to_numpy(), index=ids.astype("string").to_numpy())
    found = reason.reindex(ranked.index.astype("string"))
    dropped = found.notna().to_numpy()
    counts = found[dropped].value_counts().sort_index()
    return ranked.loc[~dropped], {str(k): int(v) for k, v in counts.items()}
