"""Serving benchmark: Shipyard's REST and gRPC servers against a floor measured in the same run.

Run it with one command (about 15 x DURATION seconds plus set-up, on an idle machine)::

    python benchmarks/serving.py [--duration 10] [--out results.md] [--only profiles|routing]

It fits `HistGradientBoostingClassifier(max_iter=100)` on `make_classification(n_samples=50_000,
n_features=20)`, registers it as `hgb@production` in a fresh temporary Shipyard home, and sends
single-row requests (`{"instances": [{"x0": ..., "x19": ...}]}`) to one worker of each target:

- floor: the in-process `model.predict_proba(row)` of a 1x20 numpy row, timed in a loop under
  `threadpool_limits(1)`, the one thread per worker the servers get;
- echo ASGI: a bare ASGI callable that reads the body and answers a fixed small JSON, served by
  uvicorn (httptools, uvloop, no access log): the cost of the HTTP round trip alone;
- FastAPI baseline: a minimal FastAPI app, `async def` `POST /predict` on a pydantic body, that
  builds the row and calls `predict_proba` on a joblib copy of the model, with OMP_NUM_THREADS=1;
- Shipyard REST: `shipyard serve hgb@production --workers 1 --no-log`, `POST /v1/models/hgb/predict`;
- Shipyard gRPC: the same server's Open Inference Protocol v2 `ModelInfer`, one FP64 [1, 20] tensor.

HTTP targets are loaded by wrk with one thread (`-t1`) at 1 and 32 connections, gRPC by a Python
`grpc.aio` process with 1 and 32 concurrent callers; each measured run follows a 2 s warm-up. It then
measures the cost of live traffic profiles: REST at c=32 with `--no-profile` and with profiles on
(the default), in three alternating rounds of fresh servers, compared on the median; and the cost
of deployment routing at a 90/10 canary: `serve --deployment hgb-api` (hgb:1 90%, hgb:2 10%, a
second fit; random split, the rollout controller running) against the same two models served by
name with the client sending 10% of requests to the second (the same model calls, no routing),
and against one model alone (what the second model's calls cost). It then
starts `shipyard serve` with 1 and with 4 workers and sums the PSS and RSS of the process tree
(from /proc). It prints a markdown report (results, targets with PASS/FAIL, memory) and, with
`--out`, writes it to a file too. Every server it starts is stopped on exit, error or Ctrl-C.

The script also runs its own helper processes (the echo and FastAPI servers, the gRPC load
generator) through the hidden `--role` option.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 20
COLUMNS = [f"x{i}" for i in range(N_FEATURES)]
MODEL_NAME = "hgb"
DEPLOYMENT = "hgb-api"
SECOND_MODEL = "hgb-b"
CONCURRENCY_LOW = 1
CONCURRENCY_HIGH = 32
WARMUP_SECONDS = 2
HOST = "127.0.0.1"
GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0
MEMORY_WORKERS = (1, 4)
ECHO_BODY = b'{"ok":true}'

# Targets of the issue, computed from this run.
RPS_RATIO_TARGET = 5.0
OVERHEAD_TARGET_MS = 0.2
GRPC_RATIO_TARGET = 0.8
OVERHEAD_TARGET = 0.05  # a feature on the hot path costs at most this share of throughput
OVERHEAD_ROUNDS = 3

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BenchmarkError(RuntimeError):
    """A target could not be started or measured."""


@dataclass(frozen=True)
class Load:
    """One measured run at one concurrency."""

    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0
    client_cpu: float | None = None  # share of one core the Python load generator used


@dataclass(frozen=True)
class Result:
    """A target measured at concurrency 1 and (for servers) 32."""

    name: str
    low: Load
    high: Load | None


@dataclass(frozen=True)
class Memory:
    """The memory of one `shipyard serve` process tree."""

    workers: int
    processes: int
    pss_mib: float
    rss_mib: float


@dataclass(frozen=True)
class Setup:
    """What every measurement shares."""

    work: Path
    home: Path
    model_path: Path
    lua: Path
    body: bytes
    row: list[float]
    duration: int


def progress(message: str) -> None:
    print(f"[serving benchmark] {message}", file=sys.stderr, flush=True)


# -- the model ------------------------------------------------------------------------------------


def train() -> tuple[np.ndarray, np.ndarray, Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=50_000, n_features=N_FEATURES, random_state=0)
    return X, y, HistGradientBoostingClassifier(max_iter=100).fit(X, y)


def register(model: Any, features: np.ndarray, labels: np.ndarray, home: Path) -> None:
    import pandas as pd

    from shipyard import Registry, Settings

    df = pd.DataFrame(features, columns=COLUMNS)
    df["label"] = labels
    with Registry(Settings.for_home(home)) as r:
        version = r.register(model, name=MODEL_NAME, train_data=df, target="label")
        r.set_alias(version.ref, "production", force=True, reason="benchmark set-up: no gates to pass")


def measure_floor(model: Any, row: np.ndarray, duration: float) -> Load:
    """`predict_proba` of one row in a loop on one thread: no server can answer faster."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        for _ in range(200):
            model.predict_proba(row)
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = started + duration
        while (before := time.perf_counter()) < deadline:
            model.predict_proba(row)
            latencies.append(time.perf_counter() - before)
        elapsed = time.perf_counter() - started
    return summarize(latencies, elapsed)


