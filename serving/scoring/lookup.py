"""The newest score table looked up by customer id, read through files every worker shares."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.config import SCORE_COLUMNS, TARGETS
from serving.scoring import store
from serving.scoring.lookup_files import (
    BatchedRows,
    IdIndex,
    aligned_features,
    arrow_scores,
    feature_reference_of,
    has_lookup_files,
    open_lookup_files,
)
from serving.scoring.models import ServedModels, ServingSetupError
from serving.scoring.predict import FeatureColumns
from serving.scoring.reasons import feature_reference, reason_column, reason_texts
from serving.scoring.record_file import RECORD_COLUMNS, RecordFile, has_record_file

logger = logging.getLogger("winback.serving.service")


def _plain(value: Any) -> Any:
    """A JSON-ready Python value (NaN → None; what Arrow's ``to_pylist`` gives otherwise)."""
    if isinstance(value, float) and value != value:  # NaN only
        return None
    return value


#: Columns of the score file a by-id record reads.
_WANTED = (
    *RECORD_COLUMNS,
    *(reason_column(t) for t in TARGETS),
    *(f"{t}_model_version" for t in TARGETS),
    *(f"{t}_feature_set" for t in TARGETS),
    "scored_at",
)


class ScoreLookup:
    """The newest score table, looked up by customer id without holding it in memory.

    Reads the version's lookup files (:mod:`serving.scoring.lookup_files`): a
    binary search in the sorted id index, then the one record batch holding the
    customer. Every worker of the service reads the same files through the OS
    page cache, so a worker's memory does not grow with the customer base. A
    version without lookup files (written by an earlier winback) is read into
    memory instead (:meth:`from_frames`), with a warning.
    """

    def __init__(
        self,
        as_of: dt.date,
        index: IdIndex,
        scores: BatchedRows,
        features: BatchedRows | None = None,
        reference: dict[str, float] | None = None,
    ) -> None:
        self.as_of = as_of
        self.index = index
        self.scores = scores
        self.features = features
        #: Feature medians reasons compare against (None without features).
        self.reference = reference
        #: The shop's do-not-contact customers stored with this version (lists leave them out).
        self.suppressions: pd.DataFrame | None = None
        #: Each customer's stored record as JSON (None for versions written without it).
        self.record_file: RecordFile | None = None
        self._score_names = frozenset(scores.schema.names)
        self._columns = [c for c in _WANTED if c in self._score_names]
        self._versions = self._first_row_versions()

    @classmethod
    def from_frames(
        cls, as_of: dt.date, table: pd.DataFrame, features: pd.DataFrame | None = None
    ) -> ScoreLookup:
        """A lookup of a score table held in memory (indexed by ``customer_id``)."""
        scores = table.reset_index()
        index, order = IdIndex.from_ids(scores["customer_id"])
        feature_rows, reference = None, None
        if features is not None:
            feature_rows = BatchedRows(
                table=aligned_features(features, scores["customer_id"], order)
            )
            reference = feature_reference(features)
        rows = BatchedRows(table=arrow_scores(scores, order))
        return cls(as_of, index, rows, feature_rows, reference)

    @classmethod
    def load(cls, score_dir: Path, *, with_features: bool = True) -> ScoreLookup:
        """Open the newest score table (and its features) of ``score_dir``.

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
        folder = store.scores_path(score_dir, as_of).parent
        if with_features and not (folder / store.FEATURES_FILE).exists():
            store.read_features(score_dir, as_of)  # raises, naming the missing file
        if (
            has_lookup_files(folder)
            and store.scores_path(score_dir, as_of).name == store.SCORES_FILE
        ):
            index, scores, features = open_lookup_files(folder, with_features=with_features)
            reference = feature_reference_of(features) if features is not None else None
            lookup = cls(as_of, index, scores, features, reference)
            if has_record_file(folder):
                lookup.record_file = RecordFile(folder)
        else:
            logger.warning(
                "score table %s has no lookup files: it is read into this worker's memory; "
                "rerun `winback score --as-of %s` to write them",
                as_of,
                as_of,
            )
            table, features = store.read_version(score_dir, as_of)  # one version, never mixed
            table["customer_id"] = table["customer_id"].astype("string")
            kept = features if with_features else None
            lookup = cls.from_frames(as_of, table.set_index("customer_id"), kept)
        lookup.suppressions = store.read_suppressions(score_dir, as_of)
        return lookup

    @property
    def rows(self) -> int:
        """Customers in the score table."""
        return len(self.index)

    def head_ids(self, n: int) -> list[str]:
        """The first ``n`` customer ids (in id order): examples for the API document."""
        return self.index.head(n)

    def _first_row_versions(self) -> dict[str, str | None]:
        if not self.rows:
            return {t: None for t in TARGETS}
        names = [
            c for c in (f"{t}_model_version" for t in TARGETS) if c in self.scores.schema.names
        ]
        row = self.scores.take(np.array([0]), names).to_pylist()[0] if names else {}
        return {t: row.get(f"{t}_model_version") for t in TARGETS}

    def model_versions(self) -> dict[str, str | None]:
        """The model versions the stored scores were computed with."""
        return dict(self._versions)

    def find(self, customer_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Split ``customer_ids`` into known and unknown ids (duplicates dropped, order kept)."""
        ids = list(dict.fromkeys(str(c) for c in customer_ids))
        positions = self.index.positions(ids)
        found = [c for c, p in zip(ids, positions, strict=True) if p >= 0]
        unknown = [c for c, p in zip(ids, positions, strict=True) if p < 0]
        return found, unknown

    def _known_positions(self, customer_ids: Sequence[str]) -> np.ndarray:
        """Row positions of known customers; KeyError naming the unknown ones."""
        positions = self.index.positions([str(c) for c in customer_ids])
        if (positions < 0).any():
            unknown = [c for c, p in zip(customer_ids, positions, strict=True) if p < 0]
            raise KeyError(f"customer ids not in the score table of {self.as_of}: {unknown[:5]}")
        return positions

    def _rows(self, customer_ids: Sequence[str], columns: Sequence[str]) -> list[dict[str, Any]]:
        """The stored values of ``columns`` for known customers, in their order."""
        positions = self._known_positions(customer_ids)
        present = [c for c in columns if c in self._score_names]
        return self.scores.take(positions, present).to_pylist()

    def stored_json(self, customer_ids: Sequence[str]) -> list[bytes] | None:
        """Known customers' stored records as JSON bytes (reasons as stored), in their order.

        None when this version has no record file: :meth:`records` reads the
        Arrow rows instead.
        """
        if self.record_file is None:
            return None
        positions = self._known_positions(customer_ids)
        return [self.record_file.get(p) for p in positions.tolist()]

    @staticmethod
    def missing_reasons(
        records: Sequence[dict[str, Any]], models: ServedModels
    ) -> dict[str, list[int]]:
        """Per served target, the positions of ``records`` with a score but no stored reasons."""
        out: dict[str, list[int]] = {}
        for target in models.targets:
            need = [
                i
                for i, record in enumerate(records)
                if record["reasons"][target] is None and record[SCORE_COLUMNS[target]] is not None
            ]
            if need:
                out[target] = need
        return out

    def _explain(
        self, customer_ids: Sequence[str], model: Any, top_reasons: int
    ) -> list[list[str]]:
        """Reasons of ``model`` for these customers' stored features, against the table's medians."""
        assert self.features is not None
        positions = self.index.positions([str(c) for c in customer_ids])
        feature_set = model.feature_set_
        table = self.features.take(positions, feature_set.names)
        columns = FeatureColumns.from_arrays(feature_set, _arrays(table, feature_set.columns))
        return reason_texts(model, columns, top=top_reasons, reference=self.reference)

    def reasons(
        self,
        customer_ids: Sequence[str],
        target: str,
        models: ServedModels,
        *,
        top_reasons: int = 3,
    ) -> list[list[str]]:
        """``target``'s reasons for known customers: stored ones, else computed now.

        Empty for a customer without a ``target`` score or without stored
        features. What a list built by the service shows for every row.
        """
        rows = self._rows(customer_ids, [reason_column(target), SCORE_COLUMNS[target]])
        out: list[list[str]] = []
        todo: list[int] = []
        for i, row in enumerate(rows):
            stored = row.get(reason_column(target))
            if stored is not None:
                out.append(list(stored))
                continue
            out.append([])
            score = _plain(row.get(SCORE_COLUMNS[target]))
            if self.features is not None and score is not None and target in models.models:
                todo.append(i)
        if todo:
            chosen = [customer_ids[i] for i in todo]
            texts = self._explain(chosen, models[target].model, top_reasons)
            for i, text in zip(todo, texts, strict=True):
                out[i] = text
        return out

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
        when ``explain`` and ``models`` are given (:meth:`explain_records`).
        """
        ids = [str(c) for c in customer_ids]
        out = []
        for customer_id, row in zip(ids, self._rows(ids, self._columns), strict=True):
            record: dict[str, Any] = {"customer_id": customer_id, "as_of": self.as_of}
            for col in RECORD_COLUMNS:
                record[col] = _plain(row.get(col))
            record["reasons"] = {t: _listed(row.get(reason_column(t))) for t in TARGETS}
            record["model_versions"] = {t: row.get(f"{t}_model_version") for t in TARGETS}
            record["feature_sets"] = {t: row.get(f"{t}_feature_set") for t in TARGETS}
            record["scored_at"] = row.get("scored_at")
            out.append(record)
        if explain and models is not None:
            self.explain_records(out, models, top_reasons=top_reasons)
        return out

    def explain_records(
        self, records: list[dict[str, Any]], models: ServedModels, *, top_reasons: int = 3
    ) -> None:
        """Fill in, in place, the reasons :meth:`records` lacks, computed from the stored features.

        Only for the scores each customer has, against the whole table's
        feature medians; nothing without stored features.
        """
        if self.features is None:
            return
        for target, need in self.missing_reasons(records, models).items():
            chosen = [records[i]["customer_id"] for i in need]
            texts = self._explain(chosen, models[target].model, top_reasons)
            for i, text in zip(need, texts, strict=True):
                records[i]["reasons"][target] = text

    def frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The score table indexed by ``customer_id``, read now (for a list build).

        ``columns``: only these (those the table has); all by default. Costs
        their size for as long as the caller holds it: what a list needs, never
        kept by the lookup.
        """
        names = None
        if columns is not None:
            present = set(self.scores.schema.names)
            names = ["customer_id", *(c for c in columns if c in present and c != "customer_id")]
        table = _plain_strings(self.scores.read_all(names))
        frame = table.to_pandas()
        frame["customer_id"] = frame["customer_id"].astype("string")
        return frame.set_index("customer_id")

    def feature_frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame | None:
        """Stored features indexed by ``customer_id``, read now (None without features).

        ``columns``: only these (those the file has); all by default.
        """
        if self.features is None:
            return None
        names = None
        if columns is not None:
            present = set(self.features.schema.names)
            names = [c for c in columns if c in present]
        frame = self.features.read_all(names).to_pandas()
        ids = self.scores.read_all(["customer_id"]).column(0).to_numpy(zero_copy_only=False)
        frame.index = pd.Index(ids, dtype="string", name="customer_id")
        return frame

    def feature_example(self) -> dict[str, Any]:
        """The first stored customer's feature values (JSON-ready; empty without features)."""
        if self.features is None or not self.rows:
            return {}
        return {k: _plain(v) for k, v in self.features.take(np.array([0])).to_pylist()[0].items()}


def _listed(value: Any) -> list[str] | None:
    return None if value is None else list(value)


_FLOAT64 = pa.float64().id
_STRINGS = frozenset({pa.string().id, pa.large_string().id})


def _arrays(table: pa.Table, columns: Iterable[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The feature columns of a few rows as NumPy: float64 (null as NaN) or str/None objects.

    Straight from Arrow (a pandas frame in between cost most of the time of
    explaining one customer on request), and the float64 columns of one chunk
    in one conversion: ~25 us for 60 columns of one row, where a conversion
    per column took ~100 us.
    """
    kinds = dict(columns)
    out: dict[str, np.ndarray] = {}
    floats: list[tuple[str, pa.Array]] = []
    for name, column, type_ in zip(
        table.column_names, table.columns, table.schema.types, strict=True
    ):
        kind = kinds.get(name)
        if kind is None:
            continue
        if kind == "category":
            text = column if type_.id in _STRINGS else column.cast(pa.string())
            out[name] = np.array(text.to_pylist(), dtype=object)
        elif type_.id == _FLOAT64 and column.num_chunks == 1:
            floats.append((name, column.chunk(0)))
        else:
            out[name] = column.cast(pa.float64()).to_numpy()
    if floats:
        values = pa.concat_arrays([array for _, array in floats]).to_numpy(zero_copy_only=False)
        rows = table.num_rows
        for j, (name, _) in enumerate(floats):
            out[name] = values[j * rows : (j + 1) * rows]
    return out


def _plain_strings(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded columns decoded to plain strings (as pandas had them)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


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
