"""What Shipyard writes on a local disk is the owner's alone, unless configured otherwise."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from servers import ServerProcess, credit_row
from shipyard import ConfigError, Registry, Settings
from shipyard.monitoring.events import EventBatch, EventLog
from shipyard.serving.run_dirs import LOCK, PREFIX, new_run_dir, remove_stale_run_dirs


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The usual default umask, under which plain `open` makes world-readable files."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path, *, skip: str = "serve-") -> dict[str, int]:
    """The permission bits of every file and folder under `root` (root included)."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.name.startswith(skip):  # the test's own server log, written by the test
            found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def assert_modes(root: Path, *, file: int, folder: int) -> None:
    wrong = {
        name: oct(mode)
        for name, mode in modes(root).items()
        if mode != (folder if (root / name).is_dir() else file)
    }
    assert not wrong, f"expected files {oct(file)} and folders {oct(folder)}; got {wrong}"


def _log_one(log: EventLog, registry: Registry, frame: pd.DataFrame) -> None:
    loaded = registry.load("credit:1")
    batch = loaded.validate(frame.drop(columns=["default"]).head(2)).batch
    log.append(
        EventBatch(
            time=time.time(),
            model="credit",
            version=1,
            request_ids=["r1"],
            rows=[2],
            protocols=["rest"],
            latencies_ms=[1.0],
            statuses=["ok"],
            errors=[None],
            features=batch,
            predictions=loaded.predict_valid(batch),
        )
    )
    assert log.flush()


def test_the_metadata_store_artifacts_and_log_are_created_owner_only(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    home = tmp_path / "home"
    with Registry(Settings.for_home(home), actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        _log_one(EventLog(registry.settings.store_url), registry, credit)
    assert (home / "shipyard.db").is_file()
    assert list((home / "artifacts" / "sha256").rglob("*"))
    assert list((home / "artifacts" / "events").rglob("*.parquet"))
    assert_modes(home, file=0o600, folder=0o700)


def test_the_file_mode_setting_opens_them_to_the_group_or_to_the_umask(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    for value, file, folder in (("0640", 0o640, 0o750), ("umask", 0o644, 0o755)):
        home = tmp_path / value
        settings = Settings.from_env({"SHIPYARD_HOME": str(home), "SHIPYARD_FILE_MODE": value})
        with Registry(settings, actor="tester") as registry:
            registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
            _log_one(EventLog(settings.store_url, file_mode=settings.file_mode), registry, credit)
        assert_modes(home, file=file, folder=folder)


def test_a_bad_file_mode_is_refused_naming_the_setting() -> None:
    for value in ("0755", "0400", "rw"):
        with pytest.raises(ConfigError, match=f"SHIPYARD_FILE_MODE is '{value}'; expected an octal"):
            Settings.from_env({"SHIPYARD_FILE_MODE": value})


def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    from fsspec.implementations.local import LocalFileSystem

    from shipyard.store.artifacts import write_whole

    target = tmp_path / "blob.key"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_whole(LocalFileSystem(), str(target), b"new")  # as a key rotation rewrites a key file
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _idle(folder: Path) -> Path:
    """Make `folder` and what it holds look untouched for an hour."""
    folder.mkdir()
    (folder / "metrics-0-1.json").write_text("{}")
    hour_ago = time.time() - 3600
    for path in (folder / "metrics-0-1.json", folder):
        os.utime(path, (hour_ago, hour_ago))
    return folder


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _locked(folder: Path) -> int:
    """Hold `folder`'s lock as a running server does; the descriptor to close."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_run_folders_nobody_holds_are_removed_and_held_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{PREFIX}{_dead_pid()}-abc"  # killed a moment ago: its lock is free
    dead.mkdir()
    (dead / LOCK).touch()
    held = tmp_path / f"{PREFIX}{_dead_pid()}-def"  # its pid gone here, its lock held elsewhere
    held.mkdir()
    fd = _locked(held)
    old_dead = _idle(tmp_path / f"{PREFIX}{_dead_pid()}-ghi")  # an older version's, idle
    old_busy = tmp_path / f"{PREFIX}{_dead_pid()}-jkl"  # an older version's, written just now
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


def _workers(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds a server's workers in /proc")
def test_the_next_server_removes_the_run_folder_of_one_killed_with_sigkill_and_logs_owner_only(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    import signal

    home = tmp_path / "home"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    settings = replace(Settings.for_home(home), protected_aliases=())
    with Registry(settings, actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    env = {"TMPDIR": str(scratch)}
    killed = ServerProcess(home, ["credit:1"], "--workers", "2", env=env).wait_ready()
    for pid in [*_workers(killed.pid), killed.pid]:
        os.kill(pid, signal.SIGKILL)
    killed.terminate()
    [left] = list(scratch.glob(f"{PREFIX}{killed.pid}-*"))
    held = scratch / f"{PREFIX}{_dead_pid()}-def"  # a server this test stands in for
    held.mkdir()
    fd = _locked(held)
    server = ServerProcess(home, ["credit:1"], env=env)
    try:
        server.wait_ready()
        assert not left.exists(), "the run folder of the killed server was left behind"
        assert held.exists(), "the run folder of a live server was removed"
        answer = server.http.post("/v1/models/credit/predict", json={"instances": [credit_row()]})
        assert answer.status_code == 200, answer.text
    finally:
        os.close(fd)
        assert server.terminate() == 0, server.output()
    assert list((home / "artifacts" / "events").rglob("*.parquet")), server.output()
    assert_modes(home, file=0o600, folder=0o700)
