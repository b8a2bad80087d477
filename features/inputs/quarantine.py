"""Which rows go to the quarantine and why: reasons per row, first reason wins.

The steps of ``features.inputs.contracts.validate_table`` after coercion each
flag rows with a reason (see that module's docstring for the order): erased
customers, missing, unparseable and future values, a mapping's exclusions, the
value rules per table and duplicates. A row keeps the first reason it is given,
with a human-readable detail, so that it is counted exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from features.inputs.coercion import Coerced
from features.inputs.schema import EVENT_TYPES, GROUPS, TableSchema

#: Quarantine reason of the rows of a forgotten customer (counted, never kept).
ERASED = "erased"
#: Tells which of the given customer ids are erased (``ErasureRegistry.mask``).
ErasedIds = Callable[[pd.Series], np.ndarray]

#: Key duplicates checked per table after exact duplicates: reason -> key columns.
KEY_DUPLICATES: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {"duplicate_customer_id": ("customer_id",)},
    "support_tickets": {"duplicate_ticket_id": ("ticket_id",)},
    "campaign_contacts": {"duplicate_campaign_contact": ("campaign_id", "customer_id")},
}

_VALUE_RULES = (
    "negative_amount",
    "zero_amount",
    "negative_discount_amount",
    "non_positive_quantity",
    "rating_out_of_range",
    "invalid_group",
    "self_referral",
    "invalid_event_type",
)


class Reasons:
    """First-reason-wins bookkeeping of quarantine reasons and details per row."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)
        self.detail = np.full(n, None, dtype=object)

    @property
    def open(self) -> np.ndarray:
        return pd.isna(self.reason)

    def flag(self, mask: np.ndarray, reason: str, detail: str | Callable) -> None:
        """Give ``reason`` to the rows in ``mask`` that have none yet.

        ``detail`` is a text, or a function of the newly flagged row mask that
        returns their details (so that text is only built for flagged rows).
        """
        new = np.asarray(mask, dtype=bool) & self.open
        if not new.any():
            return
        self.reason[new] = reason
        if isinstance(detail, str):
            self.detail[new] = detail
        else:
            self.detail[new] = np.asarray(detail(new), dtype=object)


def _describe(prefix: str, series: pd.Series, suffix: str = "") -> Callable:
    """A detail builder: ``prefix + value + suffix`` for the flagged rows only."""

    def build(mask: np.ndarray) -> list[str]:
        return [f"{prefix}{v}{suffix}" for v in series[mask].tolist()]

    return build


def flag_erased(coerced: dict[str, Coerced], erased: ErasedIds | None, reasons: Reasons):
    """Step 0: rows of forgotten customers get reason ``erased``; returns their mask."""
    c = coerced.get("customer_id")
    if erased is None or c is None:
        return np.zeros(len(reasons.reason), dtype=bool)
    rows = np.asarray(erased(c.values), dtype=bool) & ~c.missing
    reasons.flag(rows, ERASED, "customer erased (winback forget)")
    return rows


def blank_erased_references(
    table: str, values: dict[str, pd.Series], erased: ErasedIds | None, notes: list[str]
) -> None:
    """A forgotten customer named in someone else's row (a referral) is blanked there."""
    if erased is None or table != "referrals" or "referred_customer_id" not in values:
        return
    refs = np.asarray(erased(values["referred_customer_id"]), dtype=bool)
    if refs.any():
        values["referred_customer_id"] = values["referred_customer_id"].mask(refs, pd.NA)
        notes.append(f"referred_customer_id: {int(refs.sum()):,} erased customers blanked")


def flag_unreadable(
    schema: TableSchema,
    coerced: dict[str, Coerced],
    raw: pd.DataFrame,
    now: pd.Timestamp,
    reasons: Reasons,
) -> None:
    """Steps 1-3: missing required values, unparseable values, timestamps after ``now``.

    An optional int column's gap is missing too (int64 cannot hold one); a
    do-not-contact dated ahead still applies, so suppressions have no future rule.
    """
    present = [
        (column, coerced[column.name]) for column in schema.columns if column.name in coerced
    ]
    for column, c in present:
        if column.required or column.kind == "int":
            reasons.flag(c.missing, f"missing_{column.name}", f"{column.name} is missing")
    for column, c in present:
        values = raw[column.name].reset_index(drop=True)
        detail = _describe(f"{column.name}=", values, f" is not {column.kind}")
        reasons.flag(c.bad, f"unparseable_{column.name}", detail)
    for column, c in present:
        if column.kind == "timestamp" and schema.name != "suppressions":
            future = (c.values > now).fillna(False).to_numpy(dtype=bool)
            detail = _describe(f"{column.name}=", c.values, f" is after now={now}")
            reasons.flag(future, f"future_{column.name}", detail)


