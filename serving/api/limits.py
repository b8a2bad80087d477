"""Request limits at the edge of the service: body size (413) and declared content types (415).

An ASGI middleware, so the limits hold before BentoML or an endpoint reads a
byte: a ``Content-Length`` over the limit is refused unread, and a body without
one (chunked) is counted as it streams in and refused as soon as it passes the
limit, never buffered whole first. A POST to an API route with a content type
the OpenAPI document does not declare for it gets 415 naming the ones it takes
(multipart and form bodies among them, which BentoML would otherwise try to
parse).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from serving.scoring.rows import ARROW_STREAM

JSON = "application/json"

#: What each POST route of the service takes (an absent content type is read as JSON).
ROUTE_MEDIA_TYPES: dict[str, frozenset[str]] = {
    "/scores": frozenset({JSON}),
    "/score_rows": frozenset({JSON, ARROW_STREAM}),
    "/models": frozenset({JSON}),
    "/lists": frozenset({JSON}),
    "/lists/saved": frozenset({JSON}),
    "/lists/measurement": frozenset({JSON}),
    "/drift": frozenset({JSON}),
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def media_type(scope: dict) -> str:
    """The request's ``Content-Type`` without parameters, lower case ("" when absent)."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


async def send_json(
    send: Any, status: int, body: Mapping[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer ``status`` with a JSON ``body`` straight through ASGI (no framework needed)."""
    data = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode("ascii")),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class RequestLimitsMiddleware:
    """413 for a body over ``max_body_bytes``, 415 for an undeclared content type.

    Parameters
    ----------
    app
        The wrapped ASGI application.
    max_body_bytes
        Largest body accepted; read from ``ServingConfig.from_env()`` when ``None``.
    media_types
        Route → accepted media types (:data:`ROUTE_MEDIA_TYPES` by default).
    """

    def __init__(
        self,
        app: Any,
        max_body_bytes: int | None = None,
        media_types: Mapping[str, frozenset[str]] = ROUTE_MEDIA_TYPES,
    ) -> None:
        if max_body_bytes is None:
            from serving.config import ServingConfig

            max_body_bytes = ServingConfig.from_env().max_body_bytes
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.media_types = dict(media_types)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        allowed = self.media_types.get(scope.get("path", ""))
        kind = media_type(scope)
        if allowed is not None and kind and kind not in allowed:
            await send_json(
                send,
                415,
                {"error": f"Content-Type {kind!r} is not accepted here: send {sorted(allowed)}"},
            )
            return
        length = _content_length(scope)
        if length == -1:
            await send_json(send, 400, {"error": "Content-Length is not a whole number"})
            return
        if length is not None and length > self.max_body_bytes:
            await self._too_large(send, length)
            return
        chunks = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                await self._too_large(send, total, partial=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, send: Any, size: int, *, partial: bool = False) -> None:
        said = f"more than {size - 1}" if partial else str(size)
        await send_json(
            send,
            413,
            {
                "error": f"request body of {said} bytes is over the limit of "
                f"{self.max_body_bytes} bytes: split it into smaller requests",
                "max_body_bytes": self.max_body_bytes,
            },
            headers=[(b"connection", b"close")],
        )


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that hands the app the body read already, then the client's own messages."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
