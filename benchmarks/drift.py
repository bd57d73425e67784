"""Drift benchmark: Shipyard's drift statistics on 2 x 1,000,000 rows against a floor in the same run.

Run it with one command (under 2 minutes on 2 cores, most of it Evidently)::

    python benchmarks/drift.py [--rows 1000000] [--no-evidently] [--out results.md]

Data: `make_classification(n_samples=2 * ROWS, n_features=20, n_informative=10, random_state=0)`,
each column standardised (z-score); the first ROWS rows are the reference, the last ROWS the
current data, whose columns f0..f4 are then shifted by `x * 1.1 + 0.25`. Each side is held as 20
contiguous float64 columns (2 x ROWS x 20 x 8 bytes: 320 MB at the default size), written once to
.npy files in a temporary directory.

Every row runs in a fresh process of its own that loads the data, resets the kernel's peak-RSS mark
(/proc/self/clear_refs), then times the work; peak RSS growth is the process's peak RSS (VmHWM, the
figure `getrusage(RUSAGE_SELF).ru_maxrss` reports for it, without the pre-exec parent's peak that
ru_maxrss also keeps) minus the RSS just before the work, so nothing but the measured work counts:

- floor: `scipy.stats.ks_2samp(reference, current, axis=0)` on the two ROWS x 20 arrays, plus a numpy
  PSI per column on 10 reference-quantile bins (`np.quantile`, `searchsorted`, shares, epsilon 1e-4):
  the two statistics any drift check computes, with nothing around them;
- Shipyard reference profile: `Profile.build(reference)`, done once when a version is registered;
- Shipyard monitor path: with that profile prebuilt (read from JSON before timing),
  `reference.profile(current)` + `compare(reference, current_profile)`;
- Shipyard with raw samples: `shipyard.drift(reference, current)` end to end: both profiles built,
  then exact KS and Wasserstein from the raw columns;
- Evidently: `Report([DataDriftPreset()]).run(...)` on pandas DataFrames of the same data, run by the
  Python of a separate virtual env (Evidently 0.7 needs pandas < 3)::

      python -m venv /tmp/evenv && /tmp/evenv/bin/pip install evidently "pandas<3" scikit-learn

  The row says 'not installed' when that env is missing or Evidently fails to import or run.

Targets, per Shipyard row: time at most 0.5x the floor, peak RSS growth at most 1.5x the data size;
the drifted columns flagged must be exactly f0..f4. It prints a markdown table and, with `--out`,
writes it to a file too. The helper processes run this same file through the hidden `--role` option
(the Evidently one with the other env's Python, so this module imports nothing but numpy at the top).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 20
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]
SHIFTED = COLUMNS[:5]
PSI_BINS = 10
PSI_EPSILON = 1e-4
TIME_TARGET = 0.5  # x the floor's seconds
MEMORY_TARGET = 1.5  # x the data's size
EVIDENTLY_PYTHON = Path("/tmp/evenv/bin/python")
MB = 1e6
WARMUP_ROWS = 5000  # each variant runs once on this many rows first, so imports and first calls are not timed


def progress(message: str) -> None:
    print(f"[drift benchmark] {message}", file=sys.stderr, flush=True)


# -- the data -------------------------------------------------------------------------------------


def write_data(rows: int, work: Path) -> None:
    """Generate, standardise, split and shift the data; save each side as a 20 x ROWS array."""
    from sklearn.datasets import make_classification

    X, _ = make_classification(n_samples=2 * rows, n_features=N_FEATURES, n_informative=10, random_state=0)
    columns = np.ascontiguousarray(X.T)  # one contiguous row per feature
    del X
    columns -= columns.mean(axis=1, keepdims=True)
    columns /= columns.std(axis=1, keepdims=True)
    reference, current = columns[:, :rows], columns[:, rows:].copy()
    current[: len(SHIFTED)] = current[: len(SHIFTED)] * 1.1 + 0.25
    np.save(work / "reference.npy", np.ascontiguousarray(reference))
    np.save(work / "current.npy", current)


def load_arrays(work: Path) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as 20 x ROWS float64 arrays, one contiguous row per column."""
    return np.load(work / "reference.npy"), np.load(work / "current.npy")


