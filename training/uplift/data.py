"""Campaign contacts as a training table: each contact's point-in-time features and whether the customer bought afterwards."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_feature_table
from features.feature_sets import FeatureSet, latest_feature_set
from features.inputs.schema import ShopTables

#: The key of a campaign contact.
KEYS = ("campaign_id", "customer_id")


def campaign_outcomes(
    tables: ShopTables, contacts: pd.DataFrame, outcome_days: int
) -> pd.DataFrame:
    """Whether each contacted customer bought in ``(contacted_at, contacted_at + outcome_days]``.

    Returns ``reactivated`` (bool: a purchase line in the window), ``outcome_orders``
    and ``outcome_margin`` (signed margin of every line in the window; revenue
    when there is no ``margin_amount``), one row per contact in ``contacts`` order.
    """
    tx = tables.transactions
    is_return = (
        tx["is_return"].fillna(False).astype(bool).to_numpy()
        if "is_return" in tx.columns
        else np.zeros(len(tx), dtype=bool)
    )
    amount = tx["amount"].to_numpy(dtype="float64")
    margin = (
        tx["margin_amount"].astype("float64").fillna(0.0).to_numpy()
        if "margin_amount" in tx.columns
        else np.where(is_return, -amount, amount)
    )
    lines = pd.DataFrame(
        {
            "customer_id": tx["customer_id"].astype("string").to_numpy(),
            "ordered_at": tx["ordered_at"].to_numpy(),
            "order_id": tx["order_id"].astype("string").where(~is_return).to_numpy(),
            "margin": margin,
        }
    )
    keyed = contacts[["customer_id", "contacted_at"]].copy()
    keyed["customer_id"] = keyed["customer_id"].astype("string")
    keyed["_row"] = np.arange(len(keyed))
    lines = lines[lines["customer_id"].isin(keyed["customer_id"])]
    joined = keyed.merge(lines, on="customer_id", how="inner")
    end = joined["contacted_at"] + pd.Timedelta(days=outcome_days)
    inside = (joined["ordered_at"] > joined["contacted_at"]) & (joined["ordered_at"] <= end)
    joined = joined[inside]
    per_row = joined.groupby("_row").agg(
        outcome_orders=("order_id", "nunique"), outcome_margin=("margin", "sum")
    )
    per_row = per_row.reindex(np.arange(len(contacts)))
    out = pd.DataFrame(index=contacts.index)
    out["outcome_orders"] = per_row["outcome_orders"].fillna(0).astype("int64").to_numpy()
    out["reactivated"] = out["outcome_orders"] > 0
    out["outcome_margin"] = per_row["outcome_margin"].fillna(0.0).to_numpy(dtype="float64")
    return out


def campaign_training_table(
    tables: ShopTables,
    *,
    feature_set: FeatureSet | None = None,
    outcome_days: int = 60,
) -> pd.DataFrame:
    """Every past campaign contact with its point-in-time features and outcome.

    Features are as of the day before the contact (``cutoff = contact date - 1``),
    so nothing on or after the contact day leaks in; the outcome is read from
    ``(contacted_at, contacted_at + outcome_days]``. The features are
    ``feature_set``'s, by default the newest reactivation set
    (``features.feature_sets.latest_feature_set("reactivation")``): the uplift
    model scores the same lapsed customers the reactivation model does.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(campaign_id, customer_id)``: the feature columns, then
        ``treatment`` (bool), ``reactivated`` (bool), ``outcome_orders``,
        ``outcome_margin``, ``contacted_at`` and ``cutoff``. ``attrs`` holds
        ``feature_columns``, ``outcome_days`` and ``omitted_features``.

    Raises
    ------
    ValueError
        When the shop has no ``campaign_contacts`` (or none with both groups).
    """
    contacts = tables.campaign_contacts
    if contacts is None or contacts.empty:
        raise ValueError(
            "no campaign_contacts: an uplift model needs past campaigns with control groups "
            "(table campaign_contacts with group = treatment/control)"
        )
    groups = set(contacts["group"].astype(str))
    if not {"treatment", "control"} <= groups:
        raise ValueError(
            f"campaign_contacts has groups {sorted(groups)}: an uplift model needs both "
            f"'treatment' and 'control' contacts"
        )
    if outcome_days < 1:
        raise ValueError(f"outcome_days must be >= 1, got {outcome_days}")
    contacts = contacts.reset_index(drop=True)
    contact_day = contacts["contacted_at"].dt.tz_convert("UTC").dt.floor("D").dt.tz_localize(None)
    cutoff = (contact_day - pd.Timedelta(days=1)).astype("datetime64[s]")
    dates = sorted({c.date() for c in cutoff})
    feature_set = feature_set or latest_feature_set("reactivation")
    features = build_feature_table(tables, dates, feature_set=feature_set)
    keys = pd.MultiIndex.from_arrays(
        [cutoff, contacts["customer_id"].astype("string")], names=["cutoff", "customer_id"]
    )
    known = keys.isin(features.index)
    if not known.all():
        # contacted before their first order (should not happen): no features to learn from
        contacts, keys, cutoff = contacts[known], keys[known], cutoff[known]
    table = features.loc[keys].reset_index(drop=True)
    feature_columns = list(features.columns)
    outcomes = campaign_outcomes(tables, contacts.reset_index(drop=True), outcome_days)
    table["treatment"] = (contacts["group"].astype(str) == "treatment").to_numpy()
    for column in ("reactivated", "outcome_orders", "outcome_margin"):
        table[column] = outcomes[column].to_numpy()
    table["contacted_at"] = contacts["contacted_at"].to_numpy()
    table["cutoff"] = cutoff.to_numpy()
    table.index = pd.MultiIndex.from_arrays(
        [
            contacts["campaign_id"].astype("string").to_numpy(),
            contacts["customer_id"].astype("string").to_numpy(),
        ],
        names=list(KEYS),
    )
    table.attrs = {
        "feature_columns": feature_columns,
        "outcome_days": outcome_days,
        "omitted_features": list(features.attrs.get("omitted_features", [])),
    }
    return table
