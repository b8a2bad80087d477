"""The SQL of each relation the feature definitions aggregate over.

A relation is a point-in-time view of the events as of the cutoff(s): one
narrow row per purchase order (``orders``, ``order_days``), per order line
(``lines``), per returned line (``returned_lines``), per (customer, category)
(``customer_categories``) or per event of another table. ``features.build``
composes the ones the requested features need into one query, each as a CTE
named ``rel_<name>``. The SQL stays in the subset SQLGlot transpiles to Spark.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from features.inputs.keys import CUSTOMER_KEY, ORDER_KEY

KEYS = ("cutoff", "customer_id")

# Relations in dependency order; each is a CTE named ``rel_<name>``.
EVENT_TABLES = {
    "support_tickets": ("opened_at", ()),
    "referrals": ("referred_at", ()),
    "reviews": ("reviewed_at", ("rating",)),
    "engagement_events": ("occurred_at", ("event_type",)),
}


class Shape:
    """How the relations meet the cutoffs and which columns identify customers and orders.

    With one cutoff the events are filtered against a literal date and every
    grouping, window and join is by the customer alone (no join with the
    ``cutoffs`` relation, one key less to hash and sort). With ``keyed`` the
    customer is ``customer_key`` and the order ``order_key``, integers assigned
    when the tables were written (``features.inputs.keys``); otherwise the
    string ids.
    """

    def __init__(self, cutoff: date | None, *, keyed: bool = False) -> None:
        self.single = cutoff is not None
        self.keyed = keyed
        self.cutoff = f"DATE '{cutoff.isoformat()}'" if cutoff is not None else "c.cutoff"
        self.customer = CUSTOMER_KEY if keyed else "customer_id"
        self.order = ORDER_KEY if keyed else "order_id"
        self.keys: tuple[str, ...] = (self.customer,) if self.single else ("cutoff", self.customer)
        self.by = ", ".join(self.keys)

    def age_days(self, column: str) -> str:
        return f"date_diff('day', CAST({column} AS DATE), {self.cutoff})"

    def events(self, table: str, alias: str, time_column: str) -> str:
        """``FROM`` (and ``WHERE``) of ``table``'s events on or before the cutoff(s)."""
        before = f"{alias}.{time_column} < CAST({self.cutoff} AS TIMESTAMP) + INTERVAL 1 DAY"
        if self.single:
            return f"FROM {table} AS {alias} WHERE {before}"
        return f"FROM {table} AS {alias} JOIN cutoffs AS c ON {before}"

    def select_keys(self, alias: str) -> str:
        customer = f"{alias}.{self.customer}"
        return customer if self.single else f"c.cutoff, {customer}"


def is_return(tx_columns: Collection[str], alias: str) -> str:
    return f"COALESCE({alias}.is_return, FALSE)" if "is_return" in tx_columns else "FALSE"


def lines_sql(tx_columns: Collection[str], shape: Shape) -> str:
    """Every line on or before the cutoff, for the additive line sums (relation ``lines``).

    Spend, margin, discount and returns are sums over lines, so they are aggregated
    from the lines straight to the customer: no order grouping carries them.
    """
    extra = ""
    if "margin_amount" in tx_columns:
        extra += ", t.margin_amount"
    if "discount_amount" in tx_columns:
        extra += ", COALESCE(t.discount_amount, 0.0) AS discount_amount"
    return (
        f"SELECT {shape.select_keys('t')}, {shape.age_days('t.ordered_at')} AS age_days,"
        f" t.amount, {is_return(tx_columns, 't')} AS is_return{extra}\n"
        f"  {shape.events('transactions', 't', 'ordered_at')}"
    )


#: Sums over an order's purchase lines that customer features add up, by the
#: contract column they need: (column name in ``orders``, SQL over the lines). The
#: windowed ones go by each line's own age, as a sum over the lines would.
ORDER_LINE_SUMS = {
    "amount": (
        ("order_spend_275d_amount", "SUM(CASE WHEN {age} < 275 THEN t.amount ELSE 0.0 END)"),
        ("order_spend_365d_amount", "SUM(CASE WHEN {age} < 365 THEN t.amount ELSE 0.0 END)"),
    ),
    "margin_amount": (
        ("order_margin_amount", "SUM(t.margin_amount)"),
        (
            "order_margin_275d_amount",
            "SUM(CASE WHEN {age} < 275 THEN t.margin_amount ELSE 0.0 END)",
        ),
        (
            "order_margin_365d_amount",
            "SUM(CASE WHEN {age} < 365 THEN t.margin_amount ELSE 0.0 END)",
        ),
    ),
    "discount_amount": (
        ("order_discount_amount", "SUM(COALESCE(t.discount_amount, 0.0))"),
        (
            "order_full_price_amount",
            "SUM(CASE WHEN COALESCE(t.discount_amount, 0.0) = 0 THEN t.amount ELSE 0.0 END)",
        ),
    ),
}


