"""Suggested actions: transparent, ordered rules over a customer's behaviour.

A retention list tells the team not only *who* to contact but *how*: a
discount-sensitive buyer gets an offer, a full-price buyer gets early access
(a discount would only give margin away), a customer with many returns or
support tickets gets a service call, an advocate gets a referral reward, and
the top tiers get personal outreach.

Rules are evaluated in order and the first rule whose conditions all hold
decides the action; the row records both the action and the rule that fired,
so anyone can see why a customer got what they got. Rules are configuration
(:class:`ActionConfig`, loadable from a dict/TOML section) with working defaults.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Operator = Literal[">=", ">", "<=", "<", "==", "!=", "in"]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Condition:
    """One test on one column: ``column op value`` (``in``: membership in a tuple).

    A missing value never satisfies a condition.
    """

    column: str
    op: Operator
    value: float | str | tuple[str, ...]

    def __post_init__(self) -> None:
        if self.op not in (*_COMPARE, "in"):
            raise ValueError(
                f"condition on {self.column!r} has operator {self.op!r}; "
                f"use one of {[*_COMPARE, 'in']}"
            )
        if self.op == "in" and not isinstance(self.value, tuple):
            object.__setattr__(self, "value", tuple(self.value))  # type: ignore[arg-type]

    def describe(self) -> str:
        """The condition as text, e.g. ``discounted_order_share >= 0.6``."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.column} {self.op} {value}"

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array: rows of ``frame`` where the condition holds (missing → False)."""
        column = frame[self.column]
        present = column.notna().to_numpy(dtype=bool).copy()
        if self.op == "in":
            hit = column.astype("object").isin(list(self.value)).to_numpy(dtype=bool)
        elif isinstance(self.value, str):
            text = column.astype("object").where(column.notna(), "")
            hit = _COMPARE[self.op](text.astype(str), self.value).to_numpy(dtype=bool)
        else:
            numbers = pd.to_numeric(column, errors="coerce").astype("float64")
            present &= ~np.isnan(numbers.to_numpy())
            hit = _COMPARE[self.op](numbers.fillna(0.0), float(self.value)).to_numpy(dtype=bool)
        return hit & present


@dataclass(frozen=True)
class ActionRule:
    """A named rule: when every condition holds, suggest ``action``."""

    name: str
    action: str
    conditions: tuple[Condition, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError(f"action rule {self.name!r} has no conditions; give at least one")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.conditions)

    def describe(self) -> str:
        """``name: cond and cond -> action``: what lands in the list's ``action_rule`` column."""
        return f"{self.name}: " + " and ".join(c.describe() for c in self.conditions)


#: The default rules, first match wins: outreach for the best tiers, then fixing friction
#: before selling anything, then rewarding advocates, then matching price sensitivity.
DEFAULT_RULES: tuple[ActionRule, ...] = (
    ActionRule(
        "top_tier",
        "personal_outreach",
        (Condition("tier", "in", ("platinum", "gold", "A")),),
        "The best customers get a personal call or note from their account manager.",
    ),
    ActionRule(
        "support_friction",
        "service_call",
        (Condition("support_ticket_count_90d", ">=", 2.0),),
        "Recent repeated support tickets: fix the problem before selling anything.",
    ),
    ActionRule(
        "many_returns",
        "service_call",
        (Condition("return_rate", ">=", 0.25),),
        "A quarter or more of the value bought came back: find out why.",
    ),
    ActionRule(
        "advocate",
        "referral_reward",
        (Condition("referral_count_365d", ">=", 1.0),),
        "Referred someone in the last year: reward the advocacy.",
    ),
    ActionRule(
        "full_price_buyer",
        "early_access",
        (Condition("full_price_spend_share", ">=", 0.8),),
        "Buys at full price: exclusive or early access, not a discount.",
    ),
    ActionRule(
        "discount_sensitive",
        "offer",
        (Condition("discounted_order_share", ">=", 0.6),),
        "Mostly buys on discount: an offer is what moves them.",
    ),
)


