"""Split a training table by time: older cutoffs train, later ones validate and test.

A training table has one row per (``cutoff``, ``customer_id``); the same customer
appears at many cutoffs, so rows are never shuffled across time. The split is by
whole cutoffs:

* the latest ``test_cutoffs`` cutoffs are the test period;
* the latest ``validation_cutoffs`` cutoffs at least ``gap_days`` before the
  first test cutoff are the validation period (early stopping, calibration);
* every cutoff at least ``gap_days`` before the first validation cutoff trains.

Why the gap: a row at cutoff ``c`` is labelled with what happens in
``(c, c + horizon_days]``. With ``gap_days = horizon_days`` every training label
is fully observed by the validation cutoff, and every validation label by the
test cutoff, so nothing the model or its calibrator learns comes from the test
period's outcome window. Cutoffs inside a gap are dropped (reported in
``TimeSplit.dropped_cutoffs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

CUTOFF_LEVEL = "cutoff"


@dataclass(frozen=True)
class TimeSplit:
    """The three time periods of a training table, and the cutoffs of each."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    train_cutoffs: tuple[pd.Timestamp, ...]
    validation_cutoffs: tuple[pd.Timestamp, ...]
    test_cutoffs: tuple[pd.Timestamp, ...]
    dropped_cutoffs: tuple[pd.Timestamp, ...]
    gap_days: int

    @property
    def test_cutoff(self) -> pd.Timestamp:
        """The (last) test cutoff: the one models are compared on."""
        return self.test_cutoffs[-1]

    def describe(self) -> dict[str, object]:
        """Cutoffs and row counts per period, for logging."""

        def iso(cutoffs: tuple[pd.Timestamp, ...]) -> list[str]:
            return [c.date().isoformat() for c in cutoffs]

        return {
            "gap_days": self.gap_days,
            "train_cutoffs": iso(self.train_cutoffs),
            "validation_cutoffs": iso(self.validation_cutoffs),
            "test_cutoffs": iso(self.test_cutoffs),
            "dropped_cutoffs": iso(self.dropped_cutoffs),
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "test_rows": len(self.test),
        }


def table_cutoffs(table: pd.DataFrame) -> list[pd.Timestamp]:
    """The distinct cutoffs of a training table, oldest first."""
    if CUTOFF_LEVEL not in (table.index.names or []):
        raise ValueError(
            f"training table has no {CUTOFF_LEVEL!r} index level (index levels: "
            f"{list(table.index.names)}); build it with features.training_table.build_training_table"
        )
    values = table.index.get_level_values(CUTOFF_LEVEL)
    return sorted(pd.Timestamp(v) for v in pd.unique(values))


def _rows_at(table: pd.DataFrame, cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
    level = pd.DatetimeIndex(pd.to_datetime(table.index.get_level_values(CUTOFF_LEVEL)))
    wanted = pd.DatetimeIndex(cutoffs)
    if level.tz is None and wanted.tz is not None:
        wanted = wanted.tz_localize(None)
    elif level.tz is not None and wanted.tz is None:
        wanted = wanted.tz_localize(level.tz)
    return table[level.isin(wanted)]


def time_split(
    table: pd.DataFrame,
    *,
    validation_cutoffs: int = 1,
    test_cutoffs: int = 1,
    gap_days: int,
) -> TimeSplit:
    """Split a training table into train / validation / test periods by cutoff.

    Parameters
    ----------
    table
        Training table indexed by (``cutoff``, ``customer_id``).
    validation_cutoffs, test_cutoffs
        How many cutoffs validate and test (the latest ones).
    gap_days
        Minimum days between the last cutoff of one period and the first of the
        next; use the label ``horizon_days`` so no label leaks forward.

    Returns
    -------
    TimeSplit
        The three periods (row order within a period kept), their cutoffs and the
        cutoffs dropped inside the gaps.

    Raises
    ------
    ValueError
        When there are too few cutoffs for the periods and gaps asked for.
    """
    if validation_cutoffs < 1 or test_cutoffs < 1:
        raise ValueError(
            f"validation_cutoffs ({validation_cutoffs}) and test_cutoffs ({test_cutoffs}) "
            "must both be at least 1"
        )
    if gap_days < 0:
        raise ValueError(f"gap_days must be >= 0, got {gap_days}")
    cutoffs = table_cutoffs(table)
    gap = pd.Timedelta(days=gap_days)
    if len(cutoffs) < test_cutoffs:
        raise ValueError(f"need at least {test_cutoffs} test cutoffs, the table has {len(cutoffs)}")
    test = cutoffs[-test_cutoffs:]
    before_test = [c for c in cutoffs if c < test[0] and c + gap <= test[0]]
    if len(before_test) < validation_cutoffs + 1:
        raise ValueError(
            f"too few cutoffs: {len(cutoffs)} cutoffs ({cutoffs[0].date()} .. {cutoffs[-1].date()}), "
            f"of which {len(before_test)} lie at least gap_days={gap_days} before the first test "
            f"cutoff {test[0].date()}; need {validation_cutoffs} validation + at least 1 training "
            "cutoff. Use more cutoffs (cutoff_count), a longer history or a shorter horizon_days."
        )
    validation = before_test[-validation_cutoffs:]
    train = [c for c in before_test if c < validation[0] and c + gap <= validation[0]]
    if not train:
        raise ValueError(
            f"no training cutoff lies at least gap_days={gap_days} before the validation cutoff "
            f"{validation[0].date()} (cutoffs {[c.date().isoformat() for c in cutoffs]}); "
            "use more cutoffs (cutoff_count), a longer history or a shorter horizon_days"
        )
    used = set(train) | set(validation) | set(test)
    dropped = tuple(c for c in cutoffs if c not in used)
    return TimeSplit(
        train=_rows_at(table, train),
        validation=_rows_at(table, validation),
        test=_rows_at(table, test),
        train_cutoffs=tuple(train),
        validation_cutoffs=tuple(validation),
        test_cutoffs=tuple(test),
        dropped_cutoffs=dropped,
        gap_days=gap_days,
    )
