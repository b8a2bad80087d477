"""What customers say and do besides buying: support tickets, reviews, referrals.

Three steps, three random streams (``tickets``, ``reviews``, ``referrals``).
Declining customers open more tickets and review more often and worse, which
is what makes these tables early signals of churn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.simulation.columns import ids, string_array, take, timestamps
from features.simulation.config import ACQUISITION_CHANNELS, TICKET_TOPICS
from features.simulation.customers import Customers
from features.simulation.orders import OrderTimes
from features.simulation.process import Process, poisson_times, stage

#: Ticket topic probabilities (``TICKET_TOPICS`` order) while declining and while healthy.
_TOPICS_DECLINING = [0.3, 0.35, 0.1, 0.2, 0.05]
_TOPICS_HEALTHY = [0.3, 0.15, 0.2, 0.15, 0.2]


def support_tickets_frame(
    process: Process, rng: np.random.Generator, customers: Customers, customer_ids: pa.Array
) -> pd.DataFrame:
    """Support tickets while alive: ``ticket_decline_factor`` times more of them while declining."""
    config, lat = process.config, process.latent
    tf = config.ticket_decline_factor
    alive_end = np.minimum(lat.dropout, float(config.days))
    t_owner, t_times = poisson_times(
        rng, lat.acquired, alive_end, customers.ticket_rate * np.where(lat.is_decliner, tf, 1.0)
    )
    t_stage = stage(lat, t_owner, t_times)
    t_keep = rng.random(len(t_owner)) * np.where(lat.is_decliner[t_owner], tf, 1.0) < np.where(
        t_stage > 0, tf, 1.0
    )
    t_owner, t_times, t_stage = t_owner[t_keep], t_times[t_keep], t_stage[t_keep]
    t_sort = np.argsort(t_times, kind="stable")
    t_owner, t_times, t_stage = t_owner[t_sort], t_times[t_sort], t_stage[t_sort]
    topic_p = np.where(t_stage[:, None] > 0, _TOPICS_DECLINING, _TOPICS_HEALTHY)
    topic = (rng.random(len(t_owner))[:, None] > np.cumsum(topic_p, axis=1)).sum(axis=1)
    topic = np.minimum(topic, len(TICKET_TOPICS) - 1)
    return pd.DataFrame(
        {
            "customer_id": take(customer_ids, t_owner),
            "ticket_id": string_array(ids("T", np.arange(1, len(t_owner) + 1), 8)),
            "opened_at": timestamps(config, t_times),
            "topic": take(pa.array(TICKET_TOPICS), topic),
        }
    )


def reviews_frame(
    process: Process,
    rng: np.random.Generator,
    customers: Customers,
    orders: OrderTimes,
    customer_ids: pa.Array,
) -> pd.DataFrame:
    """Reviews 1-21 days after some purchases; more often and lower while declining."""
    config, lat = process.config, process.latent
    o_cust, o_t = orders.customer, orders.at
    o_stage = stage(lat, o_cust, o_t)
    review_p = customers.review_propensity[o_cust] * np.where(
        o_stage > 0, config.review_decline_factor, 1.0
    )
    purchase_orders = np.flatnonzero(rng.random(len(o_cust)) < review_p)
    rv_cust = o_cust[purchase_orders]
    rv_t = o_t[purchase_orders] + rng.uniform(1.0, 21.0, len(purchase_orders))
    rv_stage = o_stage[purchase_orders]
    rv_ok = rv_t < float(config.days)
    rv_cust, rv_t, rv_stage = rv_cust[rv_ok], rv_t[rv_ok], rv_stage[rv_ok]
    rv_mean = customers.rating_mean[rv_cust] - np.where(
        rv_stage > 0, config.rating_decline_drop, 0.0
    )
    rating = np.clip(np.round(rng.normal(rv_mean, 0.8)), 1, 5)
    rv_sort = np.argsort(rv_t, kind="stable")
    return pd.DataFrame(
        {
            "customer_id": take(customer_ids, rv_cust[rv_sort]),
            "reviewed_at": timestamps(config, rv_t[rv_sort]),
            "rating": rating[rv_sort].astype(np.float64),
        }
    )


def referrals_frame(
    process: Process, rng: np.random.Generator, customers: Customers, customer_ids: pa.Array
) -> tuple[pd.DataFrame, np.ndarray]:
    """Referrals: each referred customer gets a living advocate acquired before them.

    Returns the table and each customer's referrer position (-1: none), for the truth.
    """
    lat, n = process.latent, process.config.customers
    referred = np.flatnonzero(
        customers.acquisition_channel == ACQUISITION_CHANNELS.index("referral")
    )
    advocates = np.flatnonzero(customers.is_advocate)  # sorted by acquisition (customers are)
    referrer = np.full(len(referred), -1)
    n_before = np.searchsorted(lat.acquired[advocates], lat.acquired[referred], side="left")
    for _ in range(20):
        todo = np.flatnonzero((referrer < 0) & (n_before > 0))
        if len(todo) == 0:
            break
        pick = advocates[(rng.random(len(todo)) * n_before[todo]).astype(np.int64)]
        ok = lat.dropout[pick] > lat.acquired[referred[todo]]
        referrer[todo[ok]] = pick[ok]
    has_ref = referrer >= 0
    ref_sort = np.argsort(lat.acquired[referred[has_ref]], kind="stable")
    referrals = pd.DataFrame(
        {
            "customer_id": take(customer_ids, referrer[has_ref][ref_sort]),
            "referred_at": timestamps(process.config, lat.acquired[referred[has_ref]][ref_sort]),
            "referred_customer_id": take(customer_ids, referred[has_ref][ref_sort]),
        }
    )
    referred_by = np.full(n, -1)
    referred_by[referred[has_ref]] = referrer[has_ref]
    return referrals, referred_by
