"""Feature families: portable SQL definitions of point-in-time customer features.

Each module holds the features of one behaviour (recency and frequency,
monetary value and margin, categories, returns and support, engagement and
advocacy, static attributes) as :class:`features.definitions.FeatureDefinition`
objects: a name, a dtype, the tables and optional columns it needs, a one-line
description and the SQL expression that computes it. ``features.definitions``
collects them; ``features.build`` turns a selection into one query.
"""


def money(sum_e4: str) -> str:
    """SQL of a money sum counted in ten-thousandths (``features.relations.money_e4``) in currency.

    The sum is an exact integer; divided once, it is the double nearest the exact
    amount (the value an exact decimal sum cast to ``DOUBLE`` has), so every feature
    built from it is the same whatever the thread count.
    """
    from features.relations import MONEY_SCALE

    return f"({sum_e4} / {MONEY_SCALE})" if _one_term(sum_e4) else f"(({sum_e4}) / {MONEY_SCALE})"


def _one_term(sql: str) -> bool:
    """Whether ``sql`` is one call or parenthesised term (``SUM(...)``, ``(a - b)``)."""
    head = sql.split("(", 1)[0]
    if not sql.endswith(")") or not (head == "" or head.isidentifier()):
        return False
    depth = 0
    for i, char in enumerate(sql):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and i > len(head):
            return i == len(sql) - 1
    return False


def exact_stddev_samp(expression: str, unit: int = 1) -> str:
    """SQL for the sample standard deviation of ``expression / unit`` from exact sums.

    ``STDDEV_SAMP`` merges its threads' running moments in floating point, in
    whatever order they finish, so its last bits change from run to run. Here
    ``expression`` is integer-valued (days, or money in ten-thousandths as
    ``DECIMAL(38, 0)`` with ``unit`` 10^4) and the count, sum and sum of squares
    are exact integers combined once: the same data gives the same bits. Squares
    of money stay integers (a ``DECIMAL(18, 4)`` square overflowed from 100,000
    currency units up); the spread becomes a double, divided by ``unit``
    squared, as a decimal of that scale is cast. NULL below two values.
    """
    n = f"COUNT({expression})"
    s = f"SUM({expression})"
    q = f"SUM(({expression}) * ({expression}))"
    spread = f"CAST({n} * {q} - {s} * {s} AS DOUBLE)"
    if unit != 1:
        spread = f"({spread} / {float(unit * unit)!r})"
    return f"CASE WHEN {n} > 1 THEN SQRT(GREATEST({spread} / ({n} * ({n} - 1)), 0)) END"
