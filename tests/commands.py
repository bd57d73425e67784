"""The one runner of the `shipyard` command in the tests: a real process against one home.

Every test that runs the command goes through here (`from tests.commands import shipyard_cli`),
so that all of them run the same interpreter with the same environment: `shipyard_cli` runs a
command to its end, `start_shipyard` starts one that keeps running (a server, a job to kill).
This is a module rather than part of `tests/conftest.py` because pytest's conftest files are not
meant to be imported; `tests/conftest.py` holds the fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["shipyard_cli", "shipyard_environment", "start_shipyard"]

# Settings a developer's shell may hold that would point a test's process elsewhere.
_OUTSIDE = ("SHIPYARD_DB_URL", "SHIPYARD_GATES_POLICY", "SHIPYARD_PROTECTED_ALIASES")


def shipyard_environment(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment less the settings in `_OUTSIDE`, with `home` and `env` over it."""
    merged = {k: v for k, v in os.environ.items() if k not in _OUTSIDE}
    return merged | {"SHIPYARD_HOME": str(home), "COLUMNS": "200", **(env or {})}


def shipyard_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `shipyard ARGS` with `home` as its home and `env` over the environment; never raises on exit."""
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        capture_output=True,
        text=True,
        env=shipyard_environment(home, env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def start_shipyard(
    home: Path, *args: str, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[Any]:
    """Start `shipyard ARGS` as `shipyard_cli` would and return at once; `popen` goes to `Popen`.

    The caller stops the process and reads its pipes (`stdout=subprocess.PIPE`, say).
    """
    command = [sys.executable, "-m", "shipyard", *args]
    return subprocess.Popen(command, env=shipyard_environment(home, env), **popen)
