"""The retention console: static files served by the BentoML service at ``/console``.

The page (``serving/api/console/index.html``, ``console.js``, ``console.css``) holds
no data, so it loads without an API key; every data call it makes sends the key
the user entered (kept in the browser's ``sessionStorage``, never in a URL) in an
``Authorization: Bearer`` header to the same service. Nothing here runs at
import: :func:`mount_console` mounts the files on a service class and
:func:`console_public_paths` names the paths the API-key middleware lets through.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

#: Where the console is mounted on the service.
CONSOLE_PATH = "/console"
#: The console's files and their media types (only these are served).
CONSOLE_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
#: Headers on every console file: no inline script, no foreign origin, no framing.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def console_directory() -> Path:
    """The folder holding the console's files (inside the installed ``serving.api`` package)."""
    folder = Path(str(resources.files("serving.api") / "console"))
    missing = [name for name in CONSOLE_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"retention console files {missing} are missing from {folder}: reinstall winback "
            f"(the wheel ships serving/api/console/)"
        )
    return folder


def console_public_paths(prefix: str = CONSOLE_PATH) -> frozenset[str]:
    """The console paths served without an API key (the page and its assets, no data)."""
    prefix = prefix.rstrip("/")
    return frozenset({prefix, f"{prefix}/", *(f"{prefix}/{name}" for name in CONSOLE_FILES)})


def console_app(folder: Path | None = None) -> Any:
    """A Starlette app serving exactly the console files, with :data:`SECURITY_HEADERS`.

    ``/`` is ``index.html``; any other path is 404 (no directory listing, no
    other file of the package).
    """
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    folder = console_directory() if folder is None else Path(folder)

    def serve(name: str):
        async def endpoint(request: Any) -> FileResponse:
            return FileResponse(
                folder / name, media_type=CONSOLE_FILES[name], headers=SECURITY_HEADERS
            )

        return endpoint

    routes = [Route("/", serve("index.html"), methods=["GET", "HEAD"])]
    routes += [Route(f"/{name}", serve(name), methods=["GET", "HEAD"]) for name in CONSOLE_FILES]
    return Starlette(routes=routes)


def mount_console(service: Any, prefix: str = CONSOLE_PATH) -> None:
    """Mount the console on a BentoML service class at ``prefix`` (same origin as the API)."""
    service.mount_asgi_app(console_app(), path=prefix, name="console")
