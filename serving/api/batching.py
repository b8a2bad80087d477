"""Adaptive micro-batching of already-validated feature frames.

Why not BentoML's ``@bentoml.api(batchable=True)``: its dispatcher merges the
raw request bodies *before* our handler runs, so one client's bad column would
fail every request in the merged batch (or need a 500); and calling a batchable
method on ``self`` bypasses the dispatcher. Here each request is validated on its
own (a 4xx naming its columns), then the valid frames queue up: while one model
call runs, the frames that arrive wait and go together into the next call. At
low load a request is scored at once (no added latency); under load batches grow
up to ``max_batch_rows``. When more than ``max_queued`` requests wait, new ones
are refused with :class:`Overloaded` (the service answers 503; clients retry).

A request of ``direct_rows`` rows or more skips the queue: batching cannot make
it cheaper (LightGBM's cost is per row), while waiting behind a merged batch
would add that batch's whole time to its latency. Direct calls and batches share
one limit of ``max_parallel`` model calls at a time (one per core), and direct
calls count against ``max_queued`` too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import pandas as pd


class Overloaded(RuntimeError):
    """Too many requests are waiting; retry later."""


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The frames' rows one after the other, numbered from 0 (the default merge)."""
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


@dataclass
class _Pending:
    key: Hashable
    frame: Any
    future: asyncio.Future


class FrameBatcher:
    """Queue frames, run ``predict`` on concatenations of them, hand each caller its rows.

    Parameters
    ----------
    predict
        ``(key, frame) -> frame`` with one output row per input row (in order).
        The input is whatever callers submit (anything with a length that
        ``concat`` merges: a DataFrame by default, the service's typed
        ``FeatureColumns``); the output is a DataFrame.
        Runs in a worker thread. Requests are batched only with requests of the
        same ``key`` (e.g. the same targets).
    max_batch_rows
        Upper bound on the rows of one call (a single larger request runs alone).
    max_queued
        Requests allowed to wait (or run directly) before new ones get :class:`Overloaded`.
    direct_rows
        Requests of at least this many rows are predicted at once, not queued.
    max_parallel
        Model calls running at the same time (worker threads; LightGBM releases
        the GIL, so two calls use two cores).
    concat
        Merges the inputs of waiting requests into one (in order).
    """

    def __init__(
        self,
        predict: Callable[[Hashable, Any], pd.DataFrame],
        *,
        max_batch_rows: int = 20_000,
        max_queued: int = 256,
        direct_rows: int = 256,
        max_parallel: int = 2,
        concat: Callable[[Sequence[Any]], Any] = concat_frames,
    ) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_queued = max_queued
        self.direct_rows = direct_rows
        self.max_parallel = max_parallel
        self.concat = concat
        self._queue: deque[_Pending] = deque()
        self._worker: asyncio.Task | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._direct = 0
        self.batches = 0
        self.rows = 0
        self.direct_calls = 0

    @property
    def queued(self) -> int:
        """Requests waiting in the queue or running directly."""
        return len(self._queue) + self._direct

    def _check_room(self) -> None:
        if self.queued >= self.max_queued:
            raise Overloaded(
                f"{self.queued} scoring requests are waiting (limit {self.max_queued}); "
                f"retry shortly"
            )

    def _calls(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created in the event loop that uses it
            self._limiter = anyio.CapacityLimiter(self.max_parallel)
        return self._limiter

    async def submit(self, key: Hashable, frame: Any) -> pd.DataFrame:
        """Predict ``frame``: at once if it is large, else possibly with other waiting frames."""
        self._check_room()
        if len(frame) >= self.direct_rows:
            self._direct += 1
            try:
                result = await anyio.to_thread.run_sync(
                    self.predict, key, frame, limiter=self._calls()
                )
            finally:
                self._direct -= 1
            self.direct_calls += 1
            self.rows += len(frame)
            return result
        loop = asyncio.get_running_loop()
        pending = _Pending(key, frame, loop.create_future())
        self._queue.append(pending)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await pending.future

    def _take_batch(self) -> list[_Pending]:
        first = self._queue.popleft()
        batch, rows = [first], len(first.frame)
        kept: deque[_Pending] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.key == first.key and rows + len(item.frame) <= self.max_batch_rows:
                batch.append(item)
                rows += len(item.frame)
            else:
                kept.append(item)
        self._queue.extendleft(reversed(kept))
        return batch

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take_batch()
            frames = [p.frame for p in batch]
            try:
                merged = self.concat(frames)
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            try:
                result = await anyio.to_thread.run_sync(
                    self.predict, batch[0].key, merged, limiter=self._calls()
                )
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self.batches += 1
            self.rows += len(merged)
            start = 0
            for p in batch:
                end = start + len(p.frame)
                if not p.future.done():
                    p.future.set_result(result.iloc[start:end].reset_index(drop=True))
                start = end
