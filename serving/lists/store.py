"""Saved lists: ids, files (Parquet + CSV + JSON manifest) and an MLflow record.

Each list lives in ``<list_dir>/<list_id>/``:

* ``list.parquet`` and ``list.csv`` — the rows (``serving.lists.build.build_list``);
* ``manifest.json`` — kind, as-of date of the scores, generation time, the
  parameters (list config, targeting), model versions and row counts per group.

Files are written aside, fsynced and renamed into place, manifest last:
a folder with a manifest is a complete list. Because the control group is a
keyed hash of the list id, rebuilding a list from its manifest (same scores,
same parameters, same id) gives the same rows and groups
(:func:`rebuild_list`). Every saved list is also logged as a run of the MLflow
experiment ``winback-lists`` (:func:`log_list`), when asked: its manifest and
aggregates, its rows only with ``log_rows``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.publish import publish_file, publish_text
from features.targets import TARGET_NAMES
from serving.lists.build import (
    LIST_KINDS,
    SUPPRESSED_ROWS,
    build_list,
    explain_list,
    mark_suppressed,
    ranking_target,
)
from serving.lists.export import list_csv
from serving.lists.settings import ListConfig
from serving.lists.targeting import TargetingConfig
from serving.lists.uplift import list_uplift
from serving.lists.values import value_note

LIST_EXPERIMENT = "winback-lists"
MANIFEST_NAME = "manifest.json"
PARQUET_NAME = "list.parquet"
CSV_NAME = "list.csv"
#: What a list id looks like: ``<kind>-<UTC time>-<6 hex digits>``.
LIST_ID_PATTERN = r"^[a-z-]+-\d{8}T\d{6}Z-[0-9a-f]{6}$"
_ID_RE = re.compile(LIST_ID_PATTERN)


class ListUnavailable(ValueError):
    """The score table has no scores of the model a list kind ranks by."""


def new_list_id(kind: str, generated_at: dt.datetime | None = None) -> str:
    """A new list id: ``<kind>-<UTC time>-<6 hex>``, e.g. ``winback-20251231T090000Z-3fa2c1``."""
    if kind not in LIST_KINDS:
        raise ValueError(f"unknown list kind {kind!r}: choose one of {list(LIST_KINDS)}")
    when = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{kind}-{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_list_id(list_id: str) -> str:
    """``list_id`` if it has the shape :func:`new_list_id` makes (no path tricks), else raise."""
    if not _ID_RE.match(list_id or ""):
        raise ValueError(
            f"{list_id!r} is not a list id (expected e.g. winback-20251231T090000Z-3fa2c1); "
            f"list the saved ones with list_ids()"
        )
    return list_id


@dataclass(frozen=True)
class ListManifest:
    """What a saved list is: how, when and from what it was made."""

    list_id: str
    kind: str
    as_of: str
    generated_at: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    model_versions: Mapping[str, Any] = field(default_factory=dict)
    rows: int = 0
    treatment_rows: int = 0
    control_rows: int = 0
    files: Mapping[str, str] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    suppressed_rows: Mapping[str, int] = field(default_factory=dict)
    erased_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "list_id": self.list_id,
            "kind": self.kind,
            "as_of": self.as_of,
            "generated_at": self.generated_at,
            "parameters": dict(self.parameters),
            "model_versions": dict(self.model_versions),
            "rows": self.rows,
            "treatment_rows": self.treatment_rows,
            "control_rows": self.control_rows,
            "files": dict(self.files),
            "mlflow_run_id": self.mlflow_run_id,
            "suppressed_rows": dict(self.suppressed_rows),
            "erased_rows": self.erased_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ListManifest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def list_date(self) -> dt.date:
        """The date the list's scores are as of: measurement reads what happened after it."""
        return dt.date.fromisoformat(self.as_of)


def list_folder(list_dir: Path, list_id: str) -> Path:
    return Path(list_dir) / check_list_id(list_id)


