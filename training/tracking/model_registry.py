"""The model registry: one registered model per target and a gated ``champion`` alias.

Registered models are named ``winback-<target>``, plus ``winback-uplift`` (the
win-back uplift model, gated on held-out Qini by ``training.uplift.model``). Serving loads
``models:/winback-<target>@champion``. The alias only moves when a new version
beats the current champion on the *same* test cutoff by the configured metric
(:func:`gate`); otherwise the version is tagged ``role=challenger`` with the
reason. Every move of the alias is appended to the registered model's
``champion_history`` tag, so :func:`rollback` can go back and anyone can see who
promoted what and why.

All functions take an optional ``client`` (an ``mlflow.MlflowClient``); without
one they use the tracking/registry URIs set by
:func:`training.tracking.runs.configure_tracking`.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from training.tracking.gate import GateConfig, GateDecision, gate
from training.tracking.integrity import DIGEST_TAG, digest_of_uri
from training.tracking.model_io import MODEL_ARTIFACT_PATH, load_model
from training.tracking.runs import TARGETS

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

#: Alias of the version serving uses.
CHAMPION_ALIAS = "champion"
#: Registered-model tag holding the JSON list of champion moves (newest last).
HISTORY_TAG = "champion_history"
#: How many champion moves the history keeps.
HISTORY_LIMIT = 200

#: What the registry holds: one model per target, and the win-back uplift model.
REGISTERED_KINDS: tuple[str, ...] = (*TARGETS, "value", "uplift")


class RegistryError(LookupError):
    """A registered model, version or alias the command needs does not exist."""


class NoChampionError(RegistryError):
    """No version of a target's registered model carries the ``champion`` alias."""


def registered_model_name(target: str) -> str:
    """The registered model of a target: ``winback-churn``, ``-vip``, ``-reactivation``, ``-uplift``."""
    if target not in REGISTERED_KINDS:
        raise ValueError(f"unknown target {target!r}: expected one of {list(REGISTERED_KINDS)}")
    return f"winback-{target}"


def _client(client: MlflowClient | None) -> MlflowClient:
    if client is not None:
        return client
    from mlflow import MlflowClient

    return MlflowClient()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def _cutoff_text(cutoff: date | datetime | str | pd.Timestamp) -> str:
    return pd.Timestamp(cutoff).strftime("%Y-%m-%d")


# ---------------------------------------------------------------- the gate


# ---------------------------------------------------------------- registering


