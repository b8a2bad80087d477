"""One configuration file for every stage: ``winback.toml``.

Each stage owns its typed, frozen settings (``features.simulation.SimulationConfig``,
``training.config.TrainConfig``, ``serving.config.ServingConfig``,
``serving.lists.ListSettings``); this module
only assembles them from one TOML file with a section per stage, validates them
and reports errors by key (``train.horizon_days: ...``). Every key has a
working default, so no file is needed at all.

Lookup order: ``--config FILE`` if given, else ``./winback.toml`` if it exists,
else the defaults.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.config_file import ConfigError, read_config_file
from features.custom.spec import CustomFeature, custom_definitions
from features.simulation import SimulationConfig
from features.targets import TARGET_NAMES
from serving.config import ServingConfig
from serving.lists.settings import ListConfig, ListSettings
from training.config import TrainConfig

DEFAULT_CONFIG_FILE = "winback.toml"


class DataSettings(BaseModel):
    """Where the shop's data comes from. ``path = None`` uses the simulated shop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str | None = None
    mapping: str | None = Field(
        None, description="Built-in mapping name (e.g. 'online-retail') or a TOML file."
    )


class DemoSettings(BaseModel):
    """What ``winback demo`` does beyond the other sections."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: tuple[str, ...] = TARGET_NAMES
    tune_trials: int = Field(5, ge=0)
    output_dir: str = "winback_output"

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(TARGET_NAMES))
        if unknown:
            raise ValueError(f"unknown targets {unknown}; use {', '.join(TARGET_NAMES)}")
        return value


class ValueSection(BaseModel):
    """The customer-value model (``winback train --target value``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_days: int = Field(365, ge=1, description="Value is margin over this many days.")
    test_origins: int = Field(3, ge=1, description="Test cutoffs the evaluation averages over.")
    train_cutoffs: int = Field(12, ge=1, description="Training cutoffs per fit.")
    variant: str = Field("tweedie_btyd", description="tweedie_btyd, tweedie or hurdle.")

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, value: str) -> str:
        if value not in ("tweedie_btyd", "tweedie", "hurdle"):
            raise ValueError(
                f"unknown value model variant {value!r}; use tweedie_btyd, tweedie or hurdle"
            )
        return value

    def settings(self, num_threads: int) -> Any:
        """The ``training.value_training.ValueSettings`` of this section."""
        from training.value_training import ValueSettings

        return ValueSettings(
            horizon_days=self.horizon_days,
            test_origins=self.test_origins,
            train_cutoffs=self.train_cutoffs,
            variant=self.variant,
            num_threads=num_threads,
        )


class FeaturesSection(BaseModel):
    """User-defined features (``[[features.custom]]``), checked when the file is loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    custom: tuple[CustomFeature, ...] = ()

    @field_validator("custom")
    @classmethod
    def _distinct_names(cls, value: tuple[CustomFeature, ...]) -> tuple[CustomFeature, ...]:
        custom_definitions(value)  # raises on a name defined twice
        return value

    def definitions(self) -> tuple[Any, ...]:
        """The feature definitions the engine computes (``features.custom.windowed``)."""
        return custom_definitions(self.custom)


class WinbackConfig(BaseModel):
    """The whole configuration: one section per stage."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    data: DataSettings = DataSettings()
    simulation: SimulationConfig = SimulationConfig()
    train: TrainConfig = TrainConfig()
    serving: ServingConfig = ServingConfig()
    lists: ListSettings = ListSettings()
    demo: DemoSettings = DemoSettings()
    value: ValueSection = ValueSection()
    features: FeaturesSection = FeaturesSection()


def list_config(config: WinbackConfig) -> ListConfig:
    """The lists' settings: ``[lists]`` with the tiers and horizon of ``[train]`` (one place each)."""
    from serving.lists.settings import configured_list_config

    return configured_list_config(config.lists, config.train)


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(
                f"  {key}: unknown key (check the spelling; 'winback config show' lists them)"
            )
        elif key:
            lines.append(f"  {key}: {message} (got {err.get('input')!r})")
        else:
            lines.append(f"  {message}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], *, source: str = "(dict)") -> WinbackConfig:
    """Validate a mapping of sections into a :class:`WinbackConfig`."""
    try:
        return WinbackConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def find_config_file(path: str | Path | None = None) -> Path | None:
    """The config file to read: ``path`` if given, else ``./winback.toml`` if present."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing TOML file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_config(path: str | Path | None = None) -> WinbackConfig:
    """The effective configuration (see the module docstring for the lookup order)."""
    found = find_config_file(path)
    if found is None:
        return WinbackConfig()
    return config_from_dict(read_config_file(found), source=str(found))


def _plain(value: Any) -> Any:
    """A TOML-serialisable copy: ``None`` dropped, paths and dates as strings/dates."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.date | int | float | str | bool):
        return value
    return str(value)


def config_as_dict(config: WinbackConfig) -> dict[str, Any]:
    """The configuration as nested plain values (what ``winback config show`` prints)."""
    return _plain(config)


def config_as_toml(config: WinbackConfig) -> str:
    """The configuration as a TOML document that :func:`load_config` reads back."""
    import tomli_w

    return tomli_w.dumps(config_as_dict(config))


def load_sections(path: str | Path | None) -> WinbackConfig:
    """The sections of a config file that may also be a bare ``[train]``-only file.

    ``winback train --config FILE`` accepts a file with only training keys at the
    top level; such a file has no other sections, so the rest are the defaults.
    """
    if path is None:
        return WinbackConfig()
    data = read_config_file(path)
    if set(data) & set(WinbackConfig.model_fields):
        return config_from_dict(data, source=str(path))
    return WinbackConfig()
