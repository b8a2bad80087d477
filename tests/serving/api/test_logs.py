"""A client's mistake is one log line; the service's own fault keeps its traceback."""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus

from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, ValidationError

from serving.api.logs import BENTOML_HTTP_LOGGER, ClientErrorLog
from tests.serving.api.test_service_http import AUTH


class _Body(BaseModel):
    top: int


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        BENTOML_HTTP_LOGGER, logging.ERROR, __file__, 1, "Exception on %s [%s]",
        ("/lists", "POST"), exc_info,
    )  # fmt: skip


def _validation_error() -> ValidationError:
    try:
        _Body(top="many")
    except ValidationError as exc:
        return exc
    raise AssertionError("the body validated")


def test_a_4xx_becomes_one_warning_line_without_traceback():
    for error, status in (
        (_validation_error(), 400),
        (BentoMLException("no such list", error_code=HTTPStatus.NOT_FOUND), 404),
    ):
        record = _record(error)
        assert ClientErrorLog().filter(record)
        assert record.levelno == logging.WARNING and record.exc_info is None
        text = logging.Formatter().format(record)
        assert "\n" not in text and "Traceback" not in text
        assert text.startswith(f"POST /lists answered {status}: ")


def test_a_5xx_keeps_its_traceback():
    for error in (
        RuntimeError("boom"),
        BentoMLException("broken", error_code=HTTPStatus.INTERNAL_SERVER_ERROR),
    ):
        record = _record(error)
        assert ClientErrorLog().filter(record)
        assert record.levelno == logging.ERROR and record.exc_info is not None
        assert "Traceback" in logging.Formatter().format(record)


def test_the_service_logs_a_bad_body_as_one_line(client, caplog):
    with caplog.at_level(logging.INFO, logger=BENTOML_HTTP_LOGGER):
        response = client.post("/lists", json={"kind": "at-risk", "top": "many"}, headers=AUTH)
    assert response.status_code == 400
    records = [r for r in caplog.records if r.name == BENTOML_HTTP_LOGGER]
    assert records and all(r.exc_info is None and r.levelno == logging.WARNING for r in records)
    assert "answered 400" in records[-1].getMessage()
