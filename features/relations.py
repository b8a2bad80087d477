"""The SQL of each relation the feature definitions aggregate over.

A relation is a point-in-time view of the events as of the cutoff(s): one
narrow row per purchase order (``orders``, ``order_days``; grouped from the lines,
or read from the order table written with the keys), per order line
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

#: Money in the relations is counted in ten-thousandths of the currency unit (see :func:`money_e4`).
MONEY_SCALE = 10_000

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

    def since(self, column: str, days: int) -> str:
        """SQL true for an event on or before the cutoff that is in its last ``days`` days.

        The same as ``age_days(column) < days`` for such an event (its date is after
        ``cutoff - days``, so its naive timestamp is at or after midnight of
        ``cutoff - (days - 1)``), but a comparison with a constant instead of two
        date conversions per row.
        """
        return f"{column} >= CAST({self.cutoff} AS TIMESTAMP) - INTERVAL {days - 1} DAY"

    def events(self, table: str, alias: str, time_column: str) -> str:
        """``FROM`` (and ``WHERE``) of ``table``'s events on or before the cutoff(s)."""
        before = f"{alias}.{time_column} < CAST({self.cutoff} AS TIMESTAMP) + INTERVAL 1 DAY"
        if self.single:
            return f"FROM {table} AS {alias} WHERE {before}"
        return f"FROM {table} AS {alias} JOIN cutoffs AS c ON {before}"

    def select_keys(self, alias: str) -> str:
        customer = f"{alias}.{self.customer}"
        return customer if self.single else f"c.cutoff, {customer}"


def money_e4(value: str) -> str:
    """SQL of a money value in ten-thousandths of the currency unit: an integer, as ``DOUBLE``.

    The contract views hold money as ``DECIMAL(18, 4)`` (``features.engines.duckdb_engine``),
    an integer ``N`` of ten-thousandths; as ``DOUBLE`` it is the double nearest ``N / 10^4``,
    and ``ROUND`` of that times 10^4 is ``N`` again while ``|N| < 2^51`` (the error, at most
    ``|N| * 2^-52``, stays below 1/2). Sums of these integers as ``DOUBLE`` are exact, so
    the same in any order and on any thread count, while the sum of the absolute values
    of a group stays below 2^53 (900 billion currency units: per order, per customer and
    per (customer, category)); they take 8 bytes, against 16 for a sum of decimals, and
    are cheap to add. Column names end in ``_e4``; ``x_e4 / 10000`` is the double
    nearest the exact sum, as the decimal sum cast to ``DOUBLE`` is. Shop-wide sums
    (whole categories, the whole population) are summed as ``BIGINT`` (exact in DuckDB
    whatever their size), not as ``DOUBLE``.
    """
    return f"ROUND(CAST({value} AS DOUBLE) * {MONEY_SCALE})"


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
#: contract column they need: (column name in ``orders``, SQL of one line's term).
#: ``orders`` sums the terms over the order's lines; the windowed ones go by each
#: line's own time, as a sum over the lines would. Money in ten-thousandths
#: (:func:`money_e4`); ``{since_275d}`` is the test of a line of the last 275 days.
ORDER_LINE_SUMS = {
    "amount": (
        ("order_spend_275d_e4", "CASE WHEN {since_275d} THEN {amount} ELSE 0 END"),
        ("order_spend_365d_e4", "CASE WHEN {since_365d} THEN {amount} ELSE 0 END"),
    ),
    "margin_amount": (
        ("order_margin_e4", "{margin}"),
        ("order_margin_275d_e4", "CASE WHEN {since_275d} THEN {margin} ELSE 0 END"),
        ("order_margin_365d_e4", "CASE WHEN {since_365d} THEN {margin} ELSE 0 END"),
    ),
    "discount_amount": (
        ("order_discount_e4", "COALESCE({discount}, 0)"),
        ("order_full_price_e4", "CASE WHEN {undiscounted} THEN {amount} ELSE 0 END"),
    ),
}
#: The line terms of :data:`ORDER_LINE_SUMS` over the ``transactions`` view (alias ``t``).
LINE_VALUES = {
    "amount": money_e4("t.amount"),
    "margin": money_e4("t.margin_amount"),
    "discount": money_e4("t.discount_amount"),
    "undiscounted": "COALESCE(t.discount_amount, 0) = 0",
}
#: Days from the date of the order's first line to its last one's (the scoring status,
#: ``features.status_features``, checks it is 0 for every order).
ORDER_SPAN = "date_diff('day', CAST(MIN(t.ordered_at) AS DATE), CAST(MAX(t.ordered_at) AS DATE))"
#: 1 when one of the order's lines has a discount.
ORDER_DISCOUNTED = "MAX(CASE WHEN COALESCE(t.discount_amount, 0) > 0 THEN 1 ELSE 0 END)"
#: The order table's sums (``features.inputs.order_table``), by the ``orders`` column each
#: holds: (its column in the table, the contract column it needs). Each is the order's
#: sum of that column's line term (:data:`ORDER_LINE_SUMS`, no window).
ORDER_TABLE_SUMS = {
    "order_amount_e4": ("amount_e4", "amount"),
    "order_margin_e4": ("margin_e4", "margin_amount"),
    "order_discount_e4": ("discount_e4", "discount_amount"),
    "order_full_price_e4": ("full_price_e4", "discount_amount"),
    "order_discounted": ("discounted", "discount_amount"),
}


