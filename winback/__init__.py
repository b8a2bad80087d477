"""winback: churn, VIP-potential and win-back models from a shop's transaction log.

The stages live in the top-level packages ``features``, ``training`` and
``serving``; this package holds what sits on top of them: the command line and
the configuration.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

#: Environment switches that stop MLflow and BentoML from calling their
#: telemetry hosts. winback makes no network calls of its own; a user who wants
#: telemetry can set these variables to "false" before starting winback.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}


def disable_telemetry() -> None:
    """Turn MLflow's and BentoML's telemetry off unless the user already chose."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
