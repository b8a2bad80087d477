"""Reading a TOML configuration file: one loader and one error for every package.

``winback.toml`` (and a bare training file) is read by the command line, by
training and by the service; each validates its own sections, but the file is
opened, parsed and reported on here, so a missing or broken file gets the same
message wherever it is read.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has an invalid key."""


def read_config_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The TOML document at ``path`` as a dict.

    ``what`` names the file in messages (``"training config file"``).

    Raises
    ------
    ConfigError
        The file does not exist, cannot be read or is not valid TOML; the
        message names the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; pass an existing TOML file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}") from None
