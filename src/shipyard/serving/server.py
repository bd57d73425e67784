"""`shipyard serve`: load models once, fork workers that share one port, follow aliases, stop gracefully.

The parent process loads every model (so its memory is shared copy-on-write by the workers),
binds the HTTP socket, builds once what every worker would build after the fork (its modules,
the metadata store, the thread pools' limits; `sharing.py`), and forks `workers` processes.
Each worker runs uvicorn and the gRPC server on one event loop, warms its models up with a real
prediction, and only then reports ready. SIGTERM stops accepting, answers every request already
accepted, flushes the prediction log and exits. The parent restarts a worker that dies and
forwards SIGTERM/SIGINT to all of them.

A baked bundle (`--bundle DIR`, `registry/bundles.py`) is served with no metadata store: the
socket is bound and listening before the bundle is read, so a connection that arrives while
the model loads waits in the kernel's accept queue (its backlog, `sockets.BACKLOG`) and is
answered once the model is warm; every worker accepts on that one socket. Nothing on that path
imports SQLAlchemy, and the prediction log is written only when pyarrow is installed.
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
from shipyard.security.encryption import envelope_for
from shipyard.security.guard import DenialLog, Guard
from shipyard.security.masking import Masker
from shipyard.security.tokens import JwtSettings, JwtVerifier
from shipyard.serving import sockets
from shipyard.serving.connections import ConnectionLimits, uvicorn_server
from shipyard.serving.run_dirs import new_run_dir, remove_stale_run_dirs
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService
from shipyard.serving.sharing import before_fork
from shipyard.serving.tls import TlsFiles

if TYPE_CHECKING:  # the registry's and rollout's stores import SQLAlchemy: imported where used
    from shipyard.monitoring.events import EventLog
    from shipyard.monitoring.feedback import FeedbackStore
    from shipyard.registry.registry import Registry
    from shipyard.rollout.deployments import Deployment
    from shipyard.serving.following import _ControllerThread
    from shipyard.serving.h2_server import H2Server
    from shipyard.store.metadata import MetadataStore

__all__ = ["ServeOptions", "serve"]

log = logging.getLogger("shipyard.serve")

# Thread pools of the numeric libraries, pinned per worker (the "one per worker").
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How to serve.

    Args:
        refs: the models to serve (`fraud@production`, `fraud:3`, `fraud`).
        bundle: serve the one version baked in this bundle folder instead, with no metadata
            store (unless SHIPYARD_DB_URL is set, for API keys and feedback) and nothing to follow.
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
    bundle: Path | None = None
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
        if not self.refs and self.deployment is None and self.bundle is None:
            raise ConfigError(
                "nothing to serve; name at least one model, e.g. 'shipyard serve fraud@production', "
                "a deployment, e.g. 'shipyard serve --deployment fraud-api', or a bundle, e.g. "
                "'shipyard serve --bundle /srv/bundle'"
            )
        if self.bundle is not None and (self.refs or self.deployment is not None):
            other = " ".join(self.refs) or f"--deployment {self.deployment}"
            raise ConfigError(f"serve either the bundle {self.bundle} or {other}, not both")
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
    the workers share (None for a lone worker), its supervisor's pid (None for none), and the
    metadata store its supervisor opened for it (None: it opens its own, if it needs one)."""

    settings: Settings
    options: ServeOptions
    loaded: Sequence[_Loaded] | _Deployed
    sock: socket.socket
    number: int
    run_dir: Path | None = None
    supervisor: int | None = None
    meta: MetadataStore | None = None


