"""Publish by rename: a file or folder is either the old version or the complete new one."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from features.publish import (
    is_temporary,
    publish_file,
    publish_folder,
    publish_text,
    remove_folder,
    remove_leftovers,
)


def test_publish_file_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "frame.parquet"
    frame = pd.DataFrame({"customer_id": ["a", "b"], "amount": [1.0, 2.0]})
    publish_file(target, lambda p: frame.to_parquet(p, index=False))
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)
    publish_file(target, lambda p: frame.head(1).to_parquet(p, index=False))
    assert len(pd.read_parquet(target)) == 1
    assert [p.name for p in target.parent.iterdir()] == ["frame.parquet"]


def test_publish_file_is_private(tmp_path):
    path = publish_text(tmp_path / "report.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_a_failing_write_keeps_the_old_file(tmp_path):
    target = publish_text(tmp_path / "a.txt", "old")

    def half_then_fail(path):
        path.write_text("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        publish_file(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_publish_folder_appears_complete_or_not_at_all(tmp_path):
    seen_during_write = []

    def fill(folder):
        (folder / "scores.parquet").write_text("s")
        seen_during_write.append((tmp_path / "v1").exists())
        (folder / "nested").mkdir()
        (folder / "nested" / "meta.json").write_text("{}")

    published = publish_folder(tmp_path / "v1", fill)
    assert seen_during_write == [False]
    assert sorted(p.name for p in published.rglob("*")) == ["meta.json", "nested", "scores.parquet"]
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_publish_folder_never_overwrites_and_cleans_up_on_error(tmp_path):
    (tmp_path / "v1").mkdir()
    with pytest.raises(FileExistsError, match="never overwritten"):
        publish_folder(tmp_path / "v1", lambda f: None)

    def boom(folder):
        (folder / "x").write_text("x")
        raise ValueError("bad rows")

    with pytest.raises(ValueError, match="bad rows"):
        publish_folder(tmp_path / "v2", boom)
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_remove_folder_and_leftovers(tmp_path):
    publish_folder(tmp_path / "v1", lambda f: (f / "a").write_text("a"))
    remove_folder(tmp_path / "v1")
    remove_folder(tmp_path / "never-there")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".scores.parquet.abc.tmp").write_text("half")
    (tmp_path / ".v3.xyz.tmp").mkdir()
    (tmp_path / ".scores.duckdb.abc.tmp.wal").write_text("duckdb's log of a killed write")
    (tmp_path / "keep.parquet").write_text("k")
    removed = remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == [
        ".scores.duckdb.abc.tmp.wal",
        ".scores.parquet.abc.tmp",
        ".v3.xyz.tmp",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.parquet"]
    assert is_temporary(".a.tmp") and not is_temporary("a.tmp") and not is_temporary(".a")


def test_publish_file_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    publish_text(tmp_path / "a.txt", "x")
    assert len(synced) == 2  # the file, then its folder


def test_folder_lock_is_exclusive_and_released(tmp_path):
    import subprocess
    import sys
    import time as clock

    from features.publish import LockHeld, folder_lock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from features.publish import folder_lock\n"
            f"with folder_lock({str(tmp_path)!r}):\n"
            "    print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = clock.monotonic()
        with (
            pytest.raises(LockHeld, match=f"pid {holder.pid}"),
            folder_lock(tmp_path, wait_seconds=0.3),
        ):
            pass
        assert clock.monotonic() - started >= 0.3
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait()
    with folder_lock(tmp_path) as path:
        assert path == tmp_path / ".lock"


def test_folder_lock_is_reentrant_in_its_thread_only(tmp_path):
    import threading

    from features.publish import LockHeld, folder_lock

    outcome = []

    def other_thread():
        try:
            with folder_lock(tmp_path):
                outcome.append("entered")
        except LockHeld:
            outcome.append("refused")

    with folder_lock(tmp_path), folder_lock(tmp_path):
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert outcome == ["refused"]
