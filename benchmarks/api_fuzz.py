"""Fuzz a real ``winback serve`` with schemathesis against its own OpenAPI document; print the counts.

Starts the service the documented way (``winback serve``: BentoML, two workers,
an API key) on a free loopback port, loads ``/docs.json`` and runs every
schemathesis phase (examples, coverage, fuzzing, stateful) with every check,
``--examples`` generated cases per operation and phase, with the settings of
``tests/serving/api/schemathesis.toml``. Then it sends an 80 MB body, once with
``Content-Length`` and once chunked, which must get 413. It prints the cases
per operation and status, every failure, and the load average.

By default it builds a synthetic home (``serving_benchmark.build_home``:
three champion models, a score table of ``--customers`` customers); ``--home``
uses an existing one (after ``winback demo`` or ``winback train`` + ``score``).

Run: ``uv run --frozen --extra dev python benchmarks/api_fuzz.py [--examples 60]``.
Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import time
from pathlib import Path

from serving_benchmark import (
    API_KEY,
    free_port,
    start_server,
    synthetic_home_unless_given,
    wait_ready,
)

BIG_BODY_BYTES = 80 * 1000 * 1000


def fuzz_server(url: str, examples: int) -> tuple[collections.Counter, list[str]]:
    """Every schemathesis phase and check against the served document at ``url``."""
    import schemathesis

    from tests.serving.api.test_contract import fuzz, schemathesis_config

    schema = schemathesis.openapi.from_url(
        f"{url}/docs.json",
        config=schemathesis_config(examples, key=API_KEY),
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    return fuzz(schema)


def big_bodies(url: str) -> dict[str, int]:
    """The status of an 80 MB body sent with Content-Length, and sent chunked."""
    import httpx

    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    body = b"[" + b"0," * (BIG_BODY_BYTES // 2) + b"0]"

    def chunks():
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    out = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, content in (("Content-Length", body), ("chunked", chunks())):
            try:
                out[name] = client.post("/score_rows", content=content, headers=headers).status_code
            except httpx.HTTPError as exc:  # the server may close while the client still sends
                out[name] = f"connection closed ({type(exc).__name__})"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="existing working dir (mlruns + scores)")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--examples", type=int, default=60, help="cases per operation and phase")
    args = parser.parse_args()
    for key in ("BENTOML_DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        os.environ.setdefault(key, "true")
    home, tmp = synthetic_home_unless_given(args.home, args.customers, "winback-fuzz-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(home, port, home / f"fuzz-serve-{port}.log", workers=2)
    try:
        wait_ready(url, process, 240)
        started = time.perf_counter()
        counts, failures = fuzz_server(url, args.examples)
        took = time.perf_counter() - started
        big = big_bodies(url)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        if tmp is not None:
            tmp.cleanup()
    operations = sorted({op for op, _ in counts})
    print(f"\n{sum(counts.values())} cases in {took:.0f} s against {url}")
    for op in operations:
        statuses = {s: n for (o, s), n in sorted(counts.items(), key=str) if o == op}
        print(
            f"  {op:28s} {sum(statuses.values()):5d}  "
            + "  ".join(f"{s}: {n}" for s, n in statuses.items())
        )
    print(f"80 MB body: {big}")
    print(f"failures: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    raise SystemExit(1 if failures or any(v != 413 for v in big.values()) else 0)


if __name__ == "__main__":
    main()
