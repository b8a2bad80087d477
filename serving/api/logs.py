"""One log line for a client's mistake, the full traceback for ours.

BentoML logs every exception an endpoint answers with an error, a 400 for a body
that fails validation included, as ``ERROR Exception on /path [POST]`` with the
whole traceback: a fuzzer or a misconfigured CRM client then fills the log with
tracebacks that say nothing about the service. :class:`ClientErrorLog` turns
those records into one WARNING line naming the status, path and error, and lets
every other record (a 5xx: a fault of the service) through with its traceback.
"""

from __future__ import annotations

import logging

#: The logger BentoML reports endpoint exceptions on (``log_exception``).
BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


def client_error_status(error: BaseException | None) -> int | None:
    """The 4xx status BentoML answers ``error`` with, or None for a server error."""
    if error is None:
        return None
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - pydantic is a dependency
        ValidationError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(error, ValidationError):
        return 400
    code = getattr(error, "error_code", None)
    status = getattr(code, "value", None)
    if isinstance(status, int) and 400 <= status < 500:
        return status
    return None


class ClientErrorLog(logging.Filter):
    """Rewrite BentoML's traceback of a 4xx answer as one WARNING line; pass the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        status = client_error_status(error)
        if status is None:
            return True
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        record.msg = "%s %s answered %d: %s"
        path, method = (
            (record.args or ("?", "?"))[:2] if isinstance(record.args, tuple) else ("?", "?")
        )
        record.args = (method, path, status, first)
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
        return True


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorLog` on BentoML's endpoint logger (once per process)."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ClientErrorLog) for f in logger.filters):
        logger.addFilter(ClientErrorLog())
