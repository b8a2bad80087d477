"""The score table store: one folder per version, published by one rename, plus a catalogue.

In ``<score_dir>``:

* ``v-<as_of>-<written at>-<hex>/`` — one folder per scoring run: ``scores.parquet``
  (one row per customer, see ``serving.scoring.table``), ``features.parquet`` (the
  feature values the scores came from, so reasons can be explained later from the
  same inputs), ``suppressions.parquet`` (the shop's do-not-contact customers when
  it has any), the lookup files the service reads (``serving.scoring.lookup_files``)
  and ``metadata.json``. The folder is filled under a temporary name,
  every file fsynced, and published by one rename: a reader finds a version
  complete or not at all, never new features beside old scores. For each
  ``as_of`` the newest folder is the version; older ones are removed once the
  catalogue no longer names them.
* ``scores.duckdb`` — the catalogue, rebuilt after each write and published by
  rename (updated last): table ``score_versions`` (one row per version), views
  ``scores`` (every version, column ``as_of``) and ``latest_scores``.
* ``.score.lock`` — one writer at a time (:func:`score_lock`); a second waits or
  gets :class:`features.publish.LockHeld`.

Folders of an earlier layout (``scores_<as_of>.parquet`` beside
``features_<as_of>.parquet``) are still read; the next write of that date
replaces them by a version folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.compute as pc

from features.erasure import ErasureRegistry
from features.erasure_files import erase_rows
from features.publish import (
    folder_lock,
    fsync_file,
    publish_file,
    publish_folder,
    remove_folder,
    remove_leftovers,
)
from serving.scoring.arrow_tables import frame_table, parquet_writer, without_index
from serving.scoring.lookup_files import (
    FEATURES_ARROW,
    LOOKUP_FILES,
    LookupTables,
    text_array,
    write_lookup_files,
)

CATALOGUE_NAME = "scores.duckdb"
LOCK_NAME = ".score.lock"
SCORES_FILE = "scores.parquet"
FEATURES_FILE = "features.parquet"
SUPPRESSIONS_FILE = "suppressions.parquet"
METADATA_FILE = "metadata.json"
SUPPRESSION_COLUMNS = ("customer_id", "reason", "since")
_FOLDER_RE = re.compile(r"^v-(\d{4}-\d{2}-\d{2})-(\d{8}T\d{12}Z)-[0-9a-f]{6}$")
_LEGACY_RE = re.compile(r"^scores_(\d{4}-\d{2}-\d{2})\.parquet$")


@dataclass(frozen=True)
class ScoreTableVersion:
    """One written version of the score table."""

    as_of: dt.date
    scores_path: Path
    features_path: Path
    rows: int

    @property
    def folder(self) -> Path:
        return self.scores_path.parent


def catalogue_path(score_dir: Path) -> Path:
    """The DuckDB catalogue of all score versions."""
    return Path(score_dir) / CATALOGUE_NAME


@contextlib.contextmanager
def score_lock(score_dir: Path, *, wait_seconds: float = 0.0) -> Iterator[Path]:
    """Hold the score folder's write lock (see :func:`features.publish.folder_lock`)."""
    with folder_lock(score_dir, name=LOCK_NAME, wait_seconds=wait_seconds) as path:
        yield path


def _folders(score_dir: Path) -> dict[dt.date, list[Path]]:
    """Published version folders by ``as_of``, oldest first."""
    out: dict[dt.date, list[Path]] = {}
    if not Path(score_dir).is_dir():
        return out
    for entry in sorted(Path(score_dir).iterdir(), key=lambda p: p.name):
        match = _FOLDER_RE.match(entry.name)
        if match and entry.is_dir():
            out.setdefault(dt.date.fromisoformat(match.group(1)), []).append(entry)
    return out


def _legacy(score_dir: Path) -> dict[dt.date, Path]:
    out = {}
    if Path(score_dir).is_dir():
        for entry in Path(score_dir).iterdir():
            match = _LEGACY_RE.match(entry.name)
            if match:
                out[dt.date.fromisoformat(match.group(1))] = entry
    return out


