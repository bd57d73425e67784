"""Files written whole or not at all: a temporary name beside the target, then a rename."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_folder", "atomic_path"]

_NEW_FILE_MODE = 0o666  # what `open` asks for; the kernel takes the umask's bits off it


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block ends without an error.

    A reader never sees half a file, and a failure leaves the old file (or none) in place. The
    temporary file is created through `os.open` with the mode `open` asks for, so the file gets the
    permissions of any new file (0666 less the umask) without reading or changing the process's
    umask (mkstemp alone would make it private).
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(file)
    try:
        yield tmp
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike[str], *, mode: int | None = 0o755) -> Iterator[Path]:
    """A new folder beside `path` to fill, renamed to `path` when the block ends without an error
    (an empty folder already there is replaced); on an error it is removed. `path` appears whole
    or not at all.

    Args:
        path: the folder to make; it must not exist, or be an empty folder.
        mode: the folder's mode once whole (mkdtemp makes it private); None keeps it private.

    Raises:
        OSError: the folder beside `path` cannot be made (no such parent, no permission).
    """
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield staging
        if folder.exists():
            folder.rmdir()  # empty, as the caller checked: a non-empty one raises here
        if mode is not None:
            staging.chmod(mode)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _create_beside(file: Path) -> Path:
    """Create a new, empty, uniquely named file beside `file` (as mkstemp does, with open's mode)."""
    while True:
        tmp = file.parent / f".{file.name}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
