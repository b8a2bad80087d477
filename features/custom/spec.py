"""User-defined features: ``[[features.custom]]`` entries of ``winback.toml``, checked at load.

An entry names one aggregate SQL expression over a contract table and a
trailing window::

    [[features.custom]]
    name = "distinct_products_90d"
    table = "transactions"
    expression = "count(distinct product_id)"
    window_days = 90
    description = "Distinct products bought in the last 90 days"
    fill = 0

The expression is code, run by the feature engine; it is parsed (SQLGlot, DuckDB
dialect) and refused unless it is one aggregate expression over the table's
contract columns: no subquery, no window function, no table or unknown
function, no second statement. Winback, never the expression, picks the rows
(on or before the cutoff, inside the window), and a dry run on empty contract
tables checks it computes a number. The set of entries has a version (a hash),
appended to the feature-set name a model records.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from features.custom.windowed import (
    AGE_COLUMN,
    DEFAULTED_COLUMNS,
    Window,
    WindowedFeature,
    windowed,
)
from features.definitions import FeatureDefinition
from features.inputs.schema import SCHEMAS

#: Tables a user-defined feature can aggregate: every contract table with a time column
#: except ``customers`` (static, one row each) and ``suppressions`` (not behaviour).
CUSTOM_TABLES = tuple(
    name
    for name, schema in SCHEMAS.items()
    if schema.time_column is not None and name not in ("customers", "suppressions")
)

#: Names a feature cannot take: the keys and columns every training or scoring table has.
RESERVED_NAMES = frozenset(
    {"cutoff", "customer_id", "churned", "vip", "reactivated", "tier", "trailing_margin"}
)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: SQLGlot node types an expression may not contain, with the reason shown to the user.
_REFUSED: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Query, "a subquery"),
    (exp.Subquery, "a subquery"),
    (exp.Window, "a window function (OVER)"),
    (exp.Table, "a table reference"),
    (exp.UDTF, "a table function"),
    (exp.Anonymous, "a function SQLGlot does not know (it would not run on Spark)"),
    (exp.Placeholder, "a parameter placeholder"),
    (exp.Star, "a star outside count(*)"),
)


@functools.cache
def _sql_keywords() -> frozenset[str]:
    """DuckDB's keywords, reserved or not (a column alias must be none of them)."""
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()
    return frozenset(r[0].lower() for r in rows)


class CustomFeatureError(ValueError):
    """A user-defined feature's definition is refused (the message says why and what to do)."""


def _refuse(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Star) and isinstance(node.parent, exp.Count):
        return None
    if type(node).__name__.startswith("Read"):  # read_csv, read_parquet, ...: file access
        return "a file-reading function"
    for kind, reason in _REFUSED:
        if isinstance(node, kind):
            return reason
    return None


def parse_expression(expression: str, table: str) -> tuple[str, tuple[str, ...]]:
    """The expression as the DuckDB SQL winback runs, and the columns it reads.

    Raises :class:`CustomFeatureError` for anything but one aggregate expression
    over ``table``'s contract columns (and ``age_days``).
    """
    try:
        trees = sqlglot.parse(expression, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise CustomFeatureError(f"expression does not parse as SQL: {exc}") from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise CustomFeatureError(
            f"expression must be one SQL expression, got {len(trees)} statements (no ';')"
        )
    tree = trees[0]
    for node in tree.walk():
        reason = _refuse(node)
        if reason is not None:
            raise CustomFeatureError(
                f"expression contains {reason} ({node.sql('duckdb')!r}); write one aggregate "
                "over the table's columns, e.g. count(distinct product_id)"
            )
    if not any(tree.find_all(exp.AggFunc)):
        raise CustomFeatureError(
            "expression has no aggregate function: it must reduce a customer's rows to one "
            "value, e.g. count(*), sum(amount), count(distinct product_id)"
        )
    reads = []
    allowed = set(SCHEMAS[table].names) | {AGE_COLUMN} | set(DEFAULTED_COLUMNS.get(table, {}))
    for column in tree.find_all(exp.Column):
        if column.table:
            raise CustomFeatureError(
                f"column {column.sql('duckdb')!r}: write bare column names (no table prefix)"
            )
        if column.name not in allowed:
            raise CustomFeatureError(
                f"column {column.name!r} is not in the {table} contract; "
                f"use one of {sorted(allowed)}"
            )
        if column.find_ancestor(exp.AggFunc, exp.Filter) is None:  # FILTER (WHERE ...) too
            raise CustomFeatureError(
                f"column {column.name!r} is outside an aggregate function; "
                "every column must be aggregated (e.g. max(amount))"
            )
        reads.append(column.name)
    sql = tree.sql(dialect="duckdb")
    try:
        sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE)
    except sqlglot.errors.SqlglotError as exc:
        raise CustomFeatureError(
            f"expression does not translate to Spark SQL ({exc}); use portable SQL"
        ) from None
    return sql, tuple(dict.fromkeys(reads))


