"""The scratch folder a multi-worker server shares between its workers, and the cleanup of dead ones.

A server with several workers keeps their metrics and live profiles in a temporary folder named
`shipyard-serve-<pid>-<random>` after its supervisor's pid. A server stopped by SIGTERM removes
its folder; one killed with SIGKILL cannot, so each server removes, when it starts, the folders
no live server uses. The supervisor holds an exclusive `flock` on the folder's `lock` file for
its lifetime, and its forked workers share it, so the lock is free exactly when the supervisor
and every worker are gone, whatever pid namespace they ran in. A folder without a lock file
(made by an older version) is removed only when it is named for a pid no process has and nothing
in it changed for `IDLE_SECONDS`. A folder of another user is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["IDLE_SECONDS", "LOCK", "PREFIX", "new_run_dir", "remove_stale_run_dirs"]

log = logging.getLogger(__name__)

PREFIX = "shipyard-serve-"
LOCK = "lock"
IDLE_SECONDS = 60.0


def new_run_dir() -> Path:
    """A new run folder for this server (mode 0700), named after its pid and locked by it.

    The lock's descriptor stays open for the life of this process and of the workers it forks
    (they inherit it); it is what tells a later server that this folder is in use.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file nobody else has opened
    return folder


def remove_stale_run_dirs(parent: Path | None = None) -> list[Path]:
    """Remove the run folders under `parent` (the temporary folder) that no live server uses.

    Returns:
        The folders removed.
    """
    root = Path(tempfile.gettempdir()) if parent is None else parent
    removed: list[Path] = []
    try:
        entries = list(root.glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for folder in entries:
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
            continue
        if _remove_if_unlocked(folder) or (
            not (folder / LOCK).exists() and _abandoned(folder, info.st_mtime) and _remove(folder)
        ):
            removed.append(folder)
    return removed


def _remove_if_unlocked(folder: Path) -> bool:
    """Remove `folder` when its lock file exists and nobody holds it."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live supervisor or worker holds it
        return _remove(folder)
    finally:
        os.close(fd)


def _remove(folder: Path) -> bool:
    shutil.rmtree(folder, ignore_errors=True)
    log.info("removed %s, left behind by a server that is gone", folder)
    return True


def _abandoned(folder: Path, mtime: float) -> bool:
    """For a folder without a lock: named for a pid no process has, and idle for a while."""
    head = folder.name[len(PREFIX) :].split("-", 1)[0]
    if not head.isdigit() or int(head) <= 0 or _alive(int(head)):
        return False
    latest = mtime
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
    return latest < time.time() - IDLE_SECONDS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user has that pid
    return True
