"""The per-customer truth: every latent parameter behind the tables, keyed by ``customer_id``.

Models never see it; tests and benchmarks compare them with it, and the oracle
rebuilds the latent process from it (so a written shop keeps its oracle).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.simulation.columns import string_array, take, timestamps
from features.simulation.config import CHANNELS, DAYS_PER_YEAR, SimulationConfig
from features.simulation.customers import Customers


def truth_frame(
    config: SimulationConfig,
    customers: Customers,
    referred_by: np.ndarray,
    engagement_ratio: np.ndarray,
    customer_ids: pa.Array,
) -> pd.DataFrame:
    """One row per customer with its latent parameters; ``attrs`` holds the config."""
    lat = customers.latent
    truth = pd.DataFrame(
        {
            "customer_id": string_array(customer_ids),
            "acquired_at": timestamps(config, lat.acquired),
            "dropout_at": timestamps(config, lat.dropout),
            "purchase_rate_per_year": lat.purchase_rate * DAYS_PER_YEAR,
            "dropout_rate_per_year": lat.dropout_rate * DAYS_PER_YEAR,
            "spend_mean_amount": customers.spend_mean,
            "discount_sensitive": customers.discount_sensitive,
            "is_vip_grower": customers.is_vip,
            "rate_growth": lat.rate_growth,
            "spend_growth": lat.spend_growth,
            "ramp_days": lat.ramp_days,
            "is_decliner": lat.is_decliner,
            "decline_stage_1_at": timestamps(config, lat.stage_at[:, 0]),
            "decline_stage_2_at": timestamps(config, lat.stage_at[:, 1]),
            "decline_stage_3_at": timestamps(config, lat.stage_at[:, 2]),
            "is_advocate": customers.is_advocate,
            "referred_by": string_array(
                customer_ids.take(pa.array(referred_by, mask=referred_by < 0))
            ),
            "movable": customers.movable,
            "return_propensity": customers.return_propensity,
            "ticket_rate_per_year": customers.ticket_rate * DAYS_PER_YEAR,
            "review_propensity": customers.review_propensity,
            "rating_mean": customers.rating_mean,
            "favourite_category": take(pa.array(config.categories), customers.favourite_category),
            "preferred_channel": take(pa.array(CHANNELS), customers.preferred_channel),
            "engagement_per_order": engagement_ratio,
        }
    )
    truth = truth.set_index("customer_id")
    truth.attrs["simulation_config"] = config
    return truth