def order_table_sums(tx_columns: Collection[str]) -> dict[str, str]:
    """SQL of each sum column of the order table over one order's lines (alias ``t``).

    The same sums :func:`orders_sql` takes over the lines, so the two paths agree
    to the bit (integers of ten-thousandths, :func:`money_e4`).
    """
    terms = {name: term for sums in ORDER_LINE_SUMS.values() for name, term in sums}
    terms["order_amount_e4"] = "{amount}"
    out = {}
    for name, (column, needs) in ORDER_TABLE_SUMS.items():
        if needs in tx_columns:
            sql = ORDER_DISCOUNTED if name == "order_discounted" else f"SUM({terms[name]})"
            out[column] = sql.format(**LINE_VALUES)
    return out


def order_table_columns(tx_columns: Collection[str]) -> list[str]:
    """The columns of the order table written from lines with ``tx_columns``."""
    sums = list(order_table_sums(tx_columns))
    return [CUSTOMER_KEY, "customer_id", ORDER_KEY, "ordered_at", *sums, "gap_days"]


def _order_sums(tx_columns: Collection[str], expressions: Collection[str]) -> list[tuple[str, str]]:
    """The (name, line term) of :data:`ORDER_LINE_SUMS` that ``expressions`` read."""
    return [
        (name, term)
        for column, sums in ORDER_LINE_SUMS.items()
        if column in tx_columns
        for name, term in sums
        if any(name in e for e in expressions)
    ]