def save_list(frame: pd.DataFrame, list_dir: Path, draft: ListManifest) -> ListManifest:
    """Write a list's Parquet, CSV and manifest (each published by rename, manifest last).

    ``draft`` names the list (id, kind, as-of date, parameters, model versions;
    ``generated_at`` now when empty); the saved manifest adds the row counts per
    group, the files, and the do-not-contact customers :func:`build_list` left
    out (``frame.attrs["suppressed_rows"]``, by reason).
    """
    folder = list_folder(list_dir, draft.list_id)
    folder.mkdir(parents=True, exist_ok=True)
    groups = frame["group"].astype("string") if "group" in frame.columns else pd.Series([])
    manifest = dataclasses.replace(
        draft,
        as_of=str(draft.as_of),
        generated_at=draft.generated_at or dt.datetime.now(dt.UTC).isoformat(),
        parameters=dict(draft.parameters),
        model_versions={
            k: (None if v is None else str(v)) for k, v in draft.model_versions.items()
        },
        rows=len(frame),
        treatment_rows=int((groups == "treatment").sum()),
        control_rows=int((groups == "control").sum()),
        files={"parquet": PARQUET_NAME, "csv": CSV_NAME},
        suppressed_rows=dict(frame.attrs.get(SUPPRESSED_ROWS, {})),
    )
    publish_file(folder / PARQUET_NAME, lambda p: frame.to_parquet(p, index=False))
    publish_text(folder / CSV_NAME, list_csv(frame))
    write_manifest(manifest, list_dir)
    return manifest


def write_manifest(manifest: ListManifest, list_dir: Path) -> Path:
    """(Re)write a list's manifest atomically."""
    path = list_folder(list_dir, manifest.list_id) / MANIFEST_NAME
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=True, default=str)
    return publish_text(path, text)


def read_manifest(list_dir: Path, list_id: str) -> ListManifest:
    """The manifest of a saved list; ``FileNotFoundError`` naming the folder if absent."""
    path = list_folder(list_dir, list_id) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no saved list {list_id!r} in {str(list_dir)!r}: check the id "
            f"(saved lists: {list_ids(list_dir)[-5:]}) or pass the --list-dir it was saved to"
        )
    return ListManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))


def read_list(list_dir: Path, list_id: str) -> tuple[pd.DataFrame, ListManifest]:
    """A saved list's rows and manifest."""
    manifest = read_manifest(list_dir, list_id)
    frame = pd.read_parquet(list_folder(list_dir, list_id) / PARQUET_NAME)
    return frame, manifest


def list_ids(list_dir: Path) -> list[str]:
    """Ids of the complete (manifest present) lists in ``list_dir``, oldest first."""
    folder = Path(list_dir)
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if _ID_RE.match(p.name) and (p / MANIFEST_NAME).is_file()
    )


def list_aggregates(frame: pd.DataFrame) -> dict[str, float]:
    """What MLflow records of a list by default: counts and means, never a customer's row.

    Rows per group, tier and action; the mean of each score per group.
    """
    out: dict[str, float] = {"rows": float(len(frame))}
    for column in ("group", "tier", "action"):
        if column in frame.columns:
            counts = frame[column].astype("string").fillna("none").value_counts()
            out.update({f"{column}.{k}.rows": float(v) for k, v in counts.items()})
    groups = frame["group"].astype("string") if "group" in frame.columns else None
    for score in ("churn_risk", "vip_potential", "reactivation_probability", "uplift"):
        if score in frame.columns and groups is not None:
            means = frame[score].astype("float64").groupby(groups.to_numpy()).mean()
            out.update({f"{score}.mean.{g}": float(v) for g, v in means.items() if pd.notna(v)})
    return out