def serve(
    settings: Settings,
    options: ServeOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
    listening: socket.socket | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT.

    Args:
        settings: where the registry lives.
        options: what and how to serve.
        on_ready: called once with a line saying where the server listens.
        listening: with a bundle, the socket already bound and listening on the port (the CLI
            binds it before it imports this module); bound here when omitted.

    Raises:
        ShipyardError: a model cannot be loaded, or a port cannot be bound.
    """
    for variable in _THREAD_VARIABLES:
        os.environ.setdefault(variable, str(options.model_threads))
    # The prediction log's Arrow buffers on the C heap: pyarrow's default pool (mimalloc) keeps
    # about 7 MiB of each worker's freed buffers resident. Read once, when pyarrow is first imported.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    loaded: list[_Loaded] | _Deployed
    if options.bundle is not None:
        _check_bundle_auth(options)
        # Listening before the bundle is read: a connection that comes while the model loads
        # waits in the accept queue instead of being refused.
        sock = listening or sockets.bind(options.host, options.port)
        loaded = [_load_bundle(settings, options)]
    else:
        loaded = _load_registered(settings, options)
        # With balanced workers the parent only holds the port (bound, not listening: the kernel
        # hands connections to listening sockets only); each worker listens on its own socket
        # once ready.
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


def _load_registered(settings: Settings, options: ServeOptions) -> list[_Loaded] | _Deployed:
    """The models or the deployment `options` name, loaded from the registry."""
    from shipyard.registry.registry import Registry

    refs = [ModelRef.parse(r) for r in options.refs]
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise ConfigError(f"models {names} are served under their names; each name may appear once")
    with Registry(settings) as registry:
        if options.deployment is not None:
            return _load_deployment(registry, options.deployment, trust_pickle=options.trust_pickle)
        return [_load(registry, ref, trust_pickle=options.trust_pickle) for ref in refs]


def _load_bundle(settings: Settings, options: ServeOptions) -> _Loaded:
    """The bundle's version, checked and loaded (`registry/bundles.py`), served as `NAME:VERSION`."""
    from shipyard.registry.bundles import open_bundle

    assert options.bundle is not None
    started = time.perf_counter()
    bundle = open_bundle(options.bundle)
    model = bundle.load(trust_pickle=options.trust_pickle, settings=settings)
    return _Loaded(bundle.version.ref, model, time.perf_counter() - started)


def _check_bundle_auth(options: ServeOptions) -> None:
    """Refuse `--auth required` on a bundle that could check no credential at all.

    Raises:
        ConfigError: no JWT issuer is given and no metadata store (SHIPYARD_DB_URL) holds keys.
    """
    if options.auth == "required" and options.jwt is None and not _has_metadata(options):
        raise ConfigError(
            "--auth required on a bundle without a metadata store accepts JWTs only, and no issuer "
            "is given: add --jwt-issuer and --jwt-jwks, or set SHIPYARD_DB_URL to the registry's "
            "database to check API keys"
        )


def _has_metadata(options: ServeOptions) -> bool:
    """Whether the server opens a metadata store: always for the registry's models, and for a
    bundle only when SHIPYARD_DB_URL names one (for API keys, feedback and audited refusals)."""
    return options.bundle is None or bool(os.environ.get("SHIPYARD_DB_URL"))


def _load(registry: Registry, ref: ModelRef, *, trust_pickle: bool) -> _Loaded:
    started = time.perf_counter()
    model = registry.load(ref, trust_pickle=trust_pickle)
    return _Loaded(ref, model, time.perf_counter() - started)


def _load_deployment(registry: Registry, name: str, *, trust_pickle: bool) -> _Deployed:
    from shipyard.rollout.deployments import Deployments

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
    meta = _before_fork(settings, options)

    def spawn(worker: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _run_worker(_Worker(settings, options, loaded, sock, worker, run_dir, supervisor, meta))
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


def _before_fork(settings: Settings, options: ServeOptions) -> MetadataStore | None:
    """Build once, in the supervisor, what every worker would otherwise build (and copy pages
    for) after the fork (`sharing.py`); returns the workers' metadata store, or None for none.

    The store is opened and its schema checked here rather than in each worker, where
    SQLAlchemy's first engine and schema check copy about 4 MiB of shared pages. Its pool is
    emptied before the fork: no connection crosses it, each worker opens its own.
    """
    from threadpoolctl import threadpool_limits

    # Set once here (it starts no thread) and kept by every worker forked after: each worker
    # that scanned the loaded libraries itself would copy about 1 MiB of shared pages.
    threadpool_limits(limits=options.model_threads)
    meta = _metadata(settings) if _has_metadata(options) else None
    if meta is not None:
        meta.close()
    before_fork(
        bundle=options.bundle is not None,
        log_events=options.log_events,
        metadata=meta is not None,
        auth=options.auth == "required",
        grpc=options.grpc_port is not None,
    )
    return meta


def _run_worker(worker: _Worker) -> None:
    import uvloop
    from threadpoolctl import threadpool_limits

    if worker.supervisor is not None:  # forked with the limits its supervisor set (`_before_fork`)
        uvloop.run(_worker_main(worker))
        return
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
    from shipyard.monitoring.live import LiveProfiles
    from shipyard.serving.http_app import HttpApp
    from shipyard.serving.metrics import Metrics

    settings, options, worker, run_dir = me.settings, me.options, me.number, me.run_dir

    metrics = Metrics(run_dir, worker=worker).start()
    cipher = envelope_for(settings)
    logging_on = options.log_events and _can_log(settings, options, worker)
    masker = Masker.for_home(settings.home, settings.masking_key) if logging_on else None
    events = _event_log(settings, worker, masker) if logging_on else None
    live = LiveProfiles(run_dir, worker=worker).start() if options.live_profiles else None
    metrics.live, metrics.drift_minutes = live, options.limits.drift_minutes
    meta = me.meta if me.meta is not None else _metadata(settings) if _has_metadata(options) else None
    guard, denials = _guard(options, meta)
    service = ModelService(
        limits=options.limits,
        metrics=metrics,
        events=events,
        live=live,
        feedback=_feedback(settings, meta),
        guard=guard,
        explanations=(
            ExplanationLog(settings.store_url, cipher=cipher, masker=masker, file_mode=settings.file_mode)
            if logging_on
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
    background = [asyncio.create_task(_watch_supervisor(me.supervisor, stop))]
    if follow is not None:
        background.append(asyncio.create_task(follow))
    controller = _controller(me)
    try:
        await http.serve(sockets=[_listening(me)])
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
        if meta is not None:
            meta.close()
        metrics.close()


def _controller(me: _Worker) -> _ControllerThread | None:
    """The rollout controller, started in worker 0 of a deployment's server (when asked)."""
    if me.number != 0 or not me.options.deployment or not me.options.controller:
        return None
    from shipyard.serving.following import start_controller

    return start_controller(me.settings, trust_pickle=me.options.trust_pickle)


def _listening(me: _Worker) -> socket.socket:
    """The socket the worker accepts on. A bundle's workers share the one the parent listens on
    from the start (no moment where the port has no listener while a worker warms up); the
    registry's balanced workers each listen on their own (`sockets.listener`)."""
    if me.options.bundle is not None:
        return me.sock
    return sockets.listener(me.sock, host=me.options.host, workers=me.options.workers)


async def _start_grpc(service: ModelService, options: ServeOptions) -> H2Server:
    """The worker's gRPC server, bound (over TLS when configured) and started."""
    from shipyard.serving.grpc_server import start_grpc

    address = f"{options.host}:{options.grpc_port}"
    return await start_grpc(
        service,
        address,
        max_message_bytes=options.limits.max_body_bytes,
        tls=options.tls,
        connections=options.connections,
    )


def _can_log(settings: Settings, options: ServeOptions, worker: int) -> bool:
    """Whether a bundle's server can write the prediction log: pyarrow is installed and the
    store is writable (a baked runtime may have neither). The registry's server always logs.
    Worker 0 says once why it does not."""
    if options.bundle is None:
        return True
    reason = None
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        reason = "pyarrow is not installed (pip install pyarrow)"
    else:
        place = _local_path(settings.store_url)
        if place is not None and not _writable(place):
            reason = (
                f"the store {settings.store_url} is not writable (set SHIPYARD_HOME or SHIPYARD_STORE_URL)"
            )
    if reason is not None and worker == 0:
        log.warning("the prediction log is off: %s; predictions are served but not logged", reason)
    return reason is None


def _local_path(url: str) -> Path | None:
    """The local folder of a store URL, or None for an object store (s3://, gs://, ...)."""
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    return None if "://" in url else Path(url)


def _writable(folder: Path) -> bool:
    """Whether `folder`, or its nearest existing parent when it is yet to be made, is writable."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.access(existing, os.W_OK)


def _event_log(settings: Settings, worker: int, masker: Masker | None) -> EventLog:
    from shipyard.monitoring.events import EventLog

    return EventLog(
        settings.store_url,
        worker=str(worker),
        cipher=envelope_for(settings),
        masker=masker,
        file_mode=settings.file_mode,
    ).start()


def _metadata(settings: Settings) -> MetadataStore:
    from shipyard.store.metadata import MetadataStore

    return MetadataStore(settings.db_url, busy_timeout=settings.db_timeout)


def _feedback(settings: Settings, meta: MetadataStore | None) -> FeedbackStore | None:
    """Where `/v1/feedback` stores labels: the metadata store, or None (refused) without one."""
    if meta is None:
        return None
    from shipyard.monitoring.feedback import FeedbackStore
    from shipyard.security.context import Context

    return FeedbackStore(Context.system(settings, meta, actor="server"))


def _guard(options: ServeOptions, meta: MetadataStore | None) -> tuple[Guard, DenialLog | None]:
    """The worker's guard and, with auth on, the log of the requests it refuses (none without a
    metadata store, which then accepts JWTs only)."""
    if options.auth != "required":  # a rate limit still holds, per client address
        return Guard(required=False, rate=options.rate_limit, burst=options.burst), None
    if meta is None:
        jwt = JwtVerifier(options.jwt) if options.jwt is not None else None
        return Guard(required=True, jwt=jwt, rate=options.rate_limit, burst=options.burst), None
    from shipyard.security.keys import KeyVerifier

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
) -> Coroutine[None, None, None] | None:
    """Serve what the parent loaded; returns what follows its changes (aliases or the arms), or
    None for a bundle, which has nothing to follow."""
    if isinstance(loaded, _Deployed):
        from shipyard.serving.following import follow_deployment

        served = service.add_deployment(loaded.deployment, loaded.models, load_seconds=loaded.seconds)
        return follow_deployment(
            settings, service, served, interval=options.follow_interval, trust_pickle=options.trust_pickle
        )
    for item in loaded:
        service.add(item.ref, item.model, load_seconds=item.seconds)
    if options.bundle is not None:
        return None
    from shipyard.serving.following import follow_aliases

    return follow_aliases(
        settings, service, interval=options.reload_interval, trust_pickle=options.trust_pickle
    )
