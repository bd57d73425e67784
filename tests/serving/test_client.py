"""`shipyard.Client` over HTTP and gRPC against a real server."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard
from servers import ServerProcess, credit_row

ROWS = [credit_row(), credit_row(age=30, country="FR")]


@pytest.fixture(params=["http", "grpc"])
def client(request: pytest.FixtureRequest, credit_server: ServerProcess) -> shipyard.Client:
    url = credit_server.url if request.param == "http" else f"grpc://{credit_server.grpc_target}"
    with shipyard.Client(url) as c:
        yield c


def test_predict_rows_and_frames(client: shipyard.Client) -> None:
    by_rows = client.predict("credit", ROWS)
    by_frame = client.predict("credit", pd.DataFrame(ROWS))
    assert by_rows.model == "credit"
    assert by_rows.version == 1
    assert by_rows.predictions == by_frame.predictions
    assert by_rows.probabilities is not None
    assert set(by_rows.probabilities[0]) == {"0", "1"}
    assert client.ready()


def test_http_and_grpc_agree(credit_server: ServerProcess) -> None:
    with (
        shipyard.Client(credit_server.url) as http,
        shipyard.Client(f"grpc://{credit_server.grpc_target}") as rpc,
    ):
        a, b = http.predict("credit", ROWS), rpc.predict("credit", ROWS)
    assert a.predictions == b.predictions
    assert a.probabilities is not None
    assert b.probabilities is not None
    # one approx per row: pytest.approx compares flat sequences and mappings, not lists of dicts
    assert len(a.probabilities) == len(b.probabilities)
    for http_row, rpc_row in zip(a.probabilities, b.probabilities, strict=True):
        assert http_row == pytest.approx(rpc_row)


def test_violations_come_back_as_contract_violation_error(client: shipyard.Client) -> None:
    with pytest.raises(shipyard.ContractViolationError) as caught:
        client.predict("credit", [credit_row(age=2.5)])
    assert [(v.row, v.feature) for v in caught.value.violations] == [(0, "age")]


def test_unknown_model_is_unknown_model_error(client: shipyard.Client) -> None:
    with pytest.raises(shipyard.UnknownModelError):
        client.predict("nope", ROWS)


def test_too_many_rows_is_request_too_large_error(client: shipyard.Client) -> None:
    with pytest.raises(shipyard.RequestTooLargeError, match="at most 50"):
        client.predict("credit", [credit_row()] * 51)  # the server takes 50 (--max-rows)


@pytest.fixture(scope="module")
def limited_server(credit_home: Path) -> Iterator[ServerProcess]:
    """The credit model behind a rate limit of one request a second, two at once, for anyone."""
    server = ServerProcess(
        credit_home, ["credit@production"], "--rate-limit", "1", "--burst", "2", "--no-log"
    )
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


def _flood(client: shipyard.Client) -> None:
    """Ten calls at once: the server takes two at once, then one a second, so the third is refused."""
    for _ in range(10):
        client.predict("credit", ROWS)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_rate_limited_call_is_rate_limited_error_with_its_retry_after(
    limited_server: ServerProcess, protocol: str
) -> None:
    url = limited_server.url if protocol == "http" else f"grpc://{limited_server.grpc_target}"
    with shipyard.Client(url) as client, pytest.raises(shipyard.RateLimitedError) as caught:
        _flood(client)
    assert not isinstance(caught.value, shipyard.RequestTooLargeError)
    assert "sent more than 1 requests per second" in str(caught.value)
    assert caught.value.retry_after >= 1
    time.sleep(caught.value.retry_after + 0.5)  # the next test starts with a full burst


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_explain_shares_predict_s_rate_limit(limited_server: ServerProcess, protocol: str) -> None:
    url = limited_server.url if protocol == "http" else f"grpc://{limited_server.grpc_target}"
    with shipyard.Client(url) as client:
        with contextlib.suppress(shipyard.RateLimitedError):
            _flood(client)  # the burst goes on predictions
        with pytest.raises(shipyard.RateLimitedError) as caught:
            client.explain("credit", ROWS[:1])
    assert caught.value.retry_after >= 1
    time.sleep(caught.value.retry_after + 0.5)


def test_explain_answers_predictions_and_attributions(client: shipyard.Client) -> None:
    answer = client.explain("credit", ROWS, output="1", request_id=f"client-{client.scheme}")
    assert isinstance(answer, shipyard.ServedExplanation)
    assert (answer.model, answer.version, answer.request_id) == ("credit", 1, f"client-{client.scheme}")
    assert answer.predictions == client.predict("credit", ROWS).predictions
    e = answer.explanation
    assert e["outputs"] == ["1"] and len(e["features"]) == 6
    shares = answer.attributions(1)
    assert sum(shares.values()) + e["base_values"][1][0] == pytest.approx(e["output_values"][1][0], abs=1e-6)
    assert answer.probabilities is not None  # the margin explained is the probability's log-odds
    assert 1 / (1 + math.exp(-e["output_values"][1][0])) == pytest.approx(answer.probabilities[1]["1"])


def test_explain_errors_are_mapped_like_predict_s(client: shipyard.Client) -> None:
    with pytest.raises(shipyard.ContractViolationError) as refused:
        client.explain("credit", [credit_row(age=2.5)])
    assert [(v.row, v.feature) for v in refused.value.violations] == [(0, "age")]
    with pytest.raises(shipyard.UnsupportedExplanationError, match="expected one of"):
        client.explain("credit", ROWS, method="shapley")
    with pytest.raises(shipyard.UnsupportedExplanationError, match="outputs are its classes"):
        client.explain("credit", ROWS, output="maybe")


def test_http_and_grpc_explain_alike(credit_server: ServerProcess) -> None:
    with (
        shipyard.Client(credit_server.url) as http,
        shipyard.Client(f"grpc://{credit_server.grpc_target}") as rpc,
    ):
        by_http, by_grpc = http.explain("credit", ROWS[:1]), rpc.explain("credit", ROWS[:1])
        kept = http.explanation("credit", by_grpc.request_id)
        with pytest.raises(shipyard.NotFoundError):
            http.explanation("credit", "never-sent")
    for key in ("method", "space", "exact", "features", "outputs"):
        assert by_http.explanation[key] == by_grpc.explanation[key], key
    for key in ("attributions", "base_values", "output_values", "additivity_error"):
        assert np.allclose(by_http.explanation[key], by_grpc.explanation[key], atol=1e-12), key
    assert kept["protocol"] == "oip-grpc"
    assert kept["explanation"]["attributions"] == by_grpc.explanation["attributions"]