def log_list(
    manifest: ListManifest, list_dir: Path, *, tracking: Any = None, log_rows: bool = False
) -> str:
    """Log a saved list as a run of the ``winback-lists`` experiment; return the run id.

    Params: kind, as-of, the flattened parameters and model versions; metrics:
    row counts and :func:`list_aggregates`; artifacts: the manifest and
    ``aggregates.json``. The rows themselves (the CSV of ids, scores and
    reasons) only with ``log_rows``: nothing personal reaches MLflow by
    default. The run id is written back into the manifest.
    """
    import mlflow

    from training.tracking.runs import flatten_params, start_run

    folder = list_folder(list_dir, manifest.list_id)
    aggregates = list_aggregates(pd.read_parquet(folder / PARQUET_NAME))
    tags = {"list_id": manifest.list_id, "kind": manifest.kind, "as_of": manifest.as_of}
    with start_run(LIST_EXPERIMENT, tracking, run_name=manifest.list_id, tags=tags) as run:
        params = {"kind": manifest.kind, "as_of": manifest.as_of, "log_rows": log_rows}
        params.update(flatten_params(dict(manifest.parameters)))
        params.update({f"model_version.{k}": str(v) for k, v in manifest.model_versions.items()})
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        suppressed = float(sum(manifest.suppressed_rows.values()))
        mlflow.log_metrics(
            {
                "treatment_rows": manifest.treatment_rows,
                "control_rows": manifest.control_rows,
                "suppressed_rows": suppressed,
                **{_metric_name(k): v for k, v in aggregates.items()},
            }
        )
        mlflow.log_dict(aggregates, "aggregates.json")
        mlflow.log_artifact(str(folder / MANIFEST_NAME))
        if log_rows:
            mlflow.log_artifact(str(folder / CSV_NAME))
        run_id = run.info.run_id
    updated = ListManifest.from_dict({**manifest.to_dict(), "mlflow_run_id": run_id})
    write_manifest(updated, list_dir)
    return run_id


