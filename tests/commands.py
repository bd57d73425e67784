"""The `shipyard` command run as a real process against one home, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Settings a developer's shell may hold that would point a test's process elsewhere.
_OUTSIDE = ("SHIPYARD_DB_URL", "SHIPYARD_GATES_POLICY", "SHIPYARD_PROTECTED_ALIASES")


def shipyard_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `shipyard ARGS` with `home` as its home and `env` over the environment; never raises on exit."""
    merged = {k: v for k, v in os.environ.items() if k not in _OUTSIDE}
    merged |= {"SHIPYARD_HOME": str(home), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        capture_output=True,
        text=True,
        env=merged,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