def orders_sql(
    tx_columns: Collection[str],
    shape: Shape,
    expressions: Collection[str] = (),
    *,
    order_table: str | None = None,
    gaps: bool = False,
) -> str:
    """One narrow row per purchase order: its value, age, line sums and discounted flag.

    Only the purchase (non-return) lines are read, so every order row is a purchase
    order and the customers with one are the population. Besides what needs the
    order level (counts, order values, gaps), the row carries the sums over its
    lines that a feature in ``expressions`` reads (margin, discount, full-price
    value): customer sums are sums of order sums, so the lines are grouped once.
    Money is summed in ten-thousandths (``order_amount_e4``, ...; :func:`money_e4`).
    The order's age is that of its oldest line, taken from the earliest
    ``ordered_at`` after the grouping, and a line's window is a comparison of its
    timestamp with a constant (:meth:`Shape.since`): no date arithmetic per line.

    With ``order_table`` (the name of a registered order table,
    ``features.inputs.order_table``) the rows are read from it instead of grouping
    the lines (:func:`order_table_sql`; ``gaps`` adds its ``gap_days``).
    """
    if order_table is not None:
        return order_table_sql(tx_columns, shape, expressions, order_table, gaps=gaps)
    values = {
        **LINE_VALUES,
        "since_275d": shape.since("t.ordered_at", 275),
        "since_365d": shape.since("t.ordered_at", 365),
    }
    parts = [f"SUM({values['amount']}) AS order_amount_e4", "MIN(t.ordered_at) AS first_ordered_at"]
    names = ["order_amount_e4"]
    for name, term in _order_sums(tx_columns, expressions):
        parts.append(f"SUM({term.format(**values)}) AS {name}")
        names.append(name)
    if "discount_amount" in tx_columns:
        parts.append(f"{ORDER_DISCOUNTED} AS order_discounted")
        names.append("order_discounted")
    if any("order_span_days" in e for e in expressions):
        parts.append(f"{ORDER_SPAN} AS order_span_days")
        names.append("order_span_days")
    purchased = f" AND NOT {is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    keys = shape.select_keys("t")
    grouping = (
        f"SELECT {keys}, t.{shape.order},\n      "
        + ",\n      ".join(parts)
        + f"\n    {shape.events('transactions', 't', 'ordered_at')}{purchased}"
        + f"\n    GROUP BY {keys}, t.{shape.order}"
    )
    cutoff = shape.cutoff if shape.single else "o.cutoff"
    age = f"date_diff('day', CAST(o.first_ordered_at AS DATE), {cutoff}) AS order_age_days"
    columns = ", ".join(f"o.{c}" for c in (*shape.keys, shape.order, *names))
    return f"SELECT {columns}, {age}\n  FROM ({grouping}) AS o"


def order_table_sql(
    tx_columns: Collection[str],
    shape: Shape,
    expressions: Collection[str],
    table: str,
    *,
    gaps: bool = False,
) -> str:
    """The rows of :func:`orders_sql` read from the order table ``table``: no grouping of lines.

    The table (``features.inputs.order_table``, keyed) holds one row per purchase
    order with its sums (:data:`ORDER_TABLE_SUMS`), its one ``ordered_at`` and the
    days since the customer's previous purchase order (``gap_days``, what
    :func:`order_gaps_sql` gives at any cutoff: the orders before a cutoff are a
    prefix of the customer's orders in time). It is written only when every
    order's purchase lines fall on one day, and the tests of a line's time here
    are against day boundaries (a cutoff, a window's first midnight), so the
    cutoff takes or leaves whole orders and a windowed sum is the order's sum or
    0 (``CASE WHEN`` of its time).
    """
    if not shape.keyed:
        raise ValueError("the order table is keyed: read it with Shape(..., keyed=True)")
    stored = {name: f"CAST(o.{column} AS DOUBLE)" for name, (column, _) in ORDER_TABLE_SUMS.items()}
    values = {
        "amount": stored["order_amount_e4"],
        "margin": stored["order_margin_e4"],
        "since_275d": shape.since("o.ordered_at", 275),
        "since_365d": shape.since("o.ordered_at", 365),
    }
    parts = [f"{stored['order_amount_e4']} AS order_amount_e4"]
    for name, term in _order_sums(tx_columns, expressions):
        value = stored[name] if name in stored else term.format(**values)
        parts.append(f"{value} AS {name}")
    if "discount_amount" in tx_columns:
        parts.append(f"o.{ORDER_TABLE_SUMS['order_discounted'][0]} AS order_discounted")
    if any("order_span_days" in e for e in expressions):
        parts.append("0 AS order_span_days")  # the table is written only for one-day orders
    age = shape.age_days("o.ordered_at")
    parts.append(f"{age} AS order_age_days")
    if gaps:
        parts.append("o.gap_days")
    return (
        f"SELECT {shape.select_keys('o')}, o.{shape.order},\n    "
        + ",\n    ".join(parts)
        + f"\n  {shape.events(table, 'o', 'ordered_at')}"
    )


#: A table of the returned lines of one cutoff (``features.engines.line_sums``), read
#: in place of the ``transactions`` view by :func:`returned_lines_sql`.
RETURNED_LINES_TABLE = "_winback_returned_lines"


