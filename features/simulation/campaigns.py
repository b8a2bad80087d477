"""Win-back campaigns: who is contacted, who is held out, who comes back and why.

One random stream (``campaigns``). Campaigns run in date order, each on the
customers lapsed for ``lapse_days`` to ``max_lapse_days`` at contact (a win-back
order of an earlier campaign counts as a purchase). Each contact carries its
potential outcomes (with and without treatment) and their probabilities, which
become ``contact_truth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.simulation.columns import take, timestamps
from features.simulation.config import SimulationConfig
from features.simulation.customers import Customers
from features.simulation.oracle import no_purchase_probability
from features.simulation.orders import OrderTimes
from features.simulation.process import Process

#: Per-contact truth columns beyond the contact itself.
_TRUTH_COLUMNS = (
    "alive_at_contact",
    "days_since_last_order",
    "treatment_rate",
    "probability_control",
    "probability_treatment",
    "outcome_control",
    "outcome_treatment",
)


@dataclass(frozen=True)
class Campaigns:
    """Every contact (arrays by column, see :func:`run_campaigns`) and the treated bursts."""

    contacts: dict[str, np.ndarray]
    bursts: OrderTimes


def run_campaigns(
    process: Process, rng: np.random.Generator, customers: Customers, natural: OrderTimes
) -> Campaigns:
    """Contact lapsed customers campaign by campaign; add win-back orders for the treated."""
    config = process.config
    parts, burst_cust, burst_t, burst_offer = [], [], [], []
    last_burst = np.full(config.customers, -np.inf)
    for k, cdate in enumerate(sorted(config.campaign_dates)):
        contact_at = (cdate - config.start).days + 0.375  # 09:00 UTC
        contacts, bursts = _campaign(process, rng, customers, natural, last_burst, k, contact_at)
        burst_cust.append(bursts.customer)
        burst_t.append(bursts.at)
        burst_offer.append(bursts.offer)
        np.maximum.at(last_burst, bursts.customer, bursts.at)
        parts.append(contacts)
    bursts = OrderTimes(
        customer=np.concatenate(burst_cust) if burst_cust else np.zeros(0, np.int64),
        at=np.concatenate(burst_t) if burst_t else np.zeros(0),
        offer=np.concatenate(burst_offer) if burst_offer else np.zeros(0, np.int64),
    )
    if parts:
        contacts = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    else:
        contacts = {
            "customer": np.zeros(0, np.int64),
            "campaign": np.zeros(0, np.int64),
            "contacted_at": np.zeros(0),
            "treated": np.zeros(0, bool),
            "offer": np.zeros(0, np.int64),
        }
    return Campaigns(contacts=contacts, bursts=bursts)


def _campaign(
    process: Process,
    rng: np.random.Generator,
    customers: Customers,
    natural: OrderTimes,
    last_burst: np.ndarray,
    k: int,
    contact_at: float,
) -> tuple[dict[str, np.ndarray], OrderTimes]:
    """Campaign ``k`` at ``contact_at``: its contacts with their truth, and the treated bursts."""
    config, lat, period_end = process.config, process.latent, float(process.config.days)
    offer_idx = k % len(config.campaign_offers)
    idx, recency = _lapsed(config, lat.acquired, natural, last_burst, contact_at)
    m = len(idx)
    treated = rng.random(m) >= config.control_share
    beta = _treatment_rate(config, customers, idx, recency, config.campaign_offers[offer_idx])
    window = min(contact_at + config.response_days, period_end) - contact_at
    n_burst = rng.poisson(beta * window / config.response_days)
    b_owner = np.repeat(np.arange(m), n_burst)
    b_t = contact_at + rng.random(len(b_owner)) * window
    p0 = 1.0 - no_purchase_probability(
        lat, idx, contact_at, min(contact_at + config.reactivation_days, period_end), config
    )
    p1 = 1.0 - (1.0 - p0) * np.exp(-beta * window / config.response_days)
    in_window = (natural.at > contact_at) & (natural.at <= contact_at + config.reactivation_days)
    y0 = np.bincount(natural.customer[in_window], minlength=config.customers)[idx] > 0
    y1 = y0 | (n_burst > 0)
    t_owner = treated[b_owner]
    bursts = OrderTimes(
        customer=idx[b_owner[t_owner]],
        at=b_t[t_owner],
        offer=np.full(int(t_owner.sum()), offer_idx),
    )
    contacts = {
        "customer": idx,
        "campaign": np.full(m, k),
        "contacted_at": np.full(m, contact_at),
        "treated": treated,
        "offer": np.full(m, offer_idx),
        "alive_at_contact": lat.dropout[idx] > contact_at,
        "days_since_last_order": recency,
        "treatment_rate": beta,
        "probability_control": p0,
        "probability_treatment": p1,
        "outcome_control": y0,
        "outcome_treatment": y1,
    }
    return contacts, bursts


def _lapsed(
    config: SimulationConfig,
    acquired: np.ndarray,
    natural: OrderTimes,
    last_burst: np.ndarray,
    contact_at: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Customers lapsed at ``contact_at`` and their days since last order (win-backs count)."""
    cand = np.flatnonzero(acquired < contact_at)
    last_all = last_burst.copy()
    before = natural.at < contact_at
    np.maximum.at(last_all, natural.customer[before], natural.at[before])
    recency = contact_at - last_all[cand]
    sel = (recency >= config.lapse_days) & (recency <= config.max_lapse_days)
    return cand[sel], recency[sel]


def _treatment_rate(
    config: SimulationConfig,
    customers: Customers,
    idx: np.ndarray,
    recency: np.ndarray,
    offer: str,
) -> np.ndarray:
    """Expected win-back orders of a treated contact: movability, sensitivity, offer, recency."""
    ds = customers.discount_sensitive[idx]
    offer_factor = np.where(offer.startswith("discount") & ds, 1.3, 1.0)
    return (
        customers.movable[idx]
        * config.treatment_rate
        * np.where(
            ds, config.discount_sensitive_treatment_factor, config.full_price_treatment_factor
        )
        * offer_factor
        * np.exp(-(recency - config.lapse_days) / config.treatment_recency_days)
    )


def contact_frames(
    config: SimulationConfig, contacts: dict[str, np.ndarray], customer_ids: pa.Array
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(campaign_contacts, contact_truth)``: the contact table, and it with its truth."""
    campaign_labels = pa.array([f"WB{d:%Y%m%d}" for d in sorted(config.campaign_dates)] or [""])
    contact_cols = {
        "customer_id": take(customer_ids, contacts["customer"]),
        "campaign_id": take(campaign_labels, contacts["campaign"]),
        "contacted_at": timestamps(config, contacts["contacted_at"]),
        "group": take(pa.array(["control", "treatment"]), contacts["treated"].astype(np.int64)),
        "offer": take(pa.array(list(config.campaign_offers)), contacts["offer"]),
    }
    campaign_contacts = pd.DataFrame(contact_cols)
    contact_truth = pd.DataFrame(dict(contact_cols))
    for key in _TRUTH_COLUMNS:
        contact_truth[key] = contacts.get(key, np.zeros(0))
    for key in ("alive_at_contact", "outcome_control", "outcome_treatment"):
        contact_truth[key] = contact_truth[key].astype(bool)
    contact_truth["true_uplift"] = (
        contact_truth["probability_treatment"] - contact_truth["probability_control"]
    )
    contact_truth["reactivated"] = np.where(
        contacts["treated"], contact_truth["outcome_treatment"], contact_truth["outcome_control"]
    )
    return campaign_contacts, contact_truth
