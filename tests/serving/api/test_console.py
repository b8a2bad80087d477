"""The retention console through HTTP (in-process ASGI client): page and assets, auth."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from serving.api.console import (
    CONSOLE_FILES,
    SECURITY_HEADERS,
    console_app,
    console_directory,
    console_public_paths,
)
from tests.serving.api import test_service_http as shared

# the served working directory (three champion models and a score table) of test_service_http
AUTH = shared.AUTH


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name in ("src", "href", "action"):
            if values.get(name):
                self.urls.append(values[name])
        if tag == "script" and not values.get("src"):
            self.inline_scripts += 1
        if any(name.startswith("on") for name in values):
            self.inline_scripts += 1


def test_public_paths_are_exactly_the_page_and_its_assets() -> None:
    assert console_public_paths() == {
        "/console",
        "/console/",
        "/console/index.html",
        "/console/console.js",
        "/console/console.css",
    }
    assert console_public_paths("/ui/") == {"/ui", "/ui/", *(f"/ui/{n}" for n in CONSOLE_FILES)}


def test_console_files_ship_inside_the_serving_package() -> None:
    folder = console_directory()
    assert folder.parts[-3:] == ("serving", "api", "console")
    for name in CONSOLE_FILES:
        assert (folder / name).stat().st_size > 0


def test_missing_console_files_are_named(tmp_path) -> None:
    (tmp_path / "index.html").write_text("<html></html>")
    app = console_app(tmp_path)  # an explicit folder is served as given
    assert app is not None
    with pytest.raises(FileNotFoundError, match="console"):
        from serving.api import console

        original = console.resources.files
        try:
            console.resources.files = lambda _pkg: tmp_path.parent / "nowhere"
            console.console_directory()
        finally:
            console.resources.files = original


def test_page_loads_without_a_key_with_security_headers(client) -> None:
    response = client.get("/console/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (console_directory() / "index.html").read_text(encoding="utf-8")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name.lower()] == value
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_console_without_slash_redirects_to_the_page(client) -> None:
    response = client.get("/console", follow_redirects=False)
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"].endswith("/console/")
    assert client.get("/console").text == client.get("/console/").text


@pytest.mark.parametrize(
    ("name", "media"), [("console.js", "text/javascript"), ("console.css", "text/css")]
)
def test_assets_are_served_without_a_key(client, name, media) -> None:
    response = client.get(f"/console/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.content == (console_directory() / name).read_bytes()


def test_other_console_paths_still_need_a_key_and_are_not_found(client) -> None:
    assert client.get("/console/list.csv").status_code == 401
    assert client.get("/console/../auth.py").status_code in (401, 404)
    assert client.get("/console/list.csv", headers=AUTH).status_code == 404
    assert client.get("/console/__init__.py", headers=AUTH).status_code == 404


def test_the_api_still_needs_the_key(client) -> None:
    assert client.post("/models").status_code == 401
    assert client.post("/lists", json={"kind": "winback"}).status_code == 401
    assert client.post("/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/models", headers=AUTH).status_code == 200


def test_page_uses_only_local_assets_and_no_inline_script() -> None:
    parser = _Links()
    parser.feed((console_directory() / "index.html").read_text(encoding="utf-8"))
    assert set(parser.urls) == {"console.css", "console.js"}
    assert parser.inline_scripts == 0  # the content security policy forbids inline script


def test_script_keeps_the_key_in_session_storage_and_sends_it_in_a_header() -> None:
    script = (console_directory() / "console.js").read_text(encoding="utf-8")
    assert "sessionStorage" in script and "localStorage" not in script
    assert "Authorization: `Bearer ${key}`" in script
    # every request goes to this service: fetch is called with a path variable only
    assert re.findall(r"fetch\(([^)]*)\)", script) == ["path, init"]
    # no URL of another origin (the SVG namespace is an identifier, not a request)
    assert set(re.findall(r"https?://[^\s\"'`]+", script)) == {"http://www.w3.org/2000/svg"}
    # data reaches the page as text, never as markup
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
