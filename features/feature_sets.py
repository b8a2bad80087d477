"""Versioned feature sets: a name and an ordered list of typed columns.

Training logs the feature set a model was fitted on; serving checks every frame
it scores against it, so that training and serving never disagree silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd


class FeatureSetMismatch(ValueError):
    """A frame does not have the columns (or dtypes) a feature set requires."""

    def __init__(self, feature_set: str, missing: list[str], unexpected: list[str], wrong: dict):
        self.feature_set = feature_set
        self.missing = missing
        self.unexpected = unexpected
        self.wrong_dtypes = wrong
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unexpected:
            parts.append(f"unexpected columns {unexpected}")
        if wrong:
            parts.append(
                "wrong dtypes "
                + ", ".join(f"{k}: expected {e}, got {g}" for k, (e, g) in wrong.items())
            )
        super().__init__(f"feature set {feature_set!r}: " + "; ".join(parts))


@dataclass(frozen=True)
class FeatureSet:
    """An ordered, typed list of feature columns under a versioned name.

    ``dtype`` is ``"float64"`` for numeric features and ``"category"`` for
    categoricals (strings at the boundary, encoded as pandas categoricals for
    LightGBM).
    """

    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return dict(self.columns)

    @property
    def categorical(self) -> list[str]:
        return [c for c, d in self.columns if d == "category"]

    def subset(self, available: Iterable[str], name: str | None = None) -> FeatureSet:
        """The same set restricted to the columns in ``available`` (order kept)."""
        keep = set(available)
        return FeatureSet(name or self.name, tuple(c for c in self.columns if c[0] in keep))

    def check(self, frame: pd.DataFrame, *, allow_extra: bool = True) -> None:
        """Raise :class:`FeatureSetMismatch` naming every missing or mistyped column."""
        present = set(frame.columns)
        missing = [c for c in self.names if c not in present]
        unexpected = [] if allow_extra else [c for c in frame.columns if c not in self.dtypes]
        wrong = {}
        for col, expected in self.columns:
            if col not in present:
                continue
            got = frame[col].dtype
            if expected == "category":
                ok = isinstance(got, pd.CategoricalDtype) or pd.api.types.is_string_dtype(got)
            else:
                ok = pd.api.types.is_numeric_dtype(got) and not pd.api.types.is_bool_dtype(got)
            if not ok:
                wrong[col] = (expected, str(got))
        if missing or unexpected or wrong:
            raise FeatureSetMismatch(self.name, missing, unexpected, wrong)

    def to_dict(self) -> dict:
        return {"name": self.name, "columns": [list(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSet:
        return cls(data["name"], tuple((str(c), str(d)) for c, d in data["columns"]))
