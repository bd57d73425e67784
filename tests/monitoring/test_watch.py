"""`Watcher`: rules on a report of the prediction log, de-duplicated alerts, webhooks, retraining."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import Registry
from shipyard.datasets import make_credit
from shipyard.monitoring.alerts import AlertBook, Rule, Webhook
from shipyard.monitoring.watch import Watcher
from traffic import log_requests


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012  # the handler class is the only place the server shares
    fail_first = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
        else:
            _Hook.received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received, _Hook.fail_first = [], 1
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()


def _drifted() -> pd.DataFrame:
    frame = make_credit(500, seed=21)
    frame["income"] = frame["income"] * 3
    return frame


def test_a_lasting_drift_alerts_once_and_resolves_when_it_stops(reg: Registry, hook: str) -> None:
    log_requests(reg, "credit:1", _drifted(), target="default")
    watcher = Watcher(
        reg,
        "credit",
        window=timedelta(minutes=10),
        rules=[Rule.parse("feature_drift"), Rule.parse("dataset_drift")],
        webhooks=[Webhook(hook, backoff=0.01)],
    )
    first = watcher.check()
    assert [a.rule for a in first.opened] == ["feature_drift:income"]
    assert first.notified == {hook: 1}  # delivered on the second try, after a 503
    second = watcher.check()
    assert second.opened == () and second.firings
    assert [a.checks for a in AlertBook(reg).list(model="credit")] == [2]
    assert len(_Hook.received) == 1
    assert (
        _Hook.received[0]["status"] == "firing"
        and _Hook.received[0]["alert"]["rule"] == "feature_drift:income"
    )

    later = Watcher(reg, "credit", window=timedelta(seconds=1), rules=[Rule.parse("feature_drift")])
    third = later.check()  # the drifted traffic left the window
    assert [a.rule for a in third.resolved] == ["feature_drift:income"]
    assert AlertBook(reg).list(model="credit", state="firing") == []


def test_the_retraining_command_runs_when_an_alert_opens_and_its_version_is_handed_on(
    reg: Registry, tmp_path: Path, credit: pd.DataFrame
) -> None:
    log_requests(reg, "credit:1", _drifted(), target="default")
    credit.to_parquet(tmp_path / "train.parquet")
    script = tmp_path / "retrain.py"
    script.write_text(
        "import os, pandas as pd\n"
        "from shipyard import Registry, Settings\n"
        "from shipyard.datasets import fit_credit_model\n"
        f"frame = pd.read_parquet({str(tmp_path / 'train.parquet')!r})\n"
        f"with Registry(Settings.for_home({str(reg.settings.home)!r})) as r:\n"
        "    r.register(fit_credit_model(frame), name=os.environ['SHIPYARD_MODEL'],\n"
        "               train_data=frame, target='default')\n"
        "print('alerts', len(__import__('json').loads(os.environ['SHIPYARD_ALERTS'])))\n"
    )
    handed: list[int] = []

    def gate(version: Any) -> dict[str, Any]:
        handed.append(version.version)
        return {"gates": "passed"}

    watcher = Watcher(
        reg,
        "credit",
        window=timedelta(minutes=10),
        rules=[Rule.parse("feature_drift")],
        command=f"{sys.executable} {script}",
        on_new_version=gate,
    )
    result = watcher.check()
    assert result.retrain is not None and result.retrain["exit_code"] == 0, result.retrain
    assert result.retrain["new_version"] == 2 and handed == [2]
    assert result.retrain["promotion"] == {"gates": "passed"}
    assert "alerts 1" in result.retrain["output"]
    assert watcher.check().retrain is None  # the alert is still open: no second retraining


def test_performance_drop_needs_the_interval_below_the_evaluation(
    reg: Registry, holdout: pd.DataFrame
) -> None:
    from shipyard.evaluation.evaluate import evaluate
    from shipyard.monitoring.feedback import FeedbackStore, Label

    evaluate("credit:1", holdout, target="default", registry=reg, resamples=0, robust=False)
    frame = make_credit(500, seed=22)
    log_requests(reg, "credit:1", frame, target="default")
    flipped = (1 - frame["default"]).tolist()  # the world turned: every label is the opposite
    FeedbackStore(reg).add([Label(f"r{i}", 0, int(v)) for i, v in enumerate(flipped)], source="t", actor="t")
    check = Watcher(
        reg, "credit", window=timedelta(minutes=10), rules=[Rule.parse("performance_drop")]
    ).check()
    assert [f.rule for f in check.firings] == ["performance_drop:accuracy"]
    assert check.report.performance is not None and check.report.performance["baseline"]["accuracy"] > 0.5