def summarize(latencies: Sequence[float], elapsed: float, errors: int = 0, cpu: float | None = None) -> Load:
    if not latencies:
        raise BenchmarkError("no call completed")
    p50, p99 = np.percentile(np.asarray(latencies) * 1e3, [50, 99])
    rps = len(latencies) / elapsed
    return Load(rps=rps, p50_ms=float(p50), p99_ms=float(p99), non_2xx=errors, client_cpu=cpu)


# -- helper processes (run through --role) ----------------------------------------------------------


async def echo_app(scope: Message, receive: Receive, send: Send) -> None:
    """A bare ASGI app: read the whole body, answer a fixed small JSON."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ECHO_BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ECHO_BODY})


def fastapi_app(model_path: Path) -> Any:
    """The baseline a team would write by hand: FastAPI, a pydantic body, `predict_proba`."""
    import joblib
    from fastapi import FastAPI
    from pydantic import BaseModel

    model = joblib.load(model_path)
    app = FastAPI()

    class PredictRequest(BaseModel):
        instances: list[dict[str, float]]

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, list[list[float]]]:
        rows = np.array([[instance[c] for c in COLUMNS] for instance in request.instances])
        return {"predictions": model.predict_proba(rows).tolist()}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def run_uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


async def grpc_load(target: str, row: list[float], concurrency: int, duration: float) -> Load:
    """`concurrency` callers sending ModelInfer back to back on one channel for `duration` seconds."""
    import grpc
    import grpc.aio

    from shipyard.serving import oip_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, N_FEATURES])
    tensor.contents.fp64_contents.extend(row)
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        infer = channel.unary_unary(
            GRPC_METHOD,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        answer = await infer(request, timeout=10)  # fails loudly if the server cannot answer at all
        if not answer.outputs:
            raise BenchmarkError(f"ModelInfer answered no outputs: {answer}")
        deadline = time.perf_counter() + duration

        async def caller() -> None:
            nonlocal errors
            while (before := time.perf_counter()) < deadline:
                try:
                    await infer(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - before)

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = (time.process_time() - cpu_started) / elapsed
    return summarize(latencies, elapsed, errors, cpu)


def run_role(args: argparse.Namespace) -> None:
    if args.role == "echo":
        run_uvicorn(echo_app, args.port)
    elif args.role == "fastapi":
        run_uvicorn(fastapi_app(args.model), args.port)
    elif args.role == "grpc-load":
        load = asyncio.run(grpc_load(args.target, json.loads(args.row), args.concurrency, args.duration))
        print(json.dumps(asdict(load)))


# -- processes --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, found by reading every /proc/<pid>/stat's parent id."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text(encoding="utf-8", errors="replace").rsplit(")", 1)[1]
        except OSError:
            continue
        children.setdefault(int(after_name.split()[1]), []).append(int(stat.parent.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process, SIGKILL it after a timeout, then SIGKILL any descendant left behind."""
    descendants = process_tree(process.pid)[1:]
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def output_of(log: Path) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").strip() if log.exists() else ""
    return text[-6000:] or "(nothing)"