@dataclass(frozen=True)
class ActionConfig:
    """Ordered action rules and the action when none fires.

    Parameters
    ----------
    rules
        Evaluated in order; the first rule whose conditions all hold wins.
    default_action
        Suggested when no rule fires (its rule is recorded as ``"default"``).
    """

    rules: tuple[ActionRule, ...] = DEFAULT_RULES
    default_action: str = "reminder"

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"action rule names must be unique; repeated: {dupes}")
        if "default" in names:
            raise ValueError("'default' is reserved for the fallback rule; rename that rule")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionConfig:
        """Rules from plain data, e.g. a TOML section::

        default_action = "reminder"
        [[rules]]
        name = "discount_sensitive"
        action = "offer"
        conditions = [["discounted_order_share", ">=", 0.6]]
        """
        rules = []
        for i, raw in enumerate(data.get("rules", ())):
            try:
                conditions = tuple(
                    Condition(str(c[0]), c[1], tuple(c[2]) if isinstance(c[2], list) else c[2])
                    for c in raw["conditions"]
                )
                rules.append(
                    ActionRule(
                        str(raw["name"]),
                        str(raw["action"]),
                        conditions,
                        str(raw.get("description", "")),
                    )
                )
            except (KeyError, IndexError, TypeError) as exc:
                raise ValueError(
                    f"action rule #{i + 1} ({raw!r}) is malformed ({exc}): give name, action "
                    f"and conditions as [column, operator, value] triples"
                ) from None
        kwargs: dict[str, Any] = {"rules": tuple(rules)} if "rules" in data else {}
        if "default_action" in data:
            kwargs["default_action"] = str(data["default_action"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The inverse of :meth:`from_dict` (what list manifests record)."""
        return {
            "default_action": self.default_action,
            "rules": [
                {
                    "name": r.name,
                    "action": r.action,
                    "description": r.description,
                    "conditions": [
                        [c.column, c.op, list(c.value) if isinstance(c.value, tuple) else c.value]
                        for c in r.conditions
                    ],
                }
                for r in self.rules
            ],
        }


def suggest_actions(
    frame: pd.DataFrame, config: ActionConfig = ActionConfig(), *, strict: bool = False
) -> pd.DataFrame:
    """The suggested action of each row and the rule that chose it.

    Parameters
    ----------
    frame
        One row per customer with the columns the rules test (behavioural features
        plus ``tier``).
    config
        The ordered rules.
    strict
        When False (default) a rule testing a column the frame lacks never fires
        (features from an absent table are omitted, not zero-filled); when True
        that raises ``ValueError`` naming the columns.

    Returns
    -------
    pandas.DataFrame
        Same index as ``frame``; ``action`` (the suggestion) and ``action_rule``
        (``"name: condition and ..."``, or ``"default"``).
    """
    missing = sorted({c for r in config.rules for c in r.columns if c not in frame.columns})
    if missing and strict:
        raise ValueError(
            f"action rules test columns the frame lacks: {missing}; add them (features or tier) "
            f"or drop those rules from the action config"
        )
    n = len(frame)
    action = np.full(n, config.default_action, dtype=object)
    rule = np.full(n, "default", dtype=object)
    decided = np.zeros(n, dtype=bool)
    for r in config.rules:
        if any(c not in frame.columns for c in r.columns):
            continue
        hit = ~decided
        for condition in r.conditions:
            if not hit.any():
                break
            hit &= condition.evaluate(frame)
        action[hit] = r.action
        rule[hit] = r.describe()
        decided |= hit
    return pd.DataFrame(
        {
            "action": pd.array(action, dtype="string"),
            "action_rule": pd.array(rule, dtype="string"),
        },
        index=frame.index,
    )


def rules_skipped(frame_columns: Sequence[str], config: ActionConfig = ActionConfig()) -> list[str]:
    """Names of the rules that cannot fire because a column they test is absent."""
    present = set(frame_columns)
    return [r.name for r in config.rules if any(c not in present for c in r.columns)]


__all__ = [
    "DEFAULT_RULES",
    "ActionConfig",
    "ActionRule",
    "Condition",
    "rules_skipped",
    "suggest_actions",
]