def returned_lines_sql(
    tx_columns: Collection[str], shape: Shape, *, table: str | None = None
) -> str:
    """The returned lines on or before the cutoff (relation ``returned_lines``).

    A narrow scan with the ``is_return`` filter pushed into it: the purchase
    lines' sums come through the orders, so only the returns are read again.
    With ``margin_amount`` the rows carry it; without ``is_return`` there are none.
    Money in ten-thousandths (``amount_e4``, ``margin_e4``; :func:`money_e4`).
    With ``table`` (one cutoff, keyed) the rows are read from that registered table of
    the returned lines (:data:`RETURNED_LINES_TABLE`: ``customer_key``, ``ordered_at``,
    ``amount_e4``, ``margin_e4``), whose money is in ten-thousandths already.
    """
    margin = (
        f", {money_e4('t.margin_amount')} AS margin_e4" if "margin_amount" in tx_columns else ""
    )
    if table is not None:
        if not (shape.single and shape.keyed):
            raise ValueError("the returned lines' table is of one cutoff, by customer key")
        margin = ", t.margin_e4" if margin else ""
        return (
            f"SELECT {shape.select_keys('t')}, {shape.age_days('t.ordered_at')} AS age_days,"
            f" t.amount_e4{margin}\n  {shape.events(table, 't', 'ordered_at')}"
        )
    return (
        f"SELECT {shape.select_keys('t')}, {shape.age_days('t.ordered_at')} AS age_days,"
        f" {money_e4('t.amount')} AS amount_e4{margin}\n"
        f"  {shape.events('transactions', 't', 'ordered_at')}"
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


#: Tables registered in place of the relation's two groupings of the lines (see
#: ``features.engines.line_sums``): (customer, category) and category sums.
CATEGORY_SPEND_TABLE = "_winback_category_spend"
CATEGORY_TOTALS_TABLE = "_winback_category_totals"


def category_sql(
    tx_columns: Collection[str], shape: Shape, *, sums: bool = False
) -> list[tuple[str, str]]:
    """The ``customer_categories`` relation and the CTEs it needs, in order.

    One row per (customer, category) with ``category_amount``, the exact sum as
    ``DECIMAL(18, 4)`` (summed in ten-thousandths, :func:`money_e4`, then
    converted: its square is summed exactly), and with margins the
    ``high_margin`` flag of the category. The shop-wide category margin rates
    get a scan of their own rather than a second reader of the (customer,
    category) grouping: a relation read twice is materialised, and that grouping
    has millions of rows. Their sums are ``BIGINT`` (exact in DuckDB at any size).
    With ``sums`` (one cutoff) both groupings are read from the tables
    :data:`CATEGORY_SPEND_TABLE` and :data:`CATEGORY_TOTALS_TABLE`, with the same
    columns and values, registered by ``features.engines.line_sums``.
    """
    margin = "margin_amount" in tx_columns
    purchased = f" AND NOT {is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    scan = (
        f"{shape.events('transactions', 't', 'ordered_at')}{purchased} AND t.category IS NOT NULL"
    )
    keys = shape.select_keys("t")
    spend = (
        f"SELECT {keys}, t.category, SUM({money_e4('t.amount')}) AS category_amount_e4\n"
        f"  {scan}\n  GROUP BY {keys}, t.category"
    )
    if sums:
        if not (shape.single and shape.keyed):
            raise ValueError("the category sums are of one cutoff, by customer key")
        spend = f"SELECT * FROM {CATEGORY_SPEND_TABLE}"
    amount = f"CAST(p.category_amount_e4 / {MONEY_SCALE} AS DECIMAL(18, 4)) AS category_amount"
    p_keys = ", ".join("p." + k for k in shape.keys)
    if not margin:
        return [
            ("rel_category_spend", spend),
            (
                "rel_customer_categories",
                f"SELECT {p_keys}, p.category, {amount}\n  FROM rel_category_spend AS p",
            ),
        ]
    cutoff_key = "" if shape.single else "c.cutoff, "
    totals = (
        f"SELECT {cutoff_key}t.category,"
        f" SUM(CAST({money_e4('t.amount')} AS BIGINT)) AS category_amount_e4,"
        f" SUM(CAST({money_e4('t.margin_amount')} AS BIGINT)) AS category_margin_e4\n"
        f"  {scan}\n  GROUP BY {cutoff_key}t.category"
    )
    if sums:
        totals = f"SELECT * FROM {CATEGORY_TOTALS_TABLE}"
    rates, on = _high_margin_sql(shape)
    joined = (
        f"SELECT {p_keys}, p.category, {amount}, m.high_margin\n"
        f"  FROM rel_category_spend AS p JOIN rel_category_margin AS m ON {on}"
    )
    return [
        ("rel_category_totals", totals),
        ("rel_category_margin", rates),
        ("rel_category_spend", spend),
        ("rel_customer_categories", joined),
    ]


