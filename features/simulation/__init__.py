"""The simulated shop: winback's embedded default data, with its ground truth.

A seeded, vectorised simulator of a non-contractual shop. Its output is the
contract tables of :mod:`features.inputs.schema` (canonical dtypes) plus the latent
truth that generated them, so that churn, VIP-potential and win-back models can
be checked against what really happened and against an oracle.

The generating process, in days since ``start`` (midnight UTC)
---------------------------------------------------------------
* Customers are acquired by their first order; acquisitions grow linearly over
  the period and follow the monthly seasonality (Nov/Dec peak).
* While alive, a customer orders as a Poisson process with intensity
  ``purchase_rate * season(day) * growth(day) * stage_factor(state)``:
  ``purchase_rate`` is gamma distributed across customers, ``season`` is the
  monthly factor of the day, ``growth`` ramps a VIP grower's rate up from 1 to
  ``rate_growth`` over ``ramp_days`` after acquisition (evaluated at the day's
  midpoint), and ``stage_factor`` is 1 while healthy.
* Lifetimes are memoryless (Pareto/NBD-like): a customer who is not a
  decliner drops out at rate ``dropout_rate`` (gamma distributed across
  customers). A decliner instead starts declining at that rate and passes
  through three decline stages (each exponential, mean
  ``decline_stage_days``) with purchase factors ``decline_stage_factors``
  before dropping out; declining customers open more support tickets and give
  lower ratings.
* Realism defaults: most churn is gradual, as in real retail (customers buy
  less often, complain and review worse for months before they stop), so
  ``decliner_share`` is 0.8 (the other 20% leave suddenly: a move, a
  competitor), stages last ``decline_stage_days`` = 45 days on average
  (about 4.5 months of decline), and a declining customer opens tickets at
  ``ticket_decline_factor`` = 12 times their usual rate (about 6 a year) and
  reviews ``review_decline_factor`` = 4 times as often. The sudden leavers and
  each customer's true purchase rate stay unobservable, so the oracle (which
  knows them) keeps an edge no model can close.
* Win-back campaigns contact customers lapsed for ``lapse_days`` or more, hold
  out a random control group, and add to each treated customer a burst of
  win-back orders: a Poisson process of ``treatment_rate / response_days`` per
  day for ``response_days`` after contact, whether the customer is alive or not
  (a treated customer can be revived for an order). ``treatment_rate`` depends
  on discount sensitivity, the offer and recency; unmovable customers have 0.

* Digital engagement (``engagement_events``): identified site visits and app
  sessions, e-mail opens and clicks. ``engagement_none_share`` = 25% of
  customers never engage digitally (store-only, unsubscribed, never logged in:
  zero events, so the signal is not universal). Everyone else has a
  browse-to-buy ratio drawn from a gamma with mean ``engagement_per_order`` = 3
  identified sessions or opens per order (shape ``engagement_per_order_shape``
  = 2; most real sessions are anonymous and never reach the table). While
  alive, events are a Poisson process with intensity ``ratio x`` the natural
  purchase intensity, except that decline stages multiply it by
  ``engagement_decline_stage_factors`` = (0.45, 0.2, 0.06), roughly the
  purchase factors to the power 1.5: disengagement leads, a declining customer
  stops browsing and opening faster than they stop buying. After dropout a
  residual ``engagement_residual_share`` = 7% of the healthy rate (times the
  season) goes on to the end of the period: newsletter opens and clicks by
  people who no longer buy, so silence is not proof of death. A treated
  win-back contact adds ``ratio x`` its burst rate for ``response_days``
  (the customer comes back to look at the offer). Event types follow
  ``engagement_type_shares`` (site visit, app session, e-mail open, e-mail
  click: 34/18/42/6%, i.e. about one click per seven opens); residual events
  are e-mail opens and clicks only. ``engagement = False`` leaves the table out.
  Engagement never changes purchases, so the oracle below is unaffected.

The oracle knows what the process knows at a cutoff: every customer's latent
parameters and state (alive or not, decline stage) and the win-back bursts
already started. It does not know future transitions or purchase times, so its
probabilities are exact for the process and no model can beat it on average.

Where each part lives: :mod:`~features.simulation.config` (knobs and result),
:mod:`~features.simulation.process` (latent state, intensities, random streams),
:mod:`~features.simulation.customers`, :mod:`~features.simulation.orders`,
:mod:`~features.simulation.campaigns`, :mod:`~features.simulation.feedback`
(tickets, reviews, referrals), :mod:`~features.simulation.engagement`,
:mod:`~features.simulation.truth`, :mod:`~features.simulation.oracle`,
:mod:`~features.simulation.files` (writing and reading) and
:mod:`~features.simulation.shop` (the wiring). :mod:`~features.simulation.bgnbd`
is a second, pure BG/NBD world whose best churn probability is known in closed form.
"""

from features.simulation.bgnbd import (
    BgNbdWorld,
    BgNbdWorldConfig,
    bgnbd_no_order_probability,
    read_bgnbd_world,
    simulate_bgnbd_world,
    write_bgnbd_world,
)
from features.simulation.config import SimulatedShop, SimulationConfig
from features.simulation.files import read_config, read_shop, read_truth, write_shop
from features.simulation.oracle import oracle_churn_probability
from features.simulation.shop import simulate_shop

__all__ = [
    "BgNbdWorld",
    "BgNbdWorldConfig",
    "SimulatedShop",
    "SimulationConfig",
    "bgnbd_no_order_probability",
    "oracle_churn_probability",
    "read_bgnbd_world",
    "read_config",
    "read_shop",
    "read_truth",
    "simulate_bgnbd_world",
    "simulate_shop",
    "write_bgnbd_world",
    "write_shop",
]
