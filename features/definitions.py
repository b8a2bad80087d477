"""The registry of feature definitions: what each feature is and what it needs.

A feature is a :class:`FeatureDefinition`. Its SQL ``expression`` is an
aggregate over the rows of one *relation* (a point-in-time view of the events
built by ``features.build``, one row per purchase order, per order line, per
ticket, ...), grouped by ``(cutoff, customer_id)``; or, for ``relation="derived"``,
a scalar expression over other features named in ``depends_on``.

The registry drives which SQL columns are selected, which features are omitted
when a source table or optional column is absent, the list in ``docs/features.md``
and the contract test that walks every feature.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Dtype = Literal["float64", "category"]

#: Relations a feature can be aggregated over, and the table each one reads.
RELATIONS: dict[str, str] = {
    "orders": "transactions",
    "order_days": "transactions",
    "lines": "transactions",
    "returned_lines": "transactions",
    "customer_categories": "transactions",
    "customer_products": "transactions",
    "support_tickets": "support_tickets",
    "referrals": "referrals",
    "reviews": "reviews",
    "customers": "customers",
    "engagement_events": "engagement_events",
    "derived": "transactions",
    "windowed": "transactions",  # its own table and window (``features.custom.windowed``)
}


@dataclass(frozen=True)
class FeatureDefinition:
    """One point-in-time feature.

    Attributes
    ----------
    name
        Column name, with its unit at the end where it has one (``_days``,
        ``_amount``, ``_share``, ``_rate``).
    family
        The behaviour it measures (the module it lives in).
    dtype
        ``"float64"`` or ``"category"``.
    relation
        The relation its aggregate ``expression`` runs over (see ``RELATIONS``),
        or ``"derived"`` for an expression over the features in ``depends_on``.
    expression
        Portable SQL (DuckDB dialect restricted to what SQLGlot turns into Spark SQL).
    description
        One line: what it is, in which units, and when it is missing.
    columns
        Optional contract columns it needs, as ``"table.column"``.
    depends_on
        Features a derived expression reads.
    zero_when_absent
        True for counts and sums: a customer with no rows in the relation gets
        0 (the table is present, the customer simply has no events). Otherwise
        such a customer gets a missing value.
    """

    name: str
    family: str
    dtype: Dtype
    relation: str
    expression: str
    description: str
    columns: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    zero_when_absent: bool = False

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(
                f"feature {self.name!r}: unknown relation {self.relation!r}; "
                f"use one of {sorted(RELATIONS)}"
            )
        if self.dtype not in ("float64", "category"):
            raise ValueError(f"feature {self.name!r}: dtype must be float64 or category")
        if (self.relation == "derived") != bool(self.depends_on):
            raise ValueError(
                f"feature {self.name!r}: a derived feature (and only one) lists depends_on"
            )

    @classmethod
    def numeric(
        cls, family: str, name: str, relation: str, expression: str, description: str, **kw
    ) -> FeatureDefinition:
        """A ``float64`` feature of ``family`` (each family binds its name with ``partial``)."""
        return cls(name, family, "float64", relation, expression, description, **kw)

    @property
    def tables(self) -> tuple[str, ...]:
        """Contract tables the feature reads (always ``transactions`` for the population)."""
        names = ["transactions", RELATIONS[self.relation]]
        names += [c.split(".", 1)[0] for c in self.columns]
        return tuple(dict.fromkeys(names))


def _collect() -> tuple[dict[str, FeatureDefinition], dict[str, FeatureDefinition]]:
    """The registered features and the parts (``PARTS``) of every family, checked."""
    from features.families import (
        categories,
        digital_engagement,
        engagement_advocacy,
        monetary_margin,
        products,
        recency_frequency,
        returns_support,
        static_attributes,
    )

    out: dict[str, FeatureDefinition] = {}
    parts: dict[str, FeatureDefinition] = {}
    for module in (
        recency_frequency,
        monetary_margin,
        categories,
        returns_support,
        engagement_advocacy,
        static_attributes,
        digital_engagement,  # the V2 sets append it to V1 in this (registry) order
        products,  # the V3 sets append it to V2
    ):
        for definition in module.FEATURES:
            if definition.name in out:
                raise ValueError(f"feature {definition.name!r} is defined twice")
            out[definition.name] = definition
        for part in getattr(module, "PARTS", ()):
            if not part.name.startswith("_") or part.name in parts:
                raise ValueError(f"part {part.name!r}: a part's name starts with _ and is unique")
            parts[part.name] = part
    for definition in [*parts.values(), *out.values()]:
        unknown = [d for d in definition.depends_on if d not in out and d not in parts]
        if unknown:
            raise ValueError(f"feature {definition.name!r} depends on unknown features {unknown}")
    return out, parts


_REGISTRY: dict[str, FeatureDefinition] | None = None
_PARTS: dict[str, FeatureDefinition] = {}


def registry() -> dict[str, FeatureDefinition]:
    """Every registered feature by name, in registry (documentation) order."""
    global _REGISTRY, _PARTS
    if _REGISTRY is None:
        _REGISTRY, _PARTS = _collect()
    return dict(_REGISTRY)


def parts() -> dict[str, FeatureDefinition]:
    """Partial aggregates that derived features combine, by name (which starts with ``_``).

    A part is computed only as a dependency and never returned: it is not a
    feature (no set, no docs entry). It lets a derived feature add up sums that
    different relations hold, e.g. a purchase sum of the orders and a return sum
    of the returned lines, instead of grouping every line once more.
    """
    registry()
    return dict(_PARTS)


def dependency(name: str) -> FeatureDefinition:
    """The definition a derived feature depends on: a registered feature or a part."""
    return registry().get(name) or parts()[name]


def feature_names() -> list[str]:
    """Names of every registered feature, in registry order."""
    return list(registry())


def get_feature(name: str) -> FeatureDefinition:
    """The definition of one feature; ``KeyError`` naming close matches otherwise."""
    features = registry()
    if name not in features:
        import difflib

        close = difflib.get_close_matches(name, features, n=3)
        raise KeyError(f"no feature named {name!r}; did you mean {close}?")
    return features[name]


def omission_reason(
    definition: FeatureDefinition,
    columns: Mapping[str, Collection[str]],
    omitted: Mapping[str, str] | None = None,
) -> str | None:
    """Why a feature cannot be computed from the tables present, or ``None`` if it can.

    ``columns`` maps each present contract table to its column names;
    ``omitted`` the reasons already found for other features (derived ones
    inherit the reason of a missing dependency).
    """
    for table in definition.tables:
        if table not in columns:
            return f"{definition.name}: omitted, table {table!r} is absent"
    for qualified in definition.columns:
        table, column = qualified.split(".", 1)
        if column not in columns[table]:
            return f"{definition.name}: omitted, column {qualified!r} is absent"
    for dependency in definition.depends_on:
        if omitted and dependency in omitted:
            return f"{definition.name}: omitted, it needs {dependency!r} ({omitted[dependency]})"
    return None


def resolve(
    names: Collection[str] | None,
    columns: Mapping[str, Collection[str]],
    *,
    extra: Sequence[FeatureDefinition] = (),
) -> tuple[list[FeatureDefinition], list[str]]:
    """Split requested features (all when ``None``) into computable ones and omission notes.

    ``extra`` are definitions outside the registry (user-defined features,
    ``features.custom``), placed after it. Returns the computable definitions in
    registry order and one note per omitted feature.
    """
    features = registry()
    for definition in extra:
        if features.get(definition.name, definition) != definition:
            raise ValueError(
                f"feature {definition.name!r} is defined twice (built in and user-defined); "
                "rename the user-defined one"
            )
        features[definition.name] = definition
    if names is not None:
        unknown = [n for n in names if n not in features]
        if unknown:
            raise KeyError(
                f"unknown features {unknown}: not in features.definitions; "
                "check the feature set against features.definitions.feature_names()"
            )
    wanted = set(features) if names is None else set(names)
    omitted: dict[str, str] = {}
    # Parts, then the registry order: dependencies come first.
    for definition in [*parts().values(), *features.values()]:
        reason = omission_reason(definition, columns, omitted)
        if reason is not None:
            omitted[definition.name] = reason
    keep = [d for n, d in features.items() if n in wanted and n not in omitted]
    notes = [omitted[n] for n in features if n in wanted and n in omitted]
    return keep, notes
