"""Run folders: each server's private scratch folder, held while it runs and removed once nobody does."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

import pytest

from servers import dead_pid, hold_run_dir
from shipyard.serving.run_dirs import LOCK, PREFIX, new_run_dir, remove_stale_run_dirs


def _idle(folder: Path) -> Path:
    """Make `folder` and what it holds look untouched for an hour."""
    folder.mkdir()
    (folder / "metrics-0-1.json").write_text("{}")
    hour_ago = time.time() - 3600
    for path in (folder / "metrics-0-1.json", folder):
        os.utime(path, (hour_ago, hour_ago))
    return folder


def test_run_folders_nobody_holds_are_removed_and_held_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{PREFIX}{dead_pid()}-abc"  # killed a moment ago: its lock is free
    dead.mkdir()
    (dead / LOCK).touch()
    held = tmp_path / f"{PREFIX}{dead_pid()}-def"  # its pid gone here, its lock held elsewhere
    held.mkdir()
    fd = hold_run_dir(held)
    old_dead = _idle(tmp_path / f"{PREFIX}{dead_pid()}-ghi")  # an older version's, idle
    old_busy = tmp_path / f"{PREFIX}{dead_pid()}-jkl"  # an older version's, written just now
    old_busy.mkdir()
    old_live = _idle(tmp_path / f"{PREFIX}{os.getpid()}-mno")
    nameless = _idle(tmp_path / f"{PREFIX}xyz123")
    try:
        assert sorted(remove_stale_run_dirs(tmp_path)) == sorted([dead, old_dead])
    finally:
        os.close(fd)
    assert not dead.exists() and not old_dead.exists()
    assert held.exists() and old_busy.exists() and old_live.exists() and nameless.exists()


def test_a_new_run_folder_is_private_named_for_its_server_and_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = new_run_dir()
    assert folder.parent == tmp_path
    assert folder.name.startswith(f"{PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert remove_stale_run_dirs(tmp_path) == []  # this process holds it
