"""The one runner of the `shipyard` command in the tests: a real process against one home.

Every test that runs the command goes through here (`from tests.commands import shipyard_cli`),
so that all of them run the same interpreter with the same environment: `shipyard_cli` runs a
command to its end, `start_shipyard` starts one that keeps running (a server, a job to kill).
`shipyard_in_process` runs a command to its end as `shipyard_cli` does, through the same `main`,
but in the test's own process: a second or more less a command (no interpreter to start, nothing
to import again), for tests of what commands print and refuse rather than of the process itself.
This is a module rather than part of `tests/conftest.py` because pytest's conftest files are not
meant to be imported; `tests/conftest.py` holds the fixtures.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["shipyard_cli", "shipyard_environment", "shipyard_in_process", "start_shipyard"]

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


def shipyard_in_process(
    home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `shipyard ARGS` as `shipyard_cli` does, but in this process: `shipyard.cli.app.main`
    with the environment `shipyard_cli` gives (and `cwd`), its stdout and stderr captured and the
    code it exits with as the return code. For commands that run to their end on their own: a
    server, a signal or a pipe needs the real process (`shipyard_cli`, `start_shipyard`)."""
    from shipyard.cli.app import main
    from shipyard.cli.render import console

    environment = shipyard_environment(home, env)
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        _environment(environment),
        _console_width(console, int(environment["COLUMNS"])),
        contextlib.chdir(cwd or os.getcwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    if not isinstance(code, int):  # as the interpreter does: None is 0, a message is printed, 1
        err.write("" if code is None else f"{code}\n")
        code = 0 if code is None else 1
    return subprocess.CompletedProcess(["shipyard", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _console_width(console: Any, columns: int) -> Iterator[None]:
    """rich reads COLUMNS once, when the console is made (the first import of `cli.render` in
    this process, whatever the environment was then): hold the width a new process would get."""
    saved = console._width
    console.width = columns
    try:
        yield
    finally:
        console._width = saved


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`os.environ` is exactly `env` inside, and what it was again afterwards (changed in place:
    what holds a reference to it, as rich's console does for COLUMNS, sees the change)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
