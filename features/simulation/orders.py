"""Orders: natural purchases while alive, every order's value and lines, returns.

Three steps, three random streams: ``orders`` (natural purchase times),
``lines`` (order values, channels, the lines' products, quantities and
discounts) and ``returns`` (which lines come back, when). The transactions
table is the purchase lines with the return lines merged in, in time order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.simulation.columns import ids, interleave, take, timestamps
from features.simulation.config import CHANNELS, SimulationConfig
from features.simulation.customers import Customers, channel_shares
from features.simulation.process import Process, growth, thin_alive


@dataclass(frozen=True)
class OrderTimes:
    """Owner (customer position), time and offer of orders (offer -1: not a win-back order)."""

    customer: np.ndarray
    at: np.ndarray
    offer: np.ndarray | None = None


@dataclass(frozen=True)
class Lines:
    """Purchase lines in time order, with their order, customer and prices."""

    order: np.ndarray
    customer: np.ndarray
    at: np.ndarray
    category: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    amount: np.ndarray
    discount_amount: np.ndarray
    margin_amount: np.ndarray


def natural_orders(process: Process, rng: np.random.Generator) -> OrderTimes:
    """First order at acquisition, then thinned Poisson purchases while alive."""
    lat, n = process.latent, process.config.customers
    max_rate = lat.purchase_rate * process.peak * lat.rate_growth
    stage_factors = np.array((1.0, *process.config.decline_stage_factors))
    owner, times = thin_alive(process, rng, max_rate, stage_factors, slice(0, n))
    return OrderTimes(
        customer=np.concatenate((np.arange(n, dtype=np.int64), owner)),
        at=np.concatenate((lat.acquired, times)),
    )


def all_orders(natural: OrderTimes, bursts: OrderTimes) -> OrderTimes:
    """Natural and win-back orders together, in time order (ties keep natural first)."""
    customer = np.concatenate((natural.customer, bursts.customer))
    at = np.concatenate((natural.at, bursts.at))
    offer = np.concatenate((np.full(len(natural.customer), -1), bursts.offer))
    order = np.argsort(at, kind="stable")
    return OrderTimes(customer=customer[order], at=at[order], offer=offer[order])


def transactions_frame(
    process: Process,
    streams: dict[str, np.random.Generator],
    customers: Customers,
    orders: OrderTimes,
    customer_ids: pa.Array,
) -> pd.DataFrame:
    """The transactions table: purchase lines and return lines, in time order."""
    config = process.config
    order_value, n_lines, o_channel = _order_draws(process, streams["lines"], customers, orders)
    lines = _order_lines(config, streams["lines"], customers, orders, order_value, n_lines)
    rows = _with_returns(config, streams["returns"], lines, customers.return_propensity)
    all_line = rows.pop("line")
    l_order, l_cust = lines.order, lines.customer
    quantity, product, category = lines.quantity, lines.product, lines.category
    del lines
    n_orders, n_cat = len(orders.customer), len(config.categories)
    order_ids = ids("O", np.arange(1, n_orders + 1), max(8, len(str(n_orders))))
    cat_codes = [c[:3].upper() for c in config.categories]
    per_category = config.products_per_category
    product_labels = ids("", np.arange(per_category * n_cat) % per_category + 1, 3)
    product_labels = pc.binary_join_element_wise(
        pa.array(np.repeat(cat_codes, per_category)), product_labels, "-"
    )
    return pd.DataFrame(
        {
            "customer_id": take(customer_ids, l_cust[all_line]),
            "order_id": take(order_ids, l_order[all_line]),
            "ordered_at": timestamps(config, rows["at"]),
            "amount": rows["amount"],
            "is_return": rows["is_return"],
            "margin_amount": rows["margin_amount"],
            "discount_amount": rows["discount_amount"],
            "quantity": quantity[all_line].astype(np.int64),
            "product_id": take(product_labels, product[all_line]),
            "category": take(pa.array(config.categories), category[all_line]),
            "channel": take(pa.array(CHANNELS), o_channel[l_order[all_line]]),
        }
    )


def _order_draws(
    process: Process, rng: np.random.Generator, customers: Customers, orders: OrderTimes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each order's value (grown for a VIP grower), number of lines (1-5) and channel."""
    config, lat = process.config, process.latent
    o_cust, n_orders = orders.customer, len(orders.customer)
    spend_factor = growth(lat, o_cust, orders.at, lat.spend_growth)
    order_value = rng.gamma(config.order_value_shape, 1.0, n_orders) * (
        customers.spend_mean[o_cust] * spend_factor / config.order_value_shape
    )
    n_lines = 1 + rng.binomial(4, 0.25, n_orders)
    o_channel = np.where(
        rng.random(n_orders) < config.preferred_channel_share,
        customers.preferred_channel[o_cust],
        rng.choice(len(CHANNELS), size=n_orders, p=channel_shares(config)),
    )
    return order_value, n_lines, o_channel


