"""Slow per-customer reference for every feature, and builders of canonical test tables.

``reference_features`` recomputes each registered feature with plain Python
loops over one customer at a time, written from the feature descriptions and
independent of the SQL, so the vectorised builder can be checked against it.
"""

from __future__ import annotations

import math
import statistics
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features.inputs.schema import EVENT_TYPES, SCHEMAS, ShopTables

UTC = "UTC"


def canonical(name: str, rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """A contract table ``name`` from row dicts, with the canonical dtypes."""
    frame = pd.DataFrame(rows)
    schema = SCHEMAS[name]
    if frame.empty:
        frame = pd.DataFrame(columns=list(schema.required))
    out = {}
    for column, dtype in schema.dtypes(list(frame.columns)).items():
        values = frame[column]
        if dtype.startswith("datetime64"):
            out[column] = pd.to_datetime(values, utc=True).astype(dtype)
        else:
            out[column] = values.astype(dtype)
    return pd.DataFrame(out)


def random_shop(
    customers: int = 300,
    seed: int = 0,
    start: date = date(2022, 1, 1),
    days: int = 900,
    categories: int = 5,
) -> ShopTables:
    """A small random shop with every table and optional column, for tests."""
    rng = np.random.default_rng(seed)
    cats = [f"cat{i}" for i in range(categories)]
    margin_rates = rng.uniform(0.05, 0.6, categories)
    tx, tickets, referrals, reviews, people = [], [], [], [], []
    t0 = pd.Timestamp(start, tz=UTC)
    order = 0
    for c in range(customers):
        cid = f"c{c:05d}"
        people.append(
            {
                "customer_id": cid,
                "region": rng.choice(["north", "south", "east", None]),
                "acquisition_channel": rng.choice(["ads", "organic", "referral"]),
            }
        )
        first = rng.integers(0, days)
        for _ in range(rng.integers(1, 9)):
            order += 1
            at = t0 + pd.Timedelta(
                days=int(rng.integers(first, days)), seconds=int(rng.integers(0, 86400))
            )
            for _ in range(rng.integers(1, 4)):
                k = int(rng.integers(0, categories))
                amount = float(np.round(rng.gamma(2.0, 20.0), 2))
                discount = float(np.round(amount * 0.2, 2)) if rng.random() < 0.3 else 0.0
                line = {
                    "customer_id": cid,
                    "order_id": f"o{order}",
                    "ordered_at": at,
                    "amount": amount,
                    "is_return": False,
                    "margin_amount": float(np.round(amount * margin_rates[k], 2)),
                    "discount_amount": discount,
                    "category": cats[k] if rng.random() > 0.05 else None,
                    # a few products per category, repeated across orders (no extra draw)
                    "product_id": f"{cats[k]}-p{(order * 7 + len(tx)) % 4}",
                }
                tx.append(line)
                if rng.random() < 0.1:
                    back = at + pd.Timedelta(days=int(rng.integers(1, 30)))
                    order += 1
                    tx.append(
                        {**line, "order_id": f"o{order}", "ordered_at": back, "is_return": True}
                    )
        for table, column, extra in (
            (tickets, "opened_at", lambda i, c=c: {"ticket_id": f"t{c}_{i}"}),
            (referrals, "referred_at", lambda i: {}),
            (reviews, "reviewed_at", lambda i: {"rating": float(rng.integers(1, 6))}),
        ):
            for i in range(rng.poisson(1.0)):
                at = t0 + pd.Timedelta(
                    days=int(rng.integers(0, days)), hours=int(rng.integers(0, 24))
                )
                table.append({"customer_id": cid, column: at, **extra(i)})
    return ShopTables(
        transactions=canonical("transactions", tx),
        customers=canonical("customers", people),
        support_tickets=canonical("support_tickets", tickets),
        referrals=canonical("referrals", referrals),
        reviews=canonical("reviews", reviews),
        engagement_events=canonical(
            "engagement_events", random_engagement(customers, seed, start, days)
        ),
    )


def random_engagement(customers: int, seed: int, start: date, days: int) -> list[dict]:
    """Engagement events for ``random_shop``: a third of customers have none, others 0-12.

    Its own random stream, so the other tables stay what they were before it existed.
    """
    rng = np.random.default_rng([seed, 1])
    t0 = pd.Timestamp(start, tz=UTC)
    rows = []
    for c in range(customers):
        if rng.random() < 1 / 3:
            continue
        for _ in range(rng.integers(0, 13)):
            at = t0 + pd.Timedelta(
                days=int(rng.integers(0, days)), seconds=int(rng.integers(0, 86400))
            )
            kind = EVENT_TYPES[int(rng.integers(0, len(EVENT_TYPES)))]
            rows.append({"customer_id": f"c{c:05d}", "occurred_at": at, "event_type": kind})
    return rows


def _ages(times: pd.Series, cutoff: date) -> np.ndarray:
    """Whole days from each event's UTC date to ``cutoff``."""
    days = times.dt.tz_convert(UTC).dt.tz_localize(None).dt.normalize()
    return np.asarray((pd.Timestamp(cutoff) - days).dt.days, dtype=int)


def _before(frame: pd.DataFrame | None, column: str, cutoff: date) -> pd.DataFrame | None:
    if frame is None:
        return None
    end = pd.Timestamp(cutoff + timedelta(days=1), tz=UTC)
    out = frame[frame[column] < end].copy()
    out["age_days"] = _ages(out[column], cutoff) if len(out) else np.array([], dtype=int)
    return out


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator != 0 else math.nan


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) >= 2 else math.nan


