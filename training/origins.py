"""Rolling test origins: several time splits of one training table, newest first.

Origin 1 tests on the latest cutoff(s); origin 2 steps back by the number of
test cutoffs, and so on. Each origin is an ordinary :func:`training.split.time_split`
of the table cut at its own test period, so every origin has its own
validation and training cutoffs before it under the same gap rules, and nothing
an origin's model learns comes from its test period's outcome window.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from training.split import TimeSplit, _rows_at, table_cutoffs, time_split


class UnsupportedTargetError(ValueError):
    """The data cannot support this target (too little history, one class, no population)."""


@dataclass(frozen=True)
class Origins:
    """The time splits of the test origins (newest first) and a note when fewer than asked."""

    splits: tuple[TimeSplit, ...]
    requested: int
    note: str | None = None

    @property
    def newest(self) -> TimeSplit:
        """The latest origin: its model is the one registered."""
        return self.splits[0]

    @property
    def test_cutoffs(self) -> list[pd.Timestamp]:
        """The last test cutoff of each origin, newest first."""
        return [s.test_cutoff for s in self.splits]

    def describe(self) -> dict[str, object]:
        """Each origin's split description, for logging."""
        return {
            "requested": self.requested,
            "note": self.note,
            "origins": [s.describe() for s in self.splits],
        }


def origin_splits(
    table: pd.DataFrame,
    *,
    origins: int,
    validation_cutoffs: int = 1,
    test_cutoffs: int = 1,
    gap_days: int,
) -> Origins:
    """Up to ``origins`` time splits of ``table``, each ``test_cutoffs`` cutoffs earlier.

    Fewer origins are returned (with a note saying why) when the older ones
    would lack a validation or training cutoff; when not even the newest origin
    fits, :class:`UnsupportedTargetError` says what is missing.
    """
    if origins < 1:
        raise ValueError(f"origins must be at least 1, got {origins}")
    cutoffs = table_cutoffs(table)
    splits: list[TimeSplit] = []
    note = None
    for k in range(origins):
        end = len(cutoffs) - k * test_cutoffs
        try:
            if end < 1:
                raise ValueError(f"no cutoff is left for origin {k + 1}")
            part = table if k == 0 else _rows_at(table, cutoffs[:end])
            splits.append(
                time_split(
                    part,
                    validation_cutoffs=validation_cutoffs,
                    test_cutoffs=test_cutoffs,
                    gap_days=gap_days,
                )
            )
        except ValueError as exc:
            if not splits:
                raise UnsupportedTargetError(str(exc)) from None
            note = (
                f"{len(splits)} test origin(s) instead of {origins}: the history has "
                f"{len(cutoffs)} cutoffs, too few for an older origin with its own "
                "validation and training cutoffs"
            )
            break
    return Origins(tuple(splits), origins, note)
