"""Whole-or-nothing files: a temporary name beside the target, then a rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipyard.store.files import atomic_path


def test_a_new_file_gets_the_mode_of_any_new_file_and_the_umask_is_untouched(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "sub" / "out.txt") as tmp:
            assert os.umask(0o027) == 0o027  # no window in which the process umask is different
            tmp.write_text("hello", encoding="utf-8")
        mode = stat.S_IMODE((tmp_path / "sub" / "out.txt").stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o640
    assert (tmp_path / "sub" / "out.txt").read_text(encoding="utf-8") == "hello"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.txt"]


def test_a_failure_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")

    def write_half() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_half()
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
