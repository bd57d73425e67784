"""`shipyard feedback load`, `monitor report` and `monitor watch`, run as real processes."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.commands import shipyard_cli
from tests.traffic import log_requests

from shipyard import Registry, Settings
from shipyard.datasets import make_credit
from shipyard.monitoring.feedback import FeedbackStore, Label

PLACEHOLDER = "649efc5abf3a000000000001"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return shipyard_cli(home, *args, env={"SHIPYARD_PROTECTED_ALIASES": ""})


@pytest.fixture
def home(tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any) -> Path:
    """A home with credit:1 (alias production) and 300 requests of drifted incomes in its log."""
    home = tmp_path / "home"
    settings = replace(Settings.for_home(home), protected_aliases=())
    with Registry(settings, actor="tester") as registry:
        registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
        )
        frame = make_credit(300, seed=21)
        frame["income"] = frame["income"] * 3
        log_requests(registry, "credit:1", frame, target="default")
        frame.to_parquet(tmp_path / "truth.parquet")
    return home


def _stored(home: Path) -> int:
    with Registry(Settings.for_home(home)) as registry:
        return FeedbackStore(registry).count()


def test_feedback_load_lists_every_bad_row_and_stores_none_unless_told_to_skip_them(
    home: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(f"request_id,label\nr0,1\nr1,maybe\n{PLACEHOLDER},1\nr2,\nr3,0\n")
    done = run(home, "feedback", "load", str(labels))
    assert done.returncode == 1, done.stdout
    assert "3 of 5 label(s)" in done.stderr and "none were stored" in done.stderr
    assert "row 2: request 'r1' row 0, label 'maybe': 'maybe' is not one of the classes [0, 1]" in done.stderr
    assert f"row 3: request {PLACEHOLDER!r}" in done.stderr and "no request with this id" in done.stderr
    assert "row 4: request 'r2'" in done.stderr and "has no 'label'" in done.stderr
    assert "Traceback" not in done.stderr
    assert _stored(home) == 0
    skipped = run(home, "feedback", "load", str(labels), "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert "stored 2 label(s)" in skipped.stdout and "skipped 3 row(s)" in skipped.stdout
    assert _stored(home) == 2


def test_a_report_sets_aside_a_stored_label_it_cannot_use_and_names_the_drift(home: Path) -> None:
    with Registry(Settings.for_home(home)) as registry:  # stored as before labels were checked
        FeedbackStore(registry).add(
            [Label("r0", 0, "maybe"), Label("r1", 0, 1), Label("r2", 0, 0)], source="old", actor="t"
        )
    done = run(home, "monitor", "report", "credit", "--window", "1h")
    assert done.returncode == 0, done.stderr
    assert "set aside 1 label(s) that cannot be used: not one of the classes [0, 1]" in done.stdout
    assert "performance on 2 labelled rows" in done.stdout
    # One drifted feature of six is below the data set's verdict, but the headline names it first.
    assert "drift in 1 feature (income)" in done.stdout
    assert "no dataset drift" not in done.stdout


def test_watch_once_exits_1_with_a_message_when_its_check_fails(home: Path) -> None:
    done = run(home, "monitor", "watch", "nosuch", "--once")
    assert done.returncode == 1
    assert "monitoring check of nosuch failed: no model named 'nosuch'" in done.stderr
    assert "1 monitoring check(s) of nosuch failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_watch_that_would_promote_without_a_policy_stops_before_any_retraining(
    home: Path, tmp_path: Path, holdout: pd.DataFrame
) -> None:
    holdout.to_parquet(tmp_path / "holdout.parquet")
    marker = tmp_path / "retrained"
    command = f"{sys.executable} -c \"open({str(marker)!r}, 'w')\""
    done = run(home, "monitor", "watch", "credit", "--once", "--on-drift", command, "--promote", "production",
               "--eval-data", str(tmp_path / "holdout.parquet"), "--target", "default")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "gating a retrained version needs a policy: pass --policy" in done.stderr
    assert not marker.exists()


def test_watch_gates_a_retrained_version_with_slices_and_fairness_and_prints_failed_rules_as_text(
    home: Path, tmp_path: Path, credit: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    holdout.to_parquet(tmp_path / "holdout.parquet")
    credit.to_parquet(tmp_path / "train.parquet")
    script = tmp_path / "retrain.py"
    script.write_text(
        "import os, pandas as pd\n"
        "from shipyard import Registry, Settings\n"
        "from shipyard.datasets import fit_credit_model\n"
        f"frame = pd.read_parquet({str(tmp_path / 'train.parquet')!r})\n"
        f"with Registry(Settings.for_home({str(home)!r})) as r:\n"
        "    r.register(fit_credit_model(frame), name='credit', train_data=frame, target='default')\n"
    )
    policy = tmp_path / "gates.yaml"
    policy.write_text(
        "rules:\n"
        "  - recall >= 0.0 on employment=salaried\n"
        "  - fairness.country.demographic_parity_difference <= 1.0\n"
        "  - roc_auc >= 0.9999\n"
    )
    done = run(home, "monitor", "watch", "credit", "--once", "--rule", "feature_drift",
               "--on-drift", f"{sys.executable} {script}", "--promote", "production", "--policy", str(policy),
               "--eval-data", str(tmp_path / "holdout.parquet"), "--target", "default",
               "--slice", "employment", "--sensitive", "country")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered version 2" in done.stdout
    assert "gates failed, not promoted" in done.stdout
    failed = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("failed:")]
    assert (
        len(failed) == 1
        and failed[0].startswith("failed: roc_auc 0.")
        and failed[0].endswith("< 0.9999 (min)")
    ), done.stdout
    assert "Rule(" not in done.stdout
