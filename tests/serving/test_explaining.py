"""The explain path in process: the options of a request read strictly, outputs the model cannot
have refused up front, and one request scored once, explained and logged like a prediction."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from servers import credit_row
from shipyard import ContractViolationError, Registry, RequestTooLargeError
from shipyard.attribution.base import METHODS
from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.core.refs import ModelRef
from shipyard.errors import InputError, UnsupportedExplanationError
from shipyard.explanations.explaining import DEFAULT_TOP
from shipyard.explanations.records import ExplanationLog
from shipyard.monitoring.events import EventLog, read_events
from shipyard.serving.explaining import (
    ASK_KEYS,
    MAX_TOP,
    ExplainAsk,
    Explained,
    check_output,
    explain_request,
    read_ask,
)
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService

FEATURES = (Feature(name="x", dtype=DType.FLOAT),)
CLASSIFIER = Contract(features=FEATURES, task="classification", classes=(0, 1))
REGRESSOR = Contract(features=FEATURES, task="regression")

NOT_STRINGS = [1, 1.5, True, [], {"a": 1}]


def kind(value: Any) -> str:
    """The JSON type of a value, as messages name it (bool before int: True == 1)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    raise AssertionError(value)


def test_no_options_ask_for_every_output_by_the_best_method() -> None:
    assert read_ask({}, where="the body") == ExplainAsk(method="auto", output=None, top=DEFAULT_TOP)
    assert read_ask({"method": None, "output": None, "top": None}, where="x") == ExplainAsk()
    assert ASK_KEYS == ("method", "output", "top")


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_every_method_is_read(method: str) -> None:
    assert read_ask({"method": method}, where="the body").method == method


@pytest.mark.parametrize("value", NOT_STRINGS, ids=lambda v: f"{kind(v)}-{v!r}")
def test_a_method_that_is_not_a_string_is_an_input_error_naming_the_methods(value: Any) -> None:
    with pytest.raises(
        InputError, match=rf"'method' of the body is a JSON {kind(value)}; expected a string, one of \['auto'"
    ):
        read_ask({"method": value}, where="the body")


def test_an_unknown_method_is_unsupported_naming_the_methods() -> None:
    with pytest.raises(
        UnsupportedExplanationError,
        match=r"'method' of the parameters is 'kernel_shap', not an explanation method; "
        r"expected one of \['auto', 'tree_shap'",
    ):
        read_ask({"method": "kernel_shap"}, where="the parameters")
    with pytest.raises(UnsupportedExplanationError) as caught:
        read_ask({"method": "m" * 10_000}, where="the body")
    assert len(str(caught.value)) < 400  # a long value is cut short in the message


@pytest.mark.parametrize(
    ("value", "read"),
    [("yes", "yes"), (1, "1"), (0, "0"), ("value", "value")],
    ids=repr,
)
def test_an_output_is_a_label_read_as_text(value: Any, read: str) -> None:
    assert read_ask({"output": value}, where="the body").output == read


@pytest.mark.parametrize("value", [1.5, True, [], {"a": 1}, ["1"]], ids=kind)
def test_an_output_that_is_not_a_label_is_an_input_error(value: Any) -> None:
    with pytest.raises(
        InputError,
        match=rf"'output' of the body is a JSON {kind(value)}; "
        r"expected a class label \(a string or an integer\)",
    ):
        read_ask({"output": value}, where="the body")


@pytest.mark.parametrize("top", [1, 3, MAX_TOP], ids=str)
def test_top_from_one_to_the_most_is_read(top: int) -> None:
    assert read_ask({"top": top}, where="the body").top == top


TOPS = [
    (0, "0"),
    (-1, "-1"),
    (MAX_TOP + 1, str(MAX_TOP + 1)),
    (True, "a JSON boolean"),
    (False, "a JSON boolean"),
    (2.0, "a JSON number"),
    ("3", "a JSON string"),
    ([3], "a JSON array"),
    ({}, "a JSON object"),
]


@pytest.mark.parametrize(("value", "shown"), TOPS, ids=repr)
def test_top_outside_the_range_or_not_an_integer_is_an_input_error(value: Any, shown: str) -> None:
    with pytest.raises(
        InputError, match=rf"'top' of the body is {shown}; expected an integer from 1 to {MAX_TOP}"
    ):
        read_ask({"top": value}, where="the body")


