"""The scratch folder a multi-worker server shares between its workers, and the cleanup of dead ones.

A server with several workers keeps their metrics and live profiles in a temporary folder named
`shipyard-serve-<pid>-<random>` after its supervisor's pid. A server stopped by SIGTERM removes
its folder; one killed with SIGKILL cannot, so each server removes, when it starts, the folders
whose supervisor is gone. A folder is removed only when it is the current user's, no process has
its pid, and nothing in it changed for `IDLE_SECONDS` (live workers rewrite their metrics every
second): a live server's folder, even one in another pid namespace sharing this temporary
folder, or one of another user, is never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["IDLE_SECONDS", "PREFIX", "new_run_dir", "remove_stale_run_dirs"]

log = logging.getLogger(__name__)

PREFIX = "shipyard-serve-"
IDLE_SECONDS = 60.0


def new_run_dir() -> Path:
    """A new run folder for this server (mode 0700), named after its pid."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def remove_stale_run_dirs(parent: Path | None = None) -> list[Path]:
    """Remove the run folders under `parent` (the temporary folder) whose server process is gone.

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
        pid = _pid_of(folder)
        if pid is None or _alive(pid):
            continue
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
            continue
        if _last_change(folder, info.st_mtime) > time.time() - IDLE_SECONDS:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed %s, left behind by server process %d, which is gone", folder, pid)
        removed.append(folder)
    return removed


def _pid_of(folder: Path) -> int | None:
    """The supervisor pid in a run folder's name; None for a name without one (made by an
    older version, or not ours), which is then left alone."""
    head = folder.name[len(PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() and int(head) > 0 else None


def _last_change(folder: Path, mtime: float) -> float:
    """When the folder or a file in it last changed."""
    latest = mtime
    try:
        for entry in os.scandir(folder):
            latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        pass
    return latest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user has that pid
    return True
