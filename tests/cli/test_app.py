"""The `shipyard` application: exit codes, one-line errors, --debug, version, a reader that goes away."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.commands import shipyard_cli, start_shipyard


@pytest.mark.parametrize("args", [["version"], ["models", "list"], ["models", "list", "--json"]])
def test_a_reader_that_goes_away_stops_the_command_quietly_as_sigpipe_would(
    home: Path, args: list[str]
) -> None:
    process = start_shipyard(home, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `shipyard ... | head` after head has exited
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, as a shell reports it
    assert stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "show", "fraud:7"), "has no version 7"),
        (("models", "show", "../../etc"), "not allowed"),
        (("models", "alias", "fraud:9", "prod"), "has no version 9"),
        (("predict", "fraud:1", "--input", "missing.csv"), "does not exist"),
    ],
)
def test_errors_are_one_clear_line_with_exit_code_1(
    home: Path, registered: Path, args: tuple[str, ...], message: str
) -> None:
    done = shipyard_cli(home, *args, cwd=registered)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2_and_debug_shows_the_traceback(home: Path) -> None:
    assert shipyard_cli(home, "models", "frobnicate").returncode == 2
    assert shipyard_cli(home, "models", "show").returncode == 2
    debug = shipyard_cli(home, "--debug", "models", "show", "nope")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_python_dash_m_and_version(home: Path) -> None:
    done = shipyard_cli(home, "version")
    assert done.returncode == 0
    assert done.stdout.strip() == "0.1.0"
