"""Serving benchmark: Shipyard's REST and gRPC servers, on the models users run, against floors
measured in the same run.

Run it with one command (about 45 x DURATION seconds plus 4-5 minutes of fitting and server
start-ups, so about 12 minutes at the default 10 s, on an idle machine)::

    python benchmarks/serving.py [--duration 10] [--out results.md] [--only models|profiles|routing|memory]

It fits `HistGradientBoostingClassifier(max_iter=100, random_state=0)` (the same early-stopping split,
so the same trees, every time) on `make_classification(n_samples=50_000, n_features=20)` three ways
and registers each in a fresh temporary Shipyard home as `<name>@production`:

- `hgb`: fitted on the bare numpy array;
- `hgb-df`: the same data fitted on a pandas DataFrame with columns x0..x19;
- `hgb-pipe`: `Pipeline(ColumnTransformer([OneHotEncoder on c0, c1; StandardScaler on x0..x17]),
  HistGradientBoostingClassifier(max_iter=100))` fitted on a mixed DataFrame: the same data with x18
  and x19 cut into quintiles labelled 'a'..'e' (string columns c0 and c1).

Each is sent single-row requests (`{"instances": [{"x0": ..., "x19": ...}]}`, or with c0, c1 for the
pipeline) by one worker of each target:

- floors: the in-process `model.predict_proba(row)` on the same input type (a 1x20 numpy row for
  `hgb`; a one-row DataFrame for `hgb-df` and `hgb-pipe`, and a numpy row for `hgb-df` too, to show
  the DataFrame's cost), timed in a loop under `threadpool_limits(1)`, the one thread per worker the
  servers get. threadpoolctl limits only the pools already loaded, so scikit-learn's OpenMP runtime
  is loaded first, and every pool is checked (`threadpool_info()`) to run one thread;
- echo ASGI: a bare ASGI callable that reads the body and answers a fixed small JSON, served by
  uvicorn (httptools, uvloop, no access log): the cost of the HTTP round trip alone;
- FastAPI, written as a user would for each model: a minimal app, `async def` `POST /predict` on a
  pydantic body, `predict_proba` on a joblib copy of the model with OMP_NUM_THREADS=1; a numpy row for
  `hgb` (the fastest FastAPI server), a one-row DataFrame built from the request for the others;
- Shipyard REST: `shipyard serve <name>@production --workers 1`, once with its default flags (the
  prediction log on) and once with `--no-log`, a fresh server each, `POST /v1/models/<name>/predict`;
- Shipyard gRPC: the default-flag server's Open Inference Protocol v2 `ModelInfer`, one FP64 [1, 20]
  tensor (for `hgb` and `hgb-df`; the pipeline's string columns would need BYTES tensors).

HTTP targets are loaded by wrk with one thread (`-t1`) at 1 and 32 connections (where wrk is not
installed, by a Python keep-alive load generator, `--role http-load`, which understates the servers
on a small machine: the report then shows the share of a core it used), gRPC by h2load (nghttp2's
HTTP/2 load generator, in C: `apt-get install nghttp2-client`) on one connection with 1 and 32
streams at once, as one gRPC channel with that many callers (where h2load is not installed, by a
Python `grpc.aio` process with 1 and 32 concurrent callers, which also understates the server);
each measured run follows a 2 s warm-up. The targets of the issue are computed from this run:
the DataFrame-fitted model (default flags, c=32) at >= 5x the fastest FastAPI server, the
pipeline at >= 10x the FastAPI written for it, the log on within 5% of `--no-log` per model
(medians of three alternating rounds of fresh servers), gRPC at >= 0.8x REST at c=32, a c=1 p50
overhead (Shipyard REST p50 - the numpy row floor p50 - echo p50) <= 0.2 ms for `hgb` and
`hgb-df` (beside it, the server's mean model call from its `/metrics`), and <= 30 MiB PSS per
extra worker.

It then measures the cost of live traffic profiles: REST at c=32 with `--no-profile` and with
profiles on (the default), in three alternating rounds of fresh servers, compared on the median; and
the cost of deployment routing at a 90/10 canary: `serve --deployment hgb-api` (hgb:1 90%, hgb:2 10%, a
second fit; random split, the rollout controller running) against the same two models served by
name with the client sending 10% of requests to the second (the same model calls, no routing),
and against one model alone (what the second model's calls cost); these two run `hgb` with
`--no-log`, as before. It then starts `shipyard serve hgb@production` (default flags) with 1 and
with 4 workers and sums the PSS and RSS of the process tree (from /proc). It prints a markdown report
(results, targets with PASS/FAIL, memory) and, with `--out`, writes it to a file too. Every server it
starts is stopped on exit, error or Ctrl-C.

`--only models` runs just the three models' table and its targets (all but memory; about 30 x
DURATION seconds plus 2 minutes); `--only profiles`, `--only routing` and `--only memory` one section.

The script also runs its own helper processes (the echo and FastAPI servers, the gRPC and HTTP load
generators) through the hidden `--role` option.
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
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 20
COLUMNS = [f"x{i}" for i in range(N_FEATURES)]
MODEL_NAME = "hgb"
FRAME_MODEL = "hgb-df"
PIPELINE_MODEL = "hgb-pipe"
CATEGORIES = ("a", "b", "c", "d", "e")
BINNED = {"x18": "c0", "x19": "c1"}  # the pipeline's two string columns, each a feature cut in quintiles
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
PIPELINE_RATIO_TARGET = 10.0
PSS_PER_WORKER_TARGET_MIB = 30.0
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
    model_call_ms: float | None = None  # a Shipyard server's mean model call in the run (its /metrics)


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
class Served:
    """One of the models served side by side: how it was fitted and the request it is sent."""

    key: str  # "numpy", "frame" or "pipeline"
    name: str  # its registry name
    fitted_on: str  # for the report
    path: Path  # a joblib copy, for the FastAPI baselines
    body: bytes
    lua: Path
    frame_input: bool  # whether the FastAPI written for it feeds it a one-row DataFrame


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
    models: tuple[Served, ...] = ()

    def served(self, key: str) -> Served:
        return next(m for m in self.models if m.key == key)


def progress(message: str) -> None:
    print(f"[serving benchmark] {message}", file=sys.stderr, flush=True)


# -- the model ------------------------------------------------------------------------------------


def train() -> tuple[np.ndarray, np.ndarray, Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=50_000, n_features=N_FEATURES, random_state=0)
    return X, y, HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)


def mixed_frame(features: np.ndarray) -> Any:
    """The same data with x18 and x19 cut into quintiles labelled 'a'..'e' (string columns c0, c1)."""
    import pandas as pd

    df = pd.DataFrame(features, columns=COLUMNS)
    labels = np.asarray(CATEGORIES, dtype=object)
    for source, name in BINNED.items():
        edges = np.quantile(df[source], [0.2, 0.4, 0.6, 0.8])
        df[name] = labels[np.digitize(df[source], edges)]
    return df.drop(columns=list(BINNED))


def train_frame(features: np.ndarray, labels: np.ndarray) -> Any:
    """The same model fitted on a DataFrame with columns x0..x19."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = pd.DataFrame(features, columns=COLUMNS)
    return HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(frame, labels)


