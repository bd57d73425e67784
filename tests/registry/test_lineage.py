"""Lineage of a version: the training data's fingerprint, the git checkout and the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard import Registry
from shipyard.core.batch import Batch
from shipyard.registry.lineage import environment, fingerprint, git_state


def test_same_data_gives_the_same_fingerprint(
    registry: Registry, cancer_model: Any, cancer: pd.DataFrame, v1: Any
) -> None:
    again = registry.register(cancer_model, name="cancer", train_data=cancer.copy(), target="label")
    changed = registry.register(
        cancer_model,
        name="cancer",
        train_data=cancer.assign(label=cancer["label"].iloc[::-1].values),
        target="label",
    )
    fp = [v.lineage["training_data"]["fingerprint"] for v in (v1, again, changed)]
    assert fp[0] == fp[1] != fp[2]


def test_the_fingerprint_depends_on_values_names_and_order_not_on_how_the_rows_were_built() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    same = [Batch.from_pandas(frame), Batch.from_columns({"a": [1.0, 2.0], "b": ["x", "y"]})]
    assert fingerprint(same[0]) == fingerprint(same[1])
    assert len(fingerprint(same[0])) == 64
    others = [
        Batch.from_columns({"a": [1.0, 3.0], "b": ["x", "y"]}),
        Batch.from_columns({"c": [1.0, 2.0], "b": ["x", "y"]}),
        Batch.from_columns({"a": [2.0, 1.0], "b": ["y", "x"]}),
    ]
    assert len({fingerprint(batch) for batch in others} | {fingerprint(same[0])}) == 4


def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None  # not a checkout

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    state = git_state(tmp_path)
    assert state is not None
    assert (len(state["commit"]), state["dirty"], state["branch"]) == (40, False, "main")
    (tmp_path / "train.py").write_text("print(2)\n")
    state = git_state(tmp_path)
    assert state is not None and state["dirty"] is True


def test_the_environment_names_python_the_platform_and_installed_frameworks() -> None:
    found = environment()
    assert found["python"] == sys.version.split()[0]
    assert found["platform"]
    assert {"numpy", "scikit-learn"} <= set(found["packages"])