def reference_features(tables: ShopTables, cutoff: date) -> pd.DataFrame:
    """Every available feature of every customer at ``cutoff``, one customer at a time.

    A straightforward reading of the feature descriptions in ``features.families``;
    slow (a Python loop per customer), for tests only.
    """
    lines = _before(tables.transactions, "ordered_at", cutoff)
    has = set(lines.columns)
    if "is_return" not in has:
        lines["is_return"] = False
    purchases = lines[~lines["is_return"].astype(bool)]

    high_margin: dict[str, bool] = {}
    if {"category", "margin_amount"} <= has:
        categorised = purchases[purchases["category"].notna()]
        shop_rate = _ratio(categorised["margin_amount"].sum(), categorised["amount"].sum())
        for category, group in categorised.groupby("category"):
            rate = _ratio(group["margin_amount"].sum(), group["amount"].sum())
            high_margin[category] = bool(rate > shop_rate)

    events = {
        name: _before(getattr(tables, name), column, cutoff)
        for name, column in (
            ("support_tickets", "opened_at"),
            ("referrals", "referred_at"),
            ("reviews", "reviewed_at"),
            ("engagement_events", "occurred_at"),
        )
    }
    by_customer = {k: g for k, g in lines.groupby("customer_id")}
    events_by = {
        name: ({k: g for k, g in frame.groupby("customer_id")} if frame is not None else None)
        for name, frame in events.items()
    }
    rows = {}
    for customer in sorted(purchases["customer_id"].unique()):
        mine = by_customer[customer]
        bought = mine[~mine["is_return"].astype(bool)]
        returned = mine[mine["is_return"].astype(bool)]
        orders = [
            (int(g["age_days"].max()), float(g["amount"].sum()), g)
            for _, g in bought.groupby("order_id")
        ]
        ages = [a for a, _, _ in orders]
        values = [v for _, v, _ in orders]
        spend = sum(values)
        row: dict[str, object] = {
            "days_since_last_order": min(ages),
            "tenure_days": max(ages),
            "order_count": len(orders),
        }
        count = {w: sum(a < w for a in ages) for w in (30, 90, 180, 365)}
        spent = {
            w: sum(v for a, v in zip(ages, values, strict=True) if a < w)
            for w in (30, 90, 180, 365)
        }
        for w in (30, 90, 180, 365):
            row[f"order_count_{w}d"] = count[w]
        row["order_count_trend_90d"] = _ratio(count[90] / 90, count[365] / 365)
        row["order_count_share_90d_of_180d"] = _ratio(count[90], count[180])
        row["order_count_share_180d_of_365d"] = _ratio(count[180], count[365])
        days = sorted(set(ages), reverse=True)
        gaps = [days[i] - days[i + 1] for i in range(len(days) - 1)]
        row["purchase_day_count"] = len(days)
        row["purchase_gap_mean_days"] = statistics.mean(gaps) if gaps else math.nan
        row["purchase_gap_std_days"] = _std(gaps)
        row["overdue_ratio"] = (
            _ratio(min(ages), row["purchase_gap_mean_days"]) if gaps else math.nan
        )

        row["spend_amount"] = spend
        for w in (30, 90, 180, 365):
            row[f"spend_{w}d_amount"] = spent[w]
        row["spend_trend_90d"] = _ratio(spent[90] / 90, spent[365] / 365)
        row["spend_share_90d_of_180d"] = _ratio(spent[90], spent[180])
        row["spend_share_180d_of_365d"] = _ratio(spent[180], spent[365])
        sign = np.where(mine["is_return"].astype(bool), -1.0, 1.0)
        for w in (275, 365):
            recent = (mine["age_days"] < w).to_numpy()
            row[f"net_spend_{w}d_amount"] = float((mine["amount"].to_numpy() * sign)[recent].sum())
            if "margin_amount" in has:
                margins = mine["margin_amount"].fillna(0.0).to_numpy()
                row[f"net_margin_{w}d_amount"] = float(margins[recent].sum())
        row["order_value_mean_amount"] = statistics.mean(values)
        row["order_value_max_amount"] = max(values)
        row["order_value_std_amount"] = _std(values)
        if "margin_amount" in has:
            margin = float(bought["margin_amount"].sum())
            row["total_margin_amount"] = margin
            row["margin_365d_amount"] = float(
                bought.loc[bought["age_days"] < 365, "margin_amount"].sum()
            )
            row["margin_rate"] = _ratio(margin, spend)
        if "discount_amount" in has:
            discount = bought["discount_amount"].fillna(0.0)
            row["full_price_spend_share"] = _ratio(
                float(bought.loc[discount == 0, "amount"].sum()), spend
            )
            row["discount_rate"] = _ratio(float(discount.sum()), spend + float(discount.sum()))
            row["discounted_order_share"] = _ratio(
                sum(bool((g["discount_amount"].fillna(0.0) > 0).any()) for _, _, g in orders),
                len(orders),
            )
        if "category" in has:
            categorised = bought[bought["category"].notna()]
            per_category = categorised.groupby("category")["amount"].sum()
            total = float(per_category.sum())
            if "margin_amount" in has:
                high = sum(v for k, v in per_category.items() if high_margin[k])
                row["high_margin_spend_share"] = _ratio(high, total)
            row["category_count"] = len(per_category)
            row["top_category_spend_share"] = (
                _ratio(float(per_category.max()), total) if len(per_category) else math.nan
            )
            row["category_concentration_share"] = (
                _ratio(float((per_category**2).sum()), total**2) if len(per_category) else math.nan
            )
        if "is_return" in set(tables.transactions.columns):
            row["returned_line_count"] = len(returned)
            row["returned_line_count_365d"] = int((returned["age_days"] < 365).sum())
            row["returned_amount"] = float(returned["amount"].sum())
            row["return_rate"] = _ratio(row["returned_amount"], spend)
        if "product_id" in has:
            products = bought.dropna(subset=["product_id"])
            for w in (90, 365):
                recent_products = products.loc[products["age_days"] < w, "product_id"]
                row[f"distinct_product_count_{w}d"] = recent_products.nunique()
            year = products.loc[products["age_days"] < 365, "product_id"]
            row["repeat_product_line_share_365d"] = (
                1 - year.nunique() / len(year) if len(year) else math.nan
            )
        tickets = events_by["support_tickets"]
        if tickets is not None:
            t = tickets.get(customer)
            ticket_ages = [] if t is None else list(t["age_days"])
            row["support_ticket_count"] = len(ticket_ages)
            row["support_ticket_count_90d"] = sum(a < 90 for a in ticket_ages)
            row["days_since_last_support_ticket"] = min(ticket_ages) if ticket_ages else math.nan
        referrals = events_by["referrals"]
        if referrals is not None:
            r = referrals.get(customer)
            referral_ages = [] if r is None else list(r["age_days"])
            row["referral_count"] = len(referral_ages)
            row["referral_count_365d"] = sum(a < 365 for a in referral_ages)
        reviews = events_by["reviews"]
        if reviews is not None:
            r = reviews.get(customer)
            row["review_count"] = 0 if r is None else len(r)
            row["review_rating_mean"] = math.nan if r is None else float(r["rating"].mean())
            row["days_since_last_review"] = math.nan if r is None else int(r["age_days"].min())
        engagement = events_by["engagement_events"]
        if engagement is not None:
            e = engagement.get(customer)
            e_ages = [] if e is None else list(e["age_days"])
            e_types = [] if e is None else list(e["event_type"])
            recent = {
                w: [k for a, k in zip(e_ages, e_types, strict=True) if a < w] for w in (30, 90, 365)
            }
            row["days_since_last_engagement"] = min(e_ages) if e_ages else math.nan
            for w in (30, 90, 365):
                row[f"engagement_count_{w}d"] = len(recent[w])
            row["engagement_trend_30d"] = _ratio(len(recent[30]) / 30, len(recent[365]) / 365)
            row["site_visit_count_90d"] = sum(
                k in ("site_visit", "app_session") for k in recent[90]
            )
            row["email_open_count_90d"] = sum(k == "email_open" for k in recent[90])
            row["email_click_count_90d"] = sum(k == "email_click" for k in recent[90])
            row["engagement_per_order_90d"] = _ratio(len(recent[90]), count[90])
        rows[customer] = row

    out = pd.DataFrame.from_dict(rows, orient="index").astype("float64")
    out.index = pd.Index(out.index, dtype="string", name="customer_id")
    if "spend_365d_amount" in out.columns:
        spent = out["spend_365d_amount"].where(out["spend_365d_amount"] > 0)
        below = spent.round(2).rank(method="min") - 1  # spent strictly less (to the cent)
        out["spend_365d_rank_share"] = below / max(int(spent.notna().sum()) - 1, 1)
        active = out["spend_365d_amount"] > 0
        for basis in ("spend", "margin"):
            if f"net_{basis}_365d_amount" not in out.columns:
                continue
            mean = out.loc[active, f"net_{basis}_365d_amount"].mean()
            for w in (275, 365):
                share = out[f"net_{basis}_{w}d_amount"] / (mean if mean != 0 else math.nan)
                out[f"net_{basis}_{w}d_mean_share"] = share.where(active)
    customers = tables.customers
    if customers is not None:
        for column in ("region", "acquisition_channel"):
            if column in customers.columns:
                first = customers.dropna(subset=[column]).groupby("customer_id")[column].min()
                out[column] = [first.get(c, None) for c in out.index]
    return out
