"""The README runs as written: its code blocks, in order, in a fresh folder and a fresh home.

Like `doctest`, but for a README: each ```bash block runs with `bash -e -o pipefail` and each
```python block with the current interpreter, in one new folder (each block starts where the
previous one left its files), with `python` and `shipyard` of this interpreter first on PATH and
no SHIPYARD_* settings (so the home is `./.shipyard`). Not run: the install commands at the top
(CI runs them itself), blocks of other languages (YAML, JSON) and a block whose info string says
`no-run` (```bash no-run), which is for what cannot run in a test. A failing block fails the test
with its line in README.md and its output. Each block runs in a process group of its own, killed
when the block ends, so a server it started in the background never outlives it.

The after-the-demo case is also the demo's own test: the demo runs in the fresh folder's home,
shows each of its steps, and runs again in the same home once the README's sections have run.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
INSTALL = ("pip install -e '.[all]' && shipyard demo", "pip install -e '.[dev]' && python -m pytest")
RUNNERS = {"bash": ["bash", "-e", "-o", "pipefail", "-c"], "python": [sys.executable, "-c"]}
PORTS = (8000, 8001)  # what the README's servers listen on
BLOCK_TIMEOUT = 900  # seconds; a block serving for ever is a README bug, not a slow machine


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: where it starts, its language and options, its code."""

    line: int
    language: str
    options: tuple[str, ...]
    code: str


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of `text`, in order; `line` is the opening fence's, from 1."""
    found: list[Block] = []
    opened: tuple[int, str, tuple[str, ...]] | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^```\s*(\S*)\s*(.*)$", line)
        if fence is None:
            if opened is not None:
                body.append(line)
            continue
        if opened is None:
            opened, body = (number, fence.group(1), tuple(fence.group(2).split())), []
        else:
            found.append(Block(opened[0], opened[1], opened[2], "\n".join(body) + "\n"))
            opened = None
    assert opened is None, f"README.md line {opened[0]}: a code block is never closed"
    return found


def runnable(text: str) -> list[Block]:
    """The blocks the README promises run: bash and python ones, but the install block and no-run."""
    every = blocks(text)
    install = every[0]
    commands = [line.split("#", 1)[0].strip() for line in install.code.splitlines() if line.strip()]
    assert commands == list(INSTALL), (
        f"README.md line {install.line}: expected it to start with the two install commands {INSTALL}; "
        f"found {commands}"
    )
    return [b for b in every[1:] if b.language in RUNNERS and "no-run" not in b.options]


def test_the_readme_has_blocks_to_run() -> None:
    found = runnable(README.read_text(encoding="utf-8"))
    assert {b.language for b in found} == {"bash", "python"}
    assert all(b.options == () for b in found), "an unknown option on a code block (only no-run is known)"


def run_block(block: Block, *, folder: Path, env: dict[str, str]) -> None:
    """Run `block` in `folder`; fail with its line and output when it fails, kill what it left."""
    # A file, not a pipe: a server the block left in the background would hold a pipe open.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
        process = subprocess.Popen(
            [*RUNNERS[block.language], block.code],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: what it started goes with it
        )
        try:
            code: int | None = process.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill_group(process.pid)
            process.wait()
        out.seek(0)
        output = out.read()
    if code is None:
        pytest.fail(
            f"README.md line {block.line}: the {block.language} block still ran after {BLOCK_TIMEOUT} s "
            f"(expected it to end by itself); its output:\n{output}"
        )
    if code != 0:
        pytest.fail(
            f"README.md line {block.line}: the {block.language} block failed with exit code {code}; "
            f"its output:\n{output}"
        )


def _kill_group(pgid: int) -> None:
    """SIGTERM every process left in the group, then SIGKILL what is still there 10 s later."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _environment() -> dict[str, str]:
    """A user's shell: this interpreter's `python` and `shipyard` first, no Shipyard settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["COLUMNS"] = "120"
    return env


def _check_ports_free() -> None:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                pytest.fail(
                    f"port {port} is in use; the README's servers listen on {PORTS}: stop what is there"
                )


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("after_demo", [False, True], ids=["fresh-folder", "after-the-demo"])
def test_the_readme_runs_as_written(tmp_path: Path, after_demo: bool) -> None:
    _check_ports_free()
    env = _environment()
    text = README.read_text(encoding="utf-8")
    if after_demo:  # the README's sections must not collide with what the demo registered
        _run_demo(1, text, folder=tmp_path, env=env)
    for block in runnable(text):
        run_block(block, folder=tmp_path, env=env)
    if after_demo:  # and the demo runs again in the same home, after the README's sections too
        _run_demo(2, text, folder=tmp_path, env=env)
        assert (tmp_path / ".shipyard" / "reports").is_dir()


# What every run of the demo shows (the Nth run registers cancer:N).
DEMO_SHOWS = (
    "credit@staging",
    "rejected",
    "expected a number",
    "outside the contract range",
    "PASSED",
    "FAILED",
    "promoted",
    "promotion refused",
    "quarantined rows",
    "audit chain verified",
    "wrote ",
    "requirements.lock",
    "exported from",
    "answers as",
    "demo finished",
)


def _run_demo(run_number: int, text: str, *, folder: Path, env: dict[str, str]) -> None:
    """`shipyard demo` in `folder`'s home, as the README's first command runs it, and what it shows."""
    log = f"demo{run_number}.txt"
    demo = f"shipyard demo --rows 2000 > {log} 2>&1 || {{ tail -60 {log}; exit 1; }}\n"
    run_block(Block(blocks(text)[0].line + 1, "bash", (), demo), folder=folder, env=env)
    shown = (folder / log).read_text(encoding="utf-8")
    for expected in (f"registered cancer:{run_number}", *DEMO_SHOWS):
        assert expected in shown, f"demo run {run_number} did not show {expected!r}:\n{shown[-3000:]}"
    # the good version passes the gates and is promoted, the weak one is refused: every time
    assert shown.count("promoted: credit@production") == 1
    assert shown.count("promotion refused") == 1
