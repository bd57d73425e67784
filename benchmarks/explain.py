"""Explanation benchmark: Shipyard's explainers against floors measured in the same run.

Run it with one command (a few minutes, on an idle machine)::

    python benchmarks/explain.py [--requests 2000] [--rows 2000] [--mlp-rows 20] [--out results.md]

What it measures, as users run it (models fitted on pandas DataFrames, default flags):

1. Single-row explain over HTTP at concurrency 1. It fits
   `HistGradientBoostingClassifier(max_iter=100)` on `make_classification(n_samples=20_000,
   n_features=20)` as a DataFrame, registers it in a fresh temporary Shipyard home, starts
   `shipyard serve hgb --workers 1` (default flags: prediction log on) and sends the same
   one-row body, one request at a time over one keep-alive connection, to
   `POST /v1/models/hgb/predict` and to `POST /v1/models/hgb/explain`, in alternating blocks.
   Target: explain's p50 <= predict's p50 + 1.5 ms.
2. Batch explain rows/s, in process (the best of three runs each): `shipyard.explain` of the
   version on `--rows` rows against
   `shap.TreeExplainer(model).shap_values` (path-dependent, the floor) on the same model and rows,
   and beside them batch predict (`LoadedModel.predict`). Target: >= 1.0x shap.
3. Exact model-agnostic Shapley values of a 10-feature `MLPClassifier` (fitted on a DataFrame):
   Shipyard's exact values (`method="exact"`, every coalition) against `shap.KernelExplainer`
   with its default settings and the same background (the version's stored background sample),
   seconds per row over `--mlp-rows` rows, the best of three runs each. Target: >= 5x faster. It
   also reports how far Kernel SHAP's estimate is from the exact values.

Every server it starts is stopped on exit. shap comes with `pip install 'shipyard[explain]'`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 20
COLUMNS = [f"x{i}" for i in range(N_FEATURES)]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hgb_frame() -> tuple[Any, Any, Any]:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=20_000, n_features=N_FEATURES, random_state=0)
    frame = pd.DataFrame(X, columns=COLUMNS)
    return frame, y, HistGradientBoostingClassifier(max_iter=100).fit(frame, y)


def register(registry: Any, model: Any, frame: Any, labels: Any, name: str) -> Any:
    train = frame.copy()
    train["label"] = labels
    return registry.register(model, name=name, train_data=train, target="label")


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# -- 1. single-row explain over HTTP ------------------------------------------------------------


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    executable = Path(sys.executable).with_name("shipyard")
    found = str(executable) if executable.exists() else shutil.which("shipyard")
    if found is None:
        raise SystemExit("the `shipyard` command is not installed; run `pip install -e '.[dev]'`")
    env = dict(os.environ, SHIPYARD_HOME=str(home))
    cmd = [found, "serve", "hgb", "--port", str(port), "--workers", "1"]
    log = open(home / "serve.log", "wb")  # noqa: SIM115 -- closed with the process
    process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"shipyard serve exited: {(home / 'serve.log').read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"shipyard serve did not get ready: {(home / 'serve.log').read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def timed_posts(conn: http.client.HTTPConnection, path: str, body: bytes, n: int) -> list[float]:
    latencies = []
    headers = {"Content-Type": "application/json"}
    for _ in range(n):
        started = time.perf_counter()
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        data = response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"POST {path} answered {response.status}: {data[:500]!r}")
    return latencies


def bench_http(home: Path, frame: Any, requests: int) -> dict[str, Any]:
    port = free_port()
    process = serve(home, port)
    try:
        body = json.dumps({"instances": [frame.iloc[0].to_dict()]}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        progress("HTTP warm-up")
        timed_posts(conn, "/v1/models/hgb/predict", body, 200)
        timed_posts(conn, "/v1/models/hgb/explain", body, 200)
        predict: list[float] = []
        explain: list[float] = []
        block = max(50, requests // 10)
        progress(f"HTTP: {requests} predict and {requests} explain requests at c=1, alternating blocks")
        for _ in range(max(1, requests // block)):
            predict += timed_posts(conn, "/v1/models/hgb/predict", body, block)
            explain += timed_posts(conn, "/v1/models/hgb/explain", body, block)
        conn.close()
    finally:
        stop(process)
    return {
        "predict_p50": percentile(predict, 50),
        "predict_p99": percentile(predict, 99),
        "explain_p50": percentile(explain, 50),
        "explain_p99": percentile(explain, 99),
    }


# -- 2. batch explain ----------------------------------------------------------------------------


def best_of(work: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_batch(registry: Any, model: Any, frame: Any, rows: int) -> dict[str, Any]:
    import shap

    from shipyard.explanations.explaining import explain_rows

    loaded = registry.load("hgb:1")
    sample = frame.iloc[:rows]
    explain_rows(loaded, sample.iloc[:10])  # builds the explainer once, as a server's first request does
    progress(f"batch: shipyard explain, shap.TreeExplainer and predict on {rows} rows")
    ours = best_of(lambda: explain_rows(loaded, sample), 3)
    tree = shap.TreeExplainer(model)
    theirs = best_of(lambda: tree.shap_values(sample, check_additivity=False), 3)
    predict = best_of(lambda: loaded.predict(sample), 3)
    explanation = explain_rows(loaded, sample).attributions
    shap_values = np.asarray(tree.shap_values(sample, check_additivity=False))
    gap = float(np.abs(explanation.values[:, :, 0] - shap_values).max())
    return {
        "rows": rows,
        "ours": rows / ours,
        "shap": rows / theirs,
        "predict": rows / predict,
        "max_gap_to_shap": gap,
        "ours_additivity": float(explanation.additivity.max()),
        "method": explanation.method,
    }


# -- 3. exact model-agnostic values on an MLP ------------------------------------------------------


def bench_mlp(registry: Any, rows: int) -> dict[str, Any]:
    import pandas as pd
    import shap
    from sklearn.datasets import make_classification
    from sklearn.neural_network import MLPClassifier

    from shipyard.explanations.explaining import explain_rows

    names = [f"m{i}" for i in range(10)]
    X, y = make_classification(n_samples=3_000, n_features=10, random_state=1)
    frame = pd.DataFrame(X, columns=names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier(random_state=0, max_iter=300).fit(frame, y)
    register(registry, model, frame, y, "mlp")
    loaded = registry.load("mlp:1")
    background = pd.DataFrame(loaded.version.explanation["background"])[names]
    sample = frame.iloc[-rows:]
    explain_rows(loaded, sample.iloc[:1], method="exact")
    progress(f"MLP: exact values and shap.KernelExplainer, {rows} rows, {len(background)} background")
    ours = explain_rows(loaded, sample, method="exact").attributions
    ours_s = best_of(lambda: explain_rows(loaded, sample, method="exact"), 3) / rows
    kernel = shap.KernelExplainer(model.predict_proba, background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimated = np.asarray(kernel.shap_values(sample, silent=True))
        kernel_s = best_of(lambda: kernel.shap_values(sample, silent=True), 3) / rows
    if estimated.ndim == 3 and estimated.shape[0] == 2 and estimated.shape[2] != 2:
        estimated = np.moveaxis(estimated, 0, -1)
    gap = float(np.abs(estimated - ours.values).max())
    return {
        "rows": rows,
        "background": len(background),
        "ours_ms": ours_s * 1e3,
        "kernel_ms": kernel_s * 1e3,
        "kernel_gap": gap,
        "ours_additivity": float(ours.additivity.max()),
    }


# -- the report --------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(http_: dict[str, Any], batch: dict[str, Any], mlp: dict[str, Any]) -> str:
    added = (http_["explain_p50"] - http_["predict_p50"]) * 1e3
    added_p99 = (http_["explain_p99"] - http_["predict_p99"]) * 1e3
    batch_ok = verdict(batch["ours"] >= batch["shap"])
    batch_ratio = batch["ours"] / batch["shap"]
    mlp_ratio = mlp["kernel_ms"] / mlp["ours_ms"]
    lines = [
        "## Explanation benchmark",
        "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f} at the end.",
        "",
        "| measurement | Shipyard | floor | ratio / difference | target | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| single-row HTTP p50 at c=1 (explain vs predict) | {http_['explain_p50'] * 1e3:.3f} ms "
        f"| {http_['predict_p50'] * 1e3:.3f} ms | +{added:.3f} ms | <= +1.5 ms | {verdict(added <= 1.5)} |",
        f"| single-row HTTP p99 at c=1 | {http_['explain_p99'] * 1e3:.3f} ms "
        f"| {http_['predict_p99'] * 1e3:.3f} ms | +{added_p99:.3f} ms | | |",
        f"| batch explain rows/s ({batch['rows']} rows, {batch['method']}) | {batch['ours']:,.0f} "
        f"| {batch['shap']:,.0f} (shap.TreeExplainer) | {batch_ratio:.2f}x | >= 1.0x | {batch_ok} |",
        f"| batch predict rows/s (same rows) | {batch['predict']:,.0f} | | explain is "
        f"{batch['predict'] / batch['ours']:.0f}x slower than predict | | |",
        f"| exact Shapley, 10-feature MLP, ms per row ({mlp['background']} background rows) "
        f"| {mlp['ours_ms']:.1f} | {mlp['kernel_ms']:.1f} (shap.KernelExplainer) | {mlp_ratio:.2f}x "
        f"| >= 5x | {verdict(mlp_ratio >= 5)} |",
        "",
        f"- Largest |Shipyard - shap.TreeExplainer| over the batch: {batch['max_gap_to_shap']:.2e}; "
        f"Shipyard's largest additivity error: {batch['ours_additivity']:.2e}.",
        f"- Largest |KernelExplainer - exact| on the MLP: {mlp['kernel_gap']:.2e} (Kernel SHAP "
        f"estimates; the exact values add up to {mlp['ours_additivity']:.2e}).",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="HTTP requests per endpoint")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the batch measurement")
    parser.add_argument("--mlp-rows", type=int, default=20, help="rows the MLP measurement explains")
    parser.add_argument("--out", type=Path, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from shipyard import Registry, Settings

    with tempfile.TemporaryDirectory(prefix="shipyard-explain-bench-") as tmp:
        home = Path(tmp) / "home"
        progress("fitting HistGradientBoostingClassifier(max_iter=100) on a 20,000 x 20 DataFrame")
        frame, labels, model = hgb_frame()
        with Registry(Settings.for_home(home)) as registry:
            register(registry, model, frame, labels, "hgb")
            batch = bench_batch(registry, model, frame, args.rows)
            mlp = bench_mlp(registry, args.mlp_rows)
        http_ = bench_http(home, frame, args.requests)
    report = render(http_, batch, mlp)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