def load_data(work: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both sides as dicts of contiguous float64 columns (views of the arrays, no copy)."""
    reference, current = load_arrays(work)
    return dict(zip(COLUMNS, reference, strict=True)), dict(zip(COLUMNS, current, strict=True))


# -- measuring, inside each helper process --------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    """This process's peak RSS since it started or since `reset_peak`.

    Read from VmHWM rather than `getrusage(RUSAGE_SELF).ru_maxrss`: ru_maxrss also keeps the
    peak of the address space the process had before exec, which for a child of this benchmark
    is the parent's, data generation included.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak() -> bool:
    """Set the kernel's peak-RSS mark (which ru_maxrss reads) to the current RSS, if allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def measured(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `work` once; its wall seconds, its peak RSS growth, and whatever it returns."""
    gc.collect()
    reset = reset_peak()
    before = rss_bytes()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    peak = peak_bytes()
    return {"seconds": seconds, "peak_growth": max(0, peak - before), "peak_reset": reset, **result}


def numpy_psi(reference: np.ndarray, current: np.ndarray) -> float:
    edges = np.quantile(reference, np.arange(1, PSI_BINS) / PSI_BINS)
    e = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=PSI_BINS) / len(reference)
    a = np.bincount(np.searchsorted(edges, current, side="right"), minlength=PSI_BINS) / len(current)
    e, a = np.maximum(e, PSI_EPSILON), np.maximum(a, PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def head(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The first WARMUP_ROWS rows of each column: a warm-up run's data."""
    return {name: values[:WARMUP_ROWS] for name, values in columns.items()}


def role_floor(work: Path) -> dict[str, Any]:
    from scipy import stats

    reference, current = load_arrays(work)

    def run(ref_2d: np.ndarray, cur_2d: np.ndarray) -> dict[str, Any]:
        ks = stats.ks_2samp(ref_2d, cur_2d, axis=0)
        psi = [numpy_psi(ref_2d[:, j], cur_2d[:, j]) for j in range(N_FEATURES)]
        return {
            "ks": [float(v) for v in ks.statistic],
            "ks_p": [float(v) for v in ks.pvalue],
            "psi": psi,
            "flagged": [c for c, p in zip(COLUMNS, ks.pvalue, strict=True) if p < 0.05],
        }

    run(reference[:, :WARMUP_ROWS].T, current[:, :WARMUP_ROWS].T)
    return measured(lambda: run(reference.T, current.T))  # ROWS x 20 views, no copy


def role_build(work: Path) -> dict[str, Any]:
    from shipyard.core.batch import Batch
    from shipyard.core.profile import Profile

    ref, _cur = load_data(work)  # the current rows stay loaded: every row starts from the same data
    built: list[Profile] = []

    def run(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        built.append(Profile.build(Batch.from_columns(columns)))
        return {"flagged": None}

    run(head(ref))
    result = measured(lambda: run(ref))
    (work / "reference-profile.json").write_text(json.dumps(built[-1].to_dict()), encoding="utf-8")
    return result


def role_monitor(work: Path) -> dict[str, Any]:
    from shipyard.core.batch import Batch
    from shipyard.core.profile import Profile
    from shipyard.monitoring.drift import compare

    _ref, cur = load_data(work)  # the reference rows stay loaded: every row starts from the same data
    reference = Profile.from_dict(json.loads((work / "reference-profile.json").read_text(encoding="utf-8")))

    def run(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        report = compare(reference, reference.profile(Batch.from_columns(columns)))
        return {
            "flagged": sorted(report.drifted_features),
            "ks": [report.column(c).stats["ks"] for c in COLUMNS],
            "ks_upper": [report.column(c).stats["ks_upper"] for c in COLUMNS],
        }

    run(head(cur))
    return measured(lambda: run(cur))


def role_raw(work: Path) -> dict[str, Any]:
    from shipyard import drift
    from shipyard.core.batch import Batch

    ref, cur = load_data(work)

    def run(ref_columns: dict[str, np.ndarray], cur_columns: dict[str, np.ndarray]) -> dict[str, Any]:
        report = drift(Batch.from_columns(ref_columns), Batch.from_columns(cur_columns))
        return {
            "flagged": sorted(report.drifted_features),
            "ks": [report.column(c).stats["ks"] for c in COLUMNS],
            "ks_p": [report.column(c).stats["ks_p"] for c in COLUMNS],
        }

    run(head(ref), head(cur))
    return measured(lambda: run(ref, cur))


def role_evidently(work: Path) -> dict[str, Any]:
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = load_data(work)
    reference, current = pd.DataFrame(ref), pd.DataFrame(cur)  # one consolidated copy each
    del ref, cur
    definition = DataDefinition(numerical_columns=COLUMNS)
    snapshots: list[Any] = []

    def run(ref_frame: pd.DataFrame, cur_frame: pd.DataFrame) -> dict[str, Any]:
        snapshots.append(
            Report([DataDriftPreset()]).run(
                current_data=Dataset.from_pandas(cur_frame, data_definition=definition),
                reference_data=Dataset.from_pandas(ref_frame, data_definition=definition),
            )
        )
        return {}

    run(reference.iloc[:WARMUP_ROWS], current.iloc[:WARMUP_ROWS])
    result = measured(lambda: run(reference, current))
    flagged, methods = [], set()
    for metric in snapshots[-1].dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            method, value, threshold = config["method"], metric["value"], config["threshold"]
            methods.add(method)
            if (value < threshold) if "p_value" in method else (value >= threshold):
                flagged.append(config["column"])
    return {
        **result,
        "flagged": sorted(flagged),
        "methods": sorted(methods),
        "version": evidently.__version__,
    }


ROLES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "floor": role_floor,
    "build": role_build,
    "monitor": role_monitor,
    "raw": role_raw,
    "evidently": role_evidently,
}


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured variant, or why it was not measured."""

    name: str
    result: dict[str, Any] | None
    note: str = ""
    shipyard: bool = False


def run_role(role: str, work: Path, python: Path | str = sys.executable) -> dict[str, Any]:
    """Run one role in a fresh process; its JSON answer (the last line it prints)."""
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--role", role, "--data", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"role {role!r} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def evidently_row(work: Path, python: Path, skip: bool) -> Row:
    name = "Evidently DataDriftPreset (pandas DataFrames)"
    if skip:
        return Row(name, None, "skipped (--no-evidently)")
    check = (
        subprocess.run(
            [str(python), "-c", "import evidently.presets, pandas"],
            capture_output=True,
            text=True,
            check=False,
        )
        if python.exists()
        else None
    )
    if check is None or check.returncode != 0:
        why = check.stderr.strip().splitlines()[-1] if check is not None and check.stderr.strip() else ""
        progress(f"Evidently: not installed at {python} {why}")
        return Row(name, None, "not installed")
    try:
        result = run_role("evidently", work, python)
    except RuntimeError as exc:
        progress(f"Evidently failed to run: {exc}")
        return Row(name, None, "not installed (failed to run)")
    methods = ", ".join(result.get("methods", []))
    return Row(f"Evidently {result.get('version', '')} DataDriftPreset ({methods})", result)


def table(rows: Sequence[Row], floor_seconds: float, data_bytes: int, n: int, load: float) -> str:
    lines = [
        f"# Drift benchmark: {n:,} reference + {n:,} current rows x {N_FEATURES} float64 features "
        f"(f0..f4 shifted by x*1.1+0.25)",
        "",
        f"{platform.platform(terse=True)}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load:.2f} at the start; data {data_bytes / MB:.0f} MB; each row in a fresh process",
        "",
        "| what | seconds | x floor | peak RSS growth (MB) | x data | flagged | targets |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    expected = sorted(SHIFTED)
    for row in rows:
        if row.result is None:
            lines.append(f"| {row.name} | {row.note} | | | | | |")
            continue
        seconds, growth = row.result["seconds"], row.result["peak_growth"]
        time_ratio, memory_ratio = seconds / floor_seconds, growth / data_bytes
        flagged = row.result.get("flagged")
        shown = "-" if flagged is None else (", ".join(flagged) or "none")
        verdict = ""
        if row.shipyard:
            checks = [
                f"time {'PASS' if time_ratio <= TIME_TARGET else 'FAIL'}",
                f"memory {'PASS' if memory_ratio <= MEMORY_TARGET else 'FAIL'}",
            ]
            if flagged is not None:
                checks.append(f"flags {'PASS' if flagged == expected else 'FAIL'}")
            verdict = ", ".join(checks)
        lines.append(
            f"| {row.name} | {seconds:.2f} | {time_ratio:.2f}x | {growth / MB:.0f} | {memory_ratio:.2f}x "
            f"| {shown} | {verdict} |"
        )
    lines += [
        "",
        f"Targets per Shipyard row: time <= {TIME_TARGET}x the floor, peak RSS growth <= {MEMORY_TARGET}x "
        f"the data ({data_bytes / MB:.0f} MB), flagged exactly {', '.join(expected)}. The floor's "
        "'flagged' is every column whose ks_2samp p-value is below 0.05.",
    ]
    return "\n".join(lines)


def agreement(floor: dict[str, Any], monitor: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    """How the Shipyard numbers sit against scipy's on the same data."""
    ks = np.asarray(floor["ks"])
    exact_gap = float(np.max(np.abs(np.asarray(raw["ks"]) - ks)))
    p_gap = max(
        abs(a - b) / b if b > 0 else abs(a - b) for a, b in zip(raw["ks_p"], floor["ks_p"], strict=True)
    )
    low, high = np.asarray(monitor["ks"]), np.asarray(monitor["ks_upper"])
    inside = int(np.sum((low <= ks + 1e-12) & (ks <= high + 1e-12)))
    return [
        f"Agreement with scipy: exact KS max |difference| {exact_gap:.1e}, KS p-value max relative "
        f"difference {p_gap:.1e}; scipy's KS inside the grid interval [ks, ks_upper] for {inside}/"
        f"{N_FEATURES} columns (widest interval {float(np.max(high - low)):.4f}).",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows on each side")
    parser.add_argument("--no-evidently", action="store_true", help="leave out the Evidently row")
    parser.add_argument("--evidently-python", type=Path, default=EVIDENTLY_PYTHON)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role is not None:
        print(json.dumps(ROLES[args.role](args.data)))
        return 0
    load = os.getloadavg()[0]  # other work on the machine slows the rows it overlaps
    with tempfile.TemporaryDirectory(prefix="shipyard-drift-bench-") as tmp:
        work = Path(tmp)
        progress(f"generating 2 x {args.rows:,} rows")
        write_data(args.rows, work)
        data_bytes = 2 * args.rows * N_FEATURES * 8
        progress("floor: scipy ks_2samp(axis=0) + numpy PSI")
        floor = run_role("floor", work)
        progress("Shipyard: reference profile build")
        build = run_role("build", work)
        progress("Shipyard: monitor path (profile current + compare)")
        monitor = run_role("monitor", work)
        progress("Shipyard: raw samples (build + profile + compare, exact KS and Wasserstein)")
        raw = run_role("raw", work)
        progress("Evidently")
        evidently = evidently_row(work, args.evidently_python, args.no_evidently)
    rows = [
        Row("floor: scipy ks_2samp(axis=0) + numpy PSI (10 quantile bins)", floor),
        Row("Shipyard: reference profile build (once, at registration)", build, shipyard=True),
        Row(
            "**Shipyard monitor path**: profile current + compare (prebuilt reference)",
            monitor,
            shipyard=True,
        ),
        Row(
            "Shipyard with raw samples: build + profile + compare (exact KS, Wasserstein)", raw, shipyard=True
        ),
        evidently,
    ]
    if not all(r.result is None or r.result.get("peak_reset", True) for r in rows):
        progress("the peak-RSS mark could not be reset; peaks include loading the data")
    report = table(rows, floor["seconds"], data_bytes, args.rows, load)
    report += "\n\n" + "\n".join(agreement(floor, monitor, raw))
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
