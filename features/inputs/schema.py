"""The data contract: the tables winback reads and the columns each one has.

Every input, whether simulated, loaded from a file or mapped from a user's own
schema, is brought into these shapes by ``features.inputs.contracts`` before anything
else sees it. One name for one thing: these column names are used unchanged in
features, training, serving, the API and CSV exports.

Conventions of the canonical (validated) tables
-----------------------------------------------
* ``customer_id`` and other ids are pandas strings.
* Every ``*_at`` column is a timezone-aware timestamp in UTC
  (``datetime64[us, UTC]``).
* ``transactions`` holds one row per order line. ``amount`` is the line's
  value, always >= 0; a returned line has ``is_return = True`` and its
  (positive) value in ``amount``. ``margin_amount`` is the line's gross margin
  (negative allowed), ``discount_amount`` the discount given on it (>= 0).
* A ``cutoff`` is a calendar date (UTC). Features use events with
  ``*_at < cutoff + 1 day`` (on or before the cutoff day); labels use events in
  ``(cutoff, cutoff + horizon_days]``, i.e. ``cutoff + 1 day <= *_at <
  cutoff + horizon_days + 1 day``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Kind = Literal["id", "timestamp", "float", "int", "bool", "category"]

#: pandas dtype of each column kind in a canonical table.
PANDAS_DTYPES: dict[str, str] = {
    "id": "string",
    "timestamp": "datetime64[us, UTC]",
    "float": "float64",
    "int": "int64",
    "bool": "bool",
    "category": "string",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    kind: Kind
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class TableSchema:
    """The columns of one contract table, required ones first."""

    name: str
    columns: tuple[Column, ...]
    time_column: str | None = None
    description: str = ""

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    def dtypes(self, present: list[str] | tuple[str, ...] | None = None) -> dict[str, str]:
        """pandas dtypes of the columns (of those in ``present`` when given)."""
        cols = self.columns if present is None else [c for c in self.columns if c.name in present]
        return {c.name: PANDAS_DTYPES[c.kind] for c in cols}


TRANSACTIONS = TableSchema(
    name="transactions",
    time_column="ordered_at",
    description="One row per order line (purchases and returns).",
    columns=(
        Column("customer_id", "id", description="Who bought."),
        Column("order_id", "id", description="The order (invoice) the line belongs to."),
        Column("ordered_at", "timestamp", description="When the order was placed (UTC)."),
        Column("amount", "float", description="Line value after discount, >= 0."),
        Column("is_return", "bool", required=False, description="True for a returned line."),
        Column("margin_amount", "float", required=False, description="Gross margin of the line."),
        Column("discount_amount", "float", required=False, description="Discount given, >= 0."),
        Column("quantity", "int", required=False, description="Units on the line."),
        Column("product_id", "id", required=False, description="Product or stock code."),
        Column("category", "category", required=False, description="Product category."),
        Column("channel", "category", required=False, description="Sales channel of the order."),
    ),
)

CUSTOMERS = TableSchema(
    name="customers",
    time_column="first_seen_at",
    description="Optional static attributes, one row per customer.",
    columns=(
        Column("customer_id", "id"),
        Column("first_seen_at", "timestamp", required=False),
        Column("region", "category", required=False),
        Column("acquisition_channel", "category", required=False),
    ),
)

SUPPORT_TICKETS = TableSchema(
    name="support_tickets",
    time_column="opened_at",
    description="Customer support tickets (an indirect cost and an early churn signal).",
    columns=(
        Column("customer_id", "id"),
        Column("ticket_id", "id"),
        Column("opened_at", "timestamp"),
        Column("topic", "category", required=False),
    ),
)

REFERRALS = TableSchema(
    name="referrals",
    time_column="referred_at",
    description="Referrals made by a customer (advocacy).",
    columns=(
        Column("customer_id", "id", description="The referrer."),
        Column("referred_at", "timestamp"),
        Column("referred_customer_id", "id", required=False),
    ),
)

REVIEWS = TableSchema(
    name="reviews",
    time_column="reviewed_at",
    description="Product reviews written by a customer.",
    columns=(
        Column("customer_id", "id"),
        Column("reviewed_at", "timestamp"),
        Column("rating", "float", description="1 to 5 stars."),
    ),
)

CAMPAIGN_CONTACTS = TableSchema(
    name="campaign_contacts",
    time_column="contacted_at",
    description="Who a past campaign contacted, and who it held out as control.",
    columns=(
        Column("customer_id", "id"),
        Column("campaign_id", "id"),
        Column("contacted_at", "timestamp"),
        Column("group", "category", description="'treatment' or 'control'."),
        Column("offer", "category", required=False),
    ),
)

#: The kinds of identified digital engagement an ``engagement_events`` row can record.
EVENT_TYPES = ("site_visit", "app_session", "email_open", "email_click")

ENGAGEMENT_EVENTS = TableSchema(
    name="engagement_events",
    time_column="occurred_at",
    description=(
        "Identified digital engagement: logged-in site visits and app sessions, e-mail"
        " opens and clicks (disengagement precedes churn). Anonymous sessions are not in it."
    ),
    columns=(
        Column("customer_id", "id", description="Who engaged (logged in or opened)."),
        Column("occurred_at", "timestamp", description="When it happened (UTC)."),
        Column(
            "event_type",
            "category",
            description="'site_visit', 'app_session', 'email_open' or 'email_click'.",
        ),
        Column("channel", "category", required=False, description="Device or channel."),
    ),
)

SUPPRESSIONS = TableSchema(
    name="suppressions",
    time_column="since",
    description=(
        "Do-not-contact: customers who opted out of contact (or must not be contacted for"
        " another reason). They never reach a list; their data still feeds the models."
    ),
    columns=(
        Column("customer_id", "id", description="Who must not be contacted."),
        Column("reason", "category", required=False, description="Why, e.g. 'opted_out'."),
        Column("since", "timestamp", required=False, description="When the opt-out began."),
    ),
)

SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in (
        TRANSACTIONS,
        CUSTOMERS,
        SUPPORT_TICKETS,
        REFERRALS,
        REVIEWS,
        CAMPAIGN_CONTACTS,
        ENGAGEMENT_EVENTS,
        SUPPRESSIONS,
    )
}

GROUPS = ("treatment", "control")


@dataclass(frozen=True)
class ShopTables:
    """A shop's validated tables. ``transactions`` is required, the rest optional.

    A table that is ``None`` is absent: features computed from it are omitted,
    never filled with zeros.
    """

    transactions: pd.DataFrame
    customers: pd.DataFrame | None = None
    support_tickets: pd.DataFrame | None = None
    referrals: pd.DataFrame | None = None
    reviews: pd.DataFrame | None = None
    campaign_contacts: pd.DataFrame | None = None
    engagement_events: pd.DataFrame | None = None
    suppressions: pd.DataFrame | None = None
    source: str = field(default="", compare=False)

    def present(self) -> dict[str, pd.DataFrame]:
        """The tables that are present, by contract name."""
        out = {}
        for name in SCHEMAS:
            table = getattr(self, name)
            if table is not None:
                out[name] = table
        return out

    def last_event_at(self) -> pd.Timestamp:
        """The latest transaction time: the default ``as of`` for features."""
        return self.transactions["ordered_at"].max()