@contextlib.contextmanager
def running(
    cmd: Sequence[str], *, name: str, work: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, yield it, and always stop it."""
    stdout, stderr = work / f"{name}.stdout", work / f"{name}.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=err, env={**os.environ, **env}, start_new_session=True
        )
        try:
            yield process
        finally:
            stop(process)


def fail(process: subprocess.Popen[bytes], name: str, work: Path, why: str) -> BenchmarkError:
    return BenchmarkError(
        f"{name} {why}.\n--- {name} stderr ---\n{output_of(work / f'{name}.stderr')}"
        f"\n--- {name} stdout ---\n{output_of(work / f'{name}.stdout')}"
    )


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(process: subprocess.Popen[bytes], url: str, *, name: str, work: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise fail(process, name, work, f"exited with status {process.returncode} before it was ready")
        with contextlib.suppress(urllib.error.URLError, OSError):
            if http(url)[0] == 200:
                return
        time.sleep(0.2)
    raise fail(process, name, work, f"was not ready at {url} within {READY_TIMEOUT:.0f} s")


def helper(role: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]


def shipyard_command(
    port: int,
    grpc_port: int | None,
    workers: int,
    extra: Sequence[str] = (),
    serves: Sequence[str] = (f"{MODEL_NAME}@production",),
) -> list[str]:
    executable = Path(sys.executable).with_name("shipyard")
    found = str(executable) if executable.exists() else shutil.which("shipyard")
    if found is None:
        raise BenchmarkError("the `shipyard` command is not installed; run `pip install -e '.[dev]'`")
    cmd = [
        found,
        "serve",
        *serves,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-log",
        *extra,
    ]
    return cmd if grpc_port is None else [*cmd, "--grpc-port", str(grpc_port)]


# -- load generators --------------------------------------------------------------------------------


def write_lua(work: Path, body: bytes) -> Path:
    script = work / "post.lua"
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    script.write_text("\n".join([*lines, f"wrk.body = [==[{body.decode()}]==]", ""]), encoding="utf-8")
    return script


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise BenchmarkError(f"cannot read wrk's latency {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p50 is None or p99 is None:
        raise BenchmarkError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Load(
        rps=float(rps[1]),
        p50_ms=to_ms(p50[1]),
        p99_ms=to_ms(p99[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def write_split_lua(work: Path, body: bytes, name: str, paths: Sequence[tuple[str, float]]) -> Path:
    """A wrk script whose every request picks its path: the first whose cumulative share covers a
    uniform draw. Every routing measurement uses such a script, so the client's cost is the same."""
    script = work / f"{name}.lua"
    branches = []
    cumulative = 0.0
    for path, share in paths[:-1]:
        cumulative += share
        branches.append(f'  if x < {cumulative} then return wrk.format(nil, "{path}") end')
    lines = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        f"wrk.body = [==[{body.decode()}]==]",
        "request = function()",
        "  local x = math.random()",
        *branches,
        f'  return wrk.format(nil, "{paths[-1][0]}")',
        "end",
        "",
    ]
    script.write_text("\n".join(lines), encoding="utf-8")
    return script


def wrk(setup: Setup, url: str, connections: int, seconds: int, script: Path | None = None) -> Load:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script or setup.lua),
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def grpc_client(setup: Setup, target: str, concurrency: int, seconds: int) -> Load:
    extra = ["--target", target, "--concurrency", str(concurrency), "--duration", str(seconds)]
    cmd = helper("grpc-load", *extra, "--row", json.dumps(setup.row))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"the gRPC load generator failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return Load(**json.loads(done.stdout.strip().splitlines()[-1]))


def measure(name: str, setup: Setup, load: Callable[[int, int], Load]) -> Result:
    """Warm up, then measure, at concurrency 1 and 32; `load(concurrency, seconds)` does one run."""
    loads = []
    for concurrency in (CONCURRENCY_LOW, CONCURRENCY_HIGH):
        progress(f"{name}: c={concurrency}, {WARMUP_SECONDS} s warm-up then {setup.duration} s")
        load(concurrency, WARMUP_SECONDS)
        loads.append(load(concurrency, setup.duration))
    return Result(name, loads[0], loads[1])


