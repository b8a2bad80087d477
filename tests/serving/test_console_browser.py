"""The retention console in a real browser: headless Chromium against a real ``bentoml serve``.

Debian's ``chromium`` package is driven by Playwright (no browser download): the
session fixture installs it with apt-get when it is missing and we are root, and
the test is skipped, saying why, only when it cannot be installed. The screenshot
goes to ``test-artifacts/console.png`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.serving import test_serve_smoke
from tests.serving.test_service_http import API_KEY

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_TIMEOUT_S = 900
STEP_TIMEOUT_MS = 60_000  # one page action; generous for a loaded 2-core machine
SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "console.png"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# a real `bentoml serve` of the shared serving home, on a free loopback port
server = test_serve_smoke.server


def install_chromium() -> str | None:
    """Install Debian's chromium when absent; ``None`` when it is there, else why not."""
    if CHROMIUM.exists():
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{CHROMIUM} is missing and we are not root: run 'apt-get install -y chromium'"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium"
    command = "apt-get update -q && apt-get install -y -q --no-install-recommends chromium"
    try:
        result = subprocess.run(
            ["bash", "-c", command],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"installing chromium took longer than {INSTALL_TIMEOUT_S} s"
    if result.returncode != 0 or not CHROMIUM.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return f"'{command}' failed ({result.returncode}): {' | '.join(tail)}"
    return None


@pytest.fixture(scope="session")
def chromium() -> Path:
    reason = install_chromium()
    if reason is not None:
        pytest.skip(f"no Chromium for the console browser test: {reason}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: uv sync --extra dev"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS, timeout=120_000
        )
        try:
            yield launched
        finally:
            launched.close()


def _new_page(browser, **options):
    context = browser.new_context(
        viewport={"width": 1440, "height": 1000}, accept_downloads=True, **options
    )
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    return context, page


ROW_CELLS = """rows => rows.map(r => Object.fromEntries(
    [...r.cells].map(c => [c.dataset.column, c.textContent])))"""


def _shown_rows(page) -> list[dict[str, str]]:
    return page.eval_on_selector_all("#list-body tr", ROW_CELLS)


def _check_rows(shown: list[dict[str, str]], records: list[dict]) -> None:
    assert [r["customer_id"] for r in shown] == [r["customer_id"] for r in records]
    for row, record in zip(shown, records, strict=True):
        assert row["rank"] == str(record["rank"])
        assert row["group"] == record["group"]
        assert row["tier"] == (record["tier"] or "–")
        assert row["action"] == (record["action"] or "–")
        for column in ("churn_risk", "vip_potential", "reactivation_probability"):
            if record[column] is None:
                assert row[column] == "–"
            else:
                assert abs(float(row[column]) - record[column]) <= 0.0005 + 1e-9


def test_console_pulls_shows_and_downloads_a_winback_list(server, browser) -> None:
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/console/")
        page.wait_for_selector("body[data-ready='true']")
        assert page.title().startswith("winback")
        assert f"{API_KEY}" not in page.url

        page.fill("#api-key", API_KEY)
        page.click("#key-save")
        page.wait_for_selector("#models-body tr[data-target='reactivation']")
        models = httpx.post(f"{server}/models", headers=AUTH, timeout=30).json()
        shown_targets = page.eval_on_selector_all(
            "#models-body tr", "rows => rows.map(r => [r.dataset.target, r.cells[2].textContent])"
        )
        assert sorted(shown_targets) == sorted(
            [m["target"], f"v{m['version']}"] for m in models["models"]
        )
        assert str(models["score_table"]["as_of"]) in page.text_content("#score-table-info")

        page.select_option("#kind", "winback")
        page.fill("#top", "60")
        page.click("#pull")
        page.wait_for_selector("#list-body tr")
        assert page.is_hidden("#message")

        pulled = page.evaluate("() => window.winbackConsole.currentList()")
        list_id = pulled["manifest"]["list_id"]
        assert list_id.startswith("winback-") and list_id in page.text_content("#list-title")
        api = httpx.post(
            f"{server}/lists/saved", json={"list_id": list_id}, headers=AUTH, timeout=30
        ).json()
        assert pulled == api  # the page holds exactly what the API returns for this list
        rows = api["rows"]
        assert len(rows) == api["manifest"]["rows"] == 60

        # first page, then the second, in rank order
        _check_rows(_shown_rows(page), rows[:25])
        assert "rows 1–25 of 60" in page.text_content("#page-info")
        page.click("#page-next")
        _check_rows(_shown_rows(page), rows[25:50])
        page.click("#page-prev")

        # sorting by customer id, then back to rank
        page.click("th[data-column='customer_id']")
        _check_rows(_shown_rows(page), sorted(rows, key=lambda r: r["customer_id"])[:25])
        assert page.get_attribute("th[data-column='customer_id']", "aria-sort") == "ascending"
        page.click("th[data-column='rank']")
        _check_rows(_shown_rows(page), rows[:25])

        # the control group filter shows exactly the hold-out
        page.select_option("#filter-group", "control")
        control = [r for r in rows if r["group"] == "control"]
        assert len(control) == api["manifest"]["control_rows"] > 0
        _check_rows(_shown_rows(page), control)
        page.select_option("#filter-group", "")

        # charts are drawn for the list
        assert page.locator("#chart-gains svg path.line-value").count() == 1
        assert page.locator("#chart-gains svg path.line-second").count() == 1  # reactivations
        assert page.locator("#chart-tiers svg rect.bar").count() >= 1
        assert page.locator("#chart-scores svg rect.bar").count() == 10

        # the download is byte for byte the API's CSV, named by the list id
        with page.expect_download() as info:
            page.click("#download")
        download = info.value
        assert download.suggested_filename == f"{list_id}.csv"
        csv = httpx.post(
            f"{server}/lists/saved",
            json={"list_id": list_id, "format": "csv"},
            headers=AUTH,
            timeout=30,
        )
        assert Path(download.path()).read_bytes() == csv.content
        assert csv.text.splitlines()[0].startswith("list_id,rank,customer_id,tier")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        context.close()


def test_console_says_clearly_when_the_key_is_missing_or_wrong(server, browser) -> None:
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/console/")
        page.wait_for_selector("body[data-ready='true']")
        page.click("#pull")
        page.wait_for_selector("#message:not([hidden])")
        assert "Enter the API key first" in page.text_content("#message")

        page.fill("#api-key", "not-the-key")
        page.click("#key-save")
        page.wait_for_selector("#message:has-text('refused this API key')")
        message = page.text_content("#message")
        assert "401" in message and "enter it again" in message
        assert page.text_content("#key-state") == "no key"  # the wrong key is not kept
        assert page.locator("#models-body tr").count() == 0
        assert page.evaluate("() => sessionStorage.getItem('winback.apiKey')") is None
    finally:
        context.close()