def flag_excluded(excluded: pd.Series, reasons: Reasons) -> None:
    """Step 4: the reasons a column mapping's exclusions set, in their order of appearance."""
    excluded = excluded.reset_index(drop=True).astype("string")
    for reason in pd.unique(excluded.dropna()):
        mask = (excluded == reason).fillna(False).to_numpy(dtype=bool)
        reasons.flag(mask, str(reason), f"excluded by the column mapping: {reason}")


def _read_returns(
    values: dict[str, pd.Series], notes: list[str], negative_amount_is_return: bool
) -> np.ndarray:
    """Fix return signs in ``values``; returns the negative lines that are not returns."""
    amount = values["amount"]
    given = "is_return" in values
    is_return = values["is_return"] if given else pd.Series(False, index=amount.index)
    negative = (amount < 0).to_numpy()
    flagged = negative & is_return.to_numpy()
    as_return = negative & ~is_return.to_numpy() & negative_amount_is_return
    if flagged.any():
        notes.append(
            f"amount: {int(flagged.sum()):,} negative amounts on lines flagged is_return:"
            " made positive"
        )
    if as_return.any():
        notes.append(
            f"amount: {int(as_return.sum()):,} negative lines read as returns"
            " (is_return = True, positive amount)"
        )
    if not given:
        notes.append("is_return absent: lines are purchases unless read as returns")
    is_return = pd.Series(is_return.to_numpy() | as_return, index=amount.index)
    values["is_return"] = is_return
    values["amount"] = amount.abs().where(flagged | as_return, amount)
    if "quantity" in values:
        q = values["quantity"]
        values["quantity"] = q.abs().where(is_return.to_numpy(), q)
    return negative & ~flagged & ~as_return


def _transaction_rules(
    values: dict[str, pd.Series],
    reasons: Reasons,
    notes: list[str],
    negative_amount_is_return: bool,
    allow_zero_amount: bool,
) -> None:
    """Negative and zero amounts, negative discounts, non-positive purchase quantities."""
    negative = _read_returns(values, notes, negative_amount_is_return)
    amount, is_return = values["amount"], values["is_return"]
    reasons.flag(
        negative,
        "negative_amount",
        _describe(
            "amount=",
            amount,
            " is negative and the line is not a return; use a mapping with"
            " returns = 'negative_lines' if negative lines are returns",
        ),
    )
    if not allow_zero_amount:
        reasons.flag((amount == 0).to_numpy(), "zero_amount", "amount is 0 (zero-price line)")
    if "discount_amount" in values:
        d = values["discount_amount"]
        reasons.flag(
            (d < 0).to_numpy(),
            "negative_discount_amount",
            _describe("discount_amount=", d, " is negative"),
        )
    if "quantity" in values:
        q = values["quantity"]
        reasons.flag(
            ((q <= 0) & ~is_return).to_numpy(),
            "non_positive_quantity",
            _describe("quantity=", q, " on a purchase line"),
        )


def _review_rules(values: dict[str, pd.Series], reasons: Reasons) -> None:
    rating = values["rating"]
    reasons.flag(
        ((rating < 1) | (rating > 5)).to_numpy(),
        "rating_out_of_range",
        _describe("rating=", rating, " is outside 1-5"),
    )


def _referral_rules(values: dict[str, pd.Series], reasons: Reasons) -> None:
    if "referred_customer_id" in values:
        same = (values["referred_customer_id"] == values["customer_id"]).fillna(False)
        reasons.flag(same.to_numpy(dtype=bool), "self_referral", "customer referred themself")