def _metric_name(key: str) -> str:
    """An MLflow-safe metric name (letters, digits, ``_ - . /`` and spaces only)."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


@dataclass(frozen=True)
class ListSource:
    """What a list is built from: one date's score table, the features behind it, uplift.

    ``model_versions`` (the models the scores and uplift came from) and ``notes``
    (e.g. why no uplift model was used) go into the manifest.
    """

    scores: pd.DataFrame
    as_of: dt.date | str
    features: pd.DataFrame | None = None
    uplift: pd.Series | None = None
    model_versions: Mapping[str, Any] = field(default_factory=dict)
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListOptions:
    """How a list is made and recorded.

    ``config`` and ``targeting``: the list rules and how many rows to keep;
    ``explain_rows``: how many of the best-ranked rows without stored reasons
    get them computed (when the caller can explain); ``log_to_mlflow``,
    ``tracking`` and ``log_rows``: the ``winback-lists`` record (:func:`log_list`).
    """

    config: ListConfig = field(default_factory=ListConfig)
    targeting: TargetingConfig = field(default_factory=TargetingConfig)
    explain_rows: int = 1000
    log_to_mlflow: bool = False
    tracking: Any = None
    log_rows: bool = False


def create_list(
    kind: str,
    source: ListSource,
    list_dir: Path,
    options: ListOptions = ListOptions(),
    *,
    explain: Callable[[pd.Index], list[list[str]]] | None = None,
    list_id: str | None = None,
    generated_at: dt.datetime | None = None,
) -> tuple[pd.DataFrame, ListManifest]:
    """Build a list (``serving.lists.build.build_list``) under a new id, save it, optionally log it.

    What ``winback lists <kind>`` and the service's list endpoints run. With
    ``explain`` (customer ids → reason texts) the best ``options.explain_rows``
    rows without stored reasons get them (:func:`explain_list`). The manifest
    records the list and targeting parameters, so :func:`rebuild_list` can
    reproduce the rows from the same scores.
    """
    target = ranking_target(kind)
    if target in source.model_versions and source.model_versions[target] is None:
        raise ListUnavailable(
            f"the score table of {source.as_of} has no {target} scores, which a {kind} list is"
            f" ranked by: no {target} model was served (the shop's history may be too short"
            f" for one); create it with `winback train --target {target}`, then `winback score`"
        )
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    list_id = check_list_id(list_id) if list_id else new_list_id(kind, generated_at)
    frame = build_list(
        kind,
        source.scores,
        list_id=list_id,
        features=source.features,
        uplift=source.uplift,
        config=options.config,
        targeting=options.targeting,
    )
    if explain is not None:
        frame = explain_list(frame, explain, limit=options.explain_rows)
    draft = ListManifest(
        list_id=list_id,
        kind=kind,
        as_of=str(source.as_of),
        generated_at=generated_at.astimezone(dt.UTC).isoformat(),
        parameters={
            "list": options.config.to_dict(),
            "targeting": options.targeting.to_dict(),
            "uplift": source.uplift is not None,
            "value": value_note(source.scores),
            **dict(source.notes),
        },
        model_versions=dict(source.model_versions),
    )
    manifest = save_list(frame, list_dir, draft)
    if options.log_to_mlflow:
        run_id = log_list(manifest, list_dir, tracking=options.tracking, log_rows=options.log_rows)
        manifest = dataclasses.replace(manifest, mlflow_run_id=run_id)
    return frame, manifest


def rebuild_list(
    manifest: ListManifest,
    scores: pd.DataFrame,
    *,
    features: pd.DataFrame | None = None,
    uplift: pd.Series | None = None,
) -> pd.DataFrame:
    """The rows of a saved list recomputed from its manifest (same id, same parameters).

    With the same score table (and uplift estimates) this equals the saved list,
    control group included: the audit trail of a list.
    """

    parameters = dict(manifest.parameters)
    return build_list(
        manifest.kind,
        scores,
        list_id=manifest.list_id,
        features=features,
        uplift=uplift,
        config=ListConfig.from_dict(parameters.get("list", {})),
        targeting=TargetingConfig(**parameters.get("targeting", {})),
    )


#: Where the service saves lists, relative to its home.
SERVICE_LIST_DIR = Path("winback_output/lists")


def create_list_from_score_table(
    kind: str,
    score_dir: Path,
    list_dir: Path,
    as_of: dt.date,
    options: ListOptions = ListOptions(),
    *,
    uplift_model: str | Path | None = None,
) -> tuple[pd.DataFrame, ListManifest]:
    """Build and save a list from a stored score table (and its feature file).

    What ``winback lists <kind>`` and ``winback demo`` run: reads the score table
    of ``as_of``, estimates uplift for win-back lists (``uplift_model``, else
    ``WINBACK_UPLIFT_MODEL``, else the ``winback-uplift`` champion of the
    ``options.tracking`` store: :func:`list_uplift`), records the model versions
    the scores and uplift came from, marks the do-not-contact customers stored
    with the version, and calls :func:`create_list`.
    """
    from serving.scoring import store

    scores, features = store.read_version(score_dir, as_of)
    scores = mark_suppressed(scores, store.read_suppressions(score_dir, as_of))
    if features is not None:
        features.index = features.index.astype("string")
    try:
        uplift = list_uplift(
            kind, scores, features, uplift_model=uplift_model, tracking=options.tracking
        )
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"score table of {as_of} in {score_dir}: {exc}") from None
    first = scores.head(1)
    versions: dict[str, Any] = {
        t: next((str(v) for v in first[f"{t}_model_version"] if not pd.isna(v)), None)
        for t in TARGET_NAMES
        if f"{t}_model_version" in scores.columns
    }
    if uplift.model_version is not None:
        versions["uplift"] = uplift.model_version
    source = ListSource(
        scores,
        as_of,
        features=features,
        uplift=uplift.estimates,
        model_versions=versions,
        notes={"uplift_note": uplift.note} if uplift.note else {},
    )
    return create_list(kind, source, list_dir, options)