def measure_http(name: str, setup: Setup, url: str) -> Result:
    status, answer = http(url, setup.body)
    if status != 200:
        raise BenchmarkError(f"{name}: POST {url} answered {status}: {answer[:2000]!r}")
    return measure(name, setup, lambda c, seconds: wrk(setup, url, c, seconds))


# -- targets ----------------------------------------------------------------------------------------


def bench_python_server(
    name: str, setup: Setup, role: str, path: str, *, env: dict[str, str], extra: Sequence[str] = ()
) -> Result:
    port = free_port()
    cmd = helper(role, "--port", str(port), *extra)
    with running(cmd, name=role, work=setup.work, env=env) as process:
        wait_ready(process, f"http://{HOST}:{port}/readyz", name=role, work=setup.work)
        return measure_http(name, setup, f"http://{HOST}:{port}{path}")


def bench_shipyard(setup: Setup) -> tuple[Result, Result]:
    port, grpc_port = free_port(), free_port()
    env = {"SHIPYARD_HOME": str(setup.home)}
    name = "shipyard-serve"
    with running(shipyard_command(port, grpc_port, 1), name=name, work=setup.work, env=env) as process:
        wait_ready(process, f"http://{HOST}:{port}/readyz", name=name, work=setup.work)
        rest = measure_http("Shipyard REST", setup, f"http://{HOST}:{port}/v1/models/{MODEL_NAME}/predict")
        target = f"{HOST}:{grpc_port}"
        grpc = measure("Shipyard gRPC", setup, lambda c, seconds: grpc_client(setup, target, c, seconds))
        if process.poll() is not None:
            raise fail(process, name, setup.work, "exited during the run")
    return rest, grpc


@dataclass(frozen=True)
class Overhead:
    """Shipyard REST at c=32 with a feature off and on, measured in alternating rounds."""

    feature: str
    off: list[Load]
    on: list[Load]

    @property
    def drop(self) -> float:
        """The throughput lost with the feature on, as a share of the median with it off."""
        off = float(np.median([load.rps for load in self.off]))
        return 1.0 - float(np.median([load.rps for load in self.on])) / off


def rest_rps(
    setup: Setup,
    extra: Sequence[str],
    name: str,
    *,
    serves: Sequence[str] = (f"{MODEL_NAME}@production",),
    path: str = MODEL_NAME,
    script: Path | None = None,
) -> Load:
    """One warmed-up c=32 run of a fresh `shipyard serve` started with `extra` options."""
    port = free_port()
    env = {"SHIPYARD_HOME": str(setup.home)}
    command = shipyard_command(port, None, 1, extra, serves)
    with running(command, name=name, work=setup.work, env=env) as process:
        url = f"http://{HOST}:{port}"
        wait_ready(process, f"{url}/readyz", name=name, work=setup.work)
        predict = f"{url}/v1/models/{path}/predict"
        wrk(setup, predict, CONCURRENCY_HIGH, WARMUP_SECONDS, script)
        return wrk(setup, predict, CONCURRENCY_HIGH, setup.duration, script)


def bench_live_profiles(setup: Setup, rounds: int = OVERHEAD_ROUNDS) -> Overhead:
    """Throughput with live traffic profiles (the default) against `--no-profile`, alternating."""
    off: list[Load] = []
    on: list[Load] = []
    for i in range(rounds):
        progress(f"live profiles, round {i + 1} of {rounds}: --no-profile, then on (c={CONCURRENCY_HIGH})")
        off.append(rest_rps(setup, ["--no-profile"], "shipyard-serve-no-profile"))
        on.append(rest_rps(setup, [], "shipyard-serve-profile"))
    return Overhead("live traffic profiles", off, on)


