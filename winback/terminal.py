"""A quiet terminal: third-party warnings and log records go to a file, not the screen.

A command prints its own progress and result. What MLflow, scikit-learn, numpy,
Optuna and friends have to say (cloudpickle notices, imputer warnings, database
migrations) is kept, in ``<output folder>/logs/<command>.log``, where a person
debugging a run can read it; the command prints that path once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

#: Loggers that install their own screen handler; while quiet, they write to the file.
SELF_HANDLED_LOGGERS = ("mlflow", "optuna", "alembic", "bentoml")


def log_file(output_dir: str | os.PathLike, command: str) -> Path:
    """Where ``command`` keeps third-party messages: ``<output_dir>/logs/<command>.log``."""
    return Path(output_dir) / "logs" / f"{command}.log"


@contextlib.contextmanager
def third_party_to_file(path: str | os.PathLike, *, verbose: bool = False) -> Iterator[Path]:
    """Send warnings and log records (INFO and up) to ``path`` while the block runs.

    With ``verbose`` nothing is redirected. Everything is restored afterwards, so
    running a command in-process (tests, notebooks) leaves logging as it was.
    """
    path = Path(path)
    if verbose:
        yield path
        return
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {}
    for name in SELF_HANDLED_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate)
        logger.handlers = []
        logger.propagate = True
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            logging.captureWarnings(True)
            try:
                yield path
            finally:
                logging.captureWarnings(False)
    finally:
        handler.close()
        root.handlers, level = saved_root
        root.setLevel(level)
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers = handlers
            logger.propagate = propagate
