"""`shipyard serve` as a process: workers, metrics summed over them, graceful SIGTERM (a moved alias
followed: test_following)."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servers import ServerProcess, credit_row


def rest_requests(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shipyard_requests_total" and sample.labels.get("protocol") == "rest":
                total += sample.value
    return total


def gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_are_summed_over_workers(two_workers: ServerProcess) -> None:
    pids: set[str] = set()
    for i in range(40):
        # A fresh connection each time, so the kernel spreads them over both workers.
        response = httpx.post(
            f"{two_workers.url}/v1/models/credit/predict", json={"instances": [credit_row(age=20 + i)]}
        )
        assert response.status_code == 200
        pids.add(response.json()["request_id"][:12])
    assert len(pids) == 2, "both workers should have answered"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = two_workers.http.get("/metrics").text
        if rest_requests(text) == 40:
            break
        time.sleep(0.2)
    assert rest_requests(text) == 40
    assert gauge(text, "shipyard_workers") == 2


def test_a_counter_never_goes_down_whichever_worker_answers_the_scrape(two_workers: ServerProcess) -> None:
    seen: list[float] = []
    for i in range(60):
        # Fresh connections, so requests and scrapes land on both workers in turn.
        httpx.post(
            f"{two_workers.url}/v1/models/credit/predict", json={"instances": [credit_row(age=20 + i)]}
        )
        seen.append(rest_requests(httpx.get(f"{two_workers.url}/metrics").text))
    drops = [(a, b) for a, b in itertools.pairwise(seen) if b < a]
    assert not drops, f"shipyard_requests_total went down between scrapes: {drops} in {seen}"


def test_sigterm_answers_accepted_requests_and_flushes_the_log(home: Path) -> None:
    server = ServerProcess(home, ["credit@production"]).wait_ready()
    answered: list[str] = []
    failures: list[str] = []
    started = threading.Barrier(9)

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            http.get("/healthz")  # connected before SIGTERM
            started.wait()
            for i in range(30):
                try:
                    response = http.post(
                        "/v1/models/credit/predict", json={"instances": [credit_row(age=20 + i)]}
                    )
                except httpx.TransportError:
                    return  # the server stopped accepting; nothing was accepted and dropped
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                    return
                answered.append(response.json()["request_id"])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.2)
    code = server.terminate()
    for t in threads:
        t.join()
    assert code == 0, server.output()
    assert not failures
    assert answered
    segments = list((home / "artifacts" / "events" / "credit").rglob("*.parquet"))
    assert segments
    assert not [p for p in segments if p.name.startswith(".tmp-")]
    logged = set(pq.ParquetDataset(segments).read(columns=["request_id"]).column("request_id").to_pylist())
    assert set(answered) <= logged


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds a server's workers in /proc")
def test_workers_stop_when_their_supervisor_is_killed(two_workers: ServerProcess) -> None:
    pid = two_workers.pid
    workers = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(workers) == 2
    os.kill(pid, signal.SIGKILL)  # it forwards no SIGTERM now
    two_workers.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    # A zombie has no command line: only a live process keeps one.
    alive = [
        w for w in workers if Path(f"/proc/{w}/cmdline").exists() and Path(f"/proc/{w}/cmdline").read_bytes()
    ]
    assert not alive, f"workers {alive} kept serving after their supervisor was killed"
