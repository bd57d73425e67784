"""Batch benchmark: `shipyard batch run` on Parquet against a floor measured in the same run.

    python benchmarks/batch.py [--rows 1000000] [--memory-rows 10000000] [--spark] [--out results.md]

It fits the serving benchmark's model (`HistGradientBoostingClassifier(max_iter=100)` on
`make_classification(n_samples=50_000, n_features=20)`), registers it in a fresh temporary home,
and writes ROWS x 20 float64 features to Parquet (row groups of 131,072 rows). Then, in one run:

- floor: `predict_proba` of all ROWS rows, already in memory as one numpy array;
- shipyard: `shipyard batch run hgb:1 --input in.parquet --output out/` as a process: read,
  validate, predict and write Parquet. The job's own time (first read to last rename, as
  `--json` reports it) is compared with the floor; the process's time from start to exit
  (interpreter start, imports, model load) is shown beside it;
- five alternating rounds of both, compared on the medians;
- memory: the same command on MEMORY-ROWS rows, its peak RSS (GNU time's %M);
- with `--spark`: the same command with `--engine spark` on a local[*] Spark (pyspark installed).

It prints a markdown table; with `--out` it also writes it to a file.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FEATURES = 20
COLUMNS = [f"x{i}" for i in range(N_FEATURES)]
ROW_GROUP = 131_072
RATIO_TARGET = 0.85
MEMORY_TARGET_MB = 500
ROUNDS = 5


def progress(message: str) -> None:
    print(f"[batch benchmark] {message}", file=sys.stderr, flush=True)


def write_rows(path: Path, rows: int, seed: int) -> None:
    """ROWS random rows in the model's feature space, written in row groups without holding them all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([(c, pa.float64()) for c in COLUMNS])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            block = rng.normal(0, 1.5, size=(n, N_FEATURES))
            writer.write_table(pa.table({c: block[:, j] for j, c in enumerate(COLUMNS)}, schema=schema))


