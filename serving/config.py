"""Configuration of batch scoring and the BentoML service.

``bentoml serve`` imports the service class in a worker process, so the served
process takes its configuration from environment variables
(:meth:`ServingConfig.from_env`); the ``winback serve`` command sets them from
its options before it starts the server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.targets import score_columns

#: The three targets, each with the name of its score column.
SCORE_COLUMNS: dict[str, str] = score_columns()
TARGETS: tuple[str, ...] = tuple(SCORE_COLUMNS)

#: Environment variables read by :meth:`ServingConfig.from_env`.
ENV_HOME = "WINBACK_HOME"
ENV_SCORE_DIR = "WINBACK_SCORE_DIR"
ENV_API_KEYS = "WINBACK_API_KEYS"
ENV_API_KEY_FILE = "WINBACK_API_KEY_FILE"
ENV_MODEL_VERSIONS = "WINBACK_MODEL_VERSIONS"
ENV_EXPLAIN_ON_REQUEST = "WINBACK_EXPLAIN_ON_REQUEST"
ENV_MEASUREMENT_DATA = "WINBACK_MEASUREMENT_DATA"
ENV_MEASUREMENT_MAPPING = "WINBACK_MEASUREMENT_MAPPING"
#: ``measurement_data`` value meaning the built-in simulated shop (what ``winback measure``
#: reads without ``--data``).
SIMULATED_DATA = "simulated"
ENV_PREDICT_THREADS = "WINBACK_PREDICT_THREADS"
ENV_MAX_BODY_BYTES = "WINBACK_MAX_BODY_BYTES"
ENV_MAX_EXPLAIN_ROWS = "WINBACK_MAX_EXPLAIN_ROWS"
#: Rows one request may post (JSON ``rows``, each of ``columns``, or an Arrow body).
MAX_POSTED_ROWS = 100_000
#: Shortest API key the service accepts.
MIN_KEY_LENGTH = 16

#: Paths that answer without an API key (load balancers and orchestrators probe them).
HEALTH_PATHS: frozenset[str] = frozenset({"/healthz", "/livez", "/readyz"})


class ServingConfig(BaseModel):
    """Where scores live, which models to serve, who may call and how requests are batched.

    Attributes
    ----------
    home
        Working directory that relative paths (score dir, ``mlruns``) resolve against.
    score_dir
        Folder of the versioned score tables (``scores_<as_of>.parquet``) and the
        DuckDB catalogue ``scores.duckdb``.
    api_keys_env
        Name of the environment variable holding comma-separated API keys.
    api_key_file
        Optional file with one API key per line (``#`` starts a comment).
    model_versions
        Pinned registry versions by target (e.g. ``{"churn": 3}``); targets not
        listed use the registry's ``champion`` alias.
    host, port
        Where ``winback serve`` listens (loopback by default).
    horizon_days
        Horizon of the scores, used by the expected value.
    explain_top
        How many customers per target ``winback score`` explains (reason codes cost
        ~2 ms a row, so not the whole base by default).
    top_reasons
        Reasons kept per customer and target.
    explain_on_request
        Compute reasons on demand for looked-up customers that have none stored.
    max_batch_rows
        Largest number of posted rows scored in one model call.
    max_queued_requests
        Posted-row requests allowed to wait; beyond it the service answers 503
        and clients retry.
    measurement_data
        The shop data ``POST /lists/measurement`` reads what listed customers did
        after the list date from: what ``winback measure --data`` takes (a file,
        folder or DuckDB; relative to ``home``), or ``"simulated"`` for the built-in
        simulated shop. ``None``: the service cannot measure lists and says so.
    measurement_mapping
        Column mapping of ``measurement_data`` (``winback measure --mapping``).
    direct_rows
        Posted-row requests of at least this many rows skip the micro-batcher
        (batching cannot make them cheaper, only make them wait).
    predict_threads
        LightGBM threads per model call in the service. One: on two cores, a
        second OpenMP thread per call mostly spins waiting for the first, and
        concurrent calls already use both cores.
    max_parallel_predictions
        Model calls running at the same time (one per core is enough).
    max_body_bytes
        Largest request body accepted (default 32 MiB); larger ones get 413,
        checked on ``Content-Length`` and on the bytes as they stream in.
    max_rows
        Rows one posted-rows request may hold (JSON or Arrow).
    max_explain_rows
        Rows one request may ask reasons for (SHAP costs ~2 ms a row).
    max_concurrent_lists
        List builds running at once; more get 503 with ``Retry-After`` (each
        build works on a copy of the score table).
    workers
        BentoML worker processes ``winback serve`` starts, each with its own copy
        of the models and the score table. Two on a 2-core machine: one worker's
        event loop tops out near 500 by-id requests/s (about 2 ms of CPU each),
        and requests queue behind each other; a second worker doubles that.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Path(".")
    score_dir: Path = Path("winback_output/scores")
    api_keys_env: str = ENV_API_KEYS
    api_key_file: Path | None = None
    model_versions: dict[str, int] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    horizon_days: int = Field(default=90, gt=0)
    explain_top: int = Field(default=1000, ge=0)
    top_reasons: int = Field(default=3, ge=1, le=10)
    explain_on_request: bool = True
    max_batch_rows: int = Field(default=20_000, gt=0)
    max_queued_requests: int = Field(default=256, gt=0)
    measurement_data: str | None = None
    measurement_mapping: str | None = None
    direct_rows: int = Field(default=256, gt=0)
    predict_threads: int = Field(default=1, ge=1)
    max_parallel_predictions: int = Field(default=2, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    max_rows: int = Field(default=MAX_POSTED_ROWS, gt=0)
    max_explain_rows: int = Field(default=1000, gt=0)
    max_concurrent_lists: int = Field(default=2, gt=0)
    workers: int = Field(default=2, ge=1)

    @field_validator("model_versions")
    @classmethod
    def _known_targets(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(TARGETS))
        if unknown:
            raise ValueError(f"model_versions names unknown targets {unknown}; use {list(TARGETS)}")
        bad = {t: v for t, v in value.items() if int(v) < 1}
        if bad:
            raise ValueError(f"model versions must be >= 1, got {bad}")
        return value

    @property
    def score_path(self) -> Path:
        """The score directory, resolved against ``home``."""
        return self.score_dir if self.score_dir.is_absolute() else self.home / self.score_dir

    @property
    def measurement_path(self) -> Path | None:
        """``measurement_data`` resolved against ``home`` (``None`` if unset or simulated)."""
        if self.measurement_data is None or self.measurement_data == SIMULATED_DATA:
            return None
        path = Path(self.measurement_data)
        return path if path.is_absolute() else self.home / path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> ServingConfig:
        """The configuration of a served process, from ``WINBACK_*`` environment variables.

        ``WINBACK_HOME`` (working dir), ``WINBACK_SCORE_DIR``, ``WINBACK_API_KEY_FILE``,
        ``WINBACK_MODEL_VERSIONS`` (``churn=3,vip=2``),
        ``WINBACK_EXPLAIN_ON_REQUEST`` (``0``/``1``), ``WINBACK_MEASUREMENT_DATA``,
        ``WINBACK_MEASUREMENT_MAPPING``, ``WINBACK_PREDICT_THREADS``, ``WINBACK_MAX_BODY_BYTES``
        and ``WINBACK_MAX_EXPLAIN_ROWS``; keys themselves are read by
        :func:`serving.api.auth.load_api_keys`.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        if env.get(ENV_HOME):
            values["home"] = Path(env[ENV_HOME])
        if env.get(ENV_SCORE_DIR):
            values["score_dir"] = Path(env[ENV_SCORE_DIR])
        if env.get(ENV_API_KEY_FILE):
            values["api_key_file"] = Path(env[ENV_API_KEY_FILE])
        if env.get(ENV_MODEL_VERSIONS):
            values["model_versions"] = parse_model_versions(env[ENV_MODEL_VERSIONS])
        if env.get(ENV_EXPLAIN_ON_REQUEST):
            values["explain_on_request"] = env[ENV_EXPLAIN_ON_REQUEST].strip().lower() in {
                "1",
                "true",
                "yes",
            }
        if env.get(ENV_MEASUREMENT_DATA):
            values["measurement_data"] = env[ENV_MEASUREMENT_DATA]
        if env.get(ENV_MEASUREMENT_MAPPING):
            values["measurement_mapping"] = env[ENV_MEASUREMENT_MAPPING]
        for variable, field, example in (
            (ENV_MAX_BODY_BYTES, "max_body_bytes", "33554432 (32 MiB)"),
            (ENV_MAX_EXPLAIN_ROWS, "max_explain_rows", "1000"),
            (ENV_PREDICT_THREADS, "predict_threads", "1"),
        ):
            if env.get(variable):
                values[field] = _positive_int(variable, env[variable], example)
        values.update(overrides)
        return cls(**values)


def _positive_int(variable: str, text: str, example: str) -> int:
    """A positive whole number from an environment variable, or an error naming it."""
    text = text.strip()
    if not text.isdigit() or int(text) == 0:
        raise ValueError(
            f"{variable}={text!r} is not a positive whole number; set it to e.g. {example}"
        )
    return int(text)


def parse_model_versions(text: str) -> dict[str, int]:
    """Pinned versions from ``"churn=3,vip=2"`` (what ``WINBACK_MODEL_VERSIONS`` holds)."""
    out: dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        target, sep, version = part.partition("=")
        if not sep or not version.strip().isdigit():
            raise ValueError(
                f"cannot read pinned model version {part!r}: write target=version, "
                f"e.g. 'churn=3,vip=2'"
            )
        out[target.strip()] = int(version)
    return out


def format_model_versions(versions: Mapping[str, int]) -> str:
    """The inverse of :func:`parse_model_versions`."""
    return ",".join(f"{t}={v}" for t, v in sorted(versions.items()))