def orders_sql(tx_columns: Collection[str], shape: Shape, expressions: Collection[str] = ()) -> str:
    """One narrow row per purchase order: its value, age, line sums and discounted flag.

    Only the purchase (non-return) lines are read, so every order row is a purchase
    order and the customers with one are the population. Besides what needs the
    order level (counts, order values, gaps), the row carries the sums over its
    lines that a feature in ``expressions`` reads (margin, discount, full-price
    value): customer sums are sums of order sums, so the lines are grouped once.
    """
    age = shape.age_days("t.ordered_at")
    parts = ["SUM(t.amount) AS order_amount", f"MAX({age}) AS order_age_days"]
    for column, sums in ORDER_LINE_SUMS.items():
        for name, sql in sums:
            if column in tx_columns and any(name in e for e in expressions):
                parts.append(f"{sql.format(age=age)} AS {name}")
    if "discount_amount" in tx_columns:
        parts.append(
            "MAX(CASE WHEN COALESCE(t.discount_amount, 0.0) > 0 THEN 1 ELSE 0 END)"
            " AS order_discounted"
        )
    purchased = f" AND NOT {is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    keys = shape.select_keys("t")
    return (
        f"SELECT {keys}, t.{shape.order},\n    "
        + ",\n    ".join(parts)
        + f"\n  {shape.events('transactions', 't', 'ordered_at')}{purchased}"
        + f"\n  GROUP BY {keys}, t.{shape.order}"
    )


def returned_lines_sql(tx_columns: Collection[str], shape: Shape) -> str:
    """The returned lines on or before the cutoff (relation ``returned_lines``).

    A narrow scan with the ``is_return`` filter pushed into it: the purchase
    lines' sums come through the orders, so only the returns are read again.
    With ``margin_amount`` the rows carry it; without ``is_return`` there are none.
    """
    margin = ", t.margin_amount" if "margin_amount" in tx_columns else ""
    return (
        f"SELECT {shape.select_keys('t')}, {shape.age_days('t.ordered_at')} AS age_days,"
        f" t.amount{margin}\n  {shape.events('transactions', 't', 'ordered_at')}"
        f" AND {is_return(tx_columns, 't')}"
    )


def order_gaps_sql(shape: Shape) -> str:
    """Orders in time order with the days since the previous purchase order (``gap_days``).

    0 for another order the same day, so the non-zero gaps are the gaps between
    distinct purchase days. The window runs over the narrow order rows themselves,
    so ``order_days`` features are aggregated with the ``orders`` ones: no second
    grouping, no extra join, and the order relation is streamed once.
    """
    return (
        "SELECT *,\n"
        f"    LAG(order_age_days) OVER (PARTITION BY {shape.by}"
        " ORDER BY order_age_days DESC) - order_age_days AS gap_days\n"
        "  FROM rel_order_rows"
    )


def category_sql(tx_columns: Collection[str], shape: Shape) -> list[tuple[str, str]]:
    margin = "margin_amount" in tx_columns
    # Narrow scans of the purchased, categorised lines (filter pushed into the scan).
    # The shop-wide category margin rates get a scan of their own rather than a second
    # reader of the (customer, category) grouping: a relation read twice is
    # materialised, and that grouping has millions of rows.
    purchased = f" AND NOT {is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    scan = (
        f"{shape.events('transactions', 't', 'ordered_at')}{purchased} AND t.category IS NOT NULL"
    )
    keys = shape.select_keys("t")
    spend = (
        f"SELECT {keys}, t.category, SUM(t.amount) AS category_amount\n"
        f"  {scan}\n  GROUP BY {keys}, t.category"
    )
    if not margin:
        return [("rel_customer_categories", spend)]
    cutoff_key = "" if shape.single else "c.cutoff, "
    totals = (
        f"SELECT {cutoff_key}t.category, SUM(t.amount) AS category_amount,"
        " SUM(t.margin_amount) AS category_margin_amount\n"
        f"  {scan}\n  GROUP BY {cutoff_key}t.category"
    )
    if shape.single:
        rates = (
            "SELECT r.category, CASE WHEN r.rate > s.rate THEN 1 ELSE 0 END AS high_margin\n"
            "  FROM (SELECT category, SUM(category_margin_amount)"
            " / NULLIF(SUM(category_amount), 0) AS rate\n"
            "        FROM rel_category_totals GROUP BY category) AS r\n"
            "  CROSS JOIN (SELECT SUM(category_margin_amount) / NULLIF(SUM(category_amount), 0)"
            " AS rate\n"
            "        FROM rel_category_totals) AS s"
        )
        on = "m.category = p.category"
    else:
        rates = (
            "SELECT r.cutoff, r.category,"
            " CASE WHEN r.rate > s.rate THEN 1 ELSE 0 END AS high_margin\n"
            "  FROM (SELECT cutoff, category, SUM(category_margin_amount)"
            " / NULLIF(SUM(category_amount), 0) AS rate\n"
            "        FROM rel_category_totals GROUP BY cutoff, category) AS r\n"
            "  JOIN (SELECT cutoff, SUM(category_margin_amount) / NULLIF(SUM(category_amount), 0)"
            " AS rate\n"
            "        FROM rel_category_totals GROUP BY cutoff) AS s ON s.cutoff = r.cutoff"
        )
        on = "m.cutoff = p.cutoff AND m.category = p.category"
    joined = (
        f"SELECT {', '.join('p.' + k for k in shape.keys)}, p.category, p.category_amount,"
        " m.high_margin\n"
        f"  FROM rel_category_spend AS p JOIN rel_category_margin AS m ON {on}"
    )
    return [
        ("rel_category_totals", totals),
        ("rel_category_margin", rates),
        ("rel_category_spend", spend),
        ("rel_customer_categories", joined),
    ]


def event_sql(table: str, shape: Shape) -> str:
    time_column, extra = EVENT_TABLES[table]
    cols = "".join(f", e.{c}" for c in extra)
    return (
        f"SELECT {shape.select_keys('e')}, {shape.age_days('e.' + time_column)} AS age_days{cols}\n"
        f"  {shape.events(table, 'e', time_column)}"
    )