def train_pipeline(frame: Any, labels: np.ndarray) -> Any:
    """OneHotEncoder on the two string columns, StandardScaler on the rest, then the same model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = list(BINNED.values())
    numeric = [c for c in frame.columns if c not in categorical]
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
    )
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    return Pipeline([("pre", pre), ("hgb", model)]).fit(frame, labels)


def register(model: Any, data: Any, labels: np.ndarray, home: Path, name: str = MODEL_NAME) -> None:
    """Register `model` as `name@production`, with `data` (a DataFrame) as its training data."""
    from shipyard import Registry, Settings

    df = data.copy()
    df["label"] = labels
    with Registry(Settings.for_home(home)) as r:
        version = r.register(model, name=name, train_data=df, target="label")
        r.set_alias(version.ref, "production", force=True, reason="benchmark set-up: no gates to pass")


def check_one_thread(when: str) -> None:
    """Every thread pool loaded in this process runs one thread, or the floor is not a one-worker floor."""
    from threadpoolctl import threadpool_info

    wide = [p for p in threadpool_info() if p.get("num_threads") != 1]
    if wide:
        pools = ", ".join(
            f"{p.get('internal_api')} ({p.get('filepath')}): {p.get('num_threads')}" for p in wide
        )
        raise BenchmarkError(f"the floor is not on one thread {when}: {pools}")


def measure_floor(model: Any, row: Any, duration: float) -> Load:
    """`predict_proba` of one row in a loop on one thread: no server can answer faster.

    threadpoolctl limits only the pools loaded when the limit is entered, so scikit-learn's OpenMP
    runtime is loaded first (importing sklearn.ensemble), and every pool is checked to run one thread
    before and after the warm-up calls (which would load any pool the model loads lazily)."""
    import warnings

    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime before the limit)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), warnings.catch_warnings():
        # a numpy row to a DataFrame-fitted model: "X does not have valid feature names", every call
        warnings.simplefilter("ignore", UserWarning)
        check_one_thread("before the warm-up")
        for _ in range(200):
            model.predict_proba(row)
        check_one_thread("after the warm-up")
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


def fastapi_app(model_path: Path, frame: bool = False) -> Any:
    """The baseline a team would write by hand: FastAPI, a pydantic body, `predict_proba`; for a
    DataFrame-fitted model (`frame`), on a DataFrame built from the request, as most users write it."""
    import joblib
    import pandas as pd
    from fastapi import FastAPI
    from pydantic import BaseModel

    model = joblib.load(model_path)
    app = FastAPI()

    class PredictRequest(BaseModel):
        instances: list[dict[str, float]]

    class FramePredictRequest(BaseModel):
        instances: list[dict[str, float | str]]

    if frame:
        columns = list(model.feature_names_in_)

        @app.post("/predict")
        async def predict_frame(request: FramePredictRequest) -> dict[str, list[list[float]]]:
            rows = pd.DataFrame(request.instances, columns=columns)
            return {"predictions": model.predict_proba(rows).tolist()}

    else:

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


async def grpc_load(
    target: str, row: list[float], concurrency: int, duration: float, model: str = MODEL_NAME
) -> Load:
    """`concurrency` callers sending ModelInfer back to back on one channel for `duration` seconds."""
    import grpc
    import grpc.aio

    from shipyard.serving import oip_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
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


async def http_load(host: str, port: int, plan: dict[str, Any], concurrency: int, duration: float) -> Load:
    """wrk's stand-in where wrk is not installed: `concurrency` keep-alive connections, each sending
    the POST back to back (to a path drawn from the plan's shares) for `duration` seconds."""
    import random

    body = plan["body"].encode()
    requests = []
    for path, share in plan["paths"]:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        requests.append((share, head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    def pick() -> bytes:
        x, cumulative = random.random(), 0.0
        for share, request in requests[:-1]:
            cumulative += share
            if x < cumulative:
                return request
        return requests[-1][1]

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (before := time.perf_counter()) < deadline:
                writer.write(pick())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                latencies.append(time.perf_counter() - before)
                errors += not 200 <= status < 400
        finally:
            writer.close()

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = (time.process_time() - cpu_started) / elapsed
    return summarize(latencies, elapsed, errors, cpu)


def run_role(args: argparse.Namespace) -> None:
    if args.role == "echo":
        run_uvicorn(echo_app, args.port)
    elif args.role == "fastapi":
        run_uvicorn(fastapi_app(args.model, args.frame), args.port)
    elif args.role == "grpc-load":
        row = json.loads(args.row)
        load = asyncio.run(grpc_load(args.target, row, args.concurrency, args.duration, args.name))
        print(json.dumps(asdict(load)))
    elif args.role == "http-load":
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        host, port = args.target.rsplit(":", 1)
        plan = json.loads(Path(args.row).read_text(encoding="utf-8"))
        print(
            json.dumps(asdict(asyncio.run(http_load(host, int(port), plan, args.concurrency, args.duration))))
        )


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
    *,
    log: bool = False,
) -> list[str]:
    """`shipyard serve`; `--no-log` unless `log` (the default flags: the prediction log on)."""
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
        *([] if log else ["--no-log"]),
        *extra,
    ]
    return cmd if grpc_port is None else [*cmd, "--grpc-port", str(grpc_port)]


# -- load generators --------------------------------------------------------------------------------


def write_plan(script: Path, body: bytes, paths: Sequence[tuple[str | None, float]]) -> None:
    """What the Python load generator sends in wrk's place: beside each wrk script, the body and the
    paths with their shares (None: the URL's own path)."""
    plan = {"body": body.decode(), "paths": [[path, share] for path, share in paths]}
    script.with_suffix(".json").write_text(json.dumps(plan), encoding="utf-8")


def write_lua(work: Path, body: bytes, name: str = "post") -> Path:
    script = work / f"{name}.lua"
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    script.write_text("\n".join([*lines, f"wrk.body = [==[{body.decode()}]==]", ""]), encoding="utf-8")
    write_plan(script, body, [(None, 1.0)])
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
    write_plan(script, body, paths)
    return script


def python_http_load(url: str, connections: int, seconds: int, script: Path) -> Load:
    """The Python keep-alive load generator (`--role http-load`), where wrk is not installed."""
    parsed = urllib.parse.urlsplit(url)
    plan = json.loads(script.with_suffix(".json").read_text(encoding="utf-8"))
    plan["paths"] = [[path or parsed.path, share] for path, share in plan["paths"]]
    plan_file = script.with_name(f"{script.stem}-{parsed.port}.plan.json")
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    target = f"{parsed.hostname}:{parsed.port}"
    extra = ["--target", target, "--concurrency", str(connections), "--duration", str(seconds)]
    done = subprocess.run(
        helper("http-load", *extra, "--row", str(plan_file)), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"the HTTP load generator failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return Load(**json.loads(done.stdout.strip().splitlines()[-1]))


def wrk(setup: Setup, url: str, connections: int, seconds: int, script: Path | None = None) -> Load:
    if shutil.which("wrk") is None:
        return python_http_load(url, connections, seconds, script or setup.lua)
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


def grpc_request_file(setup: Setup, model: str) -> Path:
    """A gRPC `ModelInfer` request as it goes on the wire (flag, length, protobuf), for h2load."""
    from shipyard.serving import oip_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, N_FEATURES])
    tensor.contents.fp64_contents.extend(setup.row)
    message = request.SerializeToString()
    path = setup.work / f"{model}.grpc"
    path.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return path


