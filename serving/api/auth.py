"""API-key authentication for the service, as a plain ASGI middleware.

Every HTTP path except the health probes needs a key, sent either as
``Authorization: Bearer <key>`` or as ``X-API-Key: <key>``. Keys come from the
``WINBACK_API_KEYS`` environment variable (comma-separated) and/or a key file
(one key per line). Keys are compared in constant time against every configured
key, so the answer time does not reveal how much of a key was right.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from serving.config import HEALTH_PATHS, ServingConfig

logger = logging.getLogger("winback.serving.auth")

UNAUTHORIZED_MESSAGE = (
    "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
)


class ApiKeysMissing(RuntimeError):
    """No API key is configured, so the service would accept nobody."""


def read_key_file(path: Path) -> list[str]:
    """The keys in a key file: one per line, blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ApiKeysMissing(
            f"API key file {str(path)!r} does not exist: create it with one key per line "
            f"or unset WINBACK_API_KEY_FILE"
        ) from None
    keys = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            keys.append(line)
    return keys


def load_api_keys(
    config: ServingConfig | None = None, environ: Mapping[str, str] | None = None
) -> frozenset[str]:
    """The accepted keys: the env var named by ``config.api_keys_env`` plus the key file.

    Raises
    ------
    ApiKeysMissing
        When no key is configured at all (the service refuses to start open).
    """
    config = config if config is not None else ServingConfig.from_env(environ)
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get(config.api_keys_env, "").split(",") if k.strip()]
    if config.api_key_file is not None:
        keys.extend(read_key_file(config.api_key_file))
    if not keys:
        raise ApiKeysMissing(
            f"no API key configured: set {config.api_keys_env}='key1,key2' or "
            f"WINBACK_API_KEY_FILE=/path/to/keys (one key per line) before starting the service"
        )
    return frozenset(keys)


def key_is_valid(candidate: str, keys: Iterable[bytes]) -> bool:
    """Whether ``candidate`` equals one of ``keys``, comparing against all in constant time."""
    given = candidate.encode("utf-8")
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return ok


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key a request presents (Bearer token first, then ``X-API-Key``), if any."""
    bearer = api_key = None
    for name, value in headers:
        lname = name.lower()
        if lname == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
        elif lname == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return bearer if bearer is not None else api_key


class ApiKeyMiddleware:
    """ASGI middleware answering 401 (JSON) unless a valid API key is presented.

    Parameters
    ----------
    app
        The wrapped ASGI application.
    keys
        Accepted keys; read with :func:`load_api_keys` when ``None``.
    exempt_paths
        Paths served without a key (health probes by default).
    """

    def __init__(
        self,
        app: Any,
        keys: Iterable[str] | None = None,
        exempt_paths: Iterable[str] = HEALTH_PATHS,
    ) -> None:
        self.app = app
        self._keys = tuple(k.encode("utf-8") for k in (load_api_keys() if keys is None else keys))
        if not self._keys:
            raise ApiKeysMissing("ApiKeyMiddleware needs at least one key")
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope.get("headers", []))
        if key is not None and key_is_valid(key, self._keys):
            await self.app(scope, receive, send)
            return
        logger.info(
            "rejected %s %s: %s API key",
            scope.get("method", ""),
            scope.get("path", ""),
            "missing" if key is None else "invalid",
        )
        body = json.dumps({"error": UNAUTHORIZED_MESSAGE}).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"www-authenticate", b'Bearer realm="winback"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