def _one_of(
    values: dict[str, pd.Series],
    reasons: Reasons,
    *,
    column: str,
    allowed: tuple[str, ...],
    reason: str,
    hint: str = "",
) -> None:
    """A code column read case-blind: lower-cased in ``values``, flagged when not ``allowed``."""
    codes = values[column].str.lower()
    values[column] = codes
    reasons.flag(
        ~codes.isin(allowed).fillna(False).to_numpy(dtype=bool),
        reason,
        _describe(f"{column}=", codes, f" is not one of {list(allowed)}{hint}"),
    )


_TABLE_RULES: dict[str, Callable[[dict[str, pd.Series], Reasons], None]] = {
    "reviews": _review_rules,
    "campaign_contacts": partial(_one_of, column="group", allowed=GROUPS, reason="invalid_group"),
    "referrals": _referral_rules,
    "engagement_events": partial(
        _one_of,
        column="event_type",
        allowed=EVENT_TYPES,
        reason="invalid_event_type",
        hint="; map the source's types to these",
    ),
}


def apply_value_rules(
    table: str,
    values: dict[str, pd.Series],
    reasons: Reasons,
    notes: list[str],
    *,
    negative_amount_is_return: bool = False,
    allow_zero_amount: bool = False,
) -> None:
    """Step 5: per-table value rules; fixes return signs and lower-cases codes in ``values``."""
    if table == "transactions":
        _transaction_rules(values, reasons, notes, negative_amount_is_return, allow_zero_amount)
    elif table in _TABLE_RULES:
        _TABLE_RULES[table](values, reasons)


def flag_duplicates(table: str, canonical: pd.DataFrame, reasons: Reasons) -> None:
    """Step 6: rows equal to an earlier accepted row, then the table's key duplicates."""
    n = len(canonical)
    open_rows = reasons.open
    dup = np.zeros(n, bool)
    dup[open_rows] = canonical[open_rows].duplicated(keep="first").to_numpy()
    reasons.flag(dup, "duplicate_row", "same values as an earlier row")
    for reason, key in KEY_DUPLICATES.get(table, {}).items():
        if all(k in canonical for k in key):
            open_rows = reasons.open
            dup = np.zeros(n, bool)
            dup[open_rows] = canonical[open_rows].duplicated(subset=list(key)).to_numpy()
            detail = _describe(
                f"{key[0]}=",
                canonical[key[0]],
                f" already seen in an earlier row (key {list(key)})",
            )
            reasons.flag(dup, reason, detail)


def reason_counts(reasons: Reasons, schema: TableSchema) -> dict[str, int]:
    """Rows per quarantine reason in the documented order (step, then schema column order)."""
    quarantined = reasons.reason[~reasons.open]
    counts = pd.Series(quarantined).value_counts(sort=False).to_dict() if len(quarantined) else {}
    by_reason = {str(k): int(v) for k, v in counts.items()}
    names = schema.names
    steps = [
        [f"missing_{c}" for c in names],
        [f"unparseable_{c}" for c in names],
        [f"future_{c}" for c in names],
    ]
    fixed = [r for step in steps for r in step]
    tail = (
        list(_VALUE_RULES)
        + ["duplicate_row"]
        + [r for rules in KEY_DUPLICATES.values() for r in rules]
    )
    first = [r for r in [ERASED, *fixed] if r in by_reason]
    mapping = [r for r in by_reason if r not in fixed and r not in tail and r != ERASED]
    last = [r for r in tail if r in by_reason]
    return {r: by_reason[r] for r in first + mapping + last}


def quarantine_frame(
    frame: pd.DataFrame, rows: np.ndarray, reasons: Reasons, source_row, visible: list
) -> pd.DataFrame:
    """The offending input rows as text (columns ``visible``), plus reason, detail, source_row."""
    taken = frame.iloc[rows][visible].astype("string").reset_index(drop=True)
    taken.columns = [
        f"input_{c}" if c in ("reason", "detail", "source_row") else str(c) for c in visible
    ]
    taken["reason"] = pd.array(reasons.reason[rows], dtype="string")
    taken["detail"] = pd.array(reasons.detail[rows], dtype="string")
    taken["source_row"] = np.asarray(source_row)[rows].astype("int64")
    return taken
