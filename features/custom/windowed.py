"""Windowed aggregates: one SQL aggregate over a contract table's rows in a trailing window.

A :class:`WindowedFeature` is a :class:`~features.definitions.FeatureDefinition` whose
rows are chosen by winback, never by its expression: the rows of ``table`` whose
time column is on or before the cutoff day and, with ``window_days = w``, whose
``age_days`` (whole days from the row's date to the cutoff) is ``0 <= age_days < w``.
The expression only aggregates those rows, grouped by customer (and cutoff), so
it has the point-in-time guarantee of every built-in feature.

User-defined features (``[[features.custom]]`` in ``winback.toml``, see
``features.custom.spec``) and the built-in product-diversity family are windowed
aggregates. :func:`windowed_sql` is the one place ``features.build`` composes them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from features.definitions import FeatureDefinition
from features.inputs.schema import SCHEMAS
from features.relations import Shape

#: Columns every windowed relation has besides the table's own: the row's age in days.
AGE_COLUMN = "age_days"

#: Columns with a value even when the shop's table lacks them (SQL giving it).
DEFAULTED_COLUMNS: dict[str, dict[str, str]] = {
    "transactions": {"is_return": "COALESCE(x.is_return, FALSE)"},
}


@dataclass(frozen=True)
class WindowedFeature(FeatureDefinition):
    """A ``float64`` aggregate ``expression`` over ``table``'s rows in a trailing window.

    Attributes (besides :class:`~features.definitions.FeatureDefinition`'s)
    ----------
    table
        The contract table whose rows are aggregated (it must have a time column).
    window_days
        Rows with ``0 <= age_days < window_days``; every row up to the cutoff when ``None``.
    fill
        Value of a customer in the population with no row in the window
        (``0`` for counts and sums); ``None`` leaves it missing.
    reads
        Columns of ``table`` (and ``age_days``) the expression reads.
    """

    table: str = "transactions"
    window_days: int | None = None
    fill: float | None = None
    reads: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relation != "windowed":
            raise ValueError(f"feature {self.name!r}: a windowed feature has relation 'windowed'")
        schema = SCHEMAS.get(self.table)
        if schema is None or schema.time_column is None:
            raise ValueError(f"feature {self.name!r}: table {self.table!r} has no time column")

    @property
    def tables(self) -> tuple[str, ...]:
        """Contract tables it reads: ``transactions`` (the population) and its own."""
        return tuple(dict.fromkeys(("transactions", self.table)))

    @property
    def group_key(self) -> tuple[str, int | None]:
        """Features with the same table and window share one relation and one grouping."""
        return (self.table, self.window_days)


@dataclass(frozen=True)
class Window:
    """Which rows a windowed feature aggregates: ``table``'s rows in the last ``days`` days
    (all history when ``None``); ``fill`` for a customer without such rows (missing when ``None``)."""

    table: str
    days: int | None = None
    fill: float | None = None


def windowed(
    name: str,
    expression: str,
    description: str,
    window: Window,
    *,
    family: str = "custom",
    reads: Sequence[str] = (),
) -> WindowedFeature:
    """A :class:`WindowedFeature`; ``reads`` lists the columns the expression reads.

    The optional contract columns among ``reads`` become the feature's ``columns``,
    so the feature is omitted (with a note) when the shop's table lacks one.
    """
    table = window.table
    defaulted = DEFAULTED_COLUMNS.get(table, {})
    schema = SCHEMAS[table]
    optional = [
        f"{table}.{c}" for c in dict.fromkeys(reads) if c in schema.optional and c not in defaulted
    ]
    return WindowedFeature(
        name=name,
        family=family,
        dtype="float64",
        relation="windowed",
        expression=expression,
        description=description,
        columns=tuple(optional),
        zero_when_absent=window.fill == 0,
        table=table,
        window_days=window.days,
        fill=window.fill,
        reads=tuple(dict.fromkeys(reads)),
    )


@dataclass(frozen=True)
class WindowedSql:
    """What the windowed features add to the feature query: CTEs, joined columns, joins."""

    ctes: list[tuple[str, str]]
    columns: list[str]
    joins: list[str]


def _relation_sql(
    table: str, window_days: int | None, reads: Collection[str], present: Collection[str], shape
) -> str:
    """The rows of ``table`` in the window as of the cutoff(s), with the columns read."""
    time_column = SCHEMAS[table].time_column
    age = shape.age_days(f"x.{time_column}")
    defaulted = DEFAULTED_COLUMNS.get(table, {})
    selected = [f"{age} AS {AGE_COLUMN}"]
    for column in reads:
        if column == AGE_COLUMN or column == "customer_id":
            continue
        if column in defaulted:
            sql = defaulted[column] if column in present else "FALSE"
            selected.append(f"{sql} AS {column}")
        else:
            selected.append(f"x.{column}")
    where = shape.events(table, "x", time_column)
    if window_days is not None:
        where += f" AND {age} < {int(window_days)}"
    return f"SELECT {shape.select_keys('x')}, {', '.join(selected)}\n  {where}"


def windowed_sql(
    definitions: Sequence[WindowedFeature],
    columns: Mapping[str, Collection[str]],
    shape: Shape,
) -> WindowedSql:
    """The CTEs, ``joined`` columns and joins of ``definitions`` for ``features.build``.

    One relation (``rel_windowed_<i>``) and one grouping (``agg_windowed_<i>``)
    per (table, window); each is left-joined to the population (``agg_orders``),
    and a customer without rows gets the feature's ``fill``.
    """
    groups: dict[tuple[str, int | None], list[WindowedFeature]] = {}
    for d in definitions:
        groups.setdefault(d.group_key, []).append(d)
    out = WindowedSql([], [], [])
    for i, ((table, window_days), defs) in enumerate(groups.items()):
        reads = list(dict.fromkeys(c for d in defs for c in d.reads))
        relation, agg = f"rel_windowed_{i}", f"agg_windowed_{i}"
        out.ctes.append((relation, _relation_sql(table, window_days, reads, columns[table], shape)))
        select = ", ".join(shape.keys) + "".join(f",\n    {d.expression} AS {d.name}" for d in defs)
        out.ctes.append((agg, f"SELECT {select}\n  FROM {relation} GROUP BY {shape.by}"))
        for d in defs:
            value = f"{agg}.{d.name}"
            fill = None if d.fill is None else float(d.fill)
            out.columns.append(
                f"COALESCE({value}, {fill!r}) AS {d.name}" if fill is not None else value
            )
        on = " AND ".join(f"{agg}.{k} = agg_orders.{k}" for k in shape.keys)
        out.joins.append(f"  LEFT JOIN {agg} ON {on}")
    return out
