"""Publish files and folders by rename: a reader sees the old version or the new one, never half.

Every file winback writes goes through here. A file is written to a temporary
sibling (same folder, so the rename stays on one file system), flushed to disk
with ``fsync``, renamed over its final name, and the folder is fsynced so the
rename itself survives a power cut. A version folder (several files that belong
together, e.g. features + scores + metadata) is filled under a temporary name
and published by one rename of the whole folder.

Temporary names start with a dot and end in ``.tmp``; :func:`remove_leftovers`
deletes the ones a killed writer left behind. Files are created private
(``0600``, folders ``0700``) by ``tempfile``: customer data is not world-readable
by default.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_directory(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (names created, renamed or removed) to disk."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """Flush every file and folder under ``folder`` (deepest first) to disk."""
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_directory(root)


def publish_file(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write ``path`` by ``write(temporary_path)``, fsync it, rename it into place.

    ``write`` receives a path in the same folder and must write the whole file
    there (e.g. ``lambda p: frame.to_parquet(p)``). On any error the temporary
    file is removed and ``path`` is left as it was. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def publish_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Publish ``data`` as the whole content of ``path`` (see :func:`publish_file`)."""
    return publish_file(path, lambda p: p.write_bytes(data))


def publish_text(path: str | os.PathLike, text: str) -> Path:
    """Publish ``text`` (UTF-8) as the whole content of ``path`` (see :func:`publish_file`)."""
    return publish_file(path, lambda p: p.write_text(text, encoding="utf-8"))


def publish_folder(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Fill a new folder by ``write(temporary_folder)`` and publish it by one rename.

    Every file in it is fsynced before the rename, so once ``path`` exists all of
    its contents are on disk and complete. ``path`` must not exist yet (a version
    folder is published once; a new version gets a new name): a
    ``FileExistsError`` names it otherwise. On any error the temporary folder is
    removed. Returns ``path``.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists: a published folder is never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX))
    try:
        write(tmp)
        fsync_tree(tmp)
        os.rename(tmp, path)  # fails rather than replaces when a non-empty path appeared
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_directory(path.parent)
    return path


def remove_folder(path: str | os.PathLike) -> None:
    """Remove a published folder: renamed aside first, so it vanishes in one step."""
    path = Path(path)
    if not path.exists():
        return
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX))
    os.replace(path, aside)
    fsync_directory(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary name of this module (a write in progress or abandoned).

    Sidecars a library writes beside a temporary file (DuckDB's ``<name>.tmp.wal``)
    count too: a killed writer leaves them as well.
    """
    name = Path(path).name
    return name.startswith(".") and (name.endswith(TEMP_SUFFIX) or f"{TEMP_SUFFIX}." in name)


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files and folders a killed writer left in ``folder``; return them.

    Call it only while holding the folder's write lock: a live writer's
    temporary file looks the same as an abandoned one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if not is_temporary(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


#: Locks held by this process, by (lock file, thread): re-entering one does not block.
_HELD: set[tuple[str, int]] = set()


class LockHeld(RuntimeError):
    """Another process holds the lock (the message names it and the lock file)."""


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike, *, name: str = ".lock", wait_seconds: float = 0.0
) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (a ``flock`` on ``folder/name``) for the block.

    One writer per store: a second one waits up to ``wait_seconds`` (0: not at
    all) and then raises :class:`LockHeld` naming the holder's process id. The
    kernel releases the lock when its holder exits, even when killed, so a
    crash never leaves a stale lock. The thread holding the lock may enter it
    again (a command holding it around a store function that takes it too).
    Yields the lock file's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    key = (str(path.resolve()), threading.get_ident())
    if key in _HELD:  # re-entered by the thread holding it (e.g. a command around a store write)
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    raise LockHeld(
                        f"{folder} is being written by another process"
                        f"{' (pid ' + holder + ')' if holder else ''}; lock file {path}"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD.add(key)
        try:
            yield path
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


__all__ = [
    "LockHeld",
    "folder_lock",
    "fsync_directory",
    "fsync_file",
    "fsync_tree",
    "is_temporary",
    "publish_bytes",
    "publish_file",
    "publish_folder",
    "publish_text",
    "remove_folder",
    "remove_leftovers",
]
