"""Column mappings: how a shop's own export becomes the contract tables.

A :class:`ColumnMapping` says, per contract table, where the rows come from
(a file name or pattern, a database table, or a query), which source column
becomes which contract column, which contract columns are computed by a DuckDB
SQL expression over the source columns (``amount = "Quantity * UnitPrice"``;
never Python ``eval``), how returns are marked, how timestamps are written and
in which time zone, and which rows to quarantine under a named reason (e.g.
``non_product_line``). Mappings are plain TOML files; built-in ones ship in
``features/inputs/mappings/`` and are found by name (``online-retail``).

TOML shape (every key but the table names optional)::

    name = "my-shop"
    [tables.transactions]
    source = "orders*.csv"          # file pattern in a folder, or a database table
    query = "SELECT * FROM raw"     # DuckDB SQL over `raw` (the source) or the database
    timestamp_formats = ["%d/%m/%Y %H:%M"]
    timezone = "Europe/London"      # zone of timestamps written without one
    returns = "negative_lines"      # or "none", "flag", "order_prefix"
    [tables.transactions.columns]   # contract column = source column
    order_id = "Invoice"
    [tables.transactions.expressions]
    amount = "Quantity * Price"     # contract column = DuckDB SQL expression
    [[tables.transactions.exclude]] # rows quarantined under `reason`, first match wins
    reason = "test_order"
    where = "Email LIKE '%@example.com'"

Unmapped source columns are not read (so names or e-mails never reach a
quarantine file) unless ``keep_unmapped = true`` or ``keep_unmapped = ["Country"]``
asks for them. A mapping file is code: its SQL runs in DuckDB, sandboxed by
``features.inputs.sources`` (no files, no settings, no extensions).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.inputs.contracts import EXCLUDE_REASON_COLUMN, ContractError, ContractOptions
from features.inputs.schema import SCHEMAS

ReturnConvention = Literal["none", "negative_lines", "flag", "order_prefix"]

_REASON = r"^[a-z][a-z0-9_]*$"


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (safe for any column name)."""
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Exclusion(BaseModel):
    """Rows matching a DuckDB SQL condition are quarantined under ``reason``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(pattern=_REASON, description="Quarantine reason, snake_case.")
    where: str = Field(min_length=1, description="DuckDB SQL condition over source columns.")


class TableMapping(BaseModel):
    """How one contract table is read from the source (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = None
    query: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    expressions: dict[str, str] = Field(default_factory=dict)
    returns: ReturnConvention = "none"
    return_prefix: str = "C"
    timestamp_formats: tuple[str, ...] = ()
    timezone: str = "UTC"
    allow_zero_amount: bool = False
    exclude: tuple[Exclusion, ...] = ()
    keep_unmapped: bool | tuple[str, ...] = False

    def options(self) -> ContractOptions:
        """The validation options this mapping implies."""
        return ContractOptions(
            negative_amount_is_return=self.returns == "negative_lines",
            allow_zero_amount=self.allow_zero_amount,
            timestamp_formats=self.timestamp_formats,
            timezone=self.timezone,
            keep_unmapped=self.keep_unmapped if isinstance(self.keep_unmapped, bool) else True,
        )

    def _kept_source_columns(
        self, raw_columns: list[str], produced: set[str], contract_names: tuple[str, ...]
    ) -> list[str]:
        """``"source" AS "alias"`` for the unmapped columns passed on to validation.

        Source columns already named as a contract column (``contract_names``)
        pass through. Others (names, e-mails, addresses) are not read at all,
        unless ``keep_unmapped = true`` (every one) or a list of names asks for
        them; then the quarantine file shows them.
        """
        if self.keep_unmapped is True:
            wanted = list(raw_columns)
        else:
            asked = [] if self.keep_unmapped is False else list(self.keep_unmapped)
            wanted = [c for c in raw_columns if c in contract_names and c not in produced]
            wanted += [c for c in asked if c not in wanted]
        unknown = sorted(set(wanted) - set(raw_columns))
        if unknown:
            raise ContractError(
                f"keep_unmapped names source column(s) {unknown}, not found among {raw_columns}"
            )
        used = set(self.columns.values())
        # DuckDB names are case-insensitive: a kept "Quantity" would clash with "quantity".
        taken = {p.lower() for p in produced}
        parts = []
        for c in wanted:
            if c in used:
                continue
            alias = f"source_{c}" if c.lower() in taken else c
            parts.append(f"{quote_identifier(c)} AS {quote_identifier(alias)}")
        return parts

    def select_sql(
        self, raw_columns: list[str], relation: str = "raw", contract_names: tuple[str, ...] = ()
    ) -> str:
        """The DuckDB ``SELECT`` that turns ``relation`` into contract-named columns.

        Renamed and computed columns come first, then ``__exclude_reason__`` (the
        first matching exclusion), then source columns already named as one of
        ``contract_names`` and those ``keep_unmapped`` asks for (validation drops
        those from the table; the quarantine shows them).
        """
        missing = sorted({c for c in self.columns.values() if c not in raw_columns})
        if missing:
            raise ContractError(
                f"the column mapping reads source column(s) {missing}, not found among"
                f" {raw_columns}; fix the mapping's [columns] or the source"
            )
        parts = [
            f"{quote_identifier(src)} AS {quote_identifier(dst)}"
            for dst, src in self.columns.items()
        ]
        parts += [f"({expr}) AS {quote_identifier(dst)}" for dst, expr in self.expressions.items()]
        produced = set(self.columns) | set(self.expressions)
        if self.returns == "order_prefix" and "is_return" not in produced:
            order = quote_identifier(self.columns["order_id"])
            prefix = _quote_literal(self.return_prefix)
            parts.append(
                f"coalesce(starts_with(trim(CAST({order} AS VARCHAR)), {prefix}), false) AS is_return"
            )
            produced.add("is_return")
        if self.exclude:
            cases = " ".join(
                f"WHEN ({e.where}) THEN {_quote_literal(e.reason)}" for e in self.exclude
            )
            parts.append(f"CASE {cases} END AS {quote_identifier(EXCLUDE_REASON_COLUMN)}")
        parts += self._kept_source_columns(raw_columns, produced, contract_names)
        return f"SELECT {', '.join(parts)} FROM {relation}"


class ColumnMapping(BaseModel):
    """A named, typed mapping from a shop's export to the contract tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    tables: dict[str, TableMapping] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_contract_names(self) -> ColumnMapping:
        for table, mapping in self.tables.items():
            if table not in SCHEMAS:
                raise ValueError(f"unknown table {table!r}; the contract has {sorted(SCHEMAS)}")
            names = SCHEMAS[table].names
            targets = list(mapping.columns) + list(mapping.expressions)
            unknown = [c for c in targets if c not in names]
            if unknown:
                raise ValueError(
                    f"tables.{table}: unknown contract column(s) {unknown}; {table} has {list(names)}"
                )
            both = sorted(set(mapping.columns) & set(mapping.expressions))
            if both:
                raise ValueError(f"tables.{table}: {both} given both as column and expression")
            if mapping.returns != "none" and table != "transactions":
                raise ValueError(f"tables.{table}: returns applies to transactions only")
            if mapping.returns == "order_prefix" and "order_id" not in mapping.columns:
                raise ValueError(
                    f"tables.{table}: returns = 'order_prefix' needs order_id in [columns]"
                )
            if mapping.returns == "flag" and "is_return" not in targets:
                raise ValueError(
                    f"tables.{table}: returns = 'flag' needs is_return in [columns] or [expressions]"
                )
        return self

    def options(self) -> dict[str, ContractOptions]:
        """Validation options per table."""
        return {table: m.options() for table, m in self.tables.items()}


def builtin_mappings() -> dict[str, Path]:
    """Built-in mapping files by name (``online_retail.toml`` is ``online-retail``)."""
    folder = resources.files("features.inputs.mappings")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name.removesuffix(".toml").replace("_", "-")] = Path(str(entry))
    return dict(sorted(out.items()))


def parse_mapping(text: str, origin: str = "<string>") -> ColumnMapping:
    """A :class:`ColumnMapping` from TOML text; errors name the file and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"column mapping {origin}: not valid TOML: {exc}") from exc
    try:
        return ColumnMapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()
        )
        raise ContractError(f"column mapping {origin}: {problems}") from exc


def load_mapping(spec: str | Path | ColumnMapping) -> ColumnMapping:
    """A mapping from a built-in name (``"online-retail"``), a TOML path, or itself."""
    if isinstance(spec, ColumnMapping):
        return spec
    builtins = builtin_mappings()
    key = str(spec).strip().lower().replace("_", "-")
    if isinstance(spec, str) and key in builtins:
        path = builtins[key]
    else:
        path = Path(spec)
        if not path.is_file():
            raise ContractError(
                f"no column mapping {str(spec)!r}: not a built-in ({sorted(builtins)})"
                " and not a TOML file"
            )
    return parse_mapping(path.read_text(encoding="utf-8"), origin=str(path))


__all__ = [
    "ColumnMapping",
    "Exclusion",
    "ReturnConvention",
    "TableMapping",
    "builtin_mappings",
    "load_mapping",
    "parse_mapping",
    "quote_identifier",
]
