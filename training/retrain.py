"""The retraining job: newest cutoffs, retrain each target, promote only through the gate.

``winback retrain`` runs :func:`run_retrain`, made to be started by cron or a
scheduler:

* **one at a time** — an exclusive, non-blocking ``fcntl.flock`` on
  ``<tracking root>/retrain.lock`` (default ``mlruns/retrain.lock``); a second
  run started while one holds it exits at once with code 3 and touches
  nothing. The lock is released by the kernel when the holder exits, even if
  it is killed, so a crash never leaves a stale lock;
* **idempotent** — the cutoffs are the newest the data allows
  (``features.training_table.monthly_cutoffs``) and the data fingerprint covers
  the tables and those cutoffs (``training.tracking.fingerprint.data_fingerprint``). A
  target whose registry already holds a version trained on the same
  fingerprint and test cutoff is skipped with a message (``force`` retrains
  anyway), so rerunning on unchanged data does nothing;
* **gated** — each target is trained by ``training.pipeline.train_target``,
  which evaluates the current champion on the same newest test cutoff and
  moves the ``champion`` alias only when the new version is better
  (``training.tracking.model_registry.promote_if_better``).

Exit codes
----------
0  ok: every target was promoted, kept as challenger or skipped as up to date;
2  bad input or configuration (nothing was trained);
3  another retrain holds the lock (nothing was done);
4  training failed for at least one target (the others still ran).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.inputs.schema import ShopTables
from features.targets import TARGET_NAMES
from training.config import TrainConfig

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_LOCKED = 3
EXIT_FAILED = 4

#: File name of the lock, inside the tracking root.
LOCK_NAME = "retrain.lock"

TARGETS = TARGET_NAMES

Progress = Callable[[str], None]


class RetrainLocked(RuntimeError):
    """Another retrain holds the lock."""


@dataclass(frozen=True)
class RetrainConfig:
    """What a retrain run trains.

    Attributes
    ----------
    train
        The training settings shared by every target (``target`` is replaced).
    targets
        Targets to retrain, in order.
    force
        Retrain even when a version on the same data and test cutoff exists.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    targets: tuple[str, ...] = TARGETS
    force: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise ValueError(
                f"retrain targets {list(self.targets)} must be a non-empty subset of {TARGETS}"
            )

    def for_target(self, target: str) -> TrainConfig:
        """The training config of one target."""
        return self.train.model_copy(update={"target": target})

    def lock_path(self) -> Path:
        """``<tracking root>/retrain.lock`` (resolved against the working directory now)."""
        return Path(self.train.tracking.root).expanduser().resolve() / LOCK_NAME


@dataclass(frozen=True)
class TargetOutcome:
    """What retraining did for one target.

    ``status`` is ``promoted``, ``kept`` (challenger), ``skipped`` (up to date)
    or ``failed``; ``metric`` is the gate metric, ``new_value`` and
    ``champion_value`` its values on the shared newest test cutoff.
    """

    target: str
    status: str
    message: str
    test_cutoff: str
    fingerprint: str
    version: str | None = None
    metric: str | None = None
    new_value: float | None = None
    champion_value: float | None = None


@dataclass(frozen=True)
class RetrainReport:
    """The outcome of one retrain run."""

    outcomes: tuple[TargetOutcome, ...]

    @property
    def exit_code(self) -> int:
        """4 when any target failed, else 0."""
        return EXIT_FAILED if any(o.status == "failed" for o in self.outcomes) else EXIT_OK

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([o.__dict__ for o in self.outcomes])


# ---------------------------------------------------------------- lock


@contextlib.contextmanager
def retrain_lock(path: Path) -> Iterator[Path]:
    """Hold the exclusive retrain lock on ``path`` for the block; raise if it is taken.

    Non-blocking: raises :class:`RetrainLocked` at once when another process
    holds it. The file stays (removing it would race with a waiting process);
    it holds the holder's pid and start time for people looking at it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        raise RetrainLocked(
            f"another retrain is running (lock {path} is held{': ' + holder if holder else ''}); "
            "let it finish, or check that process if it seems stuck"
        ) from None
    try:
        os.ftruncate(fd, 0)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} since {started}\n".encode(), 0)
        yield path
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------- steps


def newest_cutoffs(tables: ShopTables, config: TrainConfig) -> list[dt.date]:
    """The cutoffs a training run on ``tables`` uses: the newest the data allows."""
    from features.training_table import monthly_cutoffs

    return monthly_cutoffs(
        tables, config.horizon_days, config.cutoff_every_days, count=config.target_cutoff_count
    )


def trained_version(
    target: str, fingerprint: str, test_cutoff: dt.date, *, client: Any = None
) -> tuple[str, bool] | None:
    """A registered version trained on ``fingerprint`` with ``test_cutoff``, and if it is champion.

    The champion is checked first; None when no version matches.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.tracking.model_registry import champion, registered_model_name

    client = client or MlflowClient()
    name = registered_model_name(target)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    current = champion(target, client=client)
    current_version = None if current is None else str(current.version)
    cutoff = test_cutoff.isoformat()
    ordered = sorted(versions, key=lambda v: (str(v.version) != current_version, -int(v.version)))
    for mv in ordered:
        if (mv.tags or {}).get("test_cutoff") != cutoff or not mv.run_id:
            continue
        try:
            tags = client.get_run(mv.run_id).data.tags
        except MlflowException:
            continue
        if tags.get("data_fingerprint") == fingerprint:
            return str(mv.version), str(mv.version) == current_version
    return None


