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

from features import publish
from serving.scoring import store
from winback.cli import app

AS_OF = dt.date(2025, 6, 30)

#: Rows of each written version: enough for a write to take a while, so a kill from outside
#: at a random time can land inside one.
ROWS = 150_000

#: A writer process: versions first, first + 1, ... last of a ROWS-row table, every column
#: carrying its run number.
WRITER = textwrap.dedent(
    """
    import datetime as dt, sys
    import numpy as np, pandas as pd
    from serving.scoring import store

    score_dir, first, last, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    n = int(sys.argv[5])
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

#: One process that imports the store once and forks a writer per line it reads
#: (``<run> <kill point>``), so each kill costs a fork, not an interpreter start. A writer
#: writes one version and SIGKILLs itself at its kill point (``complete``: none) (the functions it patches are the store's own steps,
#: in the order ``write_score_table`` calls them); ``outside`` writes versions back to back
#: until the test kills it. Prints ``pid <pid>``, ``wrote <run>``, ``exit <code>``.
FORKING_WRITER = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys, traceback, types
    import numpy as np, pandas as pd
    import features.publish as publish
    from serving.scoring import store

    score_dir, n = sys.argv[1], int(sys.argv[2])
    ids = pd.array([f"C{i:07d}" for i in range(n)], dtype="string")
    noise = np.random.default_rng(0).random((n, 8))

    def write(run):
        scores = pd.DataFrame({"customer_id": ids, "run": run, "churn_risk": noise[:, 0]})
        features = pd.DataFrame(noise, columns=[f"f{j}" for j in range(8)], index=ids)
        features["run"] = float(run)
        features.index.name = "customer_id"
        store.write_score_table(scores, features, score_dir, dt.date(2025, 6, 30))
        print("wrote", run, flush=True)

    def die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def kill_before(module, name):
        setattr(module, name, die)

    def kill_after(module, name, when=lambda *args: True):
        original = getattr(module, name)
        def hooked(*args, **kwargs):
            result = original(*args, **kwargs)
            if when(*args):
                die()
            return result
        setattr(module, name, hooked)

    def catalogue_written_aside():
        original = store.publish_file
        store.publish_file = lambda path, fill: original(path, lambda tmp: (fill(tmp), die()))

    def old_folder_renamed_aside():
        original = store._remove_superseded
        def hooked(folder):
            publish.shutil = types.SimpleNamespace(rmtree=die)  # remove_folder: rename, rmtree
            original(folder)
        store._remove_superseded = hooked

    KILL_POINTS = {
        "lock taken": lambda: kill_before(store, "remove_leftovers"),
        "scores file written": lambda: kill_after(
            store, "_synced", lambda _write, path: path.name == store.SCORES_FILE
        ),
        "lookup files written": lambda: kill_after(store, "write_lookup_files"),
        "folder filled": lambda: kill_before(publish, "fsync_tree"),
        "folder published": lambda: kill_before(store, "_publish_catalogue"),
        "catalogue written aside": catalogue_written_aside,
        "catalogue published": lambda: kill_before(store, "_remove_superseded"),
        "old folder renamed aside": old_folder_renamed_aside,
    }

    for line in iter(sys.stdin.readline, ""):
        run, point = line.strip().split(" ", 1)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if point == "outside":
                    for r in range(int(run), int(run) + 1000):
                        write(r)
                else:
                    KILL_POINTS.get(point, lambda: None)()  # "complete": no kill
                    write(int(run))
                    code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)  # a writer never returns to the loop
        print("pid", pid, flush=True)
        print("exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
    """
)

#: Each kill point of a write, in order: whether the new version is published by then
#: (else the previous one must still be the version), and what the killed writer leaves.
KILL_POINTS = {
    "lock taken": (False, None),
    "scores file written": (False, "temporary"),
    "lookup files written": (False, "temporary"),
    "folder filled": (False, "temporary"),
    "folder published": (True, "two folders"),
    "catalogue written aside": (True, "temporary"),
    "catalogue published": (True, "two folders"),
    "old folder renamed aside": (True, "temporary"),
}


