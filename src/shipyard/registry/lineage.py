"""Where a version came from: its training data's fingerprint, the code and the environment."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from shipyard.core.batch import Batch

__all__ = ["environment", "fingerprint", "git_state"]

_PACKAGES = (
    "shipyard",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "skops",
    "xgboost",
    "lightgbm",
    "onnx",
    "onnxruntime",
    "cloudpickle",
)


def fingerprint(data: Batch) -> str:
    """A SHA-256 of the rows and column names, independent of how the frame was built."""
    import pandas as pd

    digest = hashlib.sha256()
    for name, column in data.columns.items():
        digest.update(name.encode() + b"\0")
        series = pd.Series(column, copy=False)
        digest.update(pd.util.hash_pandas_object(series, index=False).to_numpy().tobytes())
    digest.update(str(data.n_rows).encode())
    return digest.hexdigest()


def git_state(folder: Path | None = None) -> dict[str, Any] | None:
    """The commit and dirtiness of the git checkout the caller works in, or None outside one."""
    cwd = folder or Path.cwd()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def environment() -> dict[str, Any]:
    """The Python version, platform and versions of the frameworks that are installed."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "packages": versions,
    }
