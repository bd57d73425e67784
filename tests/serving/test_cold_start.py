"""`shipyard serve --bundle`: listening before the model loads, so that requests which arrive
during the start wait and are answered; no metadata store, no SQLAlchemy, and no pyarrow needed."""

from __future__ import annotations

import concurrent.futures
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands import shipyard_cli, shipyard_environment
from servers import credit_row, free_port
from shipyard import Registry, Settings
from shipyard.packaging.bundle import write_bundle
from shipyard.serving.client import Client

# Run as `python -c`: imports of these packages fail, as in a runtime where they are not installed.
WITHOUT = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {names!r}:
            raise ImportError(f"No module named {{name!r}} (hidden by the test)")
        return None

sys.meta_path.insert(0, Missing())
from shipyard.cli.app import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def bundle(credit_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cold-start") / "bundle"
    with Registry(Settings.for_home(credit_home), actor="tester") as registry:
        write_bundle(registry, "credit@production", out)
    return out


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return [
        credit_row(age=25),
        credit_row(age=63, debt_ratio=0.9),
        credit_row(income=1200.0, employment="retired"),
    ]


@pytest.fixture(scope="module")
def expected(credit_home: Path, rows: list[dict[str, Any]]) -> list[Any]:
    with Registry(Settings.for_home(credit_home), actor="tester") as registry:
        return list(registry.load("credit@production").predict(rows).values)


class Started:
    """`shipyard serve --bundle` started as a process (by `python`, `python -m shipyard` unless
    given) on free ports."""

    def __init__(
        self,
        home: Path,
        bundle: Path,
        *args: str,
        python: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        home.mkdir(exist_ok=True)
        self.log = home / "serve.log"
        command = [*(python or [sys.executable, "-m", "shipyard"]), "serve", "--bundle", str(bundle)]
        command += ["--port", str(self.port), "--grpc-port", str(self.grpc_port), *args]
        environment = shipyard_environment(home, env)
        self.started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def connectable(self, timeout: float = 60) -> None:
        """Return once a TCP connection to the HTTP port succeeds (polled every 5 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.005)
        raise AssertionError(f"nothing listened on {self.port} within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def started(tmp_path: Path, bundle: Path) -> Iterator[Started]:
    server = Started(tmp_path / "home", bundle)
    try:
        yield server
    finally:
        server.stop()


def test_fifty_requests_fired_at_the_first_connect_are_all_answered(
    started: Started, rows: list[dict[str, Any]], expected: list[Any]
) -> None:
    started.connectable()

    def predict(_: int) -> httpx.Response:
        with httpx.Client(base_url=started.url, timeout=120) as http:
            return http.post("/v1/models/credit/predict", json={"instances": rows})

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(predict, range(50)))
    assert [a.status_code for a in answers] == [200] * 50, [a.text for a in answers if a.status_code != 200]
    for answer in answers:
        assert answer.json()["predictions"] == expected
        assert answer.json()["version"] == 1
    with httpx.Client(base_url=started.url, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200
    assert "serving credit:1 (version 1)" in started.output()


def test_every_route_answers_without_sqlalchemy_pyarrow_or_skops(
    tmp_path: Path, bundle: Path, rows: list[dict[str, Any]], expected: list[Any]
) -> None:
    hidden = Started(
        tmp_path / "home",
        bundle,
        python=[sys.executable, "-c", WITHOUT.format(names={"sqlalchemy", "pyarrow", "skops"})],
    )
    try:
        hidden.connectable()
        with httpx.Client(base_url=hidden.url, timeout=60) as http:
            assert http.get("/readyz").status_code == 200, hidden.output()
            assert http.get("/healthz").status_code == 200
            assert http.get("/v2/health/ready").json() == {"ready": True}
            rest = http.post("/v1/models/credit/predict", json={"instances": rows})
            assert rest.json()["predictions"] == expected
            mlflow = http.post("/invocations", json={"dataframe_records": rows})
            assert mlflow.status_code == 200, mlflow.text
            oip = http.post("/v2/models/credit/infer", json=_oip(rows))
            assert oip.status_code == 200, oip.text
            labels = next(o for o in oip.json()["outputs"] if o["name"] == "prediction")["data"]
            assert labels == expected
            feedback = http.post("/v1/feedback", json={"request_id": rest.json()["request_id"], "label": 0})
            assert "without a metadata store" in feedback.json()["error"]["message"]
            metrics = http.get("/metrics")
            assert metrics.status_code == 200 and "shipyard_" in metrics.text
        with Client(f"grpc://127.0.0.1:{hidden.grpc_port}") as client:
            assert client.predict("credit", rows).predictions == expected
        with Client(hidden.url) as client:
            explained = client.explain("credit", rows[:2])
            assert explained.predictions == expected[:2]
    finally:
        hidden.stop()
    assert hidden.output().count("the prediction log is off: pyarrow is not installed") == 1, hidden.output()


def test_auth_required_without_a_database_or_jwt_issuer_is_refused_at_start(
    tmp_path: Path, bundle: Path
) -> None:
    result = shipyard_cli(tmp_path, "serve", "--bundle", str(bundle), "--auth", "required", "--port", "0")
    assert result.returncode == 1
    assert "accepts JWTs only" in result.stderr and "SHIPYARD_DB_URL" in result.stderr


def test_with_a_database_named_api_keys_and_feedback_work(
    tmp_path: Path, bundle: Path, credit_home: Path, rows: list[dict[str, Any]]
) -> None:
    from shipyard.security.keys import Keys

    settings = Settings.for_home(credit_home)
    with Registry(settings, actor="tester") as registry:
        secret = Keys(registry).create(f"app-{tmp_path.name}", role="admin").secret
    server = Started(
        tmp_path / "home", bundle, "--auth", "required", env={"SHIPYARD_DB_URL": settings.db_url}
    )
    try:
        server.connectable()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/readyz").status_code == 200, server.output()
            refused = http.post("/v1/models/credit/predict", json={"instances": rows})
            assert refused.status_code == 401
            key = {"X-API-Key": secret}
            answered = http.post("/v1/models/credit/predict", json={"instances": rows}, headers=key)
            assert answered.status_code == 200, answered.text
            label = {"request_id": answered.json()["request_id"], "label": 0}
            feedback = http.post("/v1/feedback", json=label, headers=key)
            assert feedback.status_code < 500 and "without a metadata store" not in feedback.text
    finally:
        server.stop()


def _oip(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An OIP request of `rows`, one tensor per feature."""
    from servers import CREDIT_DATATYPES

    inputs = []
    for name, datatype in CREDIT_DATATYPES.items():
        values = [r[name] for r in rows]
        inputs.append({"name": name, "datatype": datatype, "shape": [len(rows)], "data": values})
    return {"inputs": inputs}


def test_workers_share_the_socket_the_parent_listens_on(tmp_path: Path, bundle: Path) -> None:
    server = Started(tmp_path / "home", bundle, "--workers", "2")
    try:
        server.connectable()
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(lambda _: _status(server.url), range(40)))
        assert codes == [200] * 40, server.output()
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output()


def _status(url: str) -> int:
    with httpx.Client(base_url=url, timeout=120) as http:
        return http.post("/v1/models/credit/predict", json={"instances": [credit_row()]}).status_code