def check_grpc(target: str, body: Path) -> None:
    """One `ModelInfer` of the request h2load sends, through grpcio: it must answer OK with outputs."""
    import grpc

    from shipyard.serving import oip_v2_pb2 as pb

    request = pb.ModelInferRequest.FromString(body.read_bytes()[5:])
    with grpc.insecure_channel(target) as channel:
        infer = channel.unary_unary(
            GRPC_METHOD,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        try:
            answer = infer(request, timeout=30)
        except grpc.RpcError as exc:
            raise BenchmarkError(f"ModelInfer on {target} failed: {exc}") from None
    if not answer.outputs:
        raise BenchmarkError(f"ModelInfer on {target} answered no outputs: {answer}")


def h2load_grpc(setup: Setup, target: str, concurrency: int, seconds: int, model: str) -> Load:
    """h2load (nghttp2's HTTP/2 load generator, in C) sending `ModelInfer` on one connection with
    `concurrency` streams at once, as one gRPC channel with that many callers; latencies from its
    per-request log. gRPC answers errors in trailers with HTTP 200, so a Python call checks first
    that the server answers this request with OK."""
    body = grpc_request_file(setup, model)
    check_grpc(target, body)
    log = setup.work / f"h2load-{model}-{concurrency}.log"
    cmd = [
        "h2load", "-t1", "-c1", f"-m{concurrency}", f"-D{seconds}", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log),
        f"http://{target}{GRPC_METHOD}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", done.stdout)
    if done.returncode != 0 or rps is None:
        raise BenchmarkError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    statuses, latencies = [], []
    for line in log.read_text(encoding="utf-8").splitlines():
        _, status, micros = line.split("\t")[:3]
        statuses.append(int(status))
        latencies.append(int(micros) / 1e6)
    errors = sum(1 for status in statuses if status != 200)
    load = summarize(latencies, 1.0, errors)
    return Load(rps=float(rps[1]), p50_ms=load.p50_ms, p99_ms=load.p99_ms, non_2xx=errors)


