"""A pure BG/NBD shop, where the best possible churn probability is known in closed form.

Why: the rich simulated shop has hidden state (decline stages, sudden leavers)
that no model can see, so its oracle is a ceiling nobody reaches. In a shop
that follows the BG/NBD process exactly, the posterior given each customer's
own history is the Bayes-optimal prediction — a bar a good model can reach.

The process, in days since ``start`` (midnight UTC):

* first purchases fall uniformly over the first ``acquisition_days``;
* while alive, a customer buys as a Poisson process of rate
  ``λ ~ Gamma(r, rate α)`` per day;
* after each repeat purchase the customer drops out with probability
  ``p ~ Beta(a, b)``;
* each order has one line of ``amount ~ Gamma(2, mean_amount / 2)``.

With ``x`` repeat purchases, the last at ``t_x`` days after the first and the
customer's age ``T`` days at the cutoff's end, the probability of no order in
the next ``h`` days is ``(1 − P(alive)) + P(alive)·((α+T)/(α+T+h))^(r+x)`` with
``P(alive) = 1 / (1 + [x > 0]·a/(b+x−1)·((α+T)/(α+t_x))^(r+x))``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.inputs.schema import ShopTables
from features.publish import publish_file, publish_text

#: File the world's parameters are written to (its presence marks a BG/NBD world folder).
CONFIG_FILE = "bgnbd_world.json"


@dataclass(frozen=True)
class BgNbdWorldConfig:
    """Known BG/NBD parameters (rates per day) and the size and span of the shop."""

    customers: int = 30_000
    r: float = 0.75
    alpha: float = 45.0
    a: float = 0.9
    b: float = 5.0
    start: dt.date = dt.date(2023, 1, 1)
    days: int = 3 * 365
    acquisition_days: int = 2 * 365
    mean_amount: float = 40.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b", "mean_amount"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BgNbdWorldConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.customers < 1 or not 0 < self.acquisition_days <= self.days:
            raise ValueError(
                f"need customers >= 1 and 0 < acquisition_days ({self.acquisition_days}) "
                f"<= days ({self.days})"
            )

    def to_dict(self) -> dict:
        """JSON-ready parameters."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> BgNbdWorldConfig:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "start": dt.date.fromisoformat(data["start"])})


@dataclass(frozen=True)
class BgNbdWorld:
    """The shop's tables and the parameters that generated them."""

    tables: ShopTables
    config: BgNbdWorldConfig

    def oracle_churn_probability(self, cutoff: dt.date, horizon_days: int) -> pd.Series:
        """P(no order in ``(cutoff, cutoff + horizon_days]``) per customer acquired by ``cutoff``."""
        return bgnbd_no_order_probability(
            self.tables.transactions, cutoff, horizon_days, self.config
        )


def _purchase_times(config: BgNbdWorldConfig, rng: np.random.Generator):
    """(customer index, day) of every purchase, first purchases included."""
    n = config.customers
    first = rng.uniform(0, config.acquisition_days, n)
    lam = rng.gamma(config.r, 1.0 / config.alpha, n)
    drop = rng.beta(config.a, config.b, n)
    owners, days = [np.arange(n)], [first]
    clock, alive = first.copy(), np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1.0 / lam[idx])
        inside = clock[idx] < config.days
        alive[idx[~inside]] = False
        buying = idx[inside]
        owners.append(buying)
        days.append(clock[buying].copy())
        dies = buying[rng.random(buying.size) < drop[buying]]
        alive[dies] = False
    return np.concatenate(owners), np.concatenate(days)


def simulate_bgnbd_world(config: BgNbdWorldConfig = BgNbdWorldConfig()) -> BgNbdWorld:
    """Simulate the shop (seeded: same config, same tables)."""
    rng = np.random.default_rng(config.seed)
    owner, day = _purchase_times(config, rng)
    order = np.lexsort((day, owner))
    owner, day = owner[order], day[order]
    start = pd.Timestamp(config.start, tz="UTC")
    transactions = pd.DataFrame(
        {
            "customer_id": pd.array([f"B{i:07d}" for i in owner], dtype="string"),
            "order_id": pd.array([f"BO{i:09d}" for i in range(len(owner))], dtype="string"),
            "ordered_at": (start + pd.to_timedelta(day, unit="D")).as_unit("us"),
            "amount": rng.gamma(2.0, config.mean_amount / 2.0, len(owner)),
        }
    )
    return BgNbdWorld(ShopTables(transactions, source="simulated BG/NBD world"), config)


def bgnbd_no_order_probability(
    transactions: pd.DataFrame, cutoff: dt.date, horizon_days: int, config: BgNbdWorldConfig
) -> pd.Series:
    """The closed-form P(no order in the horizon | history up to the end of ``cutoff``)."""
    end = pd.Timestamp(cutoff, tz="UTC") + pd.Timedelta(days=1)
    seen = transactions[transactions["ordered_at"] < end]
    days = (seen["ordered_at"] - end).dt.total_seconds() / 86400.0
    per = days.groupby(seen["customer_id"]).agg(["min", "max", "size"])
    x = per["size"].to_numpy(dtype=float) - 1
    T, t_x = -per["min"].to_numpy(), (per["max"] - per["min"]).to_numpy()
    r, alpha, a, b = config.r, config.alpha, config.a, config.b
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    p_alive = 1.0 / (1.0 + odds)
    silent = ((alpha + T) / (alpha + T + horizon_days)) ** (r + x)
    out = (1.0 - p_alive) + p_alive * silent
    return pd.Series(out, index=per.index.astype("string"), name="no_order_probability")


def write_bgnbd_world(world: BgNbdWorld, out_dir: Path) -> dict[str, Path]:
    """Write ``transactions.parquet`` and the parameters (each aside, fsynced, renamed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"transactions": out_dir / "transactions.parquet", "config": out_dir / CONFIG_FILE}
    publish_file(
        paths["transactions"], lambda tmp: world.tables.transactions.to_parquet(tmp, index=False)
    )
    publish_text(paths["config"], json.dumps({"config": world.config.to_dict()}, indent=2))
    return paths


def read_bgnbd_world(directory: Path, tables: ShopTables) -> BgNbdWorld:
    """The world written by :func:`write_bgnbd_world`, on its validated ``tables``."""
    data = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
    return BgNbdWorld(tables, BgNbdWorldConfig.from_dict(data["config"]))
