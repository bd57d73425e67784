"""Labels: checked against the prediction log and the version that answered, and set aside by reports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shipyard import Registry
from shipyard.core.contract import Contract
from shipyard.datasets import make_credit
from shipyard.monitoring.events import EventLog, find_requests
from shipyard.monitoring.feedback import FeedbackStore, Label, LabelCheck, fit_label
from shipyard.monitoring.monitor import monitor_report
from traffic import PLACEHOLDER, queue_requests


def _check(reg: Registry) -> LabelCheck:
    url, cipher = reg.settings.store_url, reg.artifacts.cipher
    return LabelCheck(
        reg.meta, find=lambda ids: find_requests(url, ids, lookback=timedelta(days=30), cipher=cipher)
    )


def test_labels_for_unknown_requests_rows_and_classes_are_refused_naming_each(reg: Registry) -> None:
    log = EventLog(reg.settings.store_url)
    queue_requests(log, reg, make_credit(20, seed=3), rows_per_request=2)
    log.flush()
    labels = [
        Label("r0", 0, 1, "item 0"),
        Label("r0", 1, "0", "item 1"),  # text of a class: taken as the class 0
        Label("r1", 0, "maybe", "item 2"),
        Label(PLACEHOLDER, 0, 1, "item 3"),
        Label("r2", 2, 1, "item 4"),
        Label("refused-1", 0, 1, "item 5"),
        Label("r3", 0, True, "item 6"),  # true is not the class 1
    ]
    good, refused = _check(reg).check(labels)
    assert [(x.request_id, x.row, x.label) for x in good] == [("r0", 0, 1), ("r0", 1, 0)]
    assert type(good[1].label) is int
    by_item = {r.where: r for r in refused}
    assert sorted(by_item) == ["item 2", "item 3", "item 4", "item 5", "item 6"]
    assert by_item["item 2"].kind == "label" and by_item["item 2"].expected == [0, 1]
    assert "'maybe' is not one of the classes [0, 1]" in by_item["item 2"].reason
    assert "credit:1 answered this request" in by_item["item 2"].reason
    assert by_item["item 3"].kind == "unknown_request"
    assert "no request with this id is in the prediction log" in by_item["item 3"].reason
    assert by_item["item 4"].kind == "row" and "past the request's 2 row(s)" in by_item["item 4"].reason
    assert by_item["item 5"].kind == "rejected_request"
    assert by_item["item 6"].kind == "label"


@pytest.mark.parametrize(
    ("classes", "label", "fitted"),
    [((0, 1), 1, 1), ((0, 1), "1", 1), ((0, 1), 1.0, 1), ((0, 1), " 0 ", 0), (("no", "yes"), "yes", "yes"),
     (("0", "1"), 1, "1"), ((True, False), "true", True), ((0, 1), True, None), ((0, 1), "maybe", None),
     (("no", "yes"), 1, None), (("1", "01"), "01", "01"), (("1", "01"), 1, None), ((0, 1), 2, None)],
)  # fmt: skip
def test_a_classifiers_label_must_be_exactly_one_of_its_classes(
    classes: tuple[Any, ...], label: Any, fitted: Any
) -> None:
    value, why = fit_label(label, Contract(task="classification", features=(), classes=classes))
    assert value == fitted and type(value) is type(fitted)
    assert (why is None) == (fitted is not None)


@pytest.mark.parametrize(
    ("label", "fitted"),
    [(2.5, 2.5), (3, 3.0), ("4.25", 4.25), ("x", None), (True, None), (float("inf"), None)],
)
def test_a_regressors_label_must_be_a_finite_number(label: Any, fitted: float | None) -> None:
    value, why = fit_label(label, Contract(task="regression", features=()))
    assert value == fitted and (why is None) == (fitted is not None)


def test_a_report_sets_aside_stored_labels_it_cannot_use_and_says_why(reg: Registry) -> None:
    frame = make_credit(200, seed=5)
    log = EventLog(reg.settings.store_url)
    ids = queue_requests(log, reg, frame)
    log.flush()
    truth = frame["default"].tolist()
    labels = [Label(rid, 0, int(truth[i])) for i, rid in enumerate(ids)]
    # Stored straight into the store, as labels were before they were checked.
    labels[:3] = [Label(ids[0], 0, "maybe"), Label(ids[1], 0, 7), Label(ids[2], 0, "maybe")]
    FeedbackStore(reg).add(labels, source="old", actor="tester")
    report = monitor_report(reg, "credit", window=timedelta(hours=1))
    assert report.performance is not None and report.performance["rows"] == 197
    assert report.set_aside == {
        "labels": 3,
        "reasons": [{"reason": "not one of the classes [0, 1]", "labels": 3, "examples": ['"maybe"', "7"]}],
    }
    assert report.to_dict()["set_aside"]["labels"] == 3
