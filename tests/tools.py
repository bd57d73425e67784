"""Command-line tools the tests run that cannot share the project's environment.

checkov pins boto3, botocore and packaging far below what the `s3` extra needs, so it lives in a
virtual environment of its own, made once per machine under `~/.cache/shipyard/tools` (from the
package registry, like any install) and reused by every later run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["isolated_tool"]

TOOLS = Path(os.environ.get("SHIPYARD_TEST_TOOLS", Path.home() / ".cache" / "shipyard" / "tools"))


def isolated_tool(command: str, requirement: str) -> str:
    """The path of `command`: on PATH, or installed from `requirement` into its own venv."""
    found = shutil.which(command)
    if found is not None:
        return found
    venv = TOOLS / command
    done = venv / ".installed"  # written last: a half-made venv is never taken for a tool
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", requirement],
            check=True,
            timeout=900,
        )
        done.write_text(requirement + "\n")
    return str(venv / "bin" / command)
