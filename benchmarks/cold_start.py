"""Cold start benchmark: process start to ready for a baked scikit-learn version, against a floor
and against MLflow's and BentoML's servers of the same model.

    python benchmarks/cold_start.py [--runs 7] [--out results.md]

The model is the demo's credit pipeline (`fit_credit_model(make_credit(2000))`: a pandas
ColumnTransformer and a HistGradientBoostingClassifier), registered in a fresh temporary home and
written as a bundle (`write_bundle`). Each round, in turn:

- shipyard: `python -m shipyard serve --bundle DIR --port P`, from Popen to the first 200 on
  `/readyz` (polled every 5 ms; the socket listens from the start, so a poll waits in the
  accept queue and is answered once the model is warm);
- floor: `python -c` importing pandas and scikit-learn and unpickling the same model, from Popen
  to its exit: the least any server of this model must do;
- mlflow: `mlflow models serve -m DIR --env-manager local`, of `mlflow.sklearn.save_model` of the
  same model (its default skops format, trusting the three types skops reports), from Popen to
  the first 200 on `/ping`;
- bentoml: `bentoml serve` of a service that unpickles the same model, to the first 200 on
  `/readyz`.

MLflow and BentoML are installed on first use into their own virtual environment under
~/.cache/shipyard-bench (`python -m venv`, then pip with this environment's numpy, pandas and
scikit-learn versions, so the same pickle loads); when that fails, a note says why and the
Shipyard rows are still printed. Targets (issue 21): shipyard <= 1.0 s on an idle machine and
within 0.3 s of the floor. Run it on an idle machine: other processes' load shows in every row.
"""

from __future__ import annotations

import argparse
import http.client
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGET_SECONDS = 1.0
TARGET_OVER_FLOOR = 0.3
POLL = 0.005
TIMEOUT = 120.0
BENCH_VENV = Path.home() / ".cache" / "shipyard-bench" / "venv"

BENTO_SERVICE = """
import pickle

import bentoml
import pandas as pd


@bentoml.service
class Credit:
    def __init__(self) -> None:
        with open({model!r}, "rb") as handle:
            self.model = pickle.load(handle)

    @bentoml.api
    def predict(self, rows: list[dict]) -> list[float]:
        return self.model.predict_proba(pd.DataFrame(rows))[:, 1].tolist()
"""


