"""`shipyard serve`: load models once, fork workers that share one port, follow aliases, stop gracefully.

The parent process loads every model (so its memory is shared copy-on-write by the workers),
binds the HTTP socket, and forks `workers` processes. Each worker runs uvicorn and the gRPC
server on one event loop, warms its models up with a real prediction, and only then reports
ready. SIGTERM stops accepting, answers every request already accepted, flushes the prediction
log and exits. The parent restarts a worker that dies and forwards SIGTERM/SIGINT to all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.core.refs import ModelRef
from shipyard.errors import ConfigError
from shipyard.registry.loaded import LoadedModel
from shipyard.registry.registry import Registry
from shipyard.rollout.deployments import Deployment, Deployments
from shipyard.security.context import Context
from shipyard.security.encryption import envelope_for
from shipyard.security.guard import DenialLog, Guard
from shipyard.security.keys import KeyVerifier
from shipyard.security.masking import Masker
from shipyard.security.tokens import JwtSettings, JwtVerifier
from shipyard.serving import sockets
from shipyard.serving.connections import ConnectionLimits, uvicorn_server
from shipyard.serving.following import follow_aliases, follow_deployment, start_controller
from shipyard.serving.run_dirs import new_run_dir, remove_stale_run_dirs
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService
from shipyard.serving.tls import TlsFiles
from shipyard.store.metadata import MetadataStore

if TYPE_CHECKING:
    import grpc.aio

__all__ = ["ServeOptions", "serve"]

log = logging.getLogger("shipyard.serve")

# Thread pools of the numeric libraries, pinned per worker (the "one per worker").
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How to serve.

    Args:
        refs: the models to serve (`fraud@production`, `fraud:3`, `fraud`).
        host: the address to listen on.
        port: the HTTP port (0 picks a free one).
        grpc_port: the gRPC port, or None for no gRPC.
        workers: worker processes sharing the ports.
        limits: request limits and batching.
        connections: deadlines for slow and idle clients, and the connections one worker holds.
        reload_interval: seconds between checks of the aliases being served.
        model_threads: threads each worker's model may use (OpenMP, BLAS).
        log_events: write the prediction log.
        live_profiles: keep live profiles of the traffic for drift on `/metrics`.
        trust_pickle: allow loading custom Python models (pyfunc).
        shutdown_grace: seconds SIGTERM waits for accepted requests to finish.
        deployment: serve this deployment's arms instead of `refs`.
        follow_interval: seconds between checks of the deployment's arms.
        controller: run the rollout controller in worker 0 (one acts across all replicas).
        auth: 'required' to refuse requests without a valid API key or token; 'off' to serve
            everyone (health and readiness are always open).
        jwt: accept JWT bearer tokens from this issuer, beside API keys.
        rate_limit: requests per second each caller (its key or token; without authentication,
            its address) may send to one worker, unless its key says otherwise; None for no limit.
        burst: requests a caller may send at once above its rate (twice the rate by default).
        tls: certificate and key (and client CA for mutual TLS) for HTTPS and gRPC over TLS.
    """

    refs: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = None
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    reload_interval: float = 10.0
    model_threads: int = 1
    log_events: bool = True
    live_profiles: bool = True
    trust_pickle: bool = False
    shutdown_grace: float = 30.0
    deployment: str | None = None
    follow_interval: float = 2.0
    controller: bool = True
    auth: str = "off"
    jwt: JwtSettings | None = None
    rate_limit: float | None = None
    burst: float | None = None
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        if self.auth not in ("off", "required"):
            raise ConfigError(f"--auth is {self.auth!r}; expected off or required")
        if self.jwt is not None and self.auth != "required":
            raise ConfigError("JWT settings need --auth required; without it nobody is asked for a token")
        for flag, value in (("--rate-limit", self.rate_limit), ("--burst", self.burst)):
            if value is not None and not value > 0:
                raise ConfigError(f"{flag} is {value}; expected a number above 0")
        if not self.refs and self.deployment is None:
            raise ConfigError(
                "nothing to serve; name at least one model, e.g. 'shipyard serve fraud@production', "
                "or a deployment, e.g. 'shipyard serve --deployment fraud-api'"
            )
        if self.refs and self.deployment is not None:
            raise ConfigError(
                f"serve either models ({' '.join(self.refs)}) or --deployment {self.deployment}, not both"
            )
        if self.follow_interval <= 0:
            raise ConfigError(f"--follow-interval is {self.follow_interval}; expected seconds above 0")
        if self.workers < 1:
            raise ConfigError(f"--workers is {self.workers}; expected 1 or more")
        if self.model_threads < 1:
            raise ConfigError(f"--model-threads is {self.model_threads}; expected 1 or more")
        if not 0.0 <= self.limits.log_sample <= 1.0:
            raise ConfigError(f"--log-sample is {self.limits.log_sample}; expected a share between 0 and 1")
        if self.reload_interval <= 0:
            raise ConfigError(f"--reload-interval is {self.reload_interval}; expected seconds above 0")


@dataclass(frozen=True)
class _Loaded:
    ref: ModelRef
    model: LoadedModel
    seconds: float