def shipyard_run(home: Path, source: Path, output: Path, *extra: str) -> tuple[float, float, float]:
    """The job's own seconds (read to last rename), the process's seconds, and its peak RSS in MB."""
    import json
    import shutil

    shutil.rmtree(output, ignore_errors=True)
    exe = Path(sys.executable).with_name("shipyard")
    command = [
        str(exe),
        "batch",
        "run",
        "hgb:1",
        "--input",
        str(source),
        "--output",
        str(output),
        "--json",
        *extra,
    ]
    started = time.perf_counter()
    env = {"SHIPYARD_HOME": str(home), "PATH": "/usr/bin:/bin"}
    with tempfile.NamedTemporaryFile("r") as rss:
        # /usr/bin/time (GNU time) reports the command's own peak RSS. Taking it from this
        # process's wait4 would count the fork's copy of this large process before the exec.
        timed = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command]
        done = subprocess.run(timed, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        peak = int(rss.read().strip().splitlines()[-1]) / 1024 if done.returncode == 0 else 0.0
    if done.returncode != 0:
        raise SystemExit(f"shipyard batch run failed:\n{done.stderr}")
    stdout = done.stdout
    return float(json.loads(stdout)["seconds"]), seconds, peak


def render(
    rows: int,
    *,
    floor: float,
    seconds: float,
    process: float,
    memory_rows: int,
    memory_seconds: float | None,
    peak_mb: float | None,
    spark: tuple[float, float] | None = None,
) -> str:
    """The markdown report."""
    floor_rate, rate = rows / floor, rows / seconds
    ratio = rate / floor_rate
    verdict = "PASS" if ratio >= RATIO_TARGET else "FAIL"
    lines = [
        "## Batch benchmark",
        "",
        f"HistGradientBoostingClassifier(max_iter=100), {N_FEATURES} float64 features, Parquet in and out "
        f"(row groups of {ROW_GROUP:,}); medians of {ROUNDS} alternating rounds.",
        "",
        "| what | rows | seconds | rows/s | x floor | goal |",
        "|---|---:|---:|---:|---:|---|",
        f"| floor: `predict_proba` on one in-memory numpy array | {rows:,} | {floor:.2f} "
        f"| {floor_rate:,.0f} | 1.00x | |",
        f"| `shipyard batch run`: the job, first read to last rename | {rows:,} | {seconds:.2f} "
        f"| {rate:,.0f} | {ratio:.2f}x | >= {RATIO_TARGET}x: {verdict} |",
        f"| `shipyard batch run`: the process, start to exit | {rows:,} | {process:.2f} "
        f"| {rows / process:,.0f} | {rows / process / floor_rate:.2f}x | |",
    ]
    if spark is not None:
        lines.append(
            f"| `shipyard batch run --engine spark` (local[*]): the job / the process | {rows:,} "
            f"| {spark[0]:.2f} / {spark[1]:.2f} | {rows / spark[0]:,.0f} "
            f"| {rows / spark[0] / floor_rate:.2f}x | |"
        )
    if memory_seconds is not None and peak_mb is not None:
        ok = "PASS" if peak_mb < MEMORY_TARGET_MB else "FAIL"
        lines.append(
            f"| `shipyard batch run`, peak RSS {peak_mb:,.0f} MB | {memory_rows:,} | {memory_seconds:.2f} "
            f"| {memory_rows / memory_seconds:,.0f} | | < {MEMORY_TARGET_MB} MB: {ok} |"
        )
    return "\n".join(lines) + "\n"


def extra_runs(
    args: argparse.Namespace, home: Path, source: Path, work: Path
) -> tuple[tuple[float, float] | None, tuple[float | None, float | None]]:
    """The Spark run (job and process seconds) and the memory run (seconds, peak RSS), if asked."""
    spark = None
    if args.spark:
        progress("shipyard batch run --engine spark (local[*])")
        spark = shipyard_run(home, source, work / "spark", "--engine", "spark")[:2]
    if not args.memory_rows:
        return spark, (None, None)
    big = work / "big.parquet"
    progress(f"writing {args.memory_rows:,} rows for the memory run")
    write_rows(big, args.memory_rows, seed=2)
    progress("shipyard batch run on the large file")
    seconds, _, peak = shipyard_run(home, big, work / "big-out")
    return spark, (seconds, peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--spark", action="store_true", help="also run --engine spark in local mode")
    args = parser.parse_args()
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    from shipyard import Registry, Settings

    with tempfile.TemporaryDirectory(prefix="shipyard-batch-bench-") as tmp:
        work = Path(tmp)
        progress("fitting HistGradientBoostingClassifier(max_iter=100) on 50,000 x 20")
        X, y = make_classification(n_samples=50_000, n_features=N_FEATURES, random_state=0)
        model = HistGradientBoostingClassifier(max_iter=100).fit(X, y)
        home = work / "home"
        with Registry(Settings.for_home(home)) as registry:
            registry.register(
                model, name="hgb", train_data=pd.DataFrame(X, columns=COLUMNS).assign(label=y), target="label"
            )
        source = work / "in.parquet"
        progress(f"writing {args.rows:,} x {N_FEATURES} rows to Parquet")
        write_rows(source, args.rows, seed=1)
        import pyarrow.parquet as pq

        matrix = pq.read_table(source).to_pandas().to_numpy()
        model.predict_proba(matrix[:1000])
        floors, jobs, processes = [], [], []
        for i in range(ROUNDS):
            progress(
                f"round {i + 1} of {ROUNDS}: the floor (predict_proba in memory), then shipyard batch run"
            )
            started = time.perf_counter()
            model.predict_proba(matrix)
            floors.append(time.perf_counter() - started)
            job, process, _ = shipyard_run(home, source, work / "out")
            jobs.append(job)
            processes.append(process)
        del matrix
        parts = sorted((work / "out").glob("part-*.parquet"))
        written = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        if written != args.rows:
            raise SystemExit(f"shipyard wrote {written} rows of {args.rows}")
        floor, seconds, process = (float(np.median(x)) for x in (floors, jobs, processes))
        spark, (rows_memory, peak_memory) = extra_runs(args, home, source, work)
    report = render(
        args.rows,
        floor=floor,
        seconds=seconds,
        process=process,
        memory_rows=args.memory_rows,
        memory_seconds=rows_memory,
        peak_mb=peak_memory,
        spark=spark,
    )
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
