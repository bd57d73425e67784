"""What the supervisor of `shipyard serve --workers N` prepares so that its workers share memory.

A forked worker shares every page of its supervisor until one of them writes to it; then the
kernel copies that page for the writer. So each worker costs what it builds after the fork
plus the pages it copies, and a page that every worker copies costs the supervisor's copy too.
Just before it forks, the supervisor therefore (`before_fork`):

- imports the modules every worker imports (the HTTP app and its routes, protobuf, uvloop,
  the prediction log's pyarrow.parquet, the followers of aliases and deployments, the
  feedback store), so their code and objects are built once instead of once per worker;
- fills the free chunks of its C heap (`_fill_c_heap`): what a worker allocates with malloc
  then comes from fresh pages at the heap's top instead of from holes scattered over pages it
  shares with the supervisor, each of which the kernel would copy whole;
- freezes the collector's view of everything it holds (`gc.freeze()`): a worker's collections
  then leave these objects alone instead of writing into their headers.

It starts no thread, opens no connection and runs no model: OpenMP, BLAS and gRPC must start
their threads in the worker that uses them, after the fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib

__all__ = ["before_fork"]


def before_fork(*, bundle: bool, log_events: bool, metadata: bool, auth: bool, grpc: bool) -> None:
    """Import what the workers will import, fill the C heap's holes and freeze the collector's view.

    Call it in the supervisor once, before it forks its first worker (a replacement is forked
    from the same state).

    Args:
        bundle: serving a baked bundle (no aliases or deployments to follow).
        log_events: the workers write the prediction log (when pyarrow is installed).
        metadata: the workers open a metadata store (feedback, API keys).
        auth: the workers check API keys against the metadata store.
        grpc: the workers serve gRPC (its HTTP/2 server and handlers: grpcio is imported for its
            status codes only, and starts no thread).
    """
    listed = _worker_modules(bundle=bundle, log_events=log_events, metadata=metadata, auth=auth, grpc=grpc)
    for module in listed:
        # A module missing here (a bundle's runtime without pyarrow) is missing in the worker
        # too, which goes on without it or says why.
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    _fill_c_heap()
    gc.freeze()


def _worker_modules(*, bundle: bool, log_events: bool, metadata: bool, auth: bool, grpc: bool) -> list[str]:
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
    if grpc:
        modules.append("shipyard.serving.grpc_server")
    return modules


#: Sizes of the blocks that fill the C heap's free chunks, largest first (fewer calls), down to
#: one that fits the smallest chunk glibc keeps apart.
_FILL_SIZES = (4000, 1000, 240, 24)


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33 and later)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _fill_c_heap() -> None:
    """Allocate, and keep, the free chunks of the C heap's main arena (glibc only).

    A worker's first mallocs would otherwise reuse those chunks, scattered over pages it shares
    with the supervisor: each reuse copies a whole page for a few bytes (about 5 MiB per worker
    of `benchmarks/serving.py --only memory`). Filled, they send its mallocs to the top of the
    heap, onto fresh pages it fills densely. The blocks are never freed: they were free memory
    the supervisor held anyway. Each size is allocated until a block comes from the top chunk
    (the heap's unused end), and never more than the free bytes glibc reports.
    """
    libc = ctypes.CDLL(None)
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is None:  # not glibc, or glibc before 2.33
        return
    mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    libc.malloc_trim(0)  # merges the fast bins' chunks into free chunks the loop below can take
    info = mallinfo2()
    top = (libc.sbrk(0) or 0) - info.keepcost  # where the top chunk starts
    budget = info.fordblks
    for size in _FILL_SIZES:
        while budget > 0:
            block = libc.malloc(size)
            budget -= size
            if block is None or block >= top:
                break
