"""Feature families: portable SQL definitions of point-in-time customer features.

Each module holds the features of one behaviour (recency and frequency,
monetary value and margin, categories, returns and support, engagement and
advocacy, static attributes) as :class:`features.definitions.FeatureDefinition`
objects: a name, a dtype, the tables and optional columns it needs, a one-line
description and the SQL expression that computes it. ``features.definitions``
collects them; ``features.build`` turns a selection into one query.
"""


def exact_stddev_samp(expression: str) -> str:
    """SQL for the sample standard deviation of ``expression`` from exact sums.

    ``STDDEV_SAMP`` merges its threads' running moments in floating point, in
    whatever order they finish, so its last bits change from run to run. Here
    the count, sum and sum of squares are exact (decimal money, integer days)
    and combined once: the same data gives the same bits. NULL below two values.
    """
    n = f"COUNT({expression})"
    s = f"SUM({expression})"
    q = f"SUM(({expression}) * ({expression}))"
    spread = f"CAST({n} * {q} - {s} * {s} AS DOUBLE)"
    return f"CASE WHEN {n} > 1 THEN SQRT(GREATEST({spread} / ({n} * ({n} - 1)), 0)) END"
