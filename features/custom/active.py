"""The user-defined features in force in this context.

Kept apart from ``features.custom.spec`` (which parses and checks entries with
pydantic and SQLGlot) so a feature build looks them up without importing either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from features.custom.windowed import WindowedFeature

_ACTIVE: ContextVar[tuple[WindowedFeature, ...]] = ContextVar("winback_custom", default=())


def active_custom_features() -> tuple[WindowedFeature, ...]:
    """The user-defined features in force (:func:`use_custom_features`); none by default."""
    return _ACTIVE.get()


@contextlib.contextmanager
def use_custom_features(definitions: Sequence[WindowedFeature]) -> Iterator[None]:
    """Within the block, feature sets and builds include ``definitions``.

    The command line wraps a command in it with the entries of ``winback.toml``,
    so training, ``features build`` and the demo pick them up without each
    stage reading the file.
    """
    token = _ACTIVE.set(tuple(definitions))
    try:
        yield
    finally:
        _ACTIVE.reset(token)
