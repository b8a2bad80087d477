"""Suggested-action rules: order, conditions, missing values, config round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.lists.actions import (
    DEFAULT_RULES,
    ActionConfig,
    ActionRule,
    Condition,
    rules_skipped,
    suggest_actions,
)


def _customers() -> pd.DataFrame:
    # one row per default rule, plus a nobody-special row and a row with missing values
    return pd.DataFrame(
        {
            "tier": [
                "gold",
                "standard",
                "bronze",
                "silver",
                "standard",
                "standard",
                "standard",
                None,
            ],
            "support_ticket_count_90d": [3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, np.nan],
            "return_rate": [0.0, 0.0, 0.4, 0.0, 0.0, 0.0, 0.1, np.nan],
            "referral_count_365d": [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, np.nan],
            "full_price_spend_share": [1.0, 1.0, 1.0, 1.0, 0.9, 0.2, 0.5, np.nan],
            "discounted_order_share": [0.0, 0.0, 0.0, 0.0, 0.1, 0.8, 0.5, np.nan],
        },
        index=pd.Index([f"C{i}" for i in range(8)], name="customer_id"),
    )


def test_default_rules_hand_computed() -> None:
    out = suggest_actions(_customers())
    assert out["action"].tolist() == [
        "personal_outreach",  # gold beats the tickets: first rule wins
        "service_call",  # 2 tickets in 90 days
        "service_call",  # 40% returned
        "referral_reward",
        "early_access",  # full-price buyer: no discount
        "offer",  # discount-sensitive
        "reminder",  # none fires
        "reminder",  # everything missing: no condition holds
    ]
    assert out.loc["C2", "action_rule"] == "many_returns: return_rate >= 0.25"
    assert out.loc["C6", "action_rule"] == "default"
    assert list(out.index) == list(_customers().index)


def test_full_price_buyer_never_gets_a_discount_offer() -> None:
    frame = _customers()
    frame["discounted_order_share"] = 0.9  # also looks discount-sensitive
    out = suggest_actions(frame)
    full_price = frame["full_price_spend_share"] >= 0.8
    assert not (out.loc[full_price, "action"] == "offer").any()


def test_all_conditions_of_a_rule_must_hold() -> None:
    rule = ActionRule(
        "loyal_discounter",
        "offer",
        (Condition("discounted_order_share", ">=", 0.5), Condition("tier", "==", "bronze")),
    )
    frame = pd.DataFrame(
        {"discounted_order_share": [0.6, 0.6, 0.1], "tier": ["bronze", "silver", "bronze"]}
    )
    out = suggest_actions(frame, ActionConfig(rules=(rule,), default_action="none"))
    assert out["action"].tolist() == ["offer", "none", "none"]
    assert out["action_rule"].iloc[0] == (
        "loyal_discounter: discounted_order_share >= 0.5 and tier == bronze"
    )


def test_missing_column_skips_rule_or_raises_when_strict() -> None:
    frame = _customers().drop(columns=["support_ticket_count_90d"])
    out = suggest_actions(frame)
    assert out.loc["C1", "action"] == "early_access"  # the ticket rule could not fire
    assert rules_skipped(frame.columns) == ["support_friction"]
    with pytest.raises(ValueError, match="support_ticket_count_90d"):
        suggest_actions(frame, strict=True)


def test_config_round_trip_and_validation() -> None:
    config = ActionConfig()
    again = ActionConfig.from_dict(config.to_dict())
    assert again == config
    assert ActionConfig.from_dict({}).rules == DEFAULT_RULES
    with pytest.raises(ValueError, match="malformed"):
        ActionConfig.from_dict({"rules": [{"name": "x", "action": "y"}]})
    with pytest.raises(ValueError, match="operator"):
        Condition("return_rate", "=>", 0.2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        ActionConfig(rules=(DEFAULT_RULES[0], DEFAULT_RULES[0]))
