"""How lists are built: ``ListConfig``, the ``[lists]`` section of ``winback.toml`` and where it is read from.

The service reads its config file on every list request, so an edited rule
applies to the next list without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.tiers import TierConfig
from serving.lists.actions import DEFAULT_RULES, ActionConfig, ActionRule, Condition, Operator


@dataclass(frozen=True)
class ListConfig:
    """How lists are built.

    Parameters
    ----------
    horizon_days
        Horizon of the values (the scores' horizon).
    tiers
        Tier bands shown on every row and used by ``near-vip`` (re-ranked from
        the score table's trailing margin, so e.g. A/B/C/D grades work too).
    actions
        The suggested-action rules.
    control_share
        Share of each list held out as a random control group.
    n_strata
        Score strata of the control draw (10: deciles).
    near_vip_max_gap_share
        ``near-vip`` keeps customers whose margin is within this share below the
        next tier's threshold (0.25: at least 75% of the way there).
    assumed_effect_share
        Where no uplift model measures it, the share of the value at stake a
        contact is assumed to make incremental (for the profit-optimal cut of
        ``at-risk``, ``vip-potential``, ``near-vip`` and ``winback`` without an
        uplift model). Measure lists with ``winback measure`` and update it.
    """

    horizon_days: int = 90
    tiers: TierConfig = field(default_factory=TierConfig)
    actions: ActionConfig = field(default_factory=ActionConfig)
    control_share: float = 0.1
    n_strata: int = 10
    near_vip_max_gap_share: float = 0.25
    assumed_effect_share: float = 0.1

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ValueError(f"ListConfig.horizon_days must be >= 1, got {self.horizon_days}")
        if not 0.0 <= self.control_share < 1.0:
            raise ValueError(
                f"ListConfig.control_share must be in [0, 1), got {self.control_share}"
            )
        if not 0.0 < self.near_vip_max_gap_share <= 1.0:
            raise ValueError(
                "ListConfig.near_vip_max_gap_share must be in (0, 1], got "
                f"{self.near_vip_max_gap_share}"
            )
        if not 0.0 <= self.assumed_effect_share <= 1.0:
            raise ValueError(
                "ListConfig.assumed_effect_share must be in [0, 1], got "
                f"{self.assumed_effect_share}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon_days": self.horizon_days,
            "tiers": {
                "bands": [list(b) for b in self.tiers.bands],
                "rest": self.tiers.rest,
                "vip_tiers": list(self.tiers.vip_tiers),
                "window_days": self.tiers.window_days,
                "basis": self.tiers.basis,
            },
            "actions": self.actions.to_dict(),
            "control_share": self.control_share,
            "n_strata": self.n_strata,
            "near_vip_max_gap_share": self.near_vip_max_gap_share,
            "assumed_effect_share": self.assumed_effect_share,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ListConfig:
        """The inverse of :meth:`to_dict` (missing keys take their defaults)."""
        kwargs: dict[str, Any] = {
            k: data[k]
            for k in (
                "horizon_days",
                "control_share",
                "n_strata",
                "near_vip_max_gap_share",
                "assumed_effect_share",
            )
            if k in data
        }
        if "tiers" in data:
            tiers = dict(data["tiers"])
            if "bands" in tiers:
                tiers["bands"] = tuple((str(n), float(f)) for n, f in tiers["bands"])
            if "vip_tiers" in tiers:
                tiers["vip_tiers"] = tuple(tiers["vip_tiers"])
            kwargs["tiers"] = TierConfig(**tiers)
        if "actions" in data:
            kwargs["actions"] = ActionConfig.from_dict(data["actions"])
        return cls(**kwargs)


#: ``[column, operator, value]`` as written in a rule's ``conditions``.
ConditionTriple = tuple[str, Operator, float | str | tuple[str, ...]]


class RuleSettings(BaseModel):
    """One action rule as written in ``[[lists.rules]]``: conditions are ``[column, op, value]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    action: str = Field(min_length=1)
    conditions: tuple[ConditionTriple, ...] = Field(min_length=1)
    description: str = ""

    @model_validator(mode="after")
    def _values_fit_operators(self) -> RuleSettings:
        for column, op, value in self.conditions:
            if (op == "in") != isinstance(value, tuple):
                want = "a list of values" if op == "in" else "a single number or text"
                raise ValueError(
                    f"rule {self.name!r}: condition [{column!r}, {op!r}, {value!r}] needs {want}"
                )
        return self

    def rule(self) -> ActionRule:
        """The :class:`serving.actions.ActionRule` this entry describes."""
        return ActionRule(
            self.name,
            self.action,
            tuple(Condition(column, op, value) for column, op, value in self.conditions),
            self.description,
        )

    @classmethod
    def of(cls, rule: ActionRule) -> RuleSettings:
        """The settings entry of an :class:`ActionRule` (what ``config show`` prints)."""
        return cls(
            name=rule.name,
            action=rule.action,
            conditions=tuple((c.column, c.op, c.value) for c in rule.conditions),
            description=rule.description,
        )


class ListSettings(BaseModel):
    """The ``[lists]`` section of ``winback.toml``: action rules and list defaults.

    Tiers are not here: lists show the tiers training labels with
    (``[train.label.tiers]``), so the two can never disagree. The defaults are
    :data:`serving.actions.DEFAULT_RULES` and :class:`ListConfig`'s.

    Attributes
    ----------
    control_share
        Share of each list held out as a random control group (``--control-share``
        and the API's ``control_share`` override it).
    contact_cost
        Cost of one contact, for ``--budget`` and ``--profit-optimal``
        (``--contact-cost`` overrides it).
    n_strata, near_vip_max_gap_share, assumed_effect_share
        As in :class:`ListConfig`.
    default_action
        Suggested when no rule fires.
    rules
        Ordered action rules, first match wins; each ``name``, ``action``,
        ``description`` and ``conditions = [[column, op, value], ...]`` with op one
        of ``>= > <= < == != in`` (``in`` takes a list).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    control_share: float = Field(0.1, ge=0.0, lt=1.0)
    contact_cost: float = Field(0.0, ge=0.0)
    n_strata: int = Field(10, ge=1)
    near_vip_max_gap_share: float = Field(0.25, gt=0.0, le=1.0)
    assumed_effect_share: float = Field(0.1, ge=0.0, le=1.0)
    default_action: str = Field("reminder", min_length=1)
    rules: tuple[RuleSettings, ...] = tuple(RuleSettings.of(r) for r in DEFAULT_RULES)

    @model_validator(mode="after")
    def _rules_valid(self) -> ListSettings:
        self.actions()  # unique names, 'default' reserved: ActionConfig says which
        return self

    def actions(self) -> ActionConfig:
        """The ordered rules as a :class:`serving.actions.ActionConfig`."""
        return ActionConfig(tuple(r.rule() for r in self.rules), self.default_action)

    def list_config(self, *, tiers: TierConfig | None = None, horizon_days: int = 90) -> ListConfig:
        """The :class:`ListConfig` of these settings with the configured tiers and horizon."""
        return ListConfig(
            horizon_days=horizon_days,
            tiers=tiers or TierConfig(),
            actions=self.actions(),
            control_share=self.control_share,
            n_strata=self.n_strata,
            near_vip_max_gap_share=self.near_vip_max_gap_share,
            assumed_effect_share=self.assumed_effect_share,
        )


#: Environment variable naming the config file the service's lists read.
ENV_CONFIG = "WINBACK_CONFIG"


#: The config file looked for in the service's home when ``WINBACK_CONFIG`` is unset.
CONFIG_FILE = "winback.toml"


def configured_list_config(settings: Any, train: Any) -> Any:
    """The ``ListConfig`` of ``[lists]`` settings, with ``[train]``'s tiers and horizon.

    Tiers are configured once, for the labels (``[train.label.tiers]``); lists
    show the same tiers, and value customers over the models' horizon.
    """
    from training.config import label_config

    return settings.list_config(tiers=label_config(train).tiers, horizon_days=train.horizon_days)


def list_settings_from_file(path: Path | None) -> tuple[Any, Any]:
    """``(ListSettings, ListConfig)`` from a ``winback.toml`` (defaults when ``path`` is None).

    What the service reads on every list request, so an edited rule applies to
    the next list without a restart. ``ValueError`` names the file and the key.
    """
    from pydantic import ValidationError

    from features.config_file import read_config_file
    from training.config import TrainConfig, train_config_from_dict

    if path is None:
        settings, train = ListSettings(), TrainConfig()
        return settings, configured_list_config(settings, train)
    data = read_config_file(path)
    try:
        settings = ListSettings.model_validate(data.get("lists", {}))
    except ValidationError as exc:
        where = "; ".join(
            f"lists.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"invalid [lists] section in {path}: {where}") from None
    train = train_config_from_dict(data.get("train", {}), source=str(path))
    return settings, configured_list_config(settings, train)


def service_config_file(home: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """The service's config file: ``WINBACK_CONFIG``, else ``<home>/winback.toml`` if present."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG])
        if not path.is_file():
            raise ValueError(f"{ENV_CONFIG}={path} does not exist; point it at a winback.toml")
        return path
    default = Path(home) / CONFIG_FILE
    return default if default.is_file() else None