def grpc_load_of(setup: Setup, target: str, model: str) -> Callable[[int, int], Load]:
    """The gRPC load of one target: h2load where it is installed, else the Python client."""
    if shutil.which("h2load") is not None:
        return lambda c, seconds: h2load_grpc(setup, target, c, seconds, model)
    return lambda c, seconds: grpc_client(setup, target, c, seconds, model)


def grpc_client(setup: Setup, target: str, concurrency: int, seconds: int, model: str = MODEL_NAME) -> Load:
    extra = [
        "--target",
        target,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(seconds),
        "--name",
        model,
    ]
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


def measure_http(
    name: str, setup: Setup, url: str, served: Served | None = None, metrics_url: str | None = None
) -> Result:
    """`url` loaded by wrk at c=1 and c=32; with `metrics_url` (a Shipyard server's /metrics), each
    run also gets the server's mean model call during it (`shipyard_model_call_seconds`)."""
    body, script = (setup.body, setup.lua) if served is None else (served.body, served.lua)
    status, answer = http(url, body)
    if status != 200:
        raise BenchmarkError(f"{name}: POST {url} answered {status}: {answer[:2000]!r}")

    def load(concurrency: int, seconds: int) -> Load:
        if metrics_url is None:
            return wrk(setup, url, concurrency, seconds, script)
        before = model_calls(metrics_url)
        result = wrk(setup, url, concurrency, seconds, script)
        after = model_calls(metrics_url)
        calls = after[1] - before[1]
        mean = (after[0] - before[0]) / calls * 1e3 if calls else None
        return Load(**{**asdict(result), "model_call_ms": mean})

    return measure(name, setup, load)


