"""Who holds a row that a process works on: a running batch job or a schedule's run.

A holder is `host:pid`. A job or run left `running` by a process that is gone (killed, or its
machine restarted) no longer holds anything: a resume or the next scheduler pass takes it over.
"""

from __future__ import annotations

import os
import socket

__all__ = ["alive", "this_process"]


def this_process() -> str:
    """Who runs a job or a scheduled run: host and process id (a resume checks the process is gone)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def alive(holder: str) -> bool:
    """True when `holder` is a process on this host that still exists."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's process: its owner must judge; a resume takes it over
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
