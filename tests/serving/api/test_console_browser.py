"""The retention console in a real browser: headless Chromium against a real ``bentoml serve``.

Debian's ``chromium`` package is driven by Playwright (no browser download): the
session fixture installs it with apt-get when it is missing and we are root, and
the test is skipped, saying why, only when it cannot be installed. The screenshot
goes to ``tests/test-artifacts/console.png`` (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.scoring.store import read_scores
from tests.serving.api import test_serve_smoke
from tests.serving.api.test_service_http import API_KEY, AS_OF, shared_serving_home

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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT = ARTIFACTS / "console.png"
MEASURE_SCREENSHOT = ARTIFACTS / "console_measurement.png"
PATH_TIMING = ARTIFACTS / "console_path.json"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DATA_UNTIL = "2024-06-30"
#: Rows one request may explain in the served console: a list of 100 explains only its best
#: 30, so the console must ask ``POST /scores`` for the others' reasons, in requests of 30.
EXPLAIN_ROWS = 30
ALL_REASONS_SHOWN = """() => [...document.querySelectorAll("#list-body td[data-column='reasons']")]
    .every(td => td.textContent !== "–")"""


def measurement_transactions(home: Path) -> pd.DataFrame:
    """Orders of the score table's customers before and after its date (the campaign window)."""
    ids = read_scores(home / "winback_output" / "scores", AS_OF)["customer_id"].astype(str)
    rng = np.random.default_rng(11)
    rows = []
    for i, customer in enumerate(ids):
        rows.append((customer, f"b{i}", "2024-01-15 10:00:00", 50.0))
        if rng.uniform() < 0.35:
            day = 1 + int(rng.integers(0, 90))
            when = pd.Timestamp(AS_OF) + pd.Timedelta(days=day, hours=10)
            rows.append((customer, f"a{i}", str(when), float(rng.gamma(2.0, 30.0))))
    rows.append((ids.iloc[0], "last", f"{DATA_UNTIL} 12:00:00", 10.0))
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "ordered_at", "amount"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"]).dt.tz_localize("UTC")
    frame["margin_amount"] = frame["amount"] * 0.3
    return frame


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``bentoml serve`` of the shared home with measurement data
    (``WINBACK_MEASUREMENT_DATA``), on a free loopback port."""
    home = shared_serving_home(tmp_path_factory)
    data = tmp_path_factory.mktemp("measurement-data") / "transactions.parquet"
    measurement_transactions(home).to_parquet(data, index=False)
    extra = {"WINBACK_MEASUREMENT_DATA": str(data), "WINBACK_MAX_EXPLAIN_ROWS": str(EXPLAIN_ROWS)}
    with test_serve_smoke.running_service(home, "serve-console", extra) as url:
        yield url


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


def _reasons_on_request(server: str, ids: list[str], target: str) -> dict[str, str]:
    """What ``POST /scores`` explains for ``ids``, as the console shows it ("a; b")."""
    out = {}
    for start in range(0, len(ids), EXPLAIN_ROWS):
        body = httpx.post(
            f"{server}/scores",
            json={"customer_ids": ids[start : start + EXPLAIN_ROWS], "explain": True},
            headers=AUTH,
            timeout=60,
        ).json()
        out.update({s["customer_id"]: "; ".join(s["reasons"][target]) for s in body["scores"]})
    return out


def _check_rows(
    shown: list[dict[str, str]], records: list[dict], asked: dict[str, str] | None = None
) -> None:
    assert [r["customer_id"] for r in shown] == [r["customer_id"] for r in records]
    for row, record in zip(shown, records, strict=True):
        assert row["rank"] == str(record["rank"])
        assert row["group"] == record["group"]
        assert row["tier"] == (record["tier"] or "–")
        assert row["action"] == (record["action"] or "–")
        # every row a person reads has reasons: the list's own, else asked from POST /scores
        reasons = record["reasons"] or (asked or {}).get(record["customer_id"])
        assert reasons and row["reasons"] == reasons
        for column in ("churn_risk", "vip_potential", "reactivation_probability"):
            if record[column] is None:
                assert row[column] == "–"
            else:
                assert abs(float(row[column]) - record[column]) <= 0.0005 + 1e-9


def test_console_pulls_shows_and_downloads_a_winback_list(server, browser) -> None:
    context, page = _new_page(browser)
    try:
        started = time.perf_counter()
        page.goto(f"{server}/console/")
        page.wait_for_selector("body[data-ready='true']")
        assert page.title().startswith("winback")
        assert f"{API_KEY}" not in page.url

        page.fill("#api-key", API_KEY)
        page.click("#key-save")
        page.wait_for_selector("#models-body tr[data-target='reactivation']")
        models = httpx.post(f"{server}/models", headers=AUTH, timeout=30).json()
        shown_targets = page.eval_on_selector_all(
            "#models-body > tr", "rows => rows.map(r => [r.dataset.target, r.cells[2].textContent])"
        )
        assert sorted(shown_targets) == sorted(
            [m["target"], f"v{m['version']}"] for m in models["models"]
        )
        assert str(models["score_table"]["as_of"]) in page.text_content("#score-table-info")
        churn = next(m for m in models["models"] if m["target"] == "churn")
        shown_metrics = page.eval_on_selector_all(
            "#models-body tr[data-target='churn'] .metrics-table tr",
            "rows => rows.map(r => [r.children[0].textContent, r.children[1].textContent])",
        )  # a small table, one metric a row, not a run-on line
        assert shown_metrics == [
            [name.replace("_", " "), f"{value:.3f}"]
            for name, value in sorted(churn["metrics"].items())
        ]

        vip = next(m for m in models["models"] if m["target"] == "vip")
        assert vip["loses_to"]  # flagged in red, the verdict said once
        verdict = page.locator("#models-body tr[data-target='vip'] td.verdict")
        assert verdict.text_content() == vip["verdict"]
        assert "flag-alert" in verdict.get_attribute("class")

        page.select_option("#kind", "winback")
        page.fill("#top", "100")
        page.click("#pull")
        page.wait_for_selector("#list-body tr")
        assert page.is_hidden("#message")
        with page.expect_download() as first:
            page.click("#download")
        first_download = first.value
        first_download.path()  # the file is complete
        path_seconds = time.perf_counter() - started  # open page -> key -> pull -> download
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        PATH_TIMING.write_text(
            json.dumps({"open_key_pull_download_seconds": round(path_seconds, 2)}) + "\n"
        )
        print(f"console path (open page, key, win-back list, download): {path_seconds:.1f} s")

        for money in ("expected_value", "predicted_value"):  # money says its unit
            assert "shop currency" in page.text_content(f"th[data-column='{money}']")
        pulled = page.evaluate("() => window.winbackConsole.currentList()")
        list_id = pulled["manifest"]["list_id"]
        assert list_id.startswith("winback-") and list_id in page.text_content("#list-title")
        api = httpx.post(
            f"{server}/lists/saved", json={"list_id": list_id}, headers=AUTH, timeout=30
        ).json()
        assert pulled == api  # the page holds exactly what the API returns for this list
        rows = api["rows"]
        assert len(rows) == api["manifest"]["rows"] == 100
        unexplained = [r["customer_id"] for r in rows if not r["reasons"]]
        assert len(unexplained) > EXPLAIN_ROWS  # more than one request's worth to fill in
        asked = _reasons_on_request(server, unexplained, "reactivation")

        # all four pages in rank order, every row with its reasons
        assert "rows 1–25 of 100" in page.text_content("#page-info")
        for number in range(4):
            if number:
                page.click("#page-next")
            page.wait_for_function(ALL_REASONS_SHOWN)
            _check_rows(_shown_rows(page), rows[25 * number : 25 * (number + 1)], asked)
        for _ in range(3):
            page.click("#page-prev")
        _check_rows(_shown_rows(page), rows[:25], asked)

        # sorting by customer id, then back to rank
        page.click("th[data-column='customer_id']")
        page.wait_for_function(ALL_REASONS_SHOWN)
        by_id = sorted(rows, key=lambda r: r["customer_id"])[:25]
        _check_rows(_shown_rows(page), by_id, asked)
        assert page.get_attribute("th[data-column='customer_id']", "aria-sort") == "ascending"
        page.click("th[data-column='rank']")
        _check_rows(_shown_rows(page), rows[:25], asked)

        # the control group filter shows exactly the hold-out
        page.select_option("#filter-group", "control")
        control = [r for r in rows if r["group"] == "control"]
        assert len(control) == api["manifest"]["control_rows"] > 0
        page.wait_for_function(ALL_REASONS_SHOWN)
        _check_rows(_shown_rows(page), control, asked)
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
        assert Path(first_download.path()).read_bytes() == csv.content
        assert first_download.suggested_filename == f"{list_id}.csv"
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


def test_console_measures_a_saved_list_and_shows_model_baselines(server, browser) -> None:
    made = httpx.post(
        f"{server}/lists",
        json={"kind": "winback", "top": 120, "control_share": 0.3, "log_to_mlflow": False},
        headers=AUTH,
        timeout=60,
    ).json()
    list_id = made["manifest"]["list_id"]
    api = httpx.post(
        f"{server}/lists/measurement",
        json={"list_id": list_id, "as_of": DATA_UNTIL},
        headers=AUTH,
        timeout=60,
    ).json()
    models = httpx.post(f"{server}/models", headers=AUTH, timeout=30).json()["models"]
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/console/")
        page.wait_for_selector("body[data-ready='true']")
        page.fill("#api-key", API_KEY)
        page.click("#key-save")

        # the model panel: each champion next to its baselines and the oracle
        page.wait_for_selector("#baselines-body tr[data-scorer='oracle']")
        for model in models:
            rows = page.eval_on_selector_all(
                f"#baselines-body tr[data-target='{model['target']}']",
                "rows => rows.map(r => [r.dataset.scorer, "
                "r.querySelector(\"td[data-column='roc_auc']\").textContent])",
            )
            expected = [("model", model["test_metrics"]["roc_auc"])]
            expected += [(name, v["roc_auc"]) for name, v in model["baselines"].items()]
            expected += [("oracle", model["oracle"]["roc_auc"])]
            assert rows == [[scorer, f"{value:.3f}"] for scorer, value in expected]
            assert len(expected) == 4  # model, logistic, rfm_recency, oracle
        assert "2024-03-31" in page.text_content("#score-table-info")  # the scoring date

        # open the saved list and measure it
        page.fill("#saved-id", list_id)
        page.click("#open-saved")
        page.wait_for_selector(f"#list-title:has-text('{list_id}')")
        assert page.is_hidden("#measure-panel")
        page.fill("#measure-as-of", DATA_UNTIL)
        page.click("#measure")
        page.wait_for_selector("#measure-panel:not([hidden])")
        assert page.is_hidden("#message")
        shown = page.evaluate("() => window.winbackConsole.currentMeasurement()")
        assert shown == api  # exactly what the API answers
        metrics = [m["metric"] for m in api["metrics"]]
        assert metrics == ["reactivation_rate", "revenue_per_customer", "margin_per_customer"]
        # treated and control bars with CI whiskers, one pair per metric
        for group, css in (("treatment", "rect.bar"), ("control", "rect.bar-control")):
            bars = page.locator(f"#chart-measure svg {css}[data-group='{group}']")
            assert bars.count() == 3
            assert page.locator(f"#chart-measure line.whisker[data-group='{group}']").count() == 3
        table = page.eval_on_selector_all(
            "#measure-body tr",
            "rows => rows.map(r => [r.dataset.metric, ...[...r.cells].map(c => c.textContent)])",
        )
        assert [row[0] for row in table] == metrics
        rate = api["metrics"][0]
        assert table[0][2] == f"{100 * rate['treatment']:.1f}%"
        assert table[0][3] == f"{100 * rate['control']:.1f}%"
        assert table[0][7] == f"{rate['n_treatment']} / {rate['n_control']}"
        revenue = api["metrics"][1]
        assert table[1][2] == f"{revenue['treatment']:.2f}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(MEASURE_SCREENSHOT), full_page=True)
        assert MEASURE_SCREENSHOT.stat().st_size > 10_000

        # a date not after the list date is refused with the reason
        page.fill("#measure-as-of", "2024-03-01")
        page.click("#measure")
        page.wait_for_selector("#message:has-text('must be after the list date')")
        assert "400" in page.text_content("#message")
    finally:
        context.close()