def test_outputs_a_model_has_pass_and_others_are_refused_naming_what_it_has() -> None:
    check_output(CLASSIFIER, None)
    check_output(CLASSIFIER, "1")
    check_output(REGRESSOR, None)
    check_output(REGRESSOR, "value")
    with pytest.raises(
        UnsupportedExplanationError,
        match=r"output '2' was asked for; this classifier's outputs are its classes \['0', '1'\]",
    ):
        check_output(CLASSIFIER, "2")
    with pytest.raises(UnsupportedExplanationError, match=r"output 'value'.*classes \['0', '1'\]"):
        check_output(CLASSIFIER, "value")
    with pytest.raises(
        UnsupportedExplanationError,
        match=r"output '1' was asked for, but this model is a regressor with one output, 'value'",
    ):
        check_output(REGRESSOR, "1")


@pytest.fixture
def service(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any, tmp_path: Path) -> Any:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    loaded = sqlite_registry.load("credit:1")
    store = str(tmp_path / "store")
    service = ModelService(
        limits=Limits(max_rows=5),
        metrics=Metrics(),
        events=EventLog(store),
        explanations=ExplanationLog(store),
    )
    service.add(ModelRef.parse("credit:1"), loaded)
    service.warm_up()
    yield service, loaded, store
    service.events.close()  # type: ignore[union-attr]


def explain(service: ModelService, rows: list[dict[str, Any]], request_id: str, **ask: Any) -> Explained:
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    served = service.route("credit")
    return asyncio.run(
        explain_request(
            service,
            served,
            columns,
            len(rows),
            ask=ExplainAsk(**ask),
            protocol="test",
            request_id=request_id,
            arrived=time.perf_counter(),
        )
    )


def test_a_request_is_scored_once_explained_and_logged(service: Any) -> None:
    service, loaded, store = service
    rows = [credit_row(), credit_row(age=63, income=1500.0, country="FR", employment="retired")]
    explained = explain(service, rows, "e-1", top=2, output="1")
    direct = loaded.predict(rows)
    assert explained.answer.request_id == "e-1" and explained.answer.version.version == 1
    assert explained.answer.predictions.values.tolist() == direct.values.tolist()
    e = explained.explanation
    assert explained.features == loaded.contract.names == tuple(e["features"])
    assert e["outputs"] == ["1"] and e["exact"] is True
    values, base = np.asarray(e["attributions"]), np.asarray(e["base_values"])
    assert values.shape == (2, len(explained.features), 1)
    np.testing.assert_allclose(values.sum(axis=1) + base, e["output_values"], atol=1e-6)
    assert [len(t) for t in e["top_features"]] == [2, 2]
    counters = service.metrics.snapshot()["counters"]
    assert "shipyard_predictions" in str(counters)
    # the explanation log has it under the request id; the prediction log has the rows
    record = ExplanationLog(store).read("e-1", model="credit")
    assert record.version == 1 and record.protocol == "test"
    assert record.predictions == direct.values.tolist()
    assert record.explanation["outputs"] == ["1"]
    service.events.flush()
    now = datetime.now(UTC)
    events = read_events(store, "credit", since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert events.column("request_id").to_pylist() == ["e-1", "e-1"]
    assert set(events.column("status").to_pylist()) == {"ok"}


def test_refusals_come_before_any_model_call_and_a_bad_row_is_logged_as_rejected(service: Any) -> None:
    service, _, store = service
    with pytest.raises(RequestTooLargeError, match=r"6 rows; this server takes at most 5"):
        explain(service, [credit_row()] * 6, "e-2")
    with pytest.raises(UnsupportedExplanationError, match=r"output '7' was asked for"):
        explain(service, [credit_row()], "e-3", output="7")
    with pytest.raises(ContractViolationError) as caught:
        explain(service, [credit_row(), credit_row(age="old")], "e-4")
    assert {(v.row, v.feature) for v in caught.value.violations} == {(1, "age")}
    with pytest.raises(UnsupportedExplanationError):
        explain(service, [credit_row()], "e-5", method="linear")  # not a linear model
    service.events.flush()
    now = datetime.now(UTC)
    events = read_events(store, "credit", since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    statuses = dict(
        zip(events.column("request_id").to_pylist(), events.column("status").to_pylist(), strict=True)
    )
    assert statuses == {"e-4": "rejected", "e-5": "rejected"}
