"""A leakage check a user runs on their own shop: data after a cutoff never moves a feature.

For each cutoff the features are built three times: from the shop as it is,
from the shop cut at the cutoff (every row after the cutoff day removed), and
from the shop with its later rows scrambled (each column of the later rows
shuffled and the rows added a second time, with customers reassigned). A
point-in-time feature is identical in all three; any other is leaking.
``winback features check`` runs it over the ``[[features.custom]]`` entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.definitions import FeatureDefinition
from features.feature_sets import FeatureSet
from features.inputs.schema import SCHEMAS, ShopTables


@dataclass(frozen=True)
class LeakageResult:
    """One feature at one cutoff: whether later data moved it, and how many values differed."""

    feature: str
    cutoff: date
    customers: int
    changed: int

    @property
    def ok(self) -> bool:
        return self.changed == 0


def _after(frame: pd.DataFrame, table: str, cutoff: date) -> np.ndarray:
    """Rows of ``table`` later than the cutoff day (its time column at or after the next day)."""
    start = pd.Timestamp(cutoff, tz="UTC") + pd.Timedelta(days=1)
    return (frame[SCHEMAS[table].time_column] >= start).to_numpy()


def truncated(tables: ShopTables, cutoff: date) -> ShopTables:
    """The shop without any row after the cutoff day (static ``customers`` kept)."""
    changes = {}
    for name, frame in tables.present().items():
        if SCHEMAS[name].time_column is not None and name != "customers":
            changes[name] = frame[~_after(frame, name, cutoff)]
    return dataclasses.replace(tables, **changes)


def scrambled(tables: ShopTables, cutoff: date, seed: int = 0) -> ShopTables:
    """The shop with its later rows' columns shuffled and added once more (other customers)."""
    rng = np.random.default_rng(seed)
    changes = {}
    for name, frame in tables.present().items():
        if SCHEMAS[name].time_column is None or name == "customers":
            continue
        late = frame[_after(frame, name, cutoff)]
        if late.empty:
            continue
        shuffled = late.copy()
        for column in shuffled.columns:
            shuffled[column] = shuffled[column].to_numpy()[rng.permutation(len(late))]
        changes[name] = pd.concat([frame[~_after(frame, name, cutoff)], shuffled, late])
    return dataclasses.replace(tables, **changes)


def _changed(left: pd.Series, right: pd.Series) -> int:
    both_missing = left.isna() & right.isna()
    close = np.isclose(left.fillna(0), right.fillna(0), rtol=1e-9, atol=1e-9)
    return int((~(both_missing | (close & left.notna() & right.notna()))).sum())


def check_leakage(
    tables: ShopTables,
    definitions: Sequence[FeatureDefinition],
    cutoffs: Sequence[date],
    *,
    seed: int = 0,
) -> list[LeakageResult]:
    """Compare each feature at each cutoff across the real, cut and scrambled shops.

    ``definitions`` are user-defined (or other windowed) features; features the
    shop cannot compute are left out. Returns one :class:`LeakageResult` per
    feature and cutoff (``changed`` counts customers whose value differed in
    either comparison).
    """
    from features.build import build_features

    feature_set = FeatureSet("leakage_check", (), ()).with_custom(definitions)
    results = []
    for cutoff in cutoffs:
        frames = [
            build_features(shop, cutoff, feature_set=feature_set)
            for shop in (tables, truncated(tables, cutoff), scrambled(tables, cutoff, seed))
        ]
        real = frames[0]
        for definition in definitions:
            column = definition.name
            if column not in real.columns:
                continue
            changed = 0
            for other in frames[1:]:
                changed += real.index.symmetric_difference(other.index).size
                changed += _changed(real[column], other[column].reindex(real.index))
            results.append(LeakageResult(column, cutoff, len(real), changed))
    return results
