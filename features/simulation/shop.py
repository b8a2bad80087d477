"""``simulate_shop``: the simulated shop's steps, wired in order.

Each step draws from its own named random stream (see
:data:`features.simulation.process.STREAMS`), spawned from the seed in a fixed
order; this is how the simulator has always drawn, so the output for a seed is
byte-identical to the single-module simulator's, and a step can change its own
draws without moving any other table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.inputs.schema import ShopTables
from features.simulation.campaigns import contact_frames, run_campaigns
from features.simulation.columns import ids, string_array, take, timestamps
from features.simulation.config import (
    ACQUISITION_CHANNELS,
    REGIONS,
    SimulatedShop,
    SimulationConfig,
)
from features.simulation.customers import Customers, draw_customers
from features.simulation.engagement import engagement_frame, engagement_ratio
from features.simulation.feedback import referrals_frame, reviews_frame, support_tickets_frame
from features.simulation.orders import all_orders, natural_orders, transactions_frame
from features.simulation.process import Process, purchase_peak, season_by_day, spawn_streams
from features.simulation.truth import truth_frame


def simulate_shop(config: SimulationConfig = SimulationConfig()) -> SimulatedShop:
    """Simulate a shop: contract tables in canonical dtypes plus the ground truth.

    Parameters
    ----------
    config
        Size, period, seed and the knobs of the generating process.

    Returns
    -------
    SimulatedShop
        Same config (seed included) -> identical frames.
    """
    streams = spawn_streams(config.seed)
    season = season_by_day(config, config.days)
    customers = draw_customers(config, streams["customers"], season)
    process = Process(
        config, customers.latent, season, purchase_peak(config, customers.latent, season)
    )
    natural = natural_orders(process, streams["orders"])
    campaigns = run_campaigns(process, streams["campaigns"], customers, natural)
    orders = all_orders(natural, campaigns.bursts)
    del natural
    customer_ids = ids("C", np.arange(1, config.customers + 1), max(7, len(str(config.customers))))
    transactions = transactions_frame(process, streams, customers, orders, customer_ids)
    tickets = support_tickets_frame(process, streams["tickets"], customers, customer_ids)
    reviews = reviews_frame(process, streams["reviews"], customers, orders, customer_ids)
    del orders
    referrals, referred_by = referrals_frame(process, streams["referrals"], customers, customer_ids)
    campaign_contacts, contact_truth = contact_frames(config, campaigns.contacts, customer_ids)
    ratio = engagement_ratio(config, streams["engagement"], config.customers)
    engagement_events = None
    if config.engagement:
        engagement_events = engagement_frame(
            process, streams["engagement"], ratio, campaigns.contacts, customer_ids
        )
    tables = ShopTables(
        transactions=transactions,
        customers=_customers_frame(config, customers, customer_ids),
        support_tickets=tickets,
        referrals=referrals,
        reviews=reviews,
        campaign_contacts=campaign_contacts,
        engagement_events=engagement_events,
        source=f"simulated(seed={config.seed}, customers={config.customers})",
    )
    truth = truth_frame(config, customers, referred_by, ratio, customer_ids)
    return SimulatedShop(tables=tables, truth=truth, contact_truth=contact_truth, config=config)


def _customers_frame(
    config: SimulationConfig, customers: Customers, customer_ids: pa.Array
) -> pd.DataFrame:
    """The customers table: id, first seen (the first order), region, acquisition channel."""
    return pd.DataFrame(
        {
            "customer_id": string_array(customer_ids),
            "first_seen_at": timestamps(config, customers.latent.acquired),
            "region": take(pa.array(REGIONS), customers.region),
            "acquisition_channel": take(
                pa.array(ACQUISITION_CHANNELS), customers.acquisition_channel
            ),
        }
    )
