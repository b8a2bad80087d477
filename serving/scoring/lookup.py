"""The latest score table held in memory for fast lookups by customer id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.config import SCORE_COLUMNS, TARGETS
from serving.scoring import store
from serving.scoring.models import ServedModels, ServingSetupError
from serving.scoring.reasons import feature_reference, reason_column, reason_texts

#: Columns of a looked-up customer that are returned as they are stored.
RECORD_COLUMNS = (
    "churn_risk",
    "vip_potential",
    "reactivation_probability",
    "expected_value",
    "tier",
    "is_active",
    "is_lapsed",
    "is_vip",
)


def _plain(value: Any) -> Any:
    """A JSON-ready Python value (NaN/NA → None, numpy scalars → Python)."""
    if value is None:
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    if pd.isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain_list(column: pd.Series) -> list[Any]:
    """The column as JSON-ready Python values (what :func:`_plain` gives for each value)."""
    dtype = column.dtype
    if pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan).tolist()
        return [None if v != v else v for v in values]  # v != v only for NaN
    return [_plain(v) for v in column.to_numpy(dtype=object)]


class ScoreLookup:
    """The latest score table held in memory for fast lookups by customer id.

    Built once at service start: a dict from id to row position and one list of
    JSON-ready values per column (NaN already ``None``, numpy scalars already
    Python), so a lookup is a few list indexings: microseconds, not a pandas
    ``.loc`` (milliseconds) or a conversion per value per request.
    """

    def __init__(
        self, as_of: dt.date, table: pd.DataFrame, features: pd.DataFrame | None = None
    ) -> None:
        self.as_of = as_of
        self.table = table
        self.features = features
        ids = table.index.astype(str)
        self._positions: dict[str, int] = dict(zip(ids, range(len(ids)), strict=True))
        self._ids = np.asarray(ids, dtype=object)
        wanted = [
            *RECORD_COLUMNS,
            *(reason_column(t) for t in TARGETS),
            *(f"{t}_model_version" for t in TARGETS),
            *(f"{t}_feature_set" for t in TARGETS),
        ]
        self._columns: dict[str, list[Any]] = {
            c: _plain_list(table[c]) for c in wanted if c in table.columns
        }
        self._scored_at = pd.to_datetime(table["scored_at"], utc=True).dt.to_pydatetime().tolist()
        self._feature_rows: np.ndarray | None = None
        self.reference: dict[str, float] | None = None
        #: The shop's do-not-contact customers stored with this version (lists leave them out).
        self.suppressions: pd.DataFrame | None = None
        if features is not None:
            self._feature_rows = features.index.astype(str).get_indexer(ids)
            self.reference = feature_reference(features)

    @classmethod
    def load(cls, score_dir: Path, *, with_features: bool = True) -> ScoreLookup:
        """Load the newest score table (and its features) from ``score_dir``.

        Raises
        ------
        ServingSetupError
            When there is no score table, naming the command that writes one.
        """
        as_of = store.latest_version(score_dir)
        if as_of is None:
            raise ServingSetupError(
                f"no score table in {str(score_dir)!r}: write one with "
                f"`winback score --as-of YYYY-MM-DD` (or set WINBACK_SCORE_DIR to where it is)"
            )
        table, features = store.read_version(score_dir, as_of)  # one version, never mixed
        table["customer_id"] = table["customer_id"].astype("string")
        table = table.set_index("customer_id")
        if with_features and features is None:
            store.read_features(score_dir, as_of)  # raises, naming the missing file
        lookup = cls(as_of=as_of, table=table, features=features if with_features else None)
        lookup.suppressions = store.read_suppressions(score_dir, as_of)
        return lookup

    def model_versions(self) -> dict[str, str | None]:
        """The model versions the stored scores were computed with."""
        out: dict[str, str | None] = {}
        for target in TARGETS:
            column = self._columns.get(f"{target}_model_version")
            out[target] = column[0] if column is not None and len(column) else None
        return out

    def find(self, customer_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Split ``customer_ids`` into known and unknown ids (duplicates dropped, order kept)."""
        ids = list(dict.fromkeys(str(c) for c in customer_ids))
        found = [c for c in ids if c in self._positions]
        unknown = [c for c in ids if c not in self._positions]
        return found, unknown

    def needs_reasons(self, customer_ids: Sequence[str], models: ServedModels) -> bool:
        """Whether any of these (known) customers has a score without stored reasons."""
        for target in models.targets:
            reasons = self._columns.get(reason_column(target))
            scores = self._columns.get(SCORE_COLUMNS[target])
            if reasons is None or scores is None:
                continue
            for c in customer_ids:
                p = self._positions[c]
                if reasons[p] is None and scores[p] is not None:
                    return True
        return False

    def records(
        self,
        customer_ids: Sequence[str],
        *,
        models: ServedModels | None = None,
        explain: bool = True,
        top_reasons: int = 3,
    ) -> list[dict[str, Any]]:
        """One record per (known) customer id: scores, tier, reasons and provenance.

        Reasons missing from the table are computed now from the stored features
        when ``explain`` and ``models`` are given (only for the scores the
        customer has), against the whole table's feature medians.
        """
        positions = [self._positions[str(c)] for c in customer_ids]
        reasons: dict[str, list[Any]] = {}
        for target in TARGETS:
            column = self._columns.get(reason_column(target))
            reasons[target] = [
                None if column is None or column[p] is None else list(column[p]) for p in positions
            ]
        if explain and models is not None and self._feature_rows is not None:
            for target in models.targets:
                scores = self._columns[SCORE_COLUMNS[target]]
                need = [
                    i
                    for i, p in enumerate(positions)
                    if reasons[target][i] is None
                    and scores[p] is not None
                    and self._feature_rows[p] >= 0
                ]
                if need:
                    rows = self._feature_rows[[positions[i] for i in need]]
                    texts = reason_texts(
                        models[target].model,
                        self.features.iloc[rows],
                        top=top_reasons,
                        reference=self.reference,
                    )
                    for i, text in zip(need, texts, strict=True):
                        reasons[target][i] = text
        out = []
        for i, p in enumerate(positions):
            record: dict[str, Any] = {"customer_id": self._ids[p], "as_of": self.as_of}
            for col in RECORD_COLUMNS:
                column = self._columns.get(col)
                record[col] = None if column is None else column[p]
            record["reasons"] = {t: reasons[t][i] for t in TARGETS}
            record["model_versions"] = {t: self._columns[f"{t}_model_version"][p] for t in TARGETS}
            record["feature_sets"] = {t: self._columns[f"{t}_feature_set"][p] for t in TARGETS}
            record["scored_at"] = self._scored_at[p]
            out.append(record)
        return out


def stale_targets(lookup: ScoreLookup, models: ServedModels) -> dict[str, tuple[str | None, str]]:
    """Targets whose stored scores came from another model version than the one served."""
    stored = lookup.model_versions()
    return {
        t: (stored.get(t), m.version)
        for t, m in models.models.items()
        if stored.get(t) != m.version
    }


def union_columns(models: ServedModels, targets: Iterable[str] | None = None) -> dict[str, str]:
    """Feature name → dtype over the given targets' feature sets."""
    return models.feature_set(None if targets is None else list(targets)).dtypes
