"""Shipyard's errors: the context they gather on the way up, and the names they travel under."""

from __future__ import annotations

import pickle

import pytest

from shipyard import errors
from shipyard.errors import (
    ContractViolationError,
    PredictionError,
    RateLimitedError,
    ShipyardError,
)


def test_context_is_named_after_the_message() -> None:
    error = PredictionError("the model failed").add_context(model="credit", version=3, rows=500)
    assert error.context == {"model": "credit", "version": 3, "rows": 500}
    assert str(error) == "the model failed (model='credit', version=3, rows=500)"
    assert error.args == ("the model failed",)


def test_an_error_that_passes_twice_keeps_its_first_context_once() -> None:
    error = PredictionError("boom").add_context(model="credit", rows=5)
    error.add_context(model="other", rows=9, request_id="r-1")
    assert error.context == {"model": "credit", "rows": 5, "request_id": "r-1"}
    assert str(error).count("model=") == 1


def test_an_error_without_context_reads_as_its_message() -> None:
    assert str(ShipyardError("plain")) == "plain"
    assert ShipyardError("plain").context == {}


def test_context_is_the_error_s_own_and_survives_pickling() -> None:
    first = PredictionError("a").add_context(rows=1)
    assert PredictionError("b").context == {}
    again = pickle.loads(pickle.dumps(first))
    assert again.context == {"rows": 1}
    assert str(again) == str(first)


def test_adding_context_gives_back_the_error_itself_to_re_raise() -> None:
    error = ContractViolationError("bad rows")
    assert error.add_context(model="credit") is error
    assert error.violations == ()


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (RateLimitedError, "rate_limited"),
        (ContractViolationError, "contract_violation"),
        (ShipyardError, "shipyard"),
    ],
)
def test_an_error_travels_under_its_snake_case_name(kind: type[ShipyardError], name: str) -> None:
    assert kind.type_name() == name
    assert ShipyardError.for_type_name(name) is kind


def test_every_error_class_is_found_by_its_name_and_nothing_else_is() -> None:
    for name in errors.__all__:
        kind = getattr(errors, name)
        if isinstance(kind, type):
            assert ShipyardError.for_type_name(kind.type_name()) is kind
    assert ShipyardError.for_type_name("NOT_FOUND") is None
    assert ShipyardError.for_type_name("too_many_connections") is None
    assert RateLimitedError.for_type_name("contract_violation") is None  # only its own subclasses
