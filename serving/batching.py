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
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import anyio.to_thread
import pandas as pd


class Overloaded(RuntimeError):
    """Too many requests are waiting; retry later."""


@dataclass
class _Pending:
    key: Hashable
    frame: pd.DataFrame
    future: asyncio.Future


class FrameBatcher:
    """Queue frames, run ``predict`` on concatenations of them, hand each caller its rows.

    Parameters
    ----------
    predict
        ``(key, frame) -> frame`` with one output row per input row (in order).
        Runs in a worker thread. Requests are batched only with requests of the
        same ``key`` (e.g. the same targets).
    max_batch_rows
        Upper bound on the rows of one call (a single larger request runs alone).
    max_queued
        Requests allowed to wait before new ones get :class:`Overloaded`.
    """

    def __init__(
        self,
        predict: Callable[[Hashable, pd.DataFrame], pd.DataFrame],
        *,
        max_batch_rows: int = 20_000,
        max_queued: int = 256,
    ) -> None:
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_queued = max_queued
        self._queue: deque[_Pending] = deque()
        self._worker: asyncio.Task | None = None
        self.batches = 0
        self.rows = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, key: Hashable, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict ``frame``, possibly together with other waiting frames."""
        if len(self._queue) >= self.max_queued:
            raise Overloaded(
                f"{len(self._queue)} scoring requests are waiting (limit {self.max_queued}); "
                f"retry shortly"
            )
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
            merged = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            try:
                result = await anyio.to_thread.run_sync(self.predict, batch[0].key, merged)
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