def progress(message: str) -> None:
    print(f"[cold start benchmark] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_200(process: subprocess.Popen[bytes], port: int, path: str) -> float:
    """Poll `path` every 5 ms until it answers 200; the seconds since the process started
    (the caller reads the clock just before Popen)."""
    deadline = time.perf_counter() + TIMEOUT
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            connection.request("GET", path)
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(POLL)
    raise RuntimeError(f"no 200 on {path} within {TIMEOUT} s")


def timed_server(command: list[str], port: int, path: str, env: dict[str, str], cwd: Path) -> float:
    """Start a server, time it to its first 200 on `path`, stop it and whatever it started (its
    process group: MLflow and BentoML run their servers as child processes)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return first_200(process, port, path) - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def prepare(work: Path) -> tuple[Path, Path]:
    """The bundle of the credit model and the same model as a pickle."""
    from dataclasses import replace

    from shipyard import Registry, Settings
    from shipyard.datasets import fit_credit_model, make_credit
    from shipyard.packaging.bundle import write_bundle

    frame = make_credit(2000)
    model = fit_credit_model(frame)
    settings = replace(Settings.for_home(work / "home"), protected_aliases=())
    with Registry(settings, actor="benchmark") as registry:
        registry.register(model, name="credit", train_data=frame, target="default")
        write_bundle(registry, "credit:1", work / "bundle")
    pickled = work / "model.pkl"
    pickled.write_bytes(pickle.dumps(model, protocol=5))
    return work / "bundle", pickled


def others_venv() -> Path | None:
    """The python of the virtual environment with MLflow and BentoML, made on first use; None
    (with a note) when it cannot be made."""
    python = BENCH_VENV / "bin" / "python"
    if python.exists():
        return python
    import numpy
    import pandas
    import sklearn

    pins = [
        f"numpy=={numpy.__version__}",
        f"pandas=={pandas.__version__}",
        f"scikit-learn=={sklearn.__version__}",
    ]
    progress(f"installing mlflow and bentoml into {BENCH_VENV} (once)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True, capture_output=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "mlflow", "bentoml", *pins]
        subprocess.run(pip, check=True, capture_output=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(
            f"note: MLflow and BentoML were not measured: installing them failed ({exc}) "
            f"{detail.decode(errors='replace')[-500:]}"
        )
        shutil.rmtree(BENCH_VENV, ignore_errors=True)
        return None
    return python


def mlflow_model(python: Path, pickled: Path, work: Path) -> Path:
    """`mlflow.sklearn.save_model` of the pickled model, in MLflow's default format (skops), trusting
    the types skops reports for it (MLflow refuses to save it otherwise)."""
    target = work / "mlflow-model"
    code = (
        "import pickle, skops.io as sio, mlflow.sklearn; "
        f"model = pickle.load(open({str(pickled)!r}, 'rb')); "
        "trusted = sio.get_untrusted_types(data=sio.dumps(model)); "
        f"mlflow.sklearn.save_model(model, {str(target)!r}, skops_trusted_types=trusted)"
    )
    subprocess.run([str(python), "-c", code], check=True, capture_output=True)
    return target


def runners(work: Path, bundle: Path, pickled: Path, others: Path | None) -> dict[str, Callable[[], float]]:
    env = {**os.environ, "SHIPYARD_HOME": str(work / "serve-home")}

    def shipyard() -> float:
        port = free_port()
        command = [sys.executable, "-m", "shipyard", "serve", "--bundle", str(bundle), "--port", str(port)]
        return timed_server(command, port, "/readyz", env, work)

    def floor() -> float:
        code = f"import pickle, pandas, sklearn; pickle.load(open({str(pickled)!r}, 'rb'))"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - started

    found: dict[str, Callable[[], float]] = {"shipyard": shipyard, "floor": floor}
    if others is None:
        return found
    bin_dir = others.parent
    other_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    other_env["PATH"] = f"{bin_dir}{os.pathsep}{other_env.get('PATH', '')}"
    try:
        saved = mlflow_model(others, pickled, work)
    except subprocess.CalledProcessError as exc:
        print(
            f"note: MLflow was not measured: save_model failed ({exc.stderr.decode(errors='replace')[-300:]})"
        )
    else:

        def mlflow() -> float:
            port = free_port()
            command = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(saved), "--env-manager", "local",
                       "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
            return timed_server(command, port, "/ping", other_env, work)

        found["mlflow"] = mlflow
    service = work / "bento"
    service.mkdir(exist_ok=True)
    (service / "service.py").write_text(BENTO_SERVICE.format(model=str(pickled)))

    def bentoml() -> float:
        port = free_port()
        command = [
            str(bin_dir / "bentoml"),
            "serve",
            "service:Credit",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return timed_server(command, port, "/readyz", other_env, service)

    found["bentoml"] = bentoml
    return found


def table(times: dict[str, list[float]]) -> str:
    floor = statistics.median(times["floor"])
    lines = [
        "| server | median start-to-ready (s) | min (s) | max (s) | over the floor (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        over = "" if name == "floor" else f"{median - floor:+.3f}"
        lines.append(f"| {name} | {median:.3f} | {min(seconds):.3f} | {max(seconds):.3f} | {over} |")
    ours = statistics.median(times["shipyard"])
    verdict = "met" if ours <= TARGET_SECONDS and ours - floor <= TARGET_OVER_FLOOR else "NOT met"
    lines.append("")
    lines.append(
        f"Targets: shipyard <= {TARGET_SECONDS} s and within {TARGET_OVER_FLOOR} s of the floor: {verdict} "
        f"({len(times['shipyard'])} runs each, load average {os.getloadavg()[0]:.2f})."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds; the table shows medians")
    parser.add_argument("--no-others", action="store_true", help="measure Shipyard and the floor only")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as folder:
        work = Path(folder)
        progress("fitting, registering and bundling the credit model")
        bundle, pickled = prepare(work)
        others = None if args.no_others else others_venv()
        run = runners(work, bundle, pickled, others)
        times: dict[str, list[float]] = {name: [] for name in run}
        for round_ in range(args.runs):
            progress(f"round {round_ + 1} of {args.runs}")
            for name, measure in run.items():
                try:
                    times[name].append(measure())
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    print(f"note: {name} failed in round {round_ + 1}: {exc}")
        result = table({name: seconds for name, seconds in times.items() if seconds})
    print(result)
    if args.out is not None:
        args.out.write_text(result + "\n")


if __name__ == "__main__":
    main()