@dataclass(frozen=True)
class _Deployed:
    deployment: Deployment
    models: dict[int, LoadedModel]
    seconds: float


@dataclass(frozen=True)
class _Worker:
    """One worker process: what it serves and how, the port's socket, its number, the run folder
    the workers share (None for a lone worker), and its supervisor's pid (None for none)."""

    settings: Settings
    options: ServeOptions
    loaded: Sequence[_Loaded] | _Deployed
    sock: socket.socket
    number: int
    run_dir: Path | None = None
    supervisor: int | None = None


def serve(
    settings: Settings, options: ServeOptions, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT.

    Args:
        settings: where the registry lives.
        options: what and how to serve.
        on_ready: called once with a line saying where the server listens.

    Raises:
        ShipyardError: a model cannot be loaded, or a port cannot be bound.
    """
    for variable in _THREAD_VARIABLES:
        os.environ.setdefault(variable, str(options.model_threads))
    refs = [ModelRef.parse(r) for r in options.refs]
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise ConfigError(f"models {names} are served under their names; each name may appear once")
    loaded: list[_Loaded] | _Deployed
    with Registry(settings) as registry:
        if options.deployment is not None:
            loaded = _load_deployment(registry, options.deployment, trust_pickle=options.trust_pickle)
        else:
            loaded = [_load(registry, ref, trust_pickle=options.trust_pickle) for ref in refs]
    # With balanced workers the parent only holds the port (bound, not listening: the kernel hands
    # connections to listening sockets only); each worker listens on its own socket once ready.
    balanced = sockets.balanced(options.workers)
    sock = sockets.bind(options.host, options.port, reuse_port=balanced, listen=not balanced)
    port = sock.getsockname()[1]
    if (warning := options.connections.descriptor_warning()) is not None:
        log.warning("%s", warning)
    grpc_part = f", gRPC on {options.host}:{options.grpc_port}" if options.grpc_port is not None else ""
    if isinstance(loaded, _Deployed):
        arms = ", ".join(map(str, loaded.deployment.arms))
        served = f"deployment {loaded.deployment.name} of {loaded.deployment.model} [{arms}]"
    else:
        served = ", ".join(f"{item.ref} (version {item.model.version.version})" for item in loaded)
    scheme = "https" if options.tls is not None else "http"
    line = f"serving {served} on {scheme}://{options.host}:{port}{grpc_part} with {options.workers} worker(s)"
    if options.auth == "required":
        line += ", API keys" + (" and JWTs" if options.jwt else "") + " required"
        if options.tls is None:
            log.warning(
                "--auth required without TLS: API keys and tokens cross the network in clear text, "
                "where anyone on the path can copy them; add --tls-cert and --tls-key, or terminate "
                "TLS in front of this server on a network nobody else can read"
            )
    if on_ready is not None:
        on_ready(line)
    remove_stale_run_dirs()  # a server killed with SIGKILL could not remove its own
    if options.workers == 1:
        _run_worker(_Worker(settings, options, loaded, sock, 0))
        return
    run_dir = new_run_dir()
    try:
        _supervise(settings, options, loaded, sock, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _load(registry: Registry, ref: ModelRef, *, trust_pickle: bool) -> _Loaded:
    started = time.perf_counter()
    model = registry.load(ref, trust_pickle=trust_pickle)
    return _Loaded(ref, model, time.perf_counter() - started)


def _load_deployment(registry: Registry, name: str, *, trust_pickle: bool) -> _Deployed:
    started = time.perf_counter()
    deployment = Deployments(registry).get(name)
    models = {
        arm.version: registry.load(deployment.ref(arm), trust_pickle=trust_pickle) for arm in deployment.arms
    }
    return _Deployed(deployment, models, time.perf_counter() - started)


def _supervise(
    settings: Settings,
    options: ServeOptions,
    loaded: Sequence[_Loaded] | _Deployed,
    sock: socket.socket,
    run_dir: Path,
) -> None:
    children: dict[int, int] = {}
    stopping = False

    supervisor = os.getpid()

    def spawn(worker: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _run_worker(_Worker(settings, options, loaded, sock, worker, run_dir, supervisor))
            except BaseException:
                log.exception("worker %d failed", worker)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = worker
        if stopping:  # SIGTERM came while this worker was being started: stop it with the others
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in range(options.workers):
            spawn(worker)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            worker = children.pop(pid)
            if stopping:
                continue
            log.warning("worker %d (pid %d) exited with status %d; starting a new one", worker, pid, status)
            time.sleep(0.5)
            if not stopping:
                spawn(worker)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()


def _run_worker(worker: _Worker) -> None:
    import uvloop
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=worker.options.model_threads):
        uvloop.run(_worker_main(worker))


async def _watch_supervisor(supervisor: int | None, stop: Callable[[], None]) -> None:
    """Stop the worker once its supervisor is gone: killed with SIGKILL, it forwards no SIGTERM,
    and a worker left behind would serve on (and hold the run folder) with nobody to restart it.

    Args:
        supervisor: the supervisor's pid, or None for a lone worker (nothing to watch).
        stop: what SIGTERM calls.
    """
    if supervisor is None:
        return
    while os.getppid() == supervisor:
        await asyncio.sleep(1.0)
    log.warning("the supervisor (pid %d) is gone; this worker stops as after SIGTERM", supervisor)
    stop()


async def _worker_main(me: _Worker) -> None:
    from shipyard.explanations.records import ExplanationLog
    from shipyard.monitoring.events import EventLog
    from shipyard.monitoring.feedback import FeedbackStore
    from shipyard.monitoring.live import LiveProfiles
    from shipyard.serving.http_app import HttpApp
    from shipyard.serving.metrics import Metrics

    settings, options, worker, run_dir = me.settings, me.options, me.number, me.run_dir

    metrics = Metrics(run_dir, worker=worker).start()
    cipher = envelope_for(settings)
    masker = Masker.for_home(settings.home, settings.masking_key)
    events = None
    if options.log_events:
        events = EventLog(
            settings.store_url, worker=str(worker), cipher=cipher, masker=masker, file_mode=settings.file_mode
        ).start()
    live = LiveProfiles(run_dir, worker=worker).start() if options.live_profiles else None
    metrics.live, metrics.drift_minutes = live, options.limits.drift_minutes
    meta = MetadataStore(settings.db_url, busy_timeout=settings.db_timeout)
    guard, denials = _guard(options, meta)
    service = ModelService(
        limits=options.limits,
        metrics=metrics,
        events=events,
        live=live,
        feedback=FeedbackStore(Context.system(settings, meta, actor="server")),
        guard=guard,
        explanations=(
            ExplanationLog(settings.store_url, cipher=cipher, masker=masker, file_mode=settings.file_mode)
            if options.log_events
            else None
        ),
    )
    follow = _add_models(settings, service, options, me.loaded)
    service.warm_up()
    # Everything loaded so far lives as long as the worker; keep it out of the collector's full
    # passes, which otherwise stall the loop for tens of milliseconds (the p99 of the benchmark).
    gc.freeze()
    app = HttpApp(service)
    http = uvicorn_server(
        app,
        max_body_bytes=options.limits.max_body_bytes,
        connections=options.connections,
        shutdown_grace=options.shutdown_grace,
        tls=options.tls,
    )
    grpc = await _start_grpc(service, options) if options.grpc_port is not None else None
    loop = asyncio.get_running_loop()

    def stop() -> None:
        # Readiness turns false so load balancers stop sending; accepted requests are still answered.
        service.draining = True
        http.should_exit = True

    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop)
    background = [
        asyncio.create_task(follow),
        asyncio.create_task(_watch_supervisor(me.supervisor, stop)),
    ]
    controller = None
    if worker == 0 and options.deployment and options.controller:
        controller = start_controller(settings, trust_pickle=options.trust_pickle)
    try:
        await http.serve(sockets=[sockets.listener(me.sock, host=options.host, workers=options.workers)])
    finally:
        for task in background:
            task.cancel()
        if grpc is not None:
            await grpc.stop(options.shutdown_grace)
        if controller is not None:
            await loop.run_in_executor(None, controller.stop)
        if events is not None:
            events.close()
        if live is not None:
            live.close()
        if denials is not None:
            denials.close()
        meta.close()
        metrics.close()


async def _start_grpc(service: ModelService, options: ServeOptions) -> grpc.aio.Server:
    """The worker's gRPC server, bound (over TLS when configured) and started."""
    from shipyard.serving.grpc_server import start_grpc

    address = f"{options.host}:{options.grpc_port}"
    return await start_grpc(
        service, address, max_message_bytes=options.limits.max_body_bytes, tls=options.tls
    )


def _guard(options: ServeOptions, meta: MetadataStore) -> tuple[Guard, DenialLog | None]:
    """The worker's guard and, with auth on, the log of the requests it refuses."""
    if options.auth != "required":  # a rate limit still holds, per client address
        return Guard(required=False, rate=options.rate_limit, burst=options.burst), None
    denials = DenialLog(meta)
    guard = Guard(
        required=True,
        keys=KeyVerifier(meta),
        jwt=JwtVerifier(options.jwt) if options.jwt is not None else None,
        rate=options.rate_limit,
        burst=options.burst,
        on_denied=denials,
    )
    return guard, denials


def _add_models(
    settings: Settings, service: ModelService, options: ServeOptions, loaded: Sequence[_Loaded] | _Deployed
) -> Coroutine[None, None, None]:
    """Serve what the parent loaded; returns what follows its changes (aliases or the arms)."""
    if isinstance(loaded, _Deployed):
        served = service.add_deployment(loaded.deployment, loaded.models, load_seconds=loaded.seconds)
        return follow_deployment(
            settings, service, served, interval=options.follow_interval, trust_pickle=options.trust_pickle
        )
    for item in loaded:
        service.add(item.ref, item.model, load_seconds=item.seconds)
    return follow_aliases(
        settings, service, interval=options.reload_interval, trust_pickle=options.trust_pickle
    )