def deploy_canary(setup: Setup) -> None:
    """A second model (another fit) as `hgb:2` and as `hgb-b:1`; deployment `hgb-api` routes 90%
    of requests to hgb:1 and 10% to hgb:2."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    from shipyard import Arm, Deployments, Registry, Settings

    X, y = make_classification(n_samples=50_000, n_features=N_FEATURES, random_state=0)  # `train`'s data
    other = HistGradientBoostingClassifier(max_iter=100, random_state=1).fit(X, y)
    data = pd.DataFrame(X, columns=COLUMNS).assign(label=y)
    with Registry(Settings.for_home(setup.home)) as r:
        second = r.register(other, name=MODEL_NAME, train_data=data, target="label")
        r.register(other, name=SECOND_MODEL, train_data=data, target="label")
        deployments = Deployments(r)
        deployments.create(DEPLOYMENT, f"{MODEL_NAME}@production")
        arms = [Arm(1, "stable", 90.0), Arm(second.version, "canary", 10.0)]
        deployments.set_arms(DEPLOYMENT, arms, reason="benchmark: a 90/10 canary")


@dataclass(frozen=True)
class Routing:
    """REST at c=32: one model; two models split 90/10 by the client; a deployment's 90/10 canary."""

    one: list[Load]
    split: list[Load]
    routed: list[Load]


def bench_routing(setup: Setup, rounds: int = OVERHEAD_ROUNDS) -> Routing:
    """The deployment's routing against the same two models split by the client, alternating."""
    ours, theirs = f"/v1/models/{MODEL_NAME}/predict", f"/v1/models/{SECOND_MODEL}/predict"
    split = write_split_lua(setup.work, setup.body, "split", [(theirs, 0.1), (ours, 0.9)])
    one = write_split_lua(setup.work, setup.body, "one", [(ours, 1.0)])
    routed = write_split_lua(setup.work, setup.body, "routed", [(f"/v1/models/{DEPLOYMENT}/predict", 1.0)])
    result = Routing([], [], [])
    extra = ["--no-profile"]
    two = (f"{MODEL_NAME}@production", f"{SECOND_MODEL}:1")
    runs: list[tuple[list[Load], Callable[[], Load]]] = [
        (result.one, lambda: rest_rps(setup, extra, "serve-one", script=one)),
        (result.split, lambda: rest_rps(setup, extra, "serve-two", serves=two, script=split)),
        (
            result.routed,
            lambda: rest_rps(
                setup,
                extra,
                "serve-canary",
                serves=("--deployment", DEPLOYMENT),
                path=DEPLOYMENT,
                script=routed,
            ),
        ),
    ]
    for i in range(rounds):
        progress(f"routing, round {i + 1} of {rounds}: one model, two split by the client, a 90/10 canary")
        for loads, measure_one in runs[i:] + runs[:i]:  # each server goes first in one round
            loads.append(measure_one())
    return result


def routing_lines(routing: Routing) -> list[str]:
    """The table of routing's cost, and of a canary's second model for comparison."""

    def median(loads: list[Load]) -> float:
        return float(np.median([load.rps for load in loads]))

    def cells(loads: list[Load]) -> str:
        return ", ".join(rate(load.rps) for load in loads)

    drop = 1.0 - median(routing.routed) / median(routing.split)
    second = 1.0 - median(routing.split) / median(routing.one)
    return [
        f"### Cost of deployment routing at a 90/10 canary (Shipyard REST, c={CONCURRENCY_HIGH}, one worker, "
        f"{len(routing.one)} alternating rounds)",
        "",
        "| server | rps per round | median | against |",
        "|---|---|---:|---|",
        f"| `serve hgb@production` (one model) | {cells(routing.one)} | {rate(median(routing.one))} | |",
        f"| `serve hgb@production hgb-b:1`, the client sends 10% to hgb-b | {cells(routing.split)} "
        f"| {rate(median(routing.split))} | one model: {-second:+.1%} (the second model's own calls) |",
        f"| `serve --deployment hgb-api` (hgb:1 90%, hgb:2 10%, controller on) | {cells(routing.routed)} "
        f"| {rate(median(routing.routed))} | the client's split: {-drop:+.1%} |",
        "",
        f"Routing's cost (deployment against the same two models split by the client): {drop:.1%}; "
        f"goal <= {OVERHEAD_TARGET:.0%}: {verdict(drop <= OVERHEAD_TARGET)}.",
        "",
    ]


