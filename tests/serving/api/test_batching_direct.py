"""FrameBatcher: large requests skip the queue, model calls share one parallelism limit."""

from __future__ import annotations

import asyncio
import threading
import time

import pandas as pd
import pytest

from serving.api.batching import FrameBatcher, Overloaded


class _Recorder:
    """A predict function that records call sizes and how many calls overlapped."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self.sizes: list[int] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, key, frame: pd.DataFrame) -> pd.DataFrame:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.sizes.append(len(frame))
        try:
            time.sleep(self.hold_s)
            if (frame["x"] < 0).any():
                raise ValueError("negative x")
            return pd.DataFrame({"double": frame["x"].to_numpy() * 2})
        finally:
            with self._lock:
                self.running -= 1


def _frame(rows: int, start: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"x": [start + i for i in range(rows)]})


def test_large_requests_are_never_merged_and_get_their_own_rows():
    predict = _Recorder()

    async def main():
        batcher = FrameBatcher(predict, direct_rows=10, max_queued=50)
        frames = [_frame(10, 100.0 * i) for i in range(6)]
        results = await asyncio.gather(*(batcher.submit("k", f) for f in frames))
        return batcher, frames, results

    batcher, frames, results = asyncio.run(main())
    assert predict.sizes == [10] * 6
    assert batcher.direct_calls == 6 and batcher.batches == 0
    for frame, result in zip(frames, results, strict=True):
        assert result["double"].tolist() == [2 * x for x in frame["x"]]


def test_small_requests_still_merge_while_large_ones_go_direct():
    predict = _Recorder(hold_s=0.01)

    async def main():
        batcher = FrameBatcher(predict, direct_rows=10, max_queued=50)
        small = [batcher.submit("k", _frame(2, 10.0 * i)) for i in range(8)]
        large = [batcher.submit("k", _frame(12, 1000.0 + 100 * i)) for i in range(2)]
        await asyncio.gather(*small, *large)
        return batcher

    batcher = asyncio.run(main())
    assert sorted(predict.sizes).count(12) == 2
    small_calls = [n for n in predict.sizes if n != 12]
    assert sum(small_calls) == 16
    assert len(small_calls) < 8  # the small ones that waited went together
    assert batcher.direct_calls == 2 and batcher.rows == 40


@pytest.mark.parametrize("limit", [1, 2])
def test_model_calls_never_exceed_max_parallel(limit):
    predict = _Recorder(hold_s=0.02)

    async def main():
        batcher = FrameBatcher(predict, direct_rows=5, max_queued=50, max_parallel=limit)
        jobs = [batcher.submit("k", _frame(5)) for _ in range(6)]
        jobs += [batcher.submit("other", _frame(1)) for _ in range(3)]
        await asyncio.gather(*jobs)

    asyncio.run(main())
    assert 1 <= predict.most_running <= limit


def test_direct_calls_count_toward_the_overload_limit():
    predict = _Recorder(hold_s=0.02)

    async def main():
        batcher = FrameBatcher(predict, direct_rows=5, max_queued=2)
        return await asyncio.gather(
            *(batcher.submit("k", _frame(5)) for _ in range(4)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 2
    assert sum(isinstance(o, pd.DataFrame) for o in outcomes) == 2
    assert "limit 2" in str(next(o for o in outcomes if isinstance(o, Overloaded)))


def test_a_failing_direct_call_raises_to_its_caller_and_frees_its_place():
    predict = _Recorder()

    async def main():
        batcher = FrameBatcher(predict, direct_rows=3, max_queued=1)
        with pytest.raises(ValueError, match="negative x"):
            await batcher.submit("k", _frame(3, -10.0))
        assert batcher.queued == 0
        return await batcher.submit("k", _frame(3))

    result = asyncio.run(main())
    assert result["double"].tolist() == [0.0, 2.0, 4.0]


def test_max_parallel_must_be_positive():
    with pytest.raises(ValueError, match="max_parallel must be >= 1, got 0"):
        FrameBatcher(_Recorder(), max_parallel=0)


def test_a_custom_merge_feeds_the_batch_and_its_failure_reaches_every_caller():
    seen: list[list[float]] = []

    def predict(key, values: list[float]) -> pd.DataFrame:
        seen.append(values)
        return pd.DataFrame({"double": [2 * v for v in values]})

    def merge(parts: list[list[float]]) -> list[float]:
        if any(v < 0 for part in parts for v in part):
            raise ValueError("cannot merge a negative value")
        return [v for part in parts for v in part]

    async def main(requests):
        batcher = FrameBatcher(predict, direct_rows=100, max_queued=50, concat=merge)
        return await asyncio.gather(
            *(batcher.submit("k", r) for r in requests), return_exceptions=True
        )

    results = asyncio.run(main([[1.0, 2.0], [3.0], [4.0, 5.0]]))
    assert [r["double"].tolist() for r in results] == [[2.0, 4.0], [6.0], [8.0, 10.0]]
    assert sum(map(len, seen)) == 5 and len(seen) < 3  # the waiting ones went together
    failed = asyncio.run(main([[1.0], [-1.0], [2.0]]))
    merged_failures = [r for r in failed if isinstance(r, ValueError)]
    assert merged_failures and all("negative" in str(r) for r in merged_failures)