def _current(score_dir: Path, as_of: dt.date) -> tuple[Path, Path] | None:
    """``(scores file, features file)`` of the version of ``as_of``, or None."""
    folders = _folders(score_dir).get(as_of)
    if folders:
        return folders[-1] / SCORES_FILE, folders[-1] / FEATURES_FILE
    legacy = _legacy(score_dir).get(as_of)
    if legacy is not None:
        return legacy, legacy.with_name(f"features_{as_of.isoformat()}.parquet")
    return None


def scores_path(score_dir: Path, as_of: dt.date) -> Path:
    """Where the score table of ``as_of`` lives now (``FileNotFoundError`` without one)."""
    found = _current(score_dir, as_of)
    if found is None:
        raise FileNotFoundError(f"no score table of {as_of} in {score_dir}")
    return found[0]


def score_versions(score_dir: Path) -> list[dt.date]:
    """The ``as_of`` dates with a complete score table in ``score_dir``, oldest first."""
    return sorted(set(_folders(score_dir)) | set(_legacy(score_dir)))


def latest_version(score_dir: Path) -> dt.date | None:
    """The newest ``as_of`` with a score table, or ``None`` when there is none."""
    versions = score_versions(score_dir)
    return versions[-1] if versions else None


def _read_current(score_dir: Path, as_of: dt.date, which: int) -> pd.DataFrame:
    """One file of the current version, resolved again if a newer one replaced it meanwhile."""
    for attempt in range(3):
        found = _current(score_dir, as_of)
        if found is None:
            raise FileNotFoundError(
                f"no score table of {as_of} in {score_dir}: run `winback score --as-of {as_of}`"
            )
        try:
            return pd.read_parquet(found[which])
        except FileNotFoundError:
            if which == 1 and found[1].parent.exists():
                raise FileNotFoundError(
                    f"feature file {str(found[1])!r} of the score table {as_of} is missing: "
                    f"rerun `winback score --as-of {as_of}`"
                ) from None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def read_scores(score_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """The score table of ``as_of`` (one row per customer)."""
    return _read_current(score_dir, as_of, 0)


def read_features(score_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """The feature values behind the scores of ``as_of``, indexed by ``customer_id``."""
    return _read_current(score_dir, as_of, 1)


def read_version(score_dir: Path, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Scores and features of ``as_of`` from one and the same version (never mixed)."""
    for _ in range(3):
        found = _current(score_dir, as_of)
        if found is None:
            raise FileNotFoundError(f"no score table of {as_of} in {score_dir}")
        try:
            scores = pd.read_parquet(found[0])
            features = pd.read_parquet(found[1]) if found[1].exists() else None
        except FileNotFoundError:
            continue  # replaced by a newer version while reading: read that one
        if _current(score_dir, as_of) == found:
            return scores, features
    raise FileNotFoundError(f"the score table of {as_of} in {score_dir} kept changing; retry")


def read_suppressions(score_dir: Path, as_of: dt.date) -> pd.DataFrame | None:
    """The do-not-contact customers recorded with the version of ``as_of`` (None: none)."""
    found = _current(score_dir, as_of)
    if found is None:
        return None
    path = found[0].parent / SUPPRESSIONS_FILE
    return pd.read_parquet(path) if found[0].name == SCORES_FILE and path.exists() else None


def _folder_name(as_of: dt.date) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"v-{as_of.isoformat()}-{stamp}-{secrets.token_hex(3)}"


def _check(scores: pd.DataFrame) -> None:
    if "customer_id" not in scores.columns:
        raise ValueError("the score table needs a 'customer_id' column")
    if _strictly_increasing(scores["customer_id"]):  # as scoring writes it: no id repeats
        return
    if scores["customer_id"].duplicated().any():
        dupes = scores.loc[scores["customer_id"].duplicated(), "customer_id"].head(5).tolist()
        raise ValueError(f"the score table has duplicate customer_id values, e.g. {dupes}")


def _strictly_increasing(ids: pd.Series) -> bool:
    """Whether ``ids`` are text, each greater than the one before (so none repeats).

    A comparison of neighbours: a hash of a million ids took ~0.15 s.
    """
    text = text_array(ids)
    if text is None or len(text) < 2:
        return False
    return bool(pc.all(pc.less(text[:-1], text[1:])).as_py())


def _publish_version(
    score_dir: Path,
    as_of: dt.date,
    scores: pd.DataFrame,
    features: pd.DataFrame | None,
    suppressions: pd.DataFrame | None,
    extra: dict | None = None,
    reference: dict[str, float] | None = None,
) -> Path:
    """Fill a new version folder and publish it by one rename; returns the folder.

    ``reference``: the feature medians stored with the features (computed when None).
    """
    metadata = {
        "as_of": as_of.isoformat(),
        "rows": len(scores),
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "files": [SCORES_FILE]
        + ([FEATURES_FILE] if features is not None else [])
        + ([SUPPRESSIONS_FILE] if suppressions is not None else [])
        + [n for n in LOOKUP_FILES if n != FEATURES_ARROW or features is not None],
        **(extra or {}),
    }

    def fill(folder: Path) -> None:
        with ThreadPoolExecutor(2) as pool, ThreadPoolExecutor(1) as syncing:
            _write_files(folder, (scores, features, suppressions), as_of, reference, pool, syncing)
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")

    return publish_folder(Path(score_dir) / _folder_name(as_of), fill)


def _write_files(
    folder: Path,
    frames: tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None],
    as_of: dt.date,
    reference: dict[str, float] | None,
    pool: Executor,
    syncing: Executor,
) -> None:
    """Every file of a version but its metadata, each fsynced as soon as it is written.

    ``frames`` are the scores, features and suppressions. Each frame is converted to
    Arrow once (:mod:`serving.scoring.arrow_tables`): its Parquet file is encoded on
    ``pool`` (the GIL released) while the lookup files are written from the same
    Arrow data; each lookup file is fsynced on ``syncing`` once written, so the flush
    to disk overlaps the encoding instead of following it.
    """
    scores, features, suppressions = frames
    frame = scores.reset_index(drop=True)
    score_table = frame_table(frame)
    jobs = [pool.submit(_synced, parquet_writer(frame, folder / SCORES_FILE, score_table),
                        folder / SCORES_FILE)]  # fmt: skip
    feature_table = None
    if features is not None:
        whole = frame_table(features)
        jobs.append(pool.submit(_synced, parquet_writer(features, folder / FEATURES_FILE, whole),
                                folder / FEATURES_FILE))  # fmt: skip
        feature_table = without_index(whole, features)
        del whole
    if suppressions is not None:
        kept = [c for c in SUPPRESSION_COLUMNS if c in suppressions.columns]
        suppressions[kept].to_parquet(folder / SUPPRESSIONS_FILE, index=False)
    tables = LookupTables(without_index(score_table, frame), feature_table)
    del score_table, feature_table
    write_lookup_files(folder, scores, features, as_of, reference, tables=tables)
    for name in LOOKUP_FILES:
        if (folder / name).is_file():
            syncing.submit(fsync_file, folder / name)
    for job in jobs:
        job.result()


def _synced(write: Callable[[], None], path: Path) -> None:
    """``write()``, then an fsync of the ``path`` it wrote."""
    write()
    fsync_file(path)


def write_score_table(
    scores: pd.DataFrame,
    features: pd.DataFrame,
    score_dir: Path,
    as_of: dt.date,
    *,
    suppressions: pd.DataFrame | None = None,
    wait_seconds: float = 0.0,
    reference: dict[str, float] | None = None,
) -> ScoreTableVersion:
    """Write one version of the score table: a new folder by one rename, then the catalogue.

    ``scores`` has a ``customer_id`` column; ``features`` is indexed by
    ``customer_id``; ``suppressions`` (``customer_id``, ``reason``) are the
    shop's do-not-contact customers, kept so lists from this version leave them
    out. Customers erased by ``winback forget`` are never written. Holds the
    score lock (waiting up to ``wait_seconds``); an earlier version of the same
    date is removed after the catalogue stops naming it. ``reference`` is the
    medians of ``features`` when the caller has them (computed otherwise).
    """
    _check(scores)
    score_dir = Path(score_dir)
    kept = _without_erased(scores, features, suppressions)
    if kept[1] is not features:  # erased customers' values leave the medians too
        reference = None
    scores, features, suppressions = kept
    with score_lock(score_dir, wait_seconds=wait_seconds):
        remove_leftovers(score_dir)
        folder = _publish_version(
            score_dir, as_of, scores, features, suppressions, reference=reference
        )
        _publish_catalogue(score_dir)
        _remove_superseded(score_dir)
    return ScoreTableVersion(as_of, folder / SCORES_FILE, folder / FEATURES_FILE, len(scores))


def _without_erased(scores, features, suppressions):
    """The frames without customers ``winback forget`` erased: a last guard for every path.

    Loaders already quarantine their rows; data read in place (Spark on a
    Parquet folder) or regenerated (a simulated shop) is caught here.
    """
    registry = ErasureRegistry.default()
    if not registry.has_erasures():
        return scores, features, suppressions
    erased = registry.erased_among(scores["customer_id"].astype("string").dropna().unique())
    if not erased:
        return scores, features, suppressions
    out = [
        erase_rows(frame, erased)[0] if frame is not None else None
        for frame in (features, suppressions)
    ]
    return erase_rows(scores, erased)[0], out[0], out[1]


def _remove_superseded(score_dir: Path) -> None:
    """Older folders (and earlier-layout files) of a date that has a newer version folder."""
    folders = _folders(score_dir)
    for as_of, paths in folders.items():
        for old in paths[:-1]:
            remove_folder(old)
        legacy = _legacy(score_dir).get(as_of)
        if legacy is not None:
            legacy.with_name(f"features_{as_of.isoformat()}.parquet").unlink(missing_ok=True)
            legacy.unlink()


def _publish_catalogue(score_dir: Path) -> None:
    """Rebuild ``scores.duckdb`` from the current versions, published by rename."""
    current = {d: _current(score_dir, d) for d in score_versions(score_dir)}

    def build(path: Path) -> None:
        path.unlink()  # DuckDB refuses the empty file the publisher made
        con = duckdb.connect(str(path))
        try:
            con.execute(
                "CREATE TABLE score_versions (as_of DATE PRIMARY KEY, folder VARCHAR, "
                "scores_path VARCHAR, features_path VARCHAR, rows BIGINT, written_at TIMESTAMPTZ)"
            )
            parts = []
            for as_of, (spath, fpath) in current.items():
                source = "read_parquet('" + str(spath.resolve()).replace("'", "''") + "')"
                columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
                dated = "" if "as_of" in columns else f", DATE '{as_of.isoformat()}' AS as_of"
                parts.append(f"SELECT *{dated} FROM {source}")
                rows = con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
                con.execute(
                    "INSERT INTO score_versions VALUES (?, ?, ?, ?, ?, now())",
                    [as_of, spath.parent.name, spath.name, fpath.name, rows],
                )
            if parts:
                con.execute(f"CREATE VIEW scores AS {' UNION ALL BY NAME '.join(parts)}")
                con.execute(
                    "CREATE VIEW latest_scores AS SELECT * FROM scores "
                    "WHERE as_of = (SELECT max(as_of) FROM score_versions)"
                )
            con.execute("CHECKPOINT")
        finally:
            con.close()

    publish_file(catalogue_path(score_dir), build)


def erase_customers(
    score_dir: Path, customer_ids: Collection[str], *, wait_seconds: float = 60.0
) -> dict[str, int]:
    """Republish every version holding one of ``customer_ids`` without them.

    Each affected version becomes a new folder (same ``as_of``) without their
    rows in scores, features and suppressions; the catalogue is rebuilt; the old
    folders are removed. Returns the rows removed per version folder name.
    """
    score_dir = Path(score_dir)
    removed: dict[str, int] = {}
    with score_lock(score_dir, wait_seconds=wait_seconds):
        remove_leftovers(score_dir)
        for as_of in score_versions(score_dir):
            spath, fpath = _current(score_dir, as_of)
            scores, gone = erase_rows(pd.read_parquet(spath), customer_ids)
            features = pd.read_parquet(fpath) if fpath.exists() else None
            if features is not None:
                features, gone_features = erase_rows(features, customer_ids)
                gone = max(gone, gone_features)
            suppressions = read_suppressions(score_dir, as_of)
            if suppressions is not None:
                suppressions, gone_suppressed = erase_rows(suppressions, customer_ids)
                gone = max(gone, gone_suppressed)
            if gone or spath.name != SCORES_FILE:  # earlier-layout files move into a folder
                folder = _publish_version(score_dir, as_of, scores, features, suppressions)
                removed[folder.name] = gone
        _publish_catalogue(score_dir)
        _remove_superseded(score_dir)
    return removed