def model_calls(metrics_url: str) -> tuple[float, float]:
    """The total seconds and count of a Shipyard server's model calls so far (every version)."""
    status, text = http(metrics_url)
    if status != 200:
        raise BenchmarkError(f"GET {metrics_url} answered {status}")
    total = count = 0.0
    for line in text.decode().splitlines():
        if line.startswith("shipyard_model_call_seconds_sum{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("shipyard_model_call_seconds_count{"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


# -- targets ----------------------------------------------------------------------------------------


def bench_python_server(
    name: str,
    setup: Setup,
    role: str,
    path: str,
    *,
    env: dict[str, str],
    extra: Sequence[str] = (),
    served: Served | None = None,
) -> Result:
    port = free_port()
    cmd = helper(role, "--port", str(port), *extra)
    log_name = role if served is None else f"{role}-{served.key}"
    with running(cmd, name=log_name, work=setup.work, env=env) as process:
        wait_ready(process, f"http://{HOST}:{port}/readyz", name=log_name, work=setup.work)
        return measure_http(name, setup, f"http://{HOST}:{port}{path}", served)


def bench_fastapi(setup: Setup, served: Served) -> Result:
    """The FastAPI server a user would write for the model: a one-row DataFrame if DataFrame-fitted."""
    feeds = "one-row DataFrame" if served.frame_input else "numpy row"
    return bench_python_server(
        f"FastAPI ({feeds}), {served.name}",
        setup,
        "fastapi",
        "/predict",
        env={"OMP_NUM_THREADS": "1"},
        extra=["--model", str(served.path), *(["--frame"] if served.frame_input else [])],
        served=served,
    )


def flags_text(log: bool) -> str:
    return "defaults (log on)" if log else "--no-log"


def bench_shipyard(setup: Setup, served: Served, *, log: bool, grpc: bool) -> tuple[Result, Result | None]:
    """One worker serving `served` with the default flags (`log`) or `--no-log`; REST, and gRPC if asked."""
    port, grpc_port = free_port(), free_port()
    env = {"SHIPYARD_HOME": str(setup.home)}
    name = f"shipyard-serve-{served.key}-{'log' if log else 'no-log'}"
    command = shipyard_command(port, grpc_port, 1, serves=(f"{served.name}@production",), log=log)
    with running(command, name=name, work=setup.work, env=env) as process:
        wait_ready(process, f"http://{HOST}:{port}/readyz", name=name, work=setup.work)
        url = f"http://{HOST}:{port}/v1/models/{served.name}/predict"
        rest = measure_http(
            f"Shipyard REST, {served.name}, {flags_text(log)}",
            setup,
            url,
            served,
            metrics_url=f"http://{HOST}:{port}/metrics",
        )
        grpc_result = None
        if grpc:
            target = f"{HOST}:{grpc_port}"
            grpc_result = measure(
                f"Shipyard gRPC, {served.name}, {flags_text(log)}",
                setup,
                grpc_load_of(setup, target, served.name),
            )
        if process.poll() is not None:
            raise fail(process, name, setup.work, "exited during the run")
    return rest, grpc_result


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


@dataclass(frozen=True)
class ModelRuns:
    """Everything measured for one of the models served side by side."""

    served: Served
    floors: dict[str, Result]  # "numpy" and/or "frame": the input the in-process call was given
    fastapi: Result
    on: Result  # Shipyard REST, default flags (the prediction log on)
    off: Result  # Shipyard REST, --no-log
    grpc: Result | None  # Shipyard gRPC, default flags
    log: Overhead | None = None  # the prediction log's cost, in alternating rounds of fresh servers

    @property
    def results(self) -> list[Result]:
        grpc = [] if self.grpc is None else [self.grpc]
        return [*self.floors.values(), self.fastapi, self.off, self.on, *grpc]


def one_row_frame(served: Served, model: Any) -> Any:
    import pandas as pd

    instance = json.loads(served.body)["instances"][0]
    return pd.DataFrame([instance], columns=list(model.feature_names_in_))


def bench_model(setup: Setup, served: Served, model: Any) -> ModelRuns:
    """The floors, the FastAPI written for it, Shipyard with the log off and on (and gRPC) for one model."""
    floors: dict[str, Result] = {}
    inputs: list[tuple[str, Any]] = []
    if served.key != "pipeline":
        inputs.append(("numpy", np.asarray([setup.row])))
    if served.frame_input:
        inputs.append(("frame", one_row_frame(served, model)))
    for kind, row in inputs:
        what = "numpy row" if kind == "numpy" else "one-row DataFrame"
        progress(f"floor: in-process predict_proba of a {what}, {served.name}, for {setup.duration} s")
        load = measure_floor(model, row, setup.duration)
        floors[kind] = Result(f"floor: predict_proba({what}), {served.name}", load, None)
    fastapi = bench_fastapi(setup, served)
    grpc = served.key != "pipeline"  # the pipeline's string columns would need BYTES tensors
    off, _ = bench_shipyard(setup, served, log=False, grpc=False)
    on, grpc_result = bench_shipyard(setup, served, log=True, grpc=grpc)
    return ModelRuns(served, floors, fastapi, on, off, grpc_result, bench_prediction_log(setup, served))


def bench_prediction_log(setup: Setup, served: Served, rounds: int = OVERHEAD_ROUNDS) -> Overhead:
    """Throughput with the prediction log on (the default) against `--no-log`, in alternating
    rounds of fresh servers: one run of each differs from the next by more than the 5% asked."""
    off: list[Load] = []
    on: list[Load] = []
    serves = (f"{served.name}@production",)
    for i in range(rounds):
        progress(f"prediction log, {served.name}, round {i + 1} of {rounds}: --no-log, then on")
        off.append(
            rest_rps(setup, [], "shipyard-serve-no-log", serves=serves, path=served.name, script=served.lua)
        )
        on.append(
            rest_rps(
                setup, [], "shipyard-serve-log", serves=serves, path=served.name, script=served.lua, log=True
            )
        )
    return Overhead(f"the prediction log, {served.name}", off, on)


def rest_rps(
    setup: Setup,
    extra: Sequence[str],
    name: str,
    *,
    serves: Sequence[str] = (f"{MODEL_NAME}@production",),
    path: str = MODEL_NAME,
    script: Path | None = None,
    log: bool = False,
) -> Load:
    """One warmed-up c=32 run of a fresh `shipyard serve` started with `extra` options (and
    `--no-log` unless `log`)."""
    port = free_port()
    env = {"SHIPYARD_HOME": str(setup.home)}
    command = shipyard_command(port, None, 1, extra, serves, log=log)
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
    cmd = shipyard_command(port, None, workers, log=True)  # the default flags, as users run it
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
    """The results; with a Python load generator, a last column with the share of a core it used at
    c=32 (near 100%: the client, not the server, set the pace)."""
    cpu = any(r.high is not None and r.high.client_cpu is not None for r in results)
    lines = [
        "| target | c=1 p50 (ms) | c=1 rps | c=32 rps | c=32 p50 (ms) | c=32 p99 (ms) | non-2xx |"
        + (" client CPU c=32 |" if cpu else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if cpu else ""),
    ]
    for r in results:
        high = ["–", "–", "–"] if r.high is None else [rate(r.high.rps), ms(r.high.p50_ms), ms(r.high.p99_ms)]
        cells = [r.name, ms(r.low.p50_ms), rate(r.low.rps), *high, errors_cell(r)]
        if cpu:
            share = None if r.high is None else r.high.client_cpu
            cells.append("–" if share is None else f"{share:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def high(result: Result) -> Load:
    if result.high is None:
        raise BenchmarkError(f"{result.name} was not measured at c={CONCURRENCY_HIGH}")
    return result.high


def pss_per_worker(memory: Sequence[Memory]) -> float | None:
    """PSS added by each worker beyond the first, from the smallest and largest worker counts."""
    if len(memory) < 2:
        return None
    first, last = min(memory, key=lambda m: m.workers), max(memory, key=lambda m: m.workers)
    return (last.pss_mib - first.pss_mib) / (last.workers - first.workers)


def targets_table(echo: Result, runs: Sequence[ModelRuns], memory: Sequence[Memory]) -> list[str]:
    by_key = {r.served.key: r for r in runs}
    rows: list[tuple[str, str, str, bool]] = []
    fastest = by_key.get("numpy")
    c = CONCURRENCY_HIGH
    for key, label in (("numpy", "numpy-fitted"), ("frame", "DataFrame-fitted")):
        run = by_key.get(key)
        if run is None or fastest is None:
            continue
        ratio = high(run.on).rps / high(fastest.fastapi).rps
        rows.append(
            (
                f"{label}, defaults, REST c={c} rps / fastest FastAPI (numpy row, numpy-fitted) c={c} rps",
                f"{ratio:.2f}x",
                f">= {RPS_RATIO_TARGET:g}x",
                ratio >= RPS_RATIO_TARGET,
            )
        )
    if (pipe := by_key.get("pipeline")) is not None:
        ratio = high(pipe.on).rps / high(pipe.fastapi).rps
        rows.append(
            (
                f"pipeline, defaults, REST c={c} rps / FastAPI for it (one-row DataFrame) c={c} rps",
                f"{ratio:.2f}x",
                f">= {PIPELINE_RATIO_TARGET:g}x",
                ratio >= PIPELINE_RATIO_TARGET,
            )
        )
    for run in runs:
        if run.log is not None:  # medians of alternating rounds
            drop = run.log.drop
            on_rps = float(np.median([load.rps for load in run.log.on]))
            off_rps = float(np.median([load.rps for load in run.log.off]))
            how = f" (medians of {len(run.log.on)} alternating rounds)"
        else:
            drop = 1.0 - high(run.on).rps / high(run.off).rps
            on_rps, off_rps, how = high(run.on).rps, high(run.off).rps, ""
        rows.append(
            (
                f"{run.served.name}: REST c={c} rps lost with the log on (defaults) against --no-log{how}",
                f"{rate(on_rps)} vs {rate(off_rps)}: {drop:.1%}",
                f"<= {OVERHEAD_TARGET:.0%}",
                drop <= OVERHEAD_TARGET,
            )
        )
    for run in runs:
        if run.grpc is None:
            continue
        ratio = high(run.grpc).rps / high(run.on).rps
        rows.append(
            (
                f"{run.served.name}, defaults: gRPC c={c} rps / REST c={c} rps",
                f"{ratio:.2f}",
                f">= {GRPC_RATIO_TARGET:g}",
                ratio >= GRPC_RATIO_TARGET,
            )
        )
    for run in runs:
        floor = run.floors.get("numpy")
        if floor is None:
            continue
        overhead = run.on.low.p50_ms - (floor.low.p50_ms + echo.low.p50_ms)
        call = run.on.low.model_call_ms
        inside = "" if call is None else f" (the server's mean model call: {ms(call)} ms)"
        rows.append(
            (
                f"{run.served.name}, defaults: REST c=1 p50 - (floor p50, numpy row + echo c=1 p50)",
                f"{ms(run.on.low.p50_ms)} - ({ms(floor.low.p50_ms)} + {ms(echo.low.p50_ms)}) "
                f"= {ms(overhead)} ms{inside}",
                f"<= {OVERHEAD_TARGET_MS:g} ms",
                overhead <= OVERHEAD_TARGET_MS,
            )
        )
    per_worker = pss_per_worker(memory)
    if per_worker is not None:
        rows.append(
            (
                f"PSS per extra worker ({' vs '.join(str(m.workers) for m in memory)} workers, defaults)",
                f"{per_worker:.1f} MiB",
                f"<= {PSS_PER_WORKER_TARGET_MIB:g} MiB",
                per_worker <= PSS_PER_WORKER_TARGET_MIB,
            )
        )
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


def render(  # noqa: PLR0917
    setup: Setup,
    echo: Result,
    runs: Sequence[ModelRuns],
    memory: Sequence[Memory],
    overheads: Sequence[Overhead] = (),
    routing: Routing | None = None,
) -> str:
    import sklearn

    results = [echo, *(result for run in runs for result in run.results)]
    errors = any(any(error_counts(r)) for r in results)
    loader = (
        "wrk `-t1`" if shutil.which("wrk") else "the Python keep-alive load generator (wrk is not installed)"
    )
    grpc_runs = [run.grpc for run in runs if run.grpc is not None]
    lines = [
        "## Serving benchmark",
        "",
        "HistGradientBoostingClassifier(max_iter=100) on make_classification(50,000 x 20), three ways: "
        + "; ".join(f"`{run.served.name}` {run.served.fitted_on}" for run in runs)
        + ". Single-row JSON requests, one worker each. "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, scikit-learn {sklearn.__version__}; "
        f"each run: {WARMUP_SECONDS} s warm-up, then {setup.duration} s measured.",
        "",
        *results_table(results),
        "",
        "- floor: in-process `predict_proba` of one row (a 1x20 numpy row or a one-row DataFrame), "
        "threadpoolctl `threadpool_limits(1)` entered after scikit-learn's OpenMP runtime is loaded, every "
        "pool checked to run one thread; its c=1 columns are per call.",
        "- echo ASGI: bare ASGI callable (reads the body, fixed small JSON), uvicorn httptools + uvloop, "
        "no access log.",
        "- FastAPI: `async def` `POST /predict`, pydantic body, joblib copy of the model, same uvicorn "
        "settings, OMP_NUM_THREADS=1; a numpy row for the numpy-fitted model (the fastest FastAPI server), "
        "`pd.DataFrame(request.instances, columns=...)` for the DataFrame-fitted ones.",
        "- Shipyard: `shipyard serve <model>@production --workers 1`, with its default flags (prediction log "
        "on) and with `--no-log`, a fresh server each; gRPC on the default-flag server (not for the "
        "pipeline, whose string columns would need BYTES tensors).",
        f"- HTTP load: {loader}, at c=1 and c={CONCURRENCY_HIGH}; non-2xx counts both measured runs.",
        (
            f"- gRPC load: h2load (nghttp2, in C), one connection with 1 or {CONCURRENCY_HIGH} streams "
            "at once (one gRPC channel with that many callers), after one grpcio call checked to answer "
            "OK; non-2xx counts HTTP errors."
            if shutil.which("h2load") is not None
            else "- gRPC load: a Python `grpc.aio` process, 1 or 32 callers on one channel; it shares the "
            f"{os.cpu_count()} cores with the server, so its numbers understate the server. "
            "non-2xx here means calls with a non-OK status."
            + "".join(f" {r.name}:{client_cpu_note(r)}" for r in grpc_runs)
        ),
    ]
    if errors:
        lines.append("- WARNING: some targets answered errors; their throughput is not a valid measure.")
    lines += ["", "### Targets", "", *targets_table(echo, runs, memory), ""]
    lines += [
        f"Log on against log off: the medians of {OVERHEAD_ROUNDS} alternating rounds of fresh servers per "
        "model (c=32), beside the table's single runs, since two runs of the same server can differ by "
        "more than 5% on this machine: "
        + "; ".join(
            f"{run.served.name}: off {', '.join(rate(x.rps) for x in run.log.off)}, "
            f"on {', '.join(rate(x.rps) for x in run.log.on)}"
            for run in runs
            if run.log is not None
        )
        + ".",
        "",
    ]
    for overhead in overheads:
        lines += overhead_lines(overhead)
    if routing is not None:
        lines += routing_lines(routing)
    if memory:
        lines += [
            "### Memory of `shipyard serve` (default flags, parent + workers, after readiness and "
            "2 s of traffic)",
            "",
        ]
        lines += memory_table(memory)
        lines += [
            "",
            "PSS shares each page among the processes mapping it; RSS counts shared pages in every process.",
        ]
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------------


def prepare(work: Path, duration: int) -> tuple[Setup, dict[str, Any]]:
    """Fit and register the three models; the requests each is sent; the fitted models by key."""
    import joblib
    import pandas as pd

    progress(
        "fitting HistGradientBoostingClassifier(max_iter=100) on 50,000 x 20: numpy, DataFrame, pipeline"
    )
    X, y, model = train()
    frame = pd.DataFrame(X, columns=COLUMNS)
    mixed = mixed_frame(X)
    fitted = {"numpy": model, "frame": train_frame(X, y), "pipeline": train_pipeline(mixed, y)}
    home = work / "home"
    register(model, frame, y, home)
    register(fitted["frame"], frame, y, home, FRAME_MODEL)
    register(fitted["pipeline"], mixed, y, home, PIPELINE_MODEL)
    row = [float(v) for v in X[0]]
    body = json.dumps({"instances": [dict(zip(COLUMNS, row, strict=True))]}).encode()
    mixed_row = {c: (v if isinstance(v, str) else float(v)) for c, v in mixed.iloc[0].items()}
    mixed_body = json.dumps({"instances": [mixed_row]}).encode()
    served = []
    for key, name, fitted_on, request, frame_input in (
        ("numpy", MODEL_NAME, "fitted on a numpy array", body, False),
        ("frame", FRAME_MODEL, "fitted on a DataFrame (x0..x19)", body, True),
        (
            "pipeline",
            PIPELINE_MODEL,
            "a Pipeline(ColumnTransformer(OneHotEncoder on c0, c1 (x18, x19 cut into 'a'..'e'), "
            "StandardScaler on x0..x17)) fitted on a mixed DataFrame",
            mixed_body,
            True,
        ),
    ):
        path = work / f"{name}.joblib"
        joblib.dump(fitted[key], path)
        served.append(
            Served(key, name, fitted_on, path, request, write_lua(work, request, name), frame_input)
        )
    setup = Setup(work, home, served[0].path, served[0].lua, body, row, duration, tuple(served))
    return setup, fitted


def bench_models(setup: Setup, fitted: dict[str, Any]) -> tuple[Result, list[ModelRuns]]:
    """The echo round trip, then every model's floors, FastAPI and Shipyard servers."""
    echo = bench_python_server("echo ASGI", setup, "echo", "/", env={})
    runs = [bench_model(setup, served, fitted[served.key]) for served in setup.models]
    return echo, runs


def run(duration: int, only: str | None = None) -> str:
    with tempfile.TemporaryDirectory(prefix="shipyard-serving-bench-") as tmp:
        setup, fitted = prepare(Path(tmp), duration)
        if only == "profiles":
            overhead = bench_live_profiles(setup)
            return "\n".join(["## Serving benchmark: live profiles only", "", *overhead_lines(overhead)])
        if only == "routing":
            deploy_canary(setup)
            lines = routing_lines(bench_routing(setup))
            return "\n".join(["## Serving benchmark: deployment routing only", "", *lines])
        if only == "memory":
            memory = [bench_memory(setup, workers) for workers in MEMORY_WORKERS]
            return "\n".join(["## Serving benchmark: memory only", "", *memory_table(memory)])
        echo, runs = bench_models(setup, fitted)
        if only == "models":
            return render(setup, echo, runs, [])
        overheads = [bench_live_profiles(setup)]
        deploy_canary(setup)
        routing = bench_routing(setup)
        memory = [bench_memory(setup, workers) for workers in MEMORY_WORKERS]
        return render(setup, echo, runs, memory, overheads, routing)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured run (default 10)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument(
        "--only",
        choices=("models", "profiles", "routing", "memory"),
        help="measure only the three models' table (with its targets but memory), the cost of live traffic "
        "profiles, of deployment routing, or the memory",
    )
    hidden = argparse.SUPPRESS
    parser.add_argument("--role", choices=("echo", "fastapi", "grpc-load", "http-load"), help=hidden)
    parser.add_argument("--port", type=int, help=hidden)
    parser.add_argument("--model", type=Path, help=hidden)
    parser.add_argument("--target", help=hidden)
    parser.add_argument("--concurrency", type=int, help=hidden)
    parser.add_argument("--row", help=hidden)
    parser.add_argument("--name", default=MODEL_NAME, help=hidden)
    parser.add_argument("--frame", action="store_true", help=hidden)
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
