"""`shipyard evaluate`, `shipyard gates` and the guarded `models alias`, run in process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.commands import shipyard_in_process

from homes import copy_home, home_made_once
from shipyard import Registry, Settings


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return shipyard_in_process(home, *args)


@pytest.fixture(scope="module")
def fraud_home(
    tmp_path_factory: pytest.TempPathFactory, credit: pd.DataFrame, credit_pipeline: Any, weaker_pipeline: Any
) -> Path:
    """fraud:1 (the stronger model) and fraud:2 (the weaker), registered once a module: copy it."""

    def fill(reg: Registry) -> None:
        reg.register(credit_pipeline, name="fraud", train_data=credit, target="default")
        reg.register(weaker_pipeline, name="fraud", train_data=credit, target="default")

    return home_made_once(tmp_path_factory.mktemp("evaluate-cli") / "home", fill)


@pytest.fixture
def home(tmp_path: Path, fraud_home: Path, holdout: pd.DataFrame) -> Path:
    """A copy of `fraud_home` at tmp_path/home, the holdout and a gates policy beside it; tmp_path."""
    copy_home(fraud_home, tmp_path / "home")
    holdout.to_parquet(tmp_path / "holdout.parquet")
    (tmp_path / "gates.yaml").write_text("rules:\n  - roc_auc >= 0.55\n  - roc_auc >= champion - 0.001\n")
    return tmp_path


def test_evaluate_gate_and_promote_from_the_command_line(home: Path) -> None:
    data, policy, h = str(home / "holdout.parquet"), str(home / "gates.yaml"), home / "home"
    (home / "summary.md").write_text("# what an earlier step wrote\n")  # a CI run's summary file
    done = run(
        h,
        "evaluate",
        "fraud:1",
        "--data",
        data,
        "--target",
        "default",
        "--sensitive",
        "country",
        "--slice",
        "employment",
        "--resamples",
        "20",
        "--report",
        str(home / "r.html"),
        "--json-out",
        str(home / "r.txt"),
        "--summary",
        str(home / "summary.md"),
    )
    assert done.returncode == 0, done.stderr
    for shown in ("roc_auc", "slice employment", "fairness by country", "robustness"):
        assert shown in done.stdout
    assert (home / "r.html").read_text().startswith("<!doctype html>")
    assert json.loads((home / "r.json").read_text())["evaluation"]["ref"] == "fraud:1"
    assert f"wrote {home / 'r.json'}" in done.stdout
    summary = (home / "summary.md").read_text()
    assert summary.startswith("# what an earlier step wrote\n\n### Evaluation of fraud:1 (evaluation ")
    assert "| metric | fraud:1 | 95% interval |" in summary and "\n| roc_auc | 0." in summary

    refused = run(h, "models", "alias", "fraud:1", "production")
    assert refused.returncode == 1 and "no gate result for 'production'" in refused.stderr
    assert run(h, "gates", "check", "fraud:1", "--policy", policy).returncode == 0
    assert run(h, "models", "alias", "fraud:1", "production").returncode == 0

    failed = run(h, "gates", "check", "fraud:2", "--policy", policy, "--data", data, "--target", "default",
                 "--summary", str(home / "gates.md"))  # fmt: skip
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    gates = (home / "gates.md").read_text()
    assert "### Gates of fraud:2 vs fraud:1 (production): **FAILED**" in gates
    assert "| roc_auc >= champion - 0.001 | 0." in gates and "| **FAIL** |" in gates
    assert "roc_auc >= champion - 0.001" in failed.stdout
    blocked = run(h, "models", "alias", "fraud:2", "production")
    assert blocked.returncode == 1 and "failed: roc_auc >= champion - 0.001" in blocked.stderr
    no_reason = run(h, "models", "alias", "fraud:2", "production", "--force")
    assert no_reason.returncode == 1 and "needs a reason" in no_reason.stderr
    forced = run(h, "models", "alias", "fraud:2", "production", "--force", "--reason", "rollback drill")
    assert forced.returncode == 0 and "gates overridden" in forced.stdout

    shown = json.loads(run(h, "gates", "show", "fraud", "--json").stdout)
    assert [(g["ref"], g["passed"]) for g in shown] == [("fraud:2", False), ("fraud:1", True)]
    history = json.loads(run(h, "models", "history", "fraud", "--json").stdout)
    assert history[0]["detail"]["reason"] == "rollback drill"


def test_bad_input_gets_one_clear_line(home: Path) -> None:
    data, h = str(home / "holdout.parquet"), home / "home"
    missing = run(h, "evaluate", "fraud:1", "--data", data, "--target", "label")
    assert missing.returncode == 1
    assert "no target column 'label'" in missing.stderr and "Traceback" not in missing.stderr
    (home / "bad.yaml").write_text("rules:\n  - roc_auc >= 0.5\n  - auroc >= 1\n")
    bad = run(h, "gates", "check", "fraud:1", "--policy", str(home / "bad.yaml"))
    assert bad.returncode == 1 and "line 3: unknown metric 'auroc'" in bad.stderr


def test_the_evaluation_table_names_the_top_features(home: Path, tmp_path: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    frame["y"] = (2 * frame["a"] + 0.2 * frame["b"] > 0).astype(int)
    with Registry(Settings.for_home(home), actor="tester") as reg:
        reg.register(LogisticRegression().fit(frame[["a", "b"]], frame["y"]), name="small",
                     train_data=frame.head(80), target="y")  # fmt: skip
    frame.tail(40).to_csv(tmp_path / "holdout.csv", index=False)
    done = run(home, "evaluate", "small:1", "--data", str(tmp_path / "holdout.csv"), "--target", "y",
               "--no-robustness", "--resamples", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("top features"))
    assert line.startswith("top features (mean |attribution| of 1 on 40 row(s), ")
    assert line.split("): ")[1].startswith("a ")
