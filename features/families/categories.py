"""Breadth and concentration of what a customer buys.

Relation ``customer_categories``: one row per (cutoff, customer, category)
with ``category_amount``, the value of the customer's purchased lines in that
category (lines without a category are left out), an exact ``DECIMAL(18, 4)`` so
its squares add up exactly.
"""

from __future__ import annotations

from features.definitions import FeatureDefinition

FAMILY = "categories"


def _double(decimal_sql: str) -> str:
    """A decimal aggregate as ``DOUBLE`` before a division: DuckDB divides decimals so
    anyway, Spark would keep a decimal quotient with only 6 decimals."""
    return f"CAST({decimal_sql} AS DOUBLE)"


CATEGORY = "transactions.category"
#: ``category_amount`` widened before it is squared: DuckDB multiplies two ``DECIMAL(18, 4)``
#: into a ``DECIMAL(18, 8)``, which overflows from 100,000 currency units up (¥100,000 is common).
_WIDE = "CAST(category_amount AS DECIMAL(38, 4))"

FEATURES: tuple[FeatureDefinition, ...] = (
    FeatureDefinition(
        "category_count",
        FAMILY,
        "float64",
        "customer_categories",
        "COUNT(*)",
        "Distinct product categories bought.",
        columns=(CATEGORY,),
        zero_when_absent=True,
    ),
    FeatureDefinition(
        "top_category_spend_share",
        FAMILY,
        "float64",
        "customer_categories",
        f"{_double('MAX(category_amount)')} / NULLIF({_double('SUM(category_amount)')}, 0)",
        "Share of categorised spend in the customer's largest category; missing without it.",
        columns=(CATEGORY,),
    ),
    FeatureDefinition(
        "category_concentration_share",
        FAMILY,
        "float64",
        "customer_categories",
        f"{_double(f'SUM({_WIDE} * {_WIDE})')}"
        f" / NULLIF({_double('SUM(category_amount) * SUM(category_amount)')}, 0)",
        "Herfindahl index of spend over categories (1 = one category); missing without spend.",
        columns=(CATEGORY,),
    ),
)
