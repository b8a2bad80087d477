"""The score store survives a SIGKILL at any point of a write, and two writers at once."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from serving.scoring import store
from winback.cli import app

AS_OF = dt.date(2025, 6, 30)

#: A writer process: versions 1, 2, ... of a 150k-row table, every column carrying its run number.
WRITER = textwrap.dedent(
    """
    import datetime as dt, sys
    import numpy as np, pandas as pd
    from serving.scoring import store

    score_dir, first, last, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    n = 150_000
    ids = pd.array([f"C{i:07d}" for i in range(n)], dtype="string")
    noise = np.random.default_rng(first).random((n, 8))
    for run in range(first, last + 1):
        scores = pd.DataFrame({"customer_id": ids, "run": run, "churn_risk": noise[:, 0]})
        features = pd.DataFrame(noise, columns=[f"f{j}" for j in range(8)], index=ids)
        features["run"] = float(run)
        features.index.name = "customer_id"
        store.write_score_table(scores, features, score_dir, dt.date(2025, 6, 30), wait_seconds=wait)
        print(run, flush=True)
    """
)


def _writer(score_dir: Path, first: int, last: int, wait: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(score_dir), str(first), str(last), str(wait)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def assert_consistent(score_dir: Path) -> int:
    """The current version is complete and one run throughout; returns that run."""
    assert store.score_versions(score_dir) == [AS_OF]
    scores, features = store.read_version(score_dir, AS_OF)
    runs = set(scores["run"]) | set(features["run"].astype(int))
    assert len(runs) == 1, runs  # never new features beside old scores
    assert len(scores) == len(features) == 150_000
    folder = store.scores_path(score_dir, AS_OF).parent
    metadata = json.loads((folder / store.METADATA_FILE).read_text())
    assert metadata["rows"] == 150_000
    catalogue = store.catalogue_path(score_dir)
    if catalogue.exists():  # updated last: it may still name the previous version, complete
        with duckdb.connect(str(catalogue), read_only=True) as con:
            named = con.execute("SELECT folder, rows FROM score_versions").fetchall()
            counted = con.execute("SELECT count(*), count(DISTINCT run) FROM scores").fetchall()
        assert len(named) == 1 and (score_dir / named[0][0]).is_dir()
        assert counted == [(150_000, 1)]
    return runs.pop()


@pytest.mark.slow
def test_sigkill_at_random_points_always_leaves_a_readable_consistent_version(tmp_path):
    score_dir = tmp_path / "scores"
    first = _writer(score_dir, 1, 1)
    assert first.wait(120) == 0, first.stderr.read()
    rng = random.Random(18)
    last_run, mid_write = 1, 0
    for attempt in range(10):
        writer = _writer(score_dir, 100 * (attempt + 1), 100 * (attempt + 1) + 50)
        writer.stdout.readline()  # its first version is written: now it writes back to back
        time.sleep(rng.uniform(0.0, 2.0))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        mid_write += any(p.name.endswith(".tmp") for p in score_dir.iterdir())
        run = assert_consistent(score_dir)
        assert run >= 100 * (attempt + 1) > last_run
        last_run = run
    assert mid_write >= 3, mid_write  # most kills landed inside a write (a temporary was left)
    # the next write cleans up what the killed ones left behind
    after = _writer(score_dir, 9000, 9000)
    assert after.wait(120) == 0, after.stderr.read()
    assert assert_consistent(score_dir) == 9000
    leftovers = [
        p.name for p in score_dir.iterdir() if p.name.startswith(".v-") or ".tmp" in p.name
    ]
    assert leftovers == []


@pytest.mark.slow
def test_two_concurrent_writers_leave_one_consistent_version(tmp_path):
    score_dir = tmp_path / "scores"
    waiting = [_writer(score_dir, 1, 3, wait=120), _writer(score_dir, 11, 13, wait=120)]
    for writer in waiting:
        assert writer.wait(300) == 0, writer.stderr.read()
    assert assert_consistent(score_dir) in (3, 13)
    assert len([p for p in score_dir.iterdir() if p.name.startswith("v-")]) == 1
    # without waiting, a writer is refused while another process holds the lock
    with store.score_lock(score_dir):
        refused = _writer(score_dir, 31, 31, wait=0)
        refused.wait(120)
    assert refused.returncode != 0 and "LockHeld" in refused.stderr.read()
    assert assert_consistent(score_dir) in (3, 13)


def test_winback_score_exits_3_while_another_run_holds_the_folder(tmp_path):
    score_dir = tmp_path / "scores"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom serving.scoring.store import score_lock\n"
            f"with score_lock({str(score_dir)!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(app, ["score", "--score-dir", str(score_dir)])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 3, result.output
    assert "another `winback score` is writing" in result.output
    assert f"pid {holder.pid}" in result.output