def _high_margin_sql(shape: Shape) -> tuple[str, str]:
    """The ``rel_category_margin`` SQL (each category's ``high_margin`` flag at each cutoff,
    from ``rel_category_totals``) and the condition joining it to the (customer, category) rows."""
    rate = (
        f"(CAST(SUM(category_margin_e4) AS DOUBLE) / {MONEY_SCALE})"
        f" / NULLIF(CAST(SUM(category_amount_e4) AS DOUBLE) / {MONEY_SCALE}, 0) AS rate"
    )
    if shape.single:
        rates = (
            "SELECT r.category, CASE WHEN r.rate > s.rate THEN 1 ELSE 0 END AS high_margin\n"
            f"  FROM (SELECT category, {rate}\n"
            "        FROM rel_category_totals GROUP BY category) AS r\n"
            f"  CROSS JOIN (SELECT {rate}\n"
            "        FROM rel_category_totals) AS s"
        )
        on = "m.category = p.category"
    else:
        rates = (
            "SELECT r.cutoff, r.category,"
            " CASE WHEN r.rate > s.rate THEN 1 ELSE 0 END AS high_margin\n"
            f"  FROM (SELECT cutoff, category, {rate}\n"
            "        FROM rel_category_totals GROUP BY cutoff, category) AS r\n"
            f"  JOIN (SELECT cutoff, {rate}\n"
            "        FROM rel_category_totals GROUP BY cutoff) AS s ON s.cutoff = r.cutoff"
        )
        on = "m.cutoff = p.cutoff AND m.category = p.category"
    return rates, on


#: The windows of the ``customer_products`` relation: every row is a product bought in
#: the last ``PRODUCT_WINDOW_DAYS``, flagged when also bought in the last ``PRODUCT_RECENT_DAYS``.
PRODUCT_WINDOW_DAYS = 365
PRODUCT_RECENT_DAYS = 90


def product_sql(tx_columns: Collection[str], shape: Shape) -> str:
    """One row per (customer, product) bought in the last 365 days (``customer_products``).

    Over the purchase lines with a ``product_id`` of the last
    :data:`PRODUCT_WINDOW_DAYS`: ``product_line_count`` (the lines of that
    product) and ``bought_recently`` (1 when one of them is of the last
    :data:`PRODUCT_RECENT_DAYS`). Counting rows counts distinct products: one
    scan and one grouping, where a ``COUNT(DISTINCT product_id)`` per window
    read the lines once per window and hashed them twice.
    """
    purchased = f" AND NOT {is_return(tx_columns, 't')}" if "is_return" in tx_columns else ""
    keys = shape.select_keys("t")
    recent = shape.since("t.ordered_at", PRODUCT_RECENT_DAYS)
    return (
        f"SELECT {keys}, t.product_id, COUNT(*) AS product_line_count,"
        f" MAX(CASE WHEN {recent} THEN 1 ELSE 0 END) AS bought_recently\n"
        f"  {shape.events('transactions', 't', 'ordered_at')}{purchased}"
        f" AND t.product_id IS NOT NULL AND {shape.since('t.ordered_at', PRODUCT_WINDOW_DAYS)}\n"
        f"  GROUP BY {keys}, t.product_id"
    )


def event_sql(table: str, shape: Shape) -> str:
    time_column, extra = EVENT_TABLES[table]
    cols = "".join(f", e.{c}" for c in extra)
    return (
        f"SELECT {shape.select_keys('e')}, {shape.age_days('e.' + time_column)} AS age_days{cols}\n"
        f"  {shape.events(table, 'e', time_column)}"
    )
