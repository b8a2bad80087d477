"""What every endpoint reads: the configuration, the models, the score table, the row batcher."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio.to_thread
import pandas as pd

from features.erasure import ErasureRegistry
from serving.api.batching import FrameBatcher
from serving.config import ServingConfig
from serving.scoring.lookup import ScoreLookup, stale_targets
from serving.scoring.models import ServedModels, load_served_models
from serving.scoring.predict import FeatureColumns, predict_scores

logger = logging.getLogger("winback.serving.service")


@dataclass
class ServingState:
    """Everything the endpoints read: config, models, the score table, the row batcher."""

    config: ServingConfig
    models: ServedModels
    lookup: ScoreLookup
    batcher: FrameBatcher
    lists_running: int = 0
    erasure_mark: tuple[int, int] | None = None
    erasure_log: str | None = None

    def erasure_log_mark(self) -> tuple[int, int] | None:
        """``(mtime, size)`` of the erasure log under the service's home (None: no erasure yet)."""
        if self.erasure_log is None:  # resolved once: a lookup then costs one stat
            log = ErasureRegistry.default().log_path
            self.erasure_log = str(log if log.is_absolute() else self.config.home / log)
        try:
            stat = os.stat(self.erasure_log)
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def refresh_after_erasure(self) -> None:
        """Reload the score table when ``winback forget`` has run since it was loaded.

        A stat per request (microseconds); the reload itself runs off the event
        loop. ``winback forget`` rewrites the stores before it logs, so the
        reloaded table no longer holds the forgotten customers.
        """
        mark = self.erasure_log_mark()
        if mark == self.erasure_mark:
            return
        self.lookup = await anyio.to_thread.run_sync(
            lambda: ScoreLookup.load(
                self.config.score_path, with_features=self.config.explain_on_request
            )
        )
        self.erasure_mark = mark
        logger.info("score table reloaded after an erasure (%s rows)", self.lookup.rows)

    @classmethod
    def load(cls, config: ServingConfig, models: ServedModels | None = None) -> ServingState:
        """Load models and the newest score table; raise ``ServingSetupError`` if missing."""
        models = models if models is not None else load_served_models(config)
        lookup = ScoreLookup.load(config.score_path, with_features=config.explain_on_request)
        stale = stale_targets(lookup, models)
        for target, (stored, served) in stale.items():
            logger.warning(
                "score table %s has %s scores from model version %s but version %s is served: "
                "rerun `winback score --as-of %s` to refresh it",
                lookup.as_of,
                target,
                stored,
                served,
                lookup.as_of,
            )

        pool = ThreadPoolExecutor(
            max_workers=config.max_parallel_predictions, thread_name_prefix="winback-predict"
        )

        def predict(key: tuple[str, ...], columns: FeatureColumns) -> pd.DataFrame:
            return predict_scores(
                models,
                columns,
                key,
                num_threads=config.predict_threads,
                pool=pool,
                row_chunks=config.max_parallel_predictions,
            )

        batcher = FrameBatcher(
            predict,
            max_batch_rows=config.max_batch_rows,
            max_queued=config.max_queued_requests,
            direct_rows=config.direct_rows,
            max_parallel=config.max_parallel_predictions,
            concat=FeatureColumns.concat,
        )
        state = cls(config=config, models=models, lookup=lookup, batcher=batcher)
        state.erasure_mark = state.erasure_log_mark()
        return state
