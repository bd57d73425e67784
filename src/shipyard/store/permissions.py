"""Who may read what Shipyard writes: owner-only files and folders on local storage, by default.

The metadata store, artifacts and prediction-log segments hold models, training fingerprints and
every served row, so on a local disk they are created with `Settings.file_mode` (0600 by
default; `SHIPYARD_FILE_MODE`) whatever the process umask, and the folders Shipyard creates for
them with the matching folder mode (0700). Object stores reached through fsspec (`s3://`,
`gs://`, `memory://`) have no modes: their access is the bucket's policy. A mode of None leaves
everything to the umask, as plain `open` would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_FILE_MODE", "create_file", "folder_mode", "is_local", "make_folders", "set_mode"]

DEFAULT_FILE_MODE = 0o600


def folder_mode(file_mode: int) -> int:
    """The mode of a folder holding files of `file_mode`: whoever may read or write may enter."""
    mode = file_mode
    for read_write, enter in ((0o600, 0o100), (0o060, 0o010), (0o006, 0o001)):
        if file_mode & read_write:
            mode |= enter
    return mode


def is_local(fs: Any) -> bool:
    """Whether `fs` (an fsspec filesystem) is the local disk, where modes exist."""
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def make_folders(fs: Any, path: str, *, file_mode: int | None) -> None:
    """Create `path` and its missing parents; on a local disk, each new one with the folder mode.

    An object store has no folders, only keys: nothing to make there (s3fs's `makedirs` would
    cost two requests per write, and create the bucket if it were missing).
    """
    if not is_local(fs):
        return
    if file_mode is None:
        fs.makedirs(path, exist_ok=True)
        return
    _make_local_folders(Path(path), folder_mode(file_mode))


def set_mode(fs: Any, path: str, *, file_mode: int | None) -> None:
    """Give the file at `path` `file_mode` (on a local disk; elsewhere nothing to do)."""
    if file_mode is not None and is_local(fs):
        os.chmod(path, file_mode)


def create_file(path: Path, *, file_mode: int | None) -> None:
    """Create the empty local file `path` (and its folders) with `file_mode`, unless it exists.

    A file that exists keeps the mode it has: changing who may read an existing store is the
    operator's call, not a side effect of opening it.
    """
    if file_mode is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    _make_local_folders(path.parent, folder_mode(file_mode))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, file_mode)  # the umask may have taken bits a shared mode asked for
    finally:
        os.close(fd)


def _make_local_folders(path: Path, mode: int) -> None:
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            continue  # another process made it meanwhile; it keeps the mode that one gave it
        folder.chmod(mode)  # mkdir's mode passes through the umask
