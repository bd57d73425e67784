"""What the supervisor of `shipyard serve --workers N` prepares so that its workers share memory.

A forked worker shares every page of its supervisor until one of them writes to it; then the
kernel copies that page for the writer. So each worker costs what it builds after the fork
plus the pages it copies, and a page that every worker copies costs the supervisor's copy too.
Just before it forks, the supervisor therefore (`before_fork`):

- imports the modules every worker imports (the HTTP app and its routes, protobuf, uvloop,
  the prediction log's pyarrow.parquet, the followers of aliases and deployments, the
  feedback store), so their code and objects are built once instead of once per worker;
- freezes the collector's view of everything it holds (`gc.freeze()`): a worker's collections
  then leave these objects alone instead of writing into their headers.

It starts no thread, opens no connection and runs no model: OpenMP, BLAS and gRPC must start
their threads in the worker that uses them, after the fork.
"""

from __future__ import annotations

import contextlib
import gc
import importlib

__all__ = ["before_fork"]


def before_fork(*, bundle: bool, log_events: bool, metadata: bool, auth: bool) -> None:
    """Import what the workers will import and freeze the collector's view of it all.

    Call it in the supervisor before it forks its workers; calling it again (before forking a
    replacement) is harmless.

    Args:
        bundle: serving a baked bundle (no aliases or deployments to follow).
        log_events: the workers write the prediction log (when pyarrow is installed).
        metadata: the workers open a metadata store (feedback, API keys).
        auth: the workers check API keys against the metadata store.
    """
    for module in _worker_modules(bundle=bundle, log_events=log_events, metadata=metadata, auth=auth):
        # A module missing here (a bundle's runtime without pyarrow) is missing in the worker
        # too, which goes on without it or says why.
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    gc.freeze()


def _worker_modules(*, bundle: bool, log_events: bool, metadata: bool, auth: bool) -> list[str]:
    """The modules a worker imports after the fork (`server._run_worker` and what it calls)."""
    modules = [
        "uvloop",
        "threadpoolctl",
        "shipyard.serving.http_app",
        "shipyard.serving.metrics",
        "shipyard.explanations.records",
    ]
    if log_events:
        modules.append("shipyard.monitoring.events")
    if metadata:
        modules.append("shipyard.monitoring.feedback")
        if auth:
            modules.append("shipyard.security.keys")
    if not bundle:
        modules.append("shipyard.serving.following")
    return modules
