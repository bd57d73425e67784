"""Fixtures of the CLI tests: a fresh home, and one with a credit model registered by the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from tests.commands import shipyard_in_process


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home no command has used yet."""
    return tmp_path / "home"


@pytest.fixture
def registered(home: Path, tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any) -> Path:
    """`fraud:1` registered by `shipyard models register` (alias staging, tag team=risk), run in
    process (test_models registers by a real process); the folder."""
    sio.dump(credit_pipeline, tmp_path / "model.skops")
    credit.to_parquet(tmp_path / "train.parquet")
    done = shipyard_in_process(
        home,
        "models",
        "register",
        str(tmp_path / "model.skops"),
        "--name",
        "fraud",
        "--train-data",
        str(tmp_path / "train.parquet"),
        "--target",
        "default",
        "--tag",
        "team=risk",
        "--alias",
        "staging",
    )
    assert done.returncode == 0, done.stderr
    assert "registered fraud:1" in done.stdout
    return tmp_path