def retrain_target(
    tables: ShopTables,
    config: TrainConfig,
    *,
    force: bool = False,
    truth: Any = None,
    progress: Progress | None = None,
    con: Any = None,
) -> TargetOutcome:
    """Retrain one target on the newest cutoffs unless it is up to date; gate the result.

    ``con``: a DuckDB connection where ``tables`` are registered, to build the
    training table on (``training.pipeline.train_target``).
    """
    from training.pipeline import train_target
    from training.tracking.fingerprint import data_fingerprint

    say = progress or (lambda message: None)
    cutoffs = newest_cutoffs(tables, config)
    fingerprint = data_fingerprint(tables, cutoffs)
    test_cutoff = cutoffs[-1]
    if not force:
        found = trained_version(config.target, fingerprint, test_cutoff)
        if found is not None:
            version, is_champion = found
            role = "the champion" if is_champion else "a challenger"
            return TargetOutcome(
                config.target,
                "skipped",
                f"up to date: version {version} ({role}) was trained on the same data "
                f"(fingerprint {fingerprint[:12]}) and test cutoff {test_cutoff}",
                test_cutoff.isoformat(),
                fingerprint,
                version=version,
            )
    say(f"{config.target}: training on cutoffs {cutoffs[0]} .. {test_cutoff}")
    result = train_target(tables, config, truth=truth, progress=say, con=con)
    metric = config.gate_metric
    champion_value = (result.champion_metrics or {}).get(metric)
    status = "promoted" if result.gate_promoted else "kept"
    return TargetOutcome(
        config.target,
        status,
        result.gate_reason or "registered without a gate (register_model = false)",
        pd.Timestamp(result.split["test_cutoffs"][-1]).date().isoformat(),
        result.fingerprint,
        version=result.model_version,
        metric=metric,
        new_value=result.metrics.get(metric),
        champion_value=champion_value,
    )


def retrain(
    tables: ShopTables,
    config: RetrainConfig = RetrainConfig(),
    *,
    truth: Any = None,
    progress: Progress | None = None,
    con: Any = None,
) -> RetrainReport:
    """Retrain every configured target (the caller holds the lock); failures are reported.

    A target that fails is recorded as ``failed`` with its error and the
    others still run; :attr:`RetrainReport.exit_code` is then 4.
    """
    from training.tracking.runs import TrackingConfig, configure_tracking

    settings = config.train.tracking
    configure_tracking(
        TrackingConfig(
            root=settings.root,
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.registry_uri,
            artifact_root=settings.artifact_root,
        )
    )
    outcomes = []
    for target in config.targets:
        target_config = config.for_target(target)
        try:
            outcome = retrain_target(
                tables, target_config, force=config.force, truth=truth, progress=progress, con=con
            )
        except Exception as exc:  # one target's failure must not stop the others
            outcome = TargetOutcome(
                target, "failed", f"{type(exc).__name__}: {exc}", "", "", metric=None
            )
        outcomes.append(outcome)
    return RetrainReport(tuple(outcomes))


def run_retrain(
    load: Callable[[], tuple[ShopTables, Any]],
    config: RetrainConfig | Callable[[], RetrainConfig],
    *,
    progress: Progress | None = None,
    connect: Callable[[], Any] | None = None,
) -> tuple[int, RetrainReport | None, str]:
    """The whole job with its exit code: lock, load, retrain.

    Parameters
    ----------
    load
        Returns ``(tables, truth)``; called only once the lock is held.
    config
        The retrain config, or a function building it (its ``ValueError`` /
        ``ConfigError`` becomes exit code 2).
    connect
        Returns a DuckDB connection where the loaded tables are registered (or
        None), to build the training tables on; called after ``load``.

    Returns
    -------
    tuple
        ``(exit code, report or None, message)``; see the module docstring for
        the codes.
    """
    from features.config_file import ConfigError

    try:
        config = config() if callable(config) else config
    except (ConfigError, ValueError) as exc:
        return EXIT_BAD_INPUT, None, f"bad configuration: {exc}"
    try:
        with retrain_lock(config.lock_path()):
            try:
                tables, truth = load()
                for target in config.targets:
                    newest_cutoffs(tables, config.for_target(target))
                con = connect() if connect is not None else None
            except (ConfigError, ValueError, FileNotFoundError, KeyError) as exc:
                return EXIT_BAD_INPUT, None, f"bad input: {exc}"
            report = retrain(tables, config, truth=truth, progress=progress, con=con)
    except RetrainLocked as exc:
        return EXIT_LOCKED, None, str(exc)
    except Exception as exc:
        return EXIT_FAILED, None, f"retrain failed: {type(exc).__name__}: {exc}"
    failed = [o.target for o in report.outcomes if o.status == "failed"]
    message = f"retrain failed for {failed}" if failed else "retrain finished"
    return report.exit_code, report, message


def describe(outcomes: Sequence[TargetOutcome]) -> list[str]:
    """One line per target for a log or a terminal."""
    lines = []
    for o in outcomes:
        numbers = ""
        if o.metric and o.new_value is not None:
            champ = "–" if o.champion_value is None else f"{o.champion_value:.4f}"
            numbers = f" [{o.metric} new {o.new_value:.4f} vs champion {champ}]"
        version = f" v{o.version}" if o.version else ""
        lines.append(f"{o.target}: {o.status}{version}{numbers} — {o.message}")
    return lines
