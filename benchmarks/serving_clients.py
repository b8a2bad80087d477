"""The load clients of the serving benchmark: every request timed, statuses counted."""

from __future__ import annotations

import asyncio
import http.client
import os
import threading
import time

import numpy as np

API_KEY = "benchmark-key-0123456789"


async def load(
    url: str,
    path: str,
    payloads: list,
    *,
    concurrency: int,
    time_limit_s: float,
    content_type: str = "application/json",
) -> dict:
    """Send every payload (``concurrency`` at a time, within ``time_limit_s``); time each."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(payloads))
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type}
    deadline = time.perf_counter() + time_limit_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while queue and time.perf_counter() < deadline:
                body = queue.pop()
                start = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                    status = response.status_code
                except httpx.HTTPError:
                    status = -1
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return summarise(latencies, statuses, wall)


def load_threads(
    url: str,
    path: str,
    payloads: list,
    *,
    concurrency: int,
    time_limit_s: float,
    content_type: str = "application/json",
) -> dict:
    """Like :func:`load`, with one ``http.client`` keep-alive connection per thread.

    Much less client CPU per request than httpx, which matters when client and
    server share two cores.
    """
    host, port = url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type}
    queue = list(reversed(payloads))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + time_limit_s

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                start = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    status = -1
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=30)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return summarise(latencies, statuses, wall)


def summarise(latencies: list[float], statuses: dict[int, int], wall: float) -> dict:
    """p50/p99 (ms) over every request sent, throughput and non-200 answers."""
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "req_per_s": len(latencies) / wall if wall else float("nan"),
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "statuses": statuses,
    }


def run_scenario(
    client: str,
    url: str,
    path: str,
    payloads: list,
    *,
    concurrency: int,
    time_limit_s: float,
    content_type: str = "application/json",
) -> dict:
    """One scenario with the chosen client, plus the 1-minute load average after it."""
    options = {
        "concurrency": concurrency,
        "time_limit_s": time_limit_s,
        "content_type": content_type,
    }
    if client == "threads":
        result = load_threads(url, path, payloads, **options)
    else:
        result = asyncio.run(load(url, path, payloads, **options))
    result["concurrency"] = concurrency
    result["load_1m"] = os.getloadavg()[0]
    return result
