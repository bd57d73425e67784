"""Who holds a running job or scheduled run: this process, and whether a holder still lives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from shipyard.store.holders import alive, this_process


def test_this_process_is_host_and_pid_and_is_alive() -> None:
    assert this_process() == f"{socket.gethostname()}:{os.getpid()}"
    assert alive(this_process())


def test_a_process_that_ended_holds_nothing() -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    assert not alive(f"{socket.gethostname()}:{ended.stdout.strip()}")


def test_another_host_s_process_or_a_malformed_holder_is_not_alive_here() -> None:
    assert not alive(f"not-{socket.gethostname()}:{os.getpid()}")
    assert not alive(f"{socket.gethostname()}:abc")
    assert not alive("")
