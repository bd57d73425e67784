"""Live profiles: served rows folded per version and minute, shared between workers, judged for drift."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shipyard import Registry
from shipyard.core.batch import Batch, Predictions
from shipyard.datasets import make_credit
from shipyard.monitoring.live import LiveProfiles


def _served(reg: Registry, frame: pd.DataFrame) -> tuple[Batch, Predictions]:
    """`frame`'s rows as credit:1 saw and answered them."""
    loaded = reg.load("credit:1")
    batch = loaded.validate(frame.drop(columns=["default"])).batch
    return batch, loaded.predict_valid(batch)


def _drifted(rows: int, seed: int) -> pd.DataFrame:
    frame = make_credit(rows, seed=seed)
    frame["income"] = frame["income"] * 3
    return frame


def test_only_tracked_versions_are_profiled(reg: Registry) -> None:
    live = LiveProfiles()
    live.append("credit", 1, [_served(reg, make_credit(50, seed=1))])  # not tracked: ignored
    live.fold()
    assert live.tracked() == [] and live.window("credit", 1) is None
    live.track("credit", 1, reg.get("credit:1").profile)
    assert live.tracked() == [("credit", 1)]
    assert live.window("credit", 1) is None and live.drift("credit", 1) is None  # no traffic yet


def test_served_rows_add_up_in_the_window_and_drift_against_the_reference(reg: Registry) -> None:
    live = LiveProfiles()
    live.track("credit", 1, reg.get("credit:1").profile)
    live.append("credit", 1, [_served(reg, _drifted(300, 2)), _served(reg, _drifted(200, 3))])
    assert live.window("credit", 1) is None  # appended, not folded yet
    live.fold()
    window = live.window("credit", 1)
    assert window is not None and window.rows == 500
    report = live.drift("credit", 1)
    assert report is not None and report.current_rows == 500
    assert "income" in report.drifted_features


def test_a_drift_report_is_reused_until_it_is_older_than_max_age(reg: Registry) -> None:
    live = LiveProfiles()
    live.track("credit", 1, reg.get("credit:1").profile)
    live.append("credit", 1, [_served(reg, make_credit(200, seed=4))])
    live.fold()
    first = live.drift("credit", 1)
    live.append("credit", 1, [_served(reg, make_credit(100, seed=5))])
    live.fold()
    assert live.drift("credit", 1, max_age=60) is first
    fresh = live.drift("credit", 1, max_age=0)
    assert fresh is not None and fresh.current_rows == 300


def test_workers_of_one_server_see_each_others_published_minutes(reg: Registry, tmp_path: Path) -> None:
    profile = reg.get("credit:1").profile
    first, second = LiveProfiles(tmp_path, worker=0), LiveProfiles(tmp_path, worker=1)
    for worker in (first, second):
        worker.track("credit", 1, profile)
    first.append("credit", 1, [_served(reg, make_credit(120, seed=6))])
    second.append("credit", 1, [_served(reg, make_credit(80, seed=7))])
    first.close()  # folds and publishes a last time
    second.fold()
    mine = second.window("credit", 1)
    assert mine is not None and mine.rows == 200
    second.publish()
    theirs = first.window("credit", 1)
    assert theirs is not None and theirs.rows == 200
    assert len(list(tmp_path.glob("profiles-*.json"))) == 2 and not list(tmp_path.glob("*.tmp"))