def _writer(
    score_dir: Path, first: int, last: int, wait: float = 0.0, rows: int = ROWS
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(score_dir), str(first), str(last), str(wait), str(rows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def assert_consistent(score_dir: Path, rows: int = ROWS) -> int:
    """The current version is complete and one run throughout; returns that run."""
    assert store.score_versions(score_dir) == [AS_OF]
    scores, features = store.read_version(score_dir, AS_OF)
    runs = set(scores["run"]) | set(features["run"].astype(int))
    assert len(runs) == 1, runs  # never new features beside old scores
    assert len(scores) == len(features) == rows
    folder = store.scores_path(score_dir, AS_OF).parent
    metadata = json.loads((folder / store.METADATA_FILE).read_text())
    assert metadata["rows"] == rows
    catalogue = store.catalogue_path(score_dir)
    if catalogue.exists():  # updated last: it may still name the previous version, complete
        with duckdb.connect(str(catalogue), read_only=True) as con:
            named = con.execute("SELECT folder, rows FROM score_versions").fetchall()
            counted = con.execute("SELECT count(*), count(DISTINCT run) FROM scores").fetchall()
        assert len(named) == 1 and (score_dir / named[0][0]).is_dir()
        assert counted == [(rows, 1)]
    return runs.pop()


def _left_behind(score_dir: Path) -> str | None:
    """What a killed write left: a temporary entry, two version folders, or nothing."""
    if any(publish.is_temporary(p) for p in score_dir.iterdir()):
        return "temporary"
    folders = [p for p in score_dir.iterdir() if p.name.startswith("v-")]
    return "two folders" if len(folders) > 1 else None


def _kill(forking: subprocess.Popen, run: int, point: str, delay: float = 0.0) -> int:
    """Fork a writer of ``run`` killed at ``point`` (``outside``: by us, ``delay`` s after
    its first version); returns its exit code."""
    forking.stdin.write(f"{run} {point}\n")
    forking.stdin.flush()
    pid, wrote = None, []
    while pid is None or (point == "outside" and not wrote):  # the two lines in either order
        words = forking.stdout.readline().split()
        assert words, forking.stderr.read()
        if words[0] == "pid":
            pid = int(words[1])
        else:
            wrote.append(words)
    if point == "outside":
        assert wrote[0] == ["wrote", str(run)]
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
    while not (line := forking.stdout.readline()).startswith("exit"):
        assert line, forking.stderr.read()
    return int(line.split()[1])


@pytest.mark.slow
def test_sigkill_at_random_points_always_leaves_a_readable_consistent_version(tmp_path):
    """A SIGKILL at each step of a write (deterministically), then at random times from
    outside, always leaves the previous or the new version, complete; the next write
    cleans up what the killed ones left."""
    score_dir = tmp_path / "scores"
    forking = subprocess.Popen(
        [sys.executable, "-c", FORKING_WRITER, str(score_dir), str(ROWS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    try:
        assert _kill(forking, 1, "lock taken") == -signal.SIGKILL
        assert not score_dir.exists() or store.score_versions(score_dir) == []
        assert _kill(forking, 1, "complete") == 0
        last_run = assert_consistent(score_dir)
        for run, (point, (published, left)) in enumerate(KILL_POINTS.items(), start=100):
            assert _kill(forking, run, point) == -signal.SIGKILL, point  # the kill point was hit
            assert _left_behind(score_dir) == left, point
            expected = run if published else last_run
            assert assert_consistent(score_dir) == expected, point
            last_run = expected
        rng = random.Random(18)
        for attempt in range(3):
            first = 1000 * (attempt + 1)
            assert _kill(forking, first, "outside", rng.uniform(0.0, 1.0)) == -signal.SIGKILL
            run = assert_consistent(score_dir)
            assert run >= first > last_run
            last_run = run
    finally:
        forking.stdin.close()
        forking.wait(60)
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
