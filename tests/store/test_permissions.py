"""What Shipyard writes on a local disk is the owner's alone, unless configured otherwise."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from servers import ServerProcess, credit_row, dead_pid, hold_run_dir
from shipyard import ConfigError, Registry, Settings
from shipyard.monitoring.events import EventBatch, EventLog
from shipyard.serving.run_dirs import PREFIX


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
    held = scratch / f"{PREFIX}{dead_pid()}-def"  # a server this test stands in for
    held.mkdir()
    fd = hold_run_dir(held)
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
