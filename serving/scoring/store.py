"""The score table store: versioned Parquet files plus a DuckDB catalogue.

One version per ``as_of`` date, in ``<score_dir>``:

* ``scores_<as_of>.parquet`` — one row per customer (see ``serving.scoring.table``);
* ``features_<as_of>.parquet`` — the feature values the scores were computed
  from, so reasons can be explained later from exactly the same inputs;
* ``scores.duckdb`` — table ``scores`` (all versions, column ``as_of``), table
  ``score_versions`` (one row per version) and view ``latest_scores``.

Files are written to a temporary name in the same folder and renamed into place
(``os.replace`` is atomic on one file system); the DuckDB rows of a version are
replaced in one transaction. A rerun for the same date therefore replaces that
version cleanly, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

CATALOGUE_NAME = "scores.duckdb"
_SCORES_RE = re.compile(r"^scores_(\d{4}-\d{2}-\d{2})\.parquet$")


@dataclass(frozen=True)
class ScoreTableVersion:
    """One written version of the score table."""

    as_of: dt.date
    scores_path: Path
    features_path: Path
    rows: int


def scores_path(score_dir: Path, as_of: dt.date) -> Path:
    """Where the score table of ``as_of`` lives."""
    return Path(score_dir) / f"scores_{as_of.isoformat()}.parquet"


def features_path(score_dir: Path, as_of: dt.date) -> Path:
    """Where the feature values behind the scores of ``as_of`` live."""
    return Path(score_dir) / f"features_{as_of.isoformat()}.parquet"


def catalogue_path(score_dir: Path) -> Path:
    """The DuckDB catalogue of all score versions."""
    return Path(score_dir) / CATALOGUE_NAME


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_score_table(
    scores: pd.DataFrame, features: pd.DataFrame, score_dir: Path, as_of: dt.date
) -> ScoreTableVersion:
    """Write one version of the score table (Parquet files, then the DuckDB catalogue).

    ``scores`` has a ``customer_id`` column; ``features`` is indexed by
    ``customer_id``. The scores file is renamed last among the files: its
    presence marks a complete version for readers such as the service.
    """
    if "customer_id" not in scores.columns:
        raise ValueError("the score table needs a 'customer_id' column")
    if scores["customer_id"].duplicated().any():
        dupes = scores.loc[scores["customer_id"].duplicated(), "customer_id"].head(5).tolist()
        raise ValueError(f"the score table has duplicate customer_id values, e.g. {dupes}")
    score_dir = Path(score_dir)
    fpath = write_parquet_atomic(features, features_path(score_dir, as_of))
    spath = write_parquet_atomic(scores.reset_index(drop=True), scores_path(score_dir, as_of))
    _catalogue_version(score_dir, as_of, spath, fpath)
    return ScoreTableVersion(as_of, spath, fpath, len(scores))


def _catalogue_version(score_dir: Path, as_of: dt.date, spath: Path, fpath: Path) -> None:
    """Replace the catalogue rows of ``as_of`` by the Parquet file, in one transaction."""
    con = duckdb.connect(str(catalogue_path(score_dir)))
    try:
        con.execute("BEGIN TRANSACTION")
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scores'"
        ).fetchall()[0][0]
        if exists:
            con.execute("DELETE FROM scores WHERE as_of = ?", [as_of])
            con.execute("INSERT INTO scores BY NAME SELECT * FROM read_parquet(?)", [str(spath)])
        else:
            con.execute("CREATE TABLE scores AS SELECT * FROM read_parquet(?)", [str(spath)])
        con.execute(
            "CREATE TABLE IF NOT EXISTS score_versions ("
            "as_of DATE PRIMARY KEY, scores_path VARCHAR, features_path VARCHAR, "
            "rows BIGINT, written_at TIMESTAMPTZ)"
        )
        con.execute("DELETE FROM score_versions WHERE as_of = ?", [as_of])
        con.execute(
            "INSERT INTO score_versions SELECT ?, ?, ?, "
            "(SELECT count(*) FROM scores WHERE as_of = ?), now()",
            [as_of, spath.name, fpath.name, as_of],
        )
        con.execute(
            "CREATE OR REPLACE VIEW latest_scores AS SELECT * FROM scores "
            "WHERE as_of = (SELECT max(as_of) FROM score_versions)"
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def score_versions(score_dir: Path) -> list[dt.date]:
    """The ``as_of`` dates with a complete score table in ``score_dir``, oldest first."""
    score_dir = Path(score_dir)
    if not score_dir.is_dir():
        return []
    dates = []
    for entry in score_dir.iterdir():
        match = _SCORES_RE.match(entry.name)
        if match:
            dates.append(dt.date.fromisoformat(match.group(1)))
    return sorted(dates)


def latest_version(score_dir: Path) -> dt.date | None:
    """The newest ``as_of`` with a score table, or ``None`` when there is none."""
    versions = score_versions(score_dir)
    return versions[-1] if versions else None


def read_scores(score_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """The score table of ``as_of`` (one row per customer)."""
    return pd.read_parquet(scores_path(score_dir, as_of))


def read_features(score_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """The feature values behind the scores of ``as_of``, indexed by ``customer_id``."""
    path = features_path(score_dir, as_of)
    if not path.exists():
        raise FileNotFoundError(
            f"feature file {str(path)!r} of the score table {as_of} is missing: "
            f"rerun `winback score --as-of {as_of}`"
        )
    return pd.read_parquet(path)