def _ensure_registered_model(client: MlflowClient, name: str, target: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(
            name,
            tags={"target": target},
            description=f"winback {target} model; serving loads models:/{name}@{CHAMPION_ALIAS}",
        )


def _model_source(client: MlflowClient, run_id: str, artifact_path: str) -> str:
    """The URI of the model logged as ``artifact_path`` in ``run_id``.

    MLflow 3 keeps models as logged-model entities (``models:/m-...``); find the
    run's output model with that name, else fall back to ``runs:/`` (resolved by
    MLflow itself).
    """
    if "://" in artifact_path or artifact_path.startswith("models:/"):
        return artifact_path
    run = client.get_run(run_id)
    outputs = getattr(run, "outputs", None)
    for output in getattr(outputs, "model_outputs", None) or []:
        logged = client.get_logged_model(output.model_id)
        if logged.name == artifact_path:
            return f"models:/{logged.model_id}"
    return f"runs:/{run_id}/{artifact_path}"


def register(
    run_id: str,
    target: str,
    artifact_path: str = MODEL_ARTIFACT_PATH,
    *,
    test_cutoff: date | datetime | str | pd.Timestamp,
    metrics: Mapping[str, float],
    client: MlflowClient | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the model logged in a run as a new version of ``winback-<target>``.

    The version is tagged with its target, test cutoff and test metrics, so
    later comparisons can check they happen on the same cutoff.

    Parameters
    ----------
    run_id
        The training run that logged the model.
    target
        ``churn``, ``vip`` or ``reactivation``.
    artifact_path
        The model's name in the run (``training.tracking.model_io.log_model``'s ``name``),
        or a full model URI.
    test_cutoff, metrics
        The test cutoff and the model's metrics on it.
    tags
        Further version tags (e.g. how the held-out part was drawn).

    Returns
    -------
    str
        The new version number.
    """
    client = _client(client)
    name = registered_model_name(target)
    _ensure_registered_model(client, name, target)
    version_tags = {
        **dict(tags or {}),
        "target": target,
        "test_cutoff": _cutoff_text(test_cutoff),
        "registered_at": _now(),
        **{
            f"metric.{key}": repr(float(value))
            for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
    }
    source = _model_source(client, run_id, artifact_path)
    version_tags[DIGEST_TAG] = digest_of_uri(source)
    version = client.create_model_version(name, source, run_id=run_id, tags=version_tags)
    return str(version.version)


# ---------------------------------------------------------------- champion


def champion(target: str, *, client: MlflowClient | None = None) -> ModelVersion | None:
    """The version holding the ``champion`` alias of ``winback-<target>``, or None."""
    from mlflow.exceptions import MlflowException

    client = _client(client)
    try:
        return client.get_model_version_by_alias(registered_model_name(target), CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _no_champion_message(target: str) -> str:
    from mlflow import get_registry_uri

    name = registered_model_name(target)
    return (
        f"no champion model for target {target!r}: registered model {name!r} has no "
        f"{CHAMPION_ALIAS!r} alias in the registry {get_registry_uri()}. Train one with "
        f"`winback train --target {target}` (run from the folder holding mlruns/), or "
        f"promote an existing version with `winback models promote {target} VERSION`."
    )


def load_champion(target: str, *, client: MlflowClient | None = None) -> Any:
    """The champion ``WinbackClassifier`` of a target, loaded from the registry.

    Raises
    ------
    NoChampionError
        When no version holds the alias; the message names the registered model,
        the registry and the commands that create a champion.
    """
    if target not in TARGETS:
        raise ValueError(
            f"load_champion loads the classifiers of {list(TARGETS)}; load the {target!r} "
            f"champion with training.uplift.record.load_uplift_model(champion_uplift_location())"
        )
    version = champion(target, client=client)
    if version is None:
        raise NoChampionError(_no_champion_message(target))
    return load_model(f"models:/{version.name}/{version.version}")


def _history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    tags = client.get_registered_model(name).tags or {}
    try:
        history = json.loads(tags.get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        return []
    return history if isinstance(history, list) else []


def _champion_stack(history: list[dict[str, Any]]) -> list[str]:
    """The champions in order, replaying the history: promotions push, rollbacks pop."""
    stack: list[str] = []
    for entry in history:
        version = str(entry.get("version"))
        if entry.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def _move_champion(
    client: MlflowClient, target: str, version: str, *, action: str, reason: str
) -> None:
    """Point the alias at ``version`` and record the move in tags and history."""
    name = registered_model_name(target)
    previous = champion(target, client=client)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    when = _now()
    if previous is not None and str(previous.version) != str(version):
        client.set_model_version_tag(name, str(previous.version), "role", "former_champion")
    client.set_model_version_tag(name, version, "role", "champion")
    reason_tag = "restore_reason" if action == "rollback" else "gate_reason"
    client.set_model_version_tag(name, version, reason_tag, reason)
    client.set_model_version_tag(name, version, "promoted_at", when)
    client.set_model_version_tag(name, version, "promoted_by", _user())
    history = _history(client, name)
    history.append(
        {
            "version": str(version),
            "previous": None if previous is None else str(previous.version),
            "action": action,
            "at": when,
            "by": _user(),
            "reason": reason,
        }
    )
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-HISTORY_LIMIT:]))


def _check_version(client: MlflowClient, target: str, version: str | int) -> str:
    from mlflow.exceptions import MlflowException

    name = registered_model_name(target)
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise RegistryError(
            f"registered model {name!r} has no version {version!s}; "
            f"see `winback models list` for the versions that exist"
        ) from None
    return str(version)


def promote_if_better(
    target: str,
    version: str | int,
    new_metrics: Mapping[str, float],
    champion_metrics_on_same_cutoff: Mapping[str, float] | None,
    config: GateConfig | Any = None,
    *,
    client: MlflowClient | None = None,
    loses_to: pd.DataFrame | None = None,
) -> GateDecision:
    """Move ``champion`` to ``version`` if it beats the champion, else tag it challenger.

    A version that loses to a baseline (``loses_to``: one row per such
    baseline with ``delta``, ``ci_low``, ``ci_high`` of ROC-AUC model −
    baseline) never replaces a champion; as the first version it still becomes
    champion so scoring works, tagged ``loses_to=<baselines>``.

    The pipeline evaluates the current champion on the new model's test cutoff
    and passes those metrics, so both numbers come from the same cutoff. With no
    champion yet, the version becomes champion. With a champion but no metrics
    for it (``None``), the version stays a challenger: an unmeasured champion is
    never replaced automatically (use ``winback models promote``).

    Parameters
    ----------
    config
        A :class:`GateConfig`, or a training config with ``gate_metric`` and
        ``gate_min_improvement``.
    """
    client = _client(client)
    gate_config = GateConfig.from_config(config)
    version = _check_version(client, target, version)
    metric = gate_config.metric
    if metric not in new_metrics:
        raise KeyError(
            f"gate metric {metric!r} missing from the new model's metrics "
            f"{sorted(new_metrics)}; evaluate it or change gate_metric"
        )
    current = champion(target, client=client)
    if current is not None and str(current.version) == version:
        return GateDecision(True, f"version {version} is already the champion")
    losing = _losing_text(loses_to)
    if current is None:
        decision = gate(new_metrics[metric], None, metric=metric)
        if losing:
            decision = GateDecision(decision.promote, f"{decision.reason}; but {losing}")
    elif losing:
        decision = GateDecision(False, f"{losing} (champion version {current.version} kept)")
    elif champion_metrics_on_same_cutoff is None or metric not in champion_metrics_on_same_cutoff:
        decision = GateDecision(
            False,
            f"champion version {current.version} was not evaluated on this test cutoff "
            f"({metric} unknown); promote manually if intended",
        )
    else:
        decision = gate(
            new_metrics[metric],
            champion_metrics_on_same_cutoff[metric],
            min_improvement=gate_config.min_improvement,
            higher_is_better=gate_config.higher,
            metric=metric,
        )
        decision = GateDecision(
            decision.promote, f"{decision.reason} (champion version {current.version})"
        )
    name = registered_model_name(target)
    client.set_model_version_tag(name, version, "gate_metric", metric)
    if losing:
        client.set_model_version_tag(name, version, "loses_to", ",".join(map(str, loses_to.index)))
    if decision.promote:
        _move_champion(client, target, version, action="gate", reason=decision.reason)
    else:
        client.set_model_version_tag(name, version, "role", "challenger")
        client.set_model_version_tag(name, version, "gate_reason", decision.reason)
    return decision


def _losing_text(loses_to: pd.DataFrame | None) -> str:
    """ "loses to logistic (ROC-AUC Δ −0.012 [−0.020, −0.004])", or "" when it loses to none."""
    if loses_to is None or loses_to.empty:
        return ""
    parts = [
        f"{name} (ROC-AUC Δ {row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}])"
        for name, row in loses_to.iterrows()
    ]
    return "loses to " + "; ".join(parts)


def promote(
    target: str,
    version: str | int,
    *,
    reason: str = "manual promotion",
    client: MlflowClient | None = None,
) -> ModelVersion:
    """Make ``version`` the champion by hand (recorded with who and why); return it."""
    client = _client(client)
    version = _check_version(client, target, version)
    _move_champion(client, target, version, action="promote", reason=f"manual: {reason}")
    return client.get_model_version(registered_model_name(target), version)


def rollback(target: str, *, client: MlflowClient | None = None) -> ModelVersion:
    """Move ``champion`` back to the version that held it before the current one.

    Replays the champion history (promotions push, rollbacks pop) to find the
    earlier champion, records the rollback in the history, tags the current
    version ``role=rolled_back`` and returns the restored version.
    """
    from mlflow.exceptions import MlflowException

    client = _client(client)
    name = registered_model_name(target)
    current = champion(target, client=client)
    if current is None:
        raise NoChampionError(_no_champion_message(target))
    stack = _champion_stack(_history(client, name))
    if not stack or stack[-1] != str(current.version):
        stack.append(str(current.version))  # the alias was moved outside winback
    if len(stack) < 2:
        raise RegistryError(
            f"registered model {name!r}: version {current.version} has no earlier champion "
            f"to roll back to; promote a version with `winback models promote {target} VERSION`"
        )
    candidate = stack[-2]
    try:
        client.get_model_version(name, candidate)
    except MlflowException:
        raise RegistryError(
            f"registered model {name!r}: previous champion version {candidate} no longer "
            f"exists; promote a version with `winback models promote {target} VERSION`"
        ) from None
    reason = f"rollback from version {current.version}"
    _move_champion(client, target, candidate, action="rollback", reason=reason)
    client.set_model_version_tag(name, str(current.version), "role", "rolled_back")
    return client.get_model_version(name, candidate)


# ---------------------------------------------------------------- listing