def tree_memory(root: int) -> tuple[int, float, float]:
    """Processes, total PSS and total RSS (MiB) of `root` and its descendants."""
    pids = process_tree(root)
    pss_kib = rss_kib = 0
    for pid in pids:
        rollup = Path(f"/proc/{pid}/smaps_rollup")
        source = rollup if rollup.exists() else Path(f"/proc/{pid}/smaps")
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.startswith("Pss:"):
                pss_kib += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss_kib += int(line.split()[1])
    return len(pids), pss_kib / 1024, rss_kib / 1024


def wait_for_workers(process: subprocess.Popen[bytes], workers: int, *, name: str, work: Path) -> None:
    """Wait until every worker exists: one worker runs in the server's own process, more are forked."""
    expected = workers + 1 if workers > 1 else 1
    deadline = time.monotonic() + READY_TIMEOUT
    while len(process_tree(process.pid)) < expected:
        if process.poll() is not None or time.monotonic() > deadline:
            raise fail(process, name, work, f"did not start {workers} workers")
        time.sleep(0.2)


def bench_memory(setup: Setup, workers: int) -> Memory:
    port = free_port()
    name = f"shipyard-serve-{workers}-workers"
    cmd = shipyard_command(port, None, workers)
    with running(cmd, name=name, work=setup.work, env={"SHIPYARD_HOME": str(setup.home)}) as process:
        url = f"http://{HOST}:{port}"
        wait_ready(process, f"{url}/readyz", name=name, work=setup.work)
        wait_for_workers(process, workers, name=name, work=setup.work)
        progress(f"memory: {workers} worker(s) ready; {WARMUP_SECONDS} s of traffic, then reading /proc")
        wrk(setup, f"{url}/v1/models/{MODEL_NAME}/predict", CONCURRENCY_HIGH, WARMUP_SECONDS)
        time.sleep(1.0)
        processes, pss, rss = tree_memory(process.pid)
    return Memory(workers, processes, pss, rss)


# -- the report -------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:.3f}"


def rate(value: float) -> str:
    return f"{value:,.0f}"


def error_counts(result: Result) -> tuple[int, int]:
    """Non-2xx (or non-OK) answers and socket errors over both measured runs."""
    loads = [result.low] if result.high is None else [result.low, result.high]
    return sum(load.non_2xx for load in loads), sum(load.socket_errors for load in loads)


def errors_cell(result: Result) -> str:
    if result.high is None:
        return "–"
    non_2xx, sockets = error_counts(result)
    return f"{non_2xx} (+{sockets} socket errors)" if sockets else str(non_2xx)


