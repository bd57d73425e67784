"""Evaluation benchmark: `shipyard.evaluate` on 1,000,000 rows against a floor measured in the same run.

Run it with one command (about a minute on 2 cores)::

    python benchmarks/evaluation.py [--rows 1000000] [--out results.md]

It fits the serving benchmark's model (`HistGradientBoostingClassifier(max_iter=100)` on
`make_classification(n_samples=50_000, n_features=20)`), registers it in a fresh temporary home,
writes ROWS labelled rows of the same distribution to Parquet, and times, in one process:

- floor: reading the Parquet file into numpy, `predict_proba` on the whole array, and the point
  metrics with scikit-learn (accuracy, precision/recall/F1, ROC AUC, PR AUC, log loss, Brier,
  confusion matrix): what any evaluation has to do, with nothing around it;
- naive bootstrap: the same headline metrics with scikit-learn on resampled copies, timed on 5
  resamples and scaled to 200 (what a loop over `resample` + `roc_auc_score` costs);
- Shipyard: `shipyard.evaluate(ref, file, target=..., slices=[3 features], resamples=200)`, which
  reads, validates every row against the contract, predicts, computes every metric, calibration,
  200 bootstrap resamples of the headline metrics, 3 binned slices, the robustness checks, and
  stores the result in the registry.

The target (issue 4): the Shipyard row under 30 s. It prints a markdown table and, with `--out`,
writes it to a file too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 20
COLUMNS = [f"x{i}" for i in range(N_FEATURES)]
TARGET_SECONDS = 30.0


def progress(message: str) -> None:
    print(f"[evaluation benchmark] {message}", file=sys.stderr, flush=True)


def data(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=50_000 + rows, n_features=N_FEATURES, random_state=0)
    return X[:50_000], y[:50_000], X[50_000:], y[50_000:]


def sk_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    from sklearn import metrics as m

    pred = (proba[:, 1] >= 0.5).astype(np.int64)
    return {
        "accuracy": m.accuracy_score(y, pred),
        "prf": m.precision_recall_fscore_support(y, pred),
        "roc_auc": m.roc_auc_score(y, proba[:, 1]),
        "pr_auc": m.average_precision_score(y, proba[:, 1]),
        "log_loss": m.log_loss(y, proba),
        "brier": m.brier_score_loss(y, proba[:, 1]),
        "confusion": m.confusion_matrix(y, pred),
    }


def naive_bootstrap(y: np.ndarray, proba: np.ndarray, resamples: int) -> float:
    from sklearn import metrics as m

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(resamples):
        index = rng.integers(0, len(y), len(y))
        yy, pp = y[index], proba[index]
        pred = (pp[:, 1] >= 0.5).astype(np.int64)
        m.accuracy_score(yy, pred)
        m.f1_score(yy, pred, average="macro")
        m.roc_auc_score(yy, pp[:, 1])
        m.brier_score_loss(yy, pp[:, 1])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import pandas as pd
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier

    from shipyard import Registry, Settings, evaluate

    progress(f"generating {args.rows:,} rows and fitting the model")
    X_train, y_train, X, y = data(args.rows)
    model = HistGradientBoostingClassifier(max_iter=100).fit(X_train, y_train)
    with tempfile.TemporaryDirectory(prefix="shipyard-eval-bench-") as tmp:
        work = Path(tmp)
        train = pd.DataFrame(X_train, columns=COLUMNS).assign(label=y_train)
        frame = pd.DataFrame(X, columns=COLUMNS).assign(label=y)
        path = work / "holdout.parquet"
        frame.to_parquet(path)
        del frame
        with Registry(Settings.for_home(work / "home")) as reg:
            version = reg.register(model, name="hgb", train_data=train, target="label")

            progress("floor: read, predict_proba, scikit-learn point metrics")
            started = time.perf_counter()
            table = pq.read_table(path)
            matrix = np.column_stack([table[c].to_numpy() for c in COLUMNS])
            labels = table["label"].to_numpy()
            read_s = time.perf_counter() - started
            started = time.perf_counter()
            proba = model.predict_proba(matrix)
            predict_s = time.perf_counter() - started
            started = time.perf_counter()
            sk_metrics(labels, proba)
            metrics_s = time.perf_counter() - started
            progress("naive bootstrap: 5 resamples with scikit-learn, scaled to 200")
            naive_s = naive_bootstrap(labels, proba, 5) * 200 / 5
            del table, matrix

            progress("shipyard.evaluate with 200 resamples and 3 slices")
            started = time.perf_counter()
            result = evaluate(
                str(version.ref),
                path,
                target="label",
                slices=["x0", "x1", "x2"],
                resamples=200,
                registry=reg,
            )
            shipyard_s = time.perf_counter() - started

    floor = read_s + predict_s + metrics_s
    verdict = "PASS" if shipyard_s < TARGET_SECONDS else "FAIL"
    lines = [
        f"# Evaluation benchmark: {args.rows:,} rows x {N_FEATURES} features",
        "",
        f"{platform.platform(terse=True)}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        "| what | seconds |",
        "| --- | ---: |",
        f"| floor: read Parquet into numpy | {read_s:.2f} |",
        f"| floor: predict_proba on the array | {predict_s:.2f} |",
        f"| floor: scikit-learn point metrics | {metrics_s:.2f} |",
        f"| **floor total** | **{floor:.2f}** |",
        f"| naive bootstrap, 200 resamples with scikit-learn (estimated from 5) | {naive_s:.2f} |",
        f"| **shipyard.evaluate** (contract, metrics, calibration, 200 resamples, 3 slices, "
        f"robustness, stored) | **{shipyard_s:.2f}** |",
        "",
        f"Target: under {TARGET_SECONDS:.0f} s -> **{verdict}** ({shipyard_s / floor:.1f}x the floor; "
        f"ROC AUC {result.metrics['roc_auc']:.4f}, 95% interval "
        f"[{result.confidence['roc_auc']['low']:.4f}, {result.confidence['roc_auc']['high']:.4f}]).",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