def _order_lines(
    config: SimulationConfig,
    rng: np.random.Generator,
    customers: Customers,
    orders: OrderTimes,
    order_value: np.ndarray,
    n_lines: np.ndarray,
) -> Lines:
    """Split each order's value over its lines; pick products; price quantity and discounts."""
    l_order = np.repeat(np.arange(len(orders.customer), dtype=np.int64), n_lines)
    n_l = len(l_order)
    l_cust = orders.customer[l_order]
    share = rng.gamma(2.0, 1.0, n_l)
    starts = np.concatenate(([0], np.cumsum(n_lines)[:-1]))
    share /= np.add.reduceat(share, starts)[l_order]
    list_value = order_value[l_order] * share
    del share
    category, product = _products(config, rng, customers.favourite_category[l_cust], l_order)
    quantity = 1 + rng.poisson(0.4, n_l)
    disc_rate = _discount_rates(config, rng, customers.discount_sensitive[l_cust])
    l_offer = orders.offer[l_order]
    offer_disc = np.array(
        [0.2 if o.startswith("discount") else 0.0 for o in config.campaign_offers] + [0.0]
    )[l_offer]
    disc_rate = np.where(l_offer >= 0, offer_disc, disc_rate)
    del l_offer, offer_disc
    margin_rate = np.asarray(config.category_margin_rates)[category]
    return Lines(
        order=l_order,
        customer=l_cust,
        at=orders.at[l_order],
        category=category,
        product=product,
        quantity=quantity,
        amount=np.round(list_value * (1 - disc_rate), 2),
        discount_amount=np.round(list_value * disc_rate, 2),
        margin_amount=np.round(list_value * (margin_rate - disc_rate), 2),
    )


def _products(
    config: SimulationConfig, rng: np.random.Generator, category: np.ndarray, l_order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Category (the favourite or a popular one) and product (Zipf rank) of each line.

    ``category`` starts as each line's favourite category and is changed in
    place. A product appears once per order: a repeat moves to the next rank.
    """
    n_l, per_category = len(category), config.products_per_category
    cat_p = np.asarray(config.category_popularity) / sum(config.category_popularity)
    other = np.flatnonzero(rng.random(n_l) >= config.favourite_category_share)
    category[other] = rng.choice(len(config.categories), size=len(other), p=cat_p)
    rank_w = 1.0 / np.arange(1, per_category + 1)
    rank_cdf = np.cumsum(rank_w) / rank_w.sum()
    rank = np.minimum(np.searchsorted(rank_cdf, rng.random(n_l)), per_category - 1)
    product = category * per_category + rank
    for _ in range(per_category):
        repeated = np.zeros(n_l, dtype=bool)
        for lag in range(1, 5):
            repeated[lag:] |= (product[lag:] == product[:-lag]) & (l_order[lag:] == l_order[:-lag])
        if not repeated.any():
            break
        rank[repeated] = (rank[repeated] + 1) % per_category
        product = category * per_category + rank
    return category, product


def _discount_rates(
    config: SimulationConfig, rng: np.random.Generator, ds_line: np.ndarray
) -> np.ndarray:
    """Each line's everyday discount rate (0 when not discounted); sensitive buyers get more."""
    discounted = rng.random(len(ds_line)) < np.where(ds_line, 0.75, 0.12)
    disc_rate = rng.random(len(ds_line))
    disc_rate = np.where(ds_line, 0.15 + 0.25 * disc_rate, 0.05 + 0.15 * disc_rate)
    return np.where(discounted, disc_rate, 0.0)


def _with_returns(
    config: SimulationConfig,
    rng: np.random.Generator,
    lines: Lines,
    return_propensity: np.ndarray,
) -> dict[str, np.ndarray]:
    """Purchase lines with return lines (2-30 days later, inside the period) merged in by time.

    Returns the columns of the merged rows; ``line`` is each row's purchase line.
    """
    n_l, l_t, amount = len(lines.order), lines.at, lines.amount
    ret_p = np.minimum(
        return_propensity[lines.customer]
        * np.asarray(config.category_return_factors)[lines.category],
        0.95,
    )
    period_end = float(config.days)
    r = np.flatnonzero(rng.random(n_l) < ret_p)
    r_t = l_t[r] + rng.uniform(2.0, 30.0, len(r))
    r, r_t = r[r_t < period_end], r_t[r_t < period_end]
    by_time = np.argsort(r_t, kind="stable")
    r, r_t = r[by_time], r_t[by_time]
    # merge the (few) return lines into the time-ordered purchase lines
    insert_at = np.searchsorted(l_t, r_t, side="right")
    pos_r = insert_at + np.arange(len(r))
    pos_p = np.arange(n_l) + np.cumsum(np.bincount(insert_at, minlength=n_l + 1))[:n_l]
    positions = (pos_p, pos_r, n_l + len(r))
    return_margin = np.round(-lines.margin_amount[r] - config.return_handling_share * amount[r], 2)
    return {
        "line": interleave(np.arange(n_l), r, *positions),
        "at": interleave(l_t, r_t, *positions),
        "is_return": interleave(np.zeros(n_l, bool), np.ones(len(r), bool), *positions),
        "amount": interleave(amount, amount[r], *positions),
        "margin_amount": interleave(lines.margin_amount, return_margin, *positions),
        "discount_amount": interleave(lines.discount_amount, np.zeros(len(r)), *positions),
    }