def results_table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| target | c=1 p50 (ms) | c=1 rps | c=32 rps | c=32 p50 (ms) | c=32 p99 (ms) | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        high = ["–", "–", "–"] if r.high is None else [rate(r.high.rps), ms(r.high.p50_ms), ms(r.high.p99_ms)]
        cells = [r.name, ms(r.low.p50_ms), rate(r.low.rps), *high, errors_cell(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def high(result: Result) -> Load:
    if result.high is None:
        raise BenchmarkError(f"{result.name} was not measured at c={CONCURRENCY_HIGH}")
    return result.high


def targets_table(floor: Result, echo: Result, fastapi: Result, rest: Result, grpc: Result) -> list[str]:
    rps_ratio = high(rest).rps / high(fastapi).rps
    rest_p99, fastapi_p99 = high(rest).p99_ms, high(fastapi).p99_ms
    overhead = rest.low.p50_ms - (floor.low.p50_ms + echo.low.p50_ms)
    sum_text = f"{ms(rest.low.p50_ms)} - ({ms(floor.low.p50_ms)} + {ms(echo.low.p50_ms)}) = {ms(overhead)} ms"
    grpc_ratio = high(grpc).rps / high(rest).rps
    rows = [
        (
            f"Shipyard REST c={CONCURRENCY_HIGH} rps / FastAPI c={CONCURRENCY_HIGH} rps",
            f"{rps_ratio:.2f}x",
            f">= {RPS_RATIO_TARGET:g}x",
            rps_ratio >= RPS_RATIO_TARGET,
        ),
        (
            f"Shipyard REST c={CONCURRENCY_HIGH} p99 vs FastAPI c={CONCURRENCY_HIGH} p99",
            f"{ms(rest_p99)} ms vs {ms(fastapi_p99)} ms",
            "below",
            rest_p99 < fastapi_p99,
        ),
        (
            "Shipyard REST c=1 p50 - (floor p50 + echo c=1 p50)",
            sum_text,
            f"<= {OVERHEAD_TARGET_MS:g} ms",
            overhead <= OVERHEAD_TARGET_MS,
        ),
        (
            f"Shipyard gRPC c={CONCURRENCY_HIGH} rps / Shipyard REST c={CONCURRENCY_HIGH} rps",
            f"{grpc_ratio:.2f}",
            f">= {GRPC_RATIO_TARGET:g}",
            grpc_ratio >= GRPC_RATIO_TARGET,
        ),
    ]
    lines = ["| target | measured | goal | result |", "|---|---|---|---|"]
    return lines + [f"| {what} | {value} | {goal} | {verdict(ok)} |" for what, value, goal, ok in rows]


def client_cpu_note(result: Result) -> str:
    """How busy the Python load generator was: near 100% means it, not the server, set the pace."""
    loads = [result.low] if result.high is None else [result.low, result.high]
    shares = [f"{load.client_cpu:.0%}" for load in loads if load.client_cpu is not None]
    if len(shares) != len(loads):
        return ""
    at = f"c={CONCURRENCY_LOW} and c={CONCURRENCY_HIGH}" if len(shares) == 2 else f"c={CONCURRENCY_LOW}"
    return f" The load generator used {' and '.join(shares)} of one core at {at}."


def memory_table(memory: Sequence[Memory]) -> list[str]:
    lines = ["| workers | processes | PSS total (MiB) | RSS total (MiB) |", "|---:|---:|---:|---:|"]
    return lines + [f"| {m.workers} | {m.processes} | {m.pss_mib:.1f} | {m.rss_mib:.1f} |" for m in memory]


def overhead_lines(overhead: Overhead) -> list[str]:
    """The table of one feature's cost in throughput."""
    off = ", ".join(rate(load.rps) for load in overhead.off)
    on = ", ".join(rate(load.rps) for load in overhead.on)
    ok = overhead.drop <= OVERHEAD_TARGET
    return [
        f"### Cost of {overhead.feature} (Shipyard REST, c={CONCURRENCY_HIGH}, one worker, "
        f"{len(overhead.off)} alternating rounds)",
        "",
        "| off: rps per round | on: rps per round | drop of the median | goal | result |",
        "|---|---|---:|---|---|",
        f"| {off} | {on} | {overhead.drop:.1%} | <= {OVERHEAD_TARGET:.0%} | {verdict(ok)} |",
        "",
    ]


def render(
    setup: Setup,
    results: Sequence[Result],
    memory: Sequence[Memory],
    overheads: Sequence[Overhead] = (),
    routing: Routing | None = None,
) -> str:
    import sklearn

    floor, echo, fastapi, rest, grpc = results
    errors = any(any(error_counts(r)) for r in results)
    lines = [
        "## Serving benchmark",
        "",
        "HistGradientBoostingClassifier(max_iter=100), 20 features, single-row JSON requests, "
        "one worker each. "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, scikit-learn {sklearn.__version__}; "
        f"each run: {WARMUP_SECONDS} s warm-up, then {setup.duration} s measured.",
        "",
        *results_table(results),
        "",
        f"- floor: {floor.low.p50_ms * 1e3:.1f} µs per call p50 (p99 {floor.low.p99_ms * 1e3:.1f} µs), "
        f"{rate(floor.low.rps)} calls/s; in-process `predict_proba` of a 1x20 numpy row, "
        "threadpoolctl `threadpool_limits(1)`.",
        "- echo ASGI: bare ASGI callable (reads the body, fixed small JSON), uvicorn httptools + uvloop, "
        "no access log.",
        "- FastAPI baseline: `async def` `POST /predict`, pydantic body, joblib copy of the model, "
        "same uvicorn settings, OMP_NUM_THREADS=1.",
        "- Shipyard: `shipyard serve hgb@production --workers 1 --no-log` (REST and gRPC on the same worker; "
        "model threads 1 by default).",
        "- HTTP load: wrk `-t1` (one load thread, one core) with `--latency`; "
        "non-2xx counts both measured runs.",
        "- gRPC load: a Python `grpc.aio` process, 1 or 32 callers on one channel; it shares the "
        f"{os.cpu_count()} cores with the server, so its numbers understate the server. "
        "non-2xx here means calls with a non-OK status." + client_cpu_note(grpc),
    ]
    if errors:
        lines.append("- WARNING: some targets answered errors; their throughput is not a valid measure.")
    lines += ["", "### Targets", "", *targets_table(floor, echo, fastapi, rest, grpc), ""]
    for overhead in overheads:
        lines += overhead_lines(overhead)
    if routing is not None:
        lines += routing_lines(routing)
    lines += ["### Memory of `shipyard serve` (parent + workers, after readiness and 2 s of traffic)", ""]
    lines += memory_table(memory)
    lines += [
        "",
        "PSS shares each page among the processes mapping it; RSS counts shared pages in every process.",
    ]
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------------


def prepare(work: Path, duration: int) -> tuple[Setup, Any]:
    import joblib

    progress("fitting HistGradientBoostingClassifier(max_iter=100) on 50,000 x 20")
    X, y, model = train()
    home = work / "home"
    register(model, X, y, home)
    model_path = work / "model.joblib"
    joblib.dump(model, model_path)
    row = [float(v) for v in X[0]]
    body = json.dumps({"instances": [dict(zip(COLUMNS, row, strict=True))]}).encode()
    setup = Setup(work, home, model_path, write_lua(work, body), body, row, duration)
    return setup, model


def run(duration: int, only: str | None = None) -> str:
    with tempfile.TemporaryDirectory(prefix="shipyard-serving-bench-") as tmp:
        setup, model = prepare(Path(tmp), duration)
        if only == "profiles":
            overhead = bench_live_profiles(setup)
            return "\n".join(["## Serving benchmark: live profiles only", "", *overhead_lines(overhead)])
        if only == "routing":
            deploy_canary(setup)
            lines = routing_lines(bench_routing(setup))
            return "\n".join(["## Serving benchmark: deployment routing only", "", *lines])
        progress(f"floor: in-process predict_proba for {duration} s")
        floor = Result(
            "floor (in-process predict_proba)", measure_floor(model, np.asarray([setup.row]), duration), None
        )
        echo = bench_python_server("echo ASGI", setup, "echo", "/", env={})
        fastapi = bench_python_server(
            "FastAPI baseline",
            setup,
            "fastapi",
            "/predict",
            env={"OMP_NUM_THREADS": "1"},
            extra=["--model", str(setup.model_path)],
        )
        rest, grpc = bench_shipyard(setup)
        overheads = [bench_live_profiles(setup)]
        deploy_canary(setup)
        routing = bench_routing(setup)
        memory = [bench_memory(setup, workers) for workers in MEMORY_WORKERS]
        return render(setup, [floor, echo, fastapi, rest, grpc], memory, overheads, routing)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured run (default 10)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument(
        "--only",
        choices=("profiles", "routing"),
        help="measure only the cost of live traffic profiles, or of deployment routing (~1.5 min each)",
    )
    hidden = argparse.SUPPRESS
    parser.add_argument("--role", choices=("echo", "fastapi", "grpc-load"), help=hidden)
    parser.add_argument("--port", type=int, help=hidden)
    parser.add_argument("--model", type=Path, help=hidden)
    parser.add_argument("--target", help=hidden)
    parser.add_argument("--concurrency", type=int, help=hidden)
    parser.add_argument("--row", help=hidden)
    args = parser.parse_args(argv)
    if args.duration < 1:
        parser.error("--duration must be at least 1 second")
    return args


def interrupt(signum: int, _frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so that every server is stopped on the way out."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role is not None:
        run_role(args)
        return 0
    signal.signal(signal.SIGTERM, interrupt)
    try:
        report = run(args.duration, args.only)
    except BenchmarkError as exc:
        print(f"serving benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("serving benchmark interrupted; servers stopped", file=sys.stderr)
        return 130
    print(report)
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
