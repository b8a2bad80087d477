"""Time the retention console's path after ``winback demo``, exactly as docs/console.md tells it.

Run from the folder where ``winback demo`` ran (it holds ``mlruns/`` and
``winback_output/``)::

    uv run --frozen python benchmarks/console_path.py            # or --home DIR

It starts the service the documented way (``WINBACK_API_KEYS=change-me-to-a-long-secret winback
serve``), then drives headless Chromium (Debian's ``/usr/bin/chromium``, through
Playwright) through what a person does: open ``/console/``, paste the key, click
"Use key", choose Win-back, pull the list, download the CSV. It prints the
seconds of each step: the machine's share of the "under a minute" promise (a
person adds reading and typing). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "change-me-to-a-long-secret"  # the key docs/console.md and `winback demo` print
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(home: Path, port: int, log: Path) -> subprocess.Popen:
    """``WINBACK_API_KEYS=change-me-to-a-long-secret winback serve --port PORT`` in ``home``."""
    winback = shutil.which("winback", path=str(Path(sys.executable).parent)) or "winback"
    env = {**os.environ, "WINBACK_API_KEYS": KEY}
    return subprocess.Popen(
        [winback, "serve", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"winback serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"service not ready after {timeout_s} s")


def person_path(url: str, top: int) -> dict[str, float]:
    """Seconds of each step a person takes in the console, and the total."""
    from playwright.sync_api import sync_playwright

    steps: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)
        t0 = last = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal last
            now = time.perf_counter()
            steps[name] = round(now - last, 2)
            last = now

        page.goto(f"{url}/console/")
        page.wait_for_selector("body[data-ready='true']")
        lap("open page")
        page.fill("#api-key", KEY)
        page.click("#key-save")
        page.wait_for_selector("#models-body tr")
        lap("enter key (model panel loaded)")
        page.select_option("#kind", "winback")
        page.fill("#top", str(top))
        page.click("#pull")
        page.wait_for_selector("#list-body tr")
        lap(f"pull win-back list (top {top})")
        with page.expect_download() as info:
            page.click("#download")
        target = Path(tempfile.mkdtemp()) / info.value.suggested_filename
        info.value.save_as(target)
        lap("download CSV")
        steps["total"] = round(time.perf_counter() - t0, 2)
        steps["csv_rows"] = sum(1 for _ in target.open()) - 1
        steps["file"] = target.name  # type: ignore[assignment]
        browser.close()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("."), help="where winback demo ran")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--top", type=int, default=100)
    args = parser.parse_args()
    home = args.home.resolve()
    if not (home / "winback_output" / "scores").is_dir():
        sys.exit(f"no winback_output/scores in {home}: run `uv run --frozen winback demo` there")
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp()) / "serve.log"
    process = start_service(home, port, log)
    try:
        ready = wait_ready(url, process)
        print(f"winback serve ready in {ready:.1f} s (log {log})")
        for name, value in person_path(url, args.top).items():
            print(f"{name:<36} {value}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