class CustomFeature(BaseModel):
    """One ``[[features.custom]]`` entry: an aggregate over a table's rows in a trailing window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Column name: lower case, digits and _, unit at the end.")
    table: str = Field("transactions", description="The contract table aggregated.")
    expression: str = Field(description="One SQL aggregate over the table's columns.")
    window_days: int | None = Field(
        None, ge=1, description="Rows with 0 <= age_days < window_days; all history if unset."
    )
    description: str = Field(min_length=1, description="One line: what, in which unit.")
    fill: float | None = Field(
        None, description="Value without rows in the window (0 for counts); missing if unset."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid feature name: lower case letters, digits and _, "
                "starting with a letter (e.g. distinct_products_90d)"
            )
        from features.definitions import registry

        if value in RESERVED_NAMES or value in registry():
            raise ValueError(f"{value!r} is already a built-in feature or column; rename it")
        if value in _sql_keywords():
            raise ValueError(f"{value!r} is an SQL keyword; rename it")
        return value

    @field_validator("table")
    @classmethod
    def _known_table(cls, value: str) -> str:
        if value not in CUSTOM_TABLES:
            raise ValueError(f"unknown table {value!r}; use one of {list(CUSTOM_TABLES)}")
        return value

    @field_validator("fill")
    @classmethod
    def _finite_fill(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("fill must be a finite number (or left unset for missing)")
        return value

    @model_validator(mode="after")
    def _valid_expression(self) -> CustomFeature:
        try:
            parse_expression(self.expression, self.table)
        except CustomFeatureError as exc:
            raise ValueError(str(exc)) from None
        from features.custom.dry_run import dry_run

        dry_run(self.definition())
        return self

    def definition(self) -> WindowedFeature:
        """The feature definition the engine computes."""
        sql, reads = parse_expression(self.expression, self.table)
        window = Window(self.table, self.window_days, self.fill)
        return windowed(self.name, sql, self.description, window, reads=reads)


def custom_definitions(entries: Sequence[CustomFeature]) -> tuple[WindowedFeature, ...]:
    """The definitions of ``entries``; ``CustomFeatureError`` when two share a name."""
    names = [e.name for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CustomFeatureError(f"user-defined features {twice} are defined twice")
    return tuple(e.definition() for e in entries)


_HASHED = ("name", "table", "expression", "window_days", "fill", "dtype")


def definitions_version(definitions: Sequence[FeatureDefinition]) -> str:
    """8 hex digits naming the definitions (their order too: it is the column order)."""
    payload = [{k: asdict(d).get(k) for k in _HASHED} for d in definitions]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def definition_as_dict(definition: FeatureDefinition) -> dict:
    """A JSON-ready copy of a (windowed) definition, as a model's feature set logs it."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(definition).items()}


def definition_from_dict(data: dict) -> WindowedFeature:
    """The definition :func:`definition_as_dict` wrote."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return WindowedFeature(**values)
